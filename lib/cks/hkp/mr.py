"""Machine-readable output (options=mr), exactly as GnuPG parses it
(draft-shaw-openpgp-hkp-00; GnuPG's g10/keyserver.c)."""

from __future__ import annotations

import re
from typing import Iterable, List, Optional

from ..store.rows import KeyRow

_UNSAFE = re.compile(rb"[^\x20-\x24\x26-\x39\x3b-\x7e]")  # all but printable ASCII, ':', '%'


def escape(text: str) -> str:
    """Percent-encode ':', '%' and every byte of the UTF-8 encoding that is not
    printable 7-bit ASCII."""
    return _UNSAFE.sub(lambda match: b"%%%02X" % match.group()[0],
                       text.encode("utf-8")).decode("ascii")


def _date(value: Optional[int]) -> str:
    return "" if value is None else str(value)


def _flags(revoked: bool, expires: Optional[int], now: int) -> str:
    return ("r" if revoked else "") + ("e" if expires is not None and expires <= now else "")


def key_id_field(row: KeyRow) -> str:
    """GnuPG wants the fingerprint; v3 keys are listed by key ID."""
    return row.keyid if row.version < 4 else row.fingerprint


def index(rows: Iterable[KeyRow], now: int) -> str:
    rows = list(rows)
    lines: List[str] = ["info:1:%d" % len(rows)]
    for row in rows:
        lines.append("pub:%s:%d:%d:%s:%s:%s" % (
            key_id_field(row), row.algorithm, row.bits, row.created, _date(row.expires),
            _flags(row.revoked, row.expires, now)))
        for uid in row.user_ids:
            if uid.is_attribute:
                continue
            lines.append("uid:%s:%s:%s:%s" % (
                escape(uid.uid), _date(uid.created), _date(uid.expires),
                _flags(uid.revoked, uid.expires, now)))
    return "\n".join(lines) + "\n"
