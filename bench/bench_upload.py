#!/usr/bin/env python3
"""New keys posted one per request, in sequence: cksd against SKS.

The first --keys (100) keys of the Debian maintainers keyring, none held yet,
each armored and POSTed to /pks/add one after the other, as `gpg --send-keys`
sends them, to cksd on a fresh database with a fresh install's defaults
(SQLite and PostgreSQL) and to a fresh private SKS 1.1.6 node, in the same
run.  A key counts when its answer is 2xx.  Prints keys/s, the median of
--runs runs, and the cksd/SKS ratio (above 1: cksd takes keys faster).

    python3 bench/bench_upload.py [--keys 100] [--runs 3] [--db sqlite,postgresql]

Needs root and /usr/sbin/sks (apt-get install sks debian-keyring).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Callable, List

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path[:0] = [os.path.join(ROOT, "tests"), BENCH]

from sks_node import SksNode, armor, read_keyring, sks_available  # noqa: E402

from support.db import create_pg_database, drop_pg_database  # noqa: E402
from support.server import Cksd  # noqa: E402
from support.sks import ADDRESS, free_ports  # noqa: E402

MAINTAINERS = "/usr/share/keyrings/debian-maintainers.gpg"


def post_all(url: str, armored: List[str]) -> float:
    """Keys per second answered 2xx, posting one key per request in sequence."""
    accepted = 0
    started = time.monotonic()
    for text in armored:
        body = urllib.parse.urlencode({"keytext": text}).encode()
        request = urllib.request.Request(url + "/pks/add", data=body, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=120) as answer:
                accepted += 200 <= answer.status < 300
        except urllib.error.HTTPError:
            pass
    elapsed = time.monotonic() - started
    if accepted != len(armored):
        print("  (%d of %d keys accepted)" % (accepted, len(armored)), file=sys.stderr)
    return accepted / elapsed


def cksd_run(db: str, work: str, armored: List[str]) -> float:
    url = create_pg_database() if db == "postgresql" else \
        "sqlite:///%s" % os.path.join(tempfile.mkdtemp(dir=work), "cks.db")
    config = os.path.join(work, "defaults.conf")
    open(config, "w").close()  # a fresh install's defaults
    try:
        with Cksd(url, config=config) as cksd:
            return post_all(cksd.url, armored)
    finally:
        if db == "postgresql":
            drop_pg_database(url)


def sks_run(work: str, armored: List[str]) -> float:
    hkp, recon = free_ports(ADDRESS)
    with SksNode(tempfile.mkdtemp(dir=work), hkp, recon, address=ADDRESS) as sks:
        return post_all(sks.url, armored)


def median_of(runs: int, run: Callable[[], float]) -> float:
    return statistics.median(run() for _ in range(runs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--db", default="sqlite,postgresql")
    args = parser.parse_args()
    if not sks_available():
        sys.exit("needs /usr/sbin/sks and root (apt-get install sks)")
    keys = read_keyring(MAINTAINERS)[:args.keys]
    armored = [armor(k.data) for k in keys]
    work = tempfile.mkdtemp(prefix="cks-bench-upload-")
    theirs = median_of(args.runs, lambda: sks_run(work, armored))
    print("%d new keys (Debian maintainers keyring), one per request in sequence; keys/s "
          "answered 2xx, median of %d runs" % (len(armored), args.runs))
    print("%-22s %10s %7s" % ("server", "keys/s", "ratio"))
    print("%-22s %10.1f %7s" % ("SKS 1.1.6", theirs, ""))
    for db in args.db.split(","):
        ours = median_of(args.runs, lambda: cksd_run(db, work, armored))
        print("%-22s %10.1f %7.2f" % ("cksd (%s)" % db, ours, ours / theirs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
