"""Machine-readable output (options=mr), exactly as GnuPG parses it
(draft-shaw-openpgp-hkp-00; GnuPG's g10/keyserver.c)."""

from __future__ import annotations

import re
from typing import Iterable, List, Mapping, Optional, Sequence

from ..openpgp.userid import UserID
from ..store.rows import KeyRow, UserIDRow

_UNSAFE = re.compile(rb"[^\x20-\x24\x26-\x39\x3b-\x7e]")  # all but printable ASCII, ':', '%'
REPLACED = "\ufffd"  # UserID.text's stand-in for a byte that is not UTF-8, and for a NUL


def escape(value: bytes) -> str:
    """Percent-encode ':', '%' and every byte that is not printable 7-bit ASCII."""
    return _UNSAFE.sub(lambda match: b"%%%02X" % match.group()[0], value).decode("ascii")


def may_differ_from_text(row: KeyRow) -> bool:
    """Whether a user ID of the key may not be the UTF-8 of its stored text
    (index() then wants the user IDs' own bytes, from the served view)."""
    return any(REPLACED in u.uid for u in row.user_ids if not u.is_attribute)


def _user_id_bytes(uid: UserIDRow, value: Optional[bytes]) -> bytes:
    """The user ID's own bytes: `value` (the packet at its position in the
    served view, if read) when its text is the stored one, else the UTF-8 of
    the stored text (all the bytes of a user ID that is UTF-8 without NUL)."""
    return value if value is not None and UserID(value).text == uid.uid \
        else uid.uid.encode("utf-8")


# The latest date GnuPG reads from these fields, which it takes into 32 bits.
LAST_DATE = 2 ** 32 - 1


def _date(value: Optional[int]) -> str:
    """`value`, no later than LAST_DATE (2106-02-07): an expiry past it
    wrapped round in GnuPG's --search-keys, and showed as long past."""
    return "" if value is None else str(min(value, LAST_DATE))


def _flags(revoked: bool, expires: Optional[int], now: int) -> str:
    return ("r" if revoked else "") + ("e" if expires is not None and expires <= now else "")


def key_id_field(row: KeyRow) -> str:
    """GnuPG wants the fingerprint; v3 keys are listed by key ID."""
    return row.keyid if row.version < 4 else row.fingerprint


def index(rows: Iterable[KeyRow], now: int,
          values: Optional[Mapping[str, Sequence[bytes]]] = None) -> str:
    """The index of `rows`; `values`: fingerprint -> the bodies of the user
    ID and attribute packets of its served view (for the keys
    may_differ_from_text picks), whose bytes are listed rather than the
    stored text: a user ID that is not UTF-8 is listed as the key has it."""
    rows = list(rows)
    values = values or {}
    lines: List[str] = ["info:1:%d" % len(rows)]
    for row in rows:
        lines.append("pub:%s:%d:%d:%s:%s:%s" % (
            key_id_field(row), row.algorithm, row.bits, row.created, _date(row.expires),
            _flags(row.revoked, row.expires, now)))
        packets = values.get(row.fingerprint, ())
        for position, uid in enumerate(row.user_ids):
            if uid.is_attribute:
                continue
            value = packets[position] if position < len(packets) else None
            lines.append("uid:%s:%s:%s:%s" % (
                escape(_user_id_bytes(uid, value)), _date(uid.created), _date(uid.expires),
                _flags(uid.revoked, uid.expires, now)))
    return "\n".join(lines) + "\n"
