"""What the stats page reads from the database (Store.key_statistics,
notice_log, peers_summary).

Every query here reads an index, never the key rows and their key data: the
counts by day read cks_keys_first_seen and cks_keys_changed (last_changed,
first_seen), the counts by algorithm cks_keys_algorithm (algorithm, bits),
and the user ID count the primary key of cks_userids and the small partial
index of photo IDs.  A key counts once per column: as added on the day it
was first seen, as updated on the day of its last change when that came on
a later day (a key changed on several days counts on the last one).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from .rejections import NOTICE_COLUMNS, StoredNotice

if TYPE_CHECKING:  # pragma: no cover
    from .base import Store
    from .sql import Cursor

DAY = 86400
PUBLIC_NOTICES = ("issued", "applied")  # signed, and published at /pks/x-cks-rejections


@dataclass
class DayCounts:
    day: int  # epoch seconds of 00:00 UTC
    added: int = 0
    updated: int = 0


@dataclass
class KeyStatistics:
    """The counts that read a whole index (cached by the stats page)."""
    user_ids: int  # not counting photo IDs
    key_types: List[Tuple[int, int, int]]  # (algorithm, bits, keys)
    days: List[DayCounts]  # oldest first, today (UTC) last


@dataclass
class NoticeLog:
    notices: List[StoredNotice]  # the newest public notices, newest first
    counts: Dict[str, int]  # every notice, by status


def key_statistics(cursor: "Cursor", now: Optional[int], days: int) -> KeyStatistics:
    now = int(time.time()) if now is None else now
    return KeyStatistics(user_ids(cursor), key_types(cursor), keys_per_day(cursor, now, days))


def notice_log(cursor: "Cursor", limit: int) -> NoticeLog:
    """The newest `limit` public notices (signed, published at
    /pks/x-cks-rejections) and how many notices there are of each status."""
    rows = cursor.execute("SELECT %s FROM cks_rejection_notices WHERE status IN (%s) "
                          "ORDER BY received_at DESC, serial LIMIT ?"
                          % (NOTICE_COLUMNS, ",".join("?" * len(PUBLIC_NOTICES))),
                          list(PUBLIC_NOTICES) + [limit]).fetchall()
    counts = cursor.execute("SELECT status, count(*) FROM cks_rejection_notices "
                            "GROUP BY status").fetchall()
    return NoticeLog([StoredNotice(*r) for r in rows], dict(counts))


def user_ids(cursor: "Cursor") -> int:
    return cursor.scalar("SELECT count(*) FROM cks_userids") - \
        cursor.scalar("SELECT count(*) FROM cks_userids WHERE is_attribute")


def key_types(cursor: "Cursor") -> List[Tuple[int, int, int]]:
    rows = cursor.execute("SELECT algorithm, bits, count(*) FROM cks_keys "
                          "GROUP BY algorithm, bits").fetchall()
    return [(algorithm, bits, count) for algorithm, bits, count in rows]


def keys_per_day(cursor: "Cursor", now: int, days: int) -> List[DayCounts]:
    first_day = now // DAY - days + 1
    out = [DayCounts((first_day + n) * DAY) for n in range(days)]
    since = first_day * DAY
    for day, count in cursor.execute(
            "SELECT first_seen / %d, count(*) FROM cks_keys WHERE first_seen >= ? "
            "GROUP BY first_seen / %d" % (DAY, DAY), (since,)).fetchall():
        if day - first_day < days:
            out[day - first_day].added = count
    for day, count in cursor.execute(
            "SELECT last_changed / %d, count(*) FROM cks_keys WHERE last_changed >= ? "
            "AND first_seen < last_changed / %d * %d GROUP BY last_changed / %d"
            % (DAY, DAY, DAY, DAY), (since,)).fetchall():
        if day - first_day < days:
            out[day - first_day].updated = count
    return out


def peers_summary(store: "Store") -> List[Dict[str, Any]]:
    """The enabled peers: sync state (last success, last error when it came
    after that, keys owed), and for recon peers the last completed round
    (when, keys lacked here and there, keys fetched)."""
    from .peers import PeerStore  # it imports base, which imports this module
    out = []
    for p in PeerStore(store).list(enabled_only=True, counted=True):
        peer = {"peer": p.peer, "kind": p.kind, "last_attempt": p.last_attempt,
                "last_success": p.last_success,
                "last_error": p.last_error if p.last_error and
                (p.last_error_at or 0) >= (p.last_success or 0) else None,
                "backlog": p.backlog}
        if p.kind == "recon":
            peer["recon"] = {"port": p.recon_port, "rounds": p.recon_rounds,
                             "last_round": p.recon_last_round,
                             "lacked_here": p.recon_lacked_here,
                             "lacked_there": p.recon_lacked_there, "fetched": p.recon_fetched}
        out.append(peer)
    return out
