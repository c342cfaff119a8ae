#!/usr/bin/env python3
"""Where an upload's time goes, in one process: a probe, not a benchmark.

Stores the first --keys keys of the Debian maintainers keyring (after 20
others, so that the tables are not empty) on a fresh database, one per
call of `pipeline.submit` as cksd's workers make it (the served view left
to follow), and prints the time an upload takes: parsing, each statement
sent (on PostgreSQL the statements deferred to the next one go with it, so
a `COMMIT` carries the transaction's writes), and the rest.  On SQLite it
also prints how many pages of the write-ahead log a commit writes.  Then
the served views of those keys, derived as cksd's idle helper derives them
(`views.serve_new_keys`): the CPU a key, and how much of it is modular
exponentiation.  Nothing is compared with SKS: bench_upload.py does that;
this says where to look (bench/HISTORY.md has its figures of 2026-12-05).

    python3 bench/probe_upload.py [--db sqlite|postgresql] [--keys 100]

Needs the debian-keyring package (and, for PostgreSQL, the server the tests use).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import sys
import tempfile
import time
from typing import Callable, Counter, Dict, Iterator, List

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [os.path.join(ROOT, "lib"), os.path.join(ROOT, "tests")]

from cks import pipeline, views  # noqa: E402
from cks.crypto import libcrypto  # noqa: E402
from cks.openpgp import armor  # noqa: E402
from cks.openpgp.keys import parse_keyring  # noqa: E402
from cks.store import open_store, sql  # noqa: E402

from support.db import create_pg_database, drop_pg_database  # noqa: E402

MAINTAINERS = "/usr/share/keyrings/debian-maintainers.gpg"
WARM_UP = 20
LOG_FRAME = 4096 + 24  # a page of SQLite's write-ahead log and its frame header


class Timings:
    """Seconds spent in the functions wrapped (timed), by label."""

    def __init__(self) -> None:
        self.seconds: Counter[str] = collections.Counter()

    @contextlib.contextmanager
    def timed(self, owner, name: str, label: Callable[..., str]) -> Iterator[None]:
        """Within the block, `owner.name` adds its time under label(*args)."""
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            name = label(*args)  # (before the call: it may send what was deferred)
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - started
        setattr(owner, name, wrapper)
        try:
            yield
        finally:
            setattr(owner, name, original)


def statement(cursor, sql: str, *_args) -> str:
    """The statement's first words, after those of the statements deferred
    to it (Cursor.defer: on PostgreSQL they go in the same round trip)."""
    deferred = [bytes(d).decode("utf-8", "replace") for d in cursor._deferred]
    return " + ".join(" ".join(text.split()[:3]).split("(")[0].strip()
                      for text in deferred + [sql])


def armored_keys(count: int) -> List[bytes]:
    with open(MAINTAINERS, "rb") as handle:
        keys = parse_keyring(handle.read()).keys[:WARM_UP + count]
    if len(keys) < WARM_UP + count:
        raise SystemExit("the maintainers keyring has %d keys: use --keys %d at most"
                         % (len(keys), len(keys) - WARM_UP))
    return [armor.encode(key.serialize()).encode() for key in keys]


def log_size(path: str) -> int:
    try:
        return os.path.getsize(path + "-wal")
    except OSError:
        return 0


def probe(url: str, sqlite_path: str, keys: List[bytes]) -> None:
    store = open_store(url)
    store.take_over_checkpoints()  # (as cksd does: the log is copied in the background)
    try:
        source = pipeline.Source.user()
        for data in keys[:WARM_UP]:
            pipeline.submit(store, data, source, follow=False, defer_views=True)
        measured = keys[WARM_UP:]
        timings = Timings()
        log_before = log_size(sqlite_path) if sqlite_path else 0
        with timings.timed(sql.Cursor, "execute", statement), \
                timings.timed(sql.Cursor, "executemany", statement), \
                timings.timed(pipeline, "read_keys", lambda *_: "parse"), \
                timings.timed(pipeline, "merge_all", lambda *_: "parse"):
            started = time.perf_counter()
            for data in measured:
                pipeline.submit(store, data, source, follow=False, defer_views=True)
            seconds = time.perf_counter() - started
        report_uploads(len(measured), seconds, timings.seconds)
        if sqlite_path:
            print("  log pages a commit: %.1f" % (
                (log_size(sqlite_path) - log_before) / LOG_FRAME / len(measured)))
        crypto = Timings()
        with crypto.timed(libcrypto, "mod_exp", lambda *_: "mod_exp"), \
                crypto.timed(libcrypto, "mod_exp2", lambda *_: "mod_exp"):
            cpu = time.process_time()
            views.serve_new_keys(store, pipeline.Limits().serve)
            cpu = time.process_time() - cpu
        print("served views (views.serve_new_keys): %.2f ms of this process's CPU a key, "
              "%.2f ms of it modular exponentiation" % (cpu * 1000 / len(measured),
                                          crypto.seconds["mod_exp"] * 1000 / len(measured)))
    finally:
        store.close()


def report_uploads(count: int, seconds: float, spent: Dict[str, float]) -> None:
    per_key = 1000.0 / count
    statements = {label: s for label, s in spent.items() if label != "parse"}
    total = sum(statements.values())
    print("an upload: %.2f ms (parsing %.2f, statements %.2f, the rest %.2f)" % (
        seconds * per_key, spent["parse"] * per_key, total * per_key,
        (seconds - spent["parse"] - total) * per_key))
    for label, s in sorted(statements.items(), key=lambda item: -item[1]):
        print("  %6.3f ms  %s" % (s * per_key, label))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--keys", type=int, default=100)
    args = parser.parse_args()
    keys = armored_keys(args.keys)
    print("probe_upload (%s): %d new keys of the Debian maintainers keyring, one a "
          "transaction, in one process" % (args.db, args.keys))
    if args.db == "postgresql":
        url = create_pg_database()
        try:
            probe(url, "", keys)
        finally:
            drop_pg_database(url)
        return 0
    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, "cks.db")
        probe("sqlite:///" + path, path, keys)
    return 0


if __name__ == "__main__":
    sys.exit(main())
