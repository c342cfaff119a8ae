"""What an upload costs in upload tokens, once it is stored.

The request took one token (ratelimit.py) before anything was known of it;
its work, the served views of the keys it stored, follows the answer
(views_owed.py) and may be a minute of a core (tens of thousands of
made-up DSA self-signatures) or thousands of keys.  So once stored it is
charged for that work too, the client's bucket going into debt if need
be: each key stored (added or updated) counts as one check, plus the
checks its new signatures may cost (pipeline.new_checks: its own, and its
certifications by keys held here, the only ones checked), and
`checks_per_token` of them make a token.  The one token taken covers the
first `checks_per_token`: a usual key sent alone is charged nothing more.
"""

from __future__ import annotations

from typing import Callable, List, Set

from ..pipeline import UNCHANGED, Report

CHECKS_PER_TOKEN = 200
"""The default: about 0.3 s of a core at most (DSA at 3,072 bits checks in
1.5 ms), so that one client at `uploads_per_minute` = 60 keeps a third of
a core busy at most where it kept 60 cores' worth (a review's figures)."""


def tokens_beyond_the_first(report: Report, checks_per_token: int,
                            held: Callable[[List[str]], Set[str]]) -> float:
    """The tokens to charge an upload whose request took one (0 with no
    `checks_per_token`: every upload costs one token).  Its certifications
    by keys not held cost no check: where the most its keys may cost is
    more than a token, `held` tells which of their issuers' key IDs a
    stored key has (one query, only then)."""
    if checks_per_token <= 0:
        return 0.0
    written = [outcome for outcome in report.stored if outcome.status != UNCHANGED]
    checks = sum(1 + outcome.own_checks + len(outcome.certifiers) for outcome in written)
    if checks > checks_per_token:
        found = held(sorted({keyid for outcome in written for keyid in outcome.certifiers}))
        checks -= sum(keyid not in found for outcome in written for keyid in outcome.certifiers)
    return max(0.0, checks / checks_per_token - 1)
