#!/usr/bin/env python3
"""cksd against SKS on the same machine, the same keys and the same requests.

Loads the Debian keyring (905 keys) into a private SKS 1.1.6 node and into
cksd (SQLite by default, or a throw-away PostgreSQL database), then drives both
with wrk (or the Python load generator) at 8 and 32 concurrent keep-alive clients
(--new-connections: one new connection per request, as GnuPG's dirmngr makes):

  get    /pks/lookup?op=get&options=mr&search=0x<key ID>      (200 key IDs)
  index  /pks/lookup?op=index&options=mr&search=0x<key ID>
  word   /pks/lookup?op=index&options=mr&search=<word>        (200 name words, one key each)

and prints the 2xx answers per second and p99 latency of each, and the cksd/SKS ratios
(throughput ratio above 1 and p99 ratio below 1: cksd is better).  With
CKS_HOCKEYPUCK naming a `hockeypuck` binary (built from its source, with
hockeypuck-load beside it), a private Hockeypuck node on its own PostgreSQL
database takes the same requests too, and the cksd/Hockeypuck ratios follow.

    python3 bench/bench_hkp.py [--db sqlite|postgresql] [--duration 5] [--runs 3]
                               [--engine wrk|python] [--processes N] [--no-cache]
                               [--new-connections]

Needs root and /usr/sbin/sks (apt-get install sks wrk debian-keyring).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import List

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import loadgen  # noqa: E402
from bench_sks_smoke import unique_name_words  # noqa: E402
from sks_node import SksNode, read_keyring, sks_available  # noqa: E402

from support.db import create_pg_database, drop_pg_database  # noqa: E402
from support.hockeypuck import ENV as HOCKEYPUCK_ENV, HockeypuckNode  # noqa: E402
from support.server import LOOPBACK_EXEMPT, Cksd  # noqa: E402
from support.sks import ADDRESS, free_ports  # noqa: E402

DEBIAN_KEYRING = "/usr/share/keyrings/debian-keyring.gpg"


def workloads(keys, rng):
    sample = rng.sample(keys, 200)
    words = unique_name_words(keys, 200)
    return {
        "get": ["/pks/lookup?op=get&options=mr&search=0x%s" % k.keyid for k in sample],
        "index": ["/pks/lookup?op=index&options=mr&search=0x%s" % k.keyid for k in sample],
        "word": ["/pks/lookup?op=index&options=mr&search=%s" % w for w in words],
    }


def measure(engine, url, paths, clients, duration, keepalive):
    if engine == "wrk":
        return loadgen.run_wrk(url, paths, clients, duration, keepalive=keepalive)
    return loadgen.run_load(url, paths, clients, duration, keepalive=keepalive, processes=2)


def answered(result) -> float:
    """Requests per second answered 2xx (a 404 or an error is not an answer)."""
    return (result.ok - result.not_found) / result.duration_s if result.duration_s else 0.0


@dataclass
class Cell:
    """One server's figures for one load and client count, over --runs runs."""

    rate: float  # the median of the runs' 2xx answers per second
    p99_ms: float  # the median of their p99 latencies
    unanswered: int  # errors and 404s, all runs together

    @classmethod
    def of(cls, results: List["loadgen.Result"]) -> "Cell":
        return cls(statistics.median(answered(r) for r in results),
                   statistics.median(r.p99_ms for r in results),
                   sum(r.errors + r.not_found for r in results))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=3,
                        help="runs of each cell, alternating the servers (medians count)")
    parser.add_argument("--clients", default="8,32")
    parser.add_argument("--processes", type=int, default=0,
                        help="cksd serving processes ([server] processes; default: "
                             "cksd's own default)")
    parser.add_argument("--no-cache", dest="cache", action="store_false",
                        help="cksd with [server] answer_cache_mb = 0: every lookup reads "
                             "the database")
    parser.add_argument("--new-connections", dest="keepalive", action="store_false",
                        help="a new connection per request, as GnuPG's dirmngr makes "
                             "(default: keep-alive clients)")
    parser.add_argument("--engine", choices=("wrk", "python"),
                        default="wrk" if loadgen.wrk_available() else "python")
    args = parser.parse_args()
    if not sks_available():
        sys.exit("needs /usr/sbin/sks and root (apt-get install sks)")
    keys = read_keyring(DEBIAN_KEYRING)
    loads = workloads(keys, random.Random(1))
    work = tempfile.mkdtemp(prefix="cks-bench-")
    db = create_pg_database() if args.db == "postgresql" else \
        "sqlite:///%s" % os.path.join(work, "cks.db")
    hkp, recon = free_ports(ADDRESS)
    rows = []
    try:
        subprocess.run([sys.executable, os.path.join(ROOT, "cks_admin.py"), "--db", db, "load",
                        "--no-sync", DEBIAN_KEYRING], check=True, stdout=subprocess.DEVNULL)
        config = os.path.join(work, "cks.conf")
        with open(config, "w") as handle:
            handle.write("[server]\n" + ("processes = %d\n" % args.processes
                                         if args.processes else "")
                         + ("" if args.cache else "answer_cache_mb = 0\n") + LOOPBACK_EXEMPT)
        with contextlib.ExitStack() as nodes:
            sks = nodes.enter_context(SksNode(os.path.join(work, "sks"), hkp, recon,
                                              address=ADDRESS, keyring_files=[DEBIAN_KEYRING]))
            cksd = nodes.enter_context(Cksd(db, config=config))
            hockeypuck = nodes.enter_context(HockeypuckNode(
                os.environ[HOCKEYPUCK_ENV], os.path.join(work, "hockeypuck"),
                keyring_files=[DEBIAN_KEYRING])) if os.environ.get(HOCKEYPUCK_ENV) else None
            for name, paths in loads.items():
                for clients in [int(c) for c in args.clients.split(",")]:
                    urls = [cksd.url, sks.url] + ([hockeypuck.url] if hockeypuck else [])
                    results: List[List[loadgen.Result]] = [[] for _ in urls]
                    for _ in range(args.runs):
                        for url, runs in zip(urls, results):
                            runs.append(measure(args.engine, url, paths, clients,
                                                args.duration, args.keepalive))
                            time.sleep(2)  # let TIME-WAIT sockets drain between runs
                    rows.append((name, clients, [Cell.of(runs) for runs in results]))
    finally:
        if db.startswith("postgresql"):
            drop_pg_database(db)
        shutil.rmtree(work, ignore_errors=True)
    print("cksd (%s, %s%s) vs SKS 1.1.6, Debian keyring, %s, %.0f s per run, %s; "
          "2xx answers per second and p99, medians of %d runs; errors and 404s of all runs" % (
              args.db, "%d processes" % args.processes if args.processes else
              "default processes", "" if args.cache else ", no answer cache",
              args.engine, args.duration,
              "keep-alive clients" if args.keepalive else "a new connection per request",
              args.runs))
    peers = ["SKS", "Hockeypuck"][:len(rows[0][2]) - 1] if rows else []
    print("%-6s %7s  %12s" % ("load", "clients", "cksd 2xx/s") + "".join(
        "  %12s %7s %10s %10s %7s" % (peer + " 2xx/s", "ratio", "cksd p99", peer + " p99",
                                      "ratio") for peer in peers) + "  errors cksd/" +
          "/".join(peers))
    for name, clients, (ours, *theirs) in rows:
        print("%-6s %7d  %12.0f" % (name, clients, ours.rate) + "".join(
            "  %12.0f %7.2f %8.1fms %8.1fms %7.2f" % (
                peer.rate, ours.rate / max(peer.rate, 1e-9), ours.p99_ms,
                peer.p99_ms, ours.p99_ms / max(peer.p99_ms, 1e-9)) for peer in theirs) +
              "  " + "/".join(str(cell.unanswered) for cell in [ours] + theirs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
