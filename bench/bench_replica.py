#!/usr/bin/env python3
"""Lookup throughput of cksd on a PostgreSQL primary alone and with a streaming
replica taking the lookups (--db-read), for 1 and 2 cksd processes.

Makes a private primary and replica (initdb, pg_basebackup; tests/support/
pgcluster.py), loads the Debian keyring into the primary, waits for the
replica to replay it, and drives each set-up with wrk: get by key ID
(/pks/lookup?op=get&options=mr&search=0x<key ID>, 200 key IDs), keep-alive
clients.  Every lookup reads the database ([server] answer_cache_mb = 0; cksd
keeps no answer cache with a replica); one more row per process count shows
the primary with the answer cache, for comparison.  Prints one table.

    python3 bench/bench_replica.py [--clients 16] [--duration 5]

Needs root (the servers run as the postgres user), the PostgreSQL server
binaries, wrk and the debian-keyring package.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import loadgen  # noqa: E402
from sks_node import read_keyring  # noqa: E402

from support import pgcluster  # noqa: E402
from support.server import LOOPBACK_EXEMPT, Cksd  # noqa: E402

DEBIAN_KEYRING = "/usr/share/keyrings/debian-keyring.gpg"


def load_keyring(cluster: pgcluster.PgCluster, dbname: str) -> None:
    """The Debian keyring into a new database on the primary, replayed on the replica."""
    cluster.create_database(dbname)
    subprocess.run([sys.executable, os.path.join(ROOT, "cks_admin.py"), "--db",
                    cluster.primary.url(dbname), "load", "--no-sync", DEBIAN_KEYRING],
                   check=True, stdout=subprocess.DEVNULL)
    cluster.wait_replayed()


# (what lookups read, whether cksd keeps its answer cache)
SETUPS = (("primary", False), ("primary + replica", False), ("primary", True))


def measure(db_url: str, read_url: str, processes: int, cache: bool, paths, clients: int,
            duration: float, workdir: str) -> loadgen.Result:
    config = os.path.join(workdir, "cks.conf")
    with open(config, "w") as handle:
        handle.write("[server]\nprocesses = %d\nanswer_cache_mb = %d\n%s"
                     % (processes, 16 if cache else 0, LOOPBACK_EXEMPT))
    args = ["--db-read", read_url] if read_url else []
    with Cksd(db_url, args, config=config) as cksd:
        loadgen.run_wrk(cksd.url, paths, clients, 1)  # warm the connection pools
        result = loadgen.run_wrk(cksd.url, paths, clients, duration)
    time.sleep(1)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args()
    why_not = pgcluster.missing() or ("" if loadgen.wrk_available() else "needs wrk")
    if why_not:
        sys.exit(why_not)
    keys = read_keyring(DEBIAN_KEYRING)
    paths = ["/pks/lookup?op=get&options=mr&search=0x%s" % k.keyid
             for k in random.Random(1).sample(keys, 200)]
    rows = []
    with pgcluster.PgCluster() as cluster, tempfile.TemporaryDirectory() as workdir:
        load_keyring(cluster, "cks_bench")
        primary, replica = cluster.primary.url("cks_bench"), cluster.replica.url("cks_bench")
        for processes in (1, 2):
            for label, cache in SETUPS:
                read_url = replica if "replica" in label else ""
                result = measure(primary, read_url, processes, cache, paths, args.clients,
                                 args.duration, workdir)
                rows.append((processes, label, cache, result))
    print("cksd lookups (get by key ID), Debian keyring (%d keys), wrk, %d keep-alive "
          "clients, %.0f s per run, %d cores" % (len(keys), args.clients, args.duration,
                                                  os.cpu_count() or 0))
    print("%-9s  %-18s %-12s %10s %9s %9s %7s" % (
        "processes", "lookups read", "answer cache", "req/s", "p50", "p99", "errors"))
    for processes, label, cache, result in rows:
        print("%-9d  %-18s %-12s %10.0f %7.2fms %7.2fms %7d" % (
            processes, label, "on" if cache else "off", result.throughput, result.p50_ms,
            result.p99_ms, result.errors))
    return 0


if __name__ == "__main__":
    sys.exit(main())
