#!/usr/bin/env python3
"""cks_sync.py throughput: N pending keys pushed to two peers (cksd processes),
batched (the default: up to 100 keys per request on a persistent connection)
against one key per request, which is what the original CKS did.

    python3 bench/bench_sync.py [--keys 10000] [--single-keys 2000] [--db sqlite|postgresql]

Prints keys/s (keys delivered, counting each peer) for both modes and the ratio.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from synthetic_keys import make_keys  # noqa: E402

from support.db import create_pg_database, drop_pg_database  # noqa: E402
from support.server import Cksd  # noqa: E402


def tool(name, *args):
    return subprocess.run([sys.executable, os.path.join(ROOT, name)] + list(args),
                          check=True, capture_output=True, text=True)


def run(kind: str, count: int, keys_per_request: int, work: str) -> float:
    """Seconds one cks_sync.py pass takes to push `count` keys to two peers."""
    def new_db(name):
        if kind == "postgresql":
            return create_pg_database()
        return "sqlite:///%s" % os.path.join(work, "%s-%d.db" % (name, keys_per_request))

    dbs = [new_db(n) for n in ("a", "b", "c")]
    keyring = os.path.join(work, "keys-%d.gpg" % count)
    with open(keyring, "wb") as handle:
        for key in make_keys(count):
            handle.write(key)
    config = os.path.join(work, "sync-%d.conf" % keys_per_request)
    with open(config, "w") as handle:
        handle.write("[sync]\nkeys_per_request = %d\n" % keys_per_request)
    try:
        with Cksd(dbs[1]) as b, Cksd(dbs[2]) as c:
            for peer in (b, c):
                tool("cks_sync_manage.py", "--db", dbs[0], "add", "127.0.0.1:%d" % peer.port,
                     "--no-catch-up")
            tool("cks_admin.py", "--db", dbs[0], "load", keyring)
            started = time.perf_counter()
            out = tool("cks_sync.py", "--db", dbs[0], "--config", config)
            elapsed = time.perf_counter() - started
            assert out.stdout.count("sent %d keys" % count) == 2, out.stdout + out.stderr
            return elapsed
    finally:
        for db in dbs:
            if db.startswith("postgresql"):
                drop_pg_database(db)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=10000)
    parser.add_argument("--single-keys", type=int, default=2000,
                        help="keys for the one-per-request run (it is slow)")
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cks-bench-sync-") as work:
        batched = run(args.db, args.keys, 100, work)
        single = run(args.db, args.single_keys, 1, work)
    fast = 2 * args.keys / batched
    slow = 2 * args.single_keys / single
    print("cks_sync.py to two cksd peers (%s)" % args.db)
    print("batched, 100 keys/request : %6d keys x 2 peers in %6.1f s = %7.0f keys/s"
          % (args.keys, batched, fast))
    print("one key per request       : %6d keys x 2 peers in %6.1f s = %7.0f keys/s"
          % (args.single_keys, single, slow))
    print("ratio batched / one per request = %.1f" % (fast / slow))
    return 0


if __name__ == "__main__":
    sys.exit(main())
