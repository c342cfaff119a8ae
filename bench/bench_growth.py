#!/usr/bin/env python3
"""Lookups as the database grows: cksd at 10,000, 100,000 and more keys.

For each size N: N synthetic keys (bench/synthetic_keys.py: valid Ed25519
keys, one user ID each, made once and kept in --workdir) are loaded with
`cks_admin.py load --no-sync` into a fresh database (load time per key,
database size per key); then cksd, with a fresh install's defaults, is driven
by wrk at 8 keep-alive clients over 200 keys picked at random (the median of
--runs runs of each):

  get    /pks/lookup?op=get&options=mr&search=0x<key ID>
  index  /pks/lookup?op=index&options=mr&search=0x<key ID>
  word   /pks/lookup?op=index&options=mr&search=<word>   (a word of one key's name)

It prints the 2xx answers per second and p99 of each, the largest resident
size of a serving process under that load, the peak resident sizes of the
loading process and of its workers, and at the end each throughput at
the largest size as a fraction of the smallest (the target: above 0.75).
Each kind runs twice on the same load: with the answer cache (the default),
where repeated lookups are answered from memory whatever the size, and
without it ("uncached", answer_cache_mb = 0), what the database itself does.

    python3 bench/bench_growth.py [--sizes 10000,100000] [--db sqlite,postgresql]
                                  [--duration 5] [--runs 3]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Dict, List, Tuple

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path[:0] = [os.path.join(ROOT, "lib"), os.path.join(ROOT, "tests"), BENCH]

import loadgen  # noqa: E402
from bench_hkp import answered  # noqa: E402
from synthetic_keys import make_key  # noqa: E402

from cks.openpgp.keys import parse_keyring  # noqa: E402
from cks.store import open_store  # noqa: E402
from support.db import create_pg_database, drop_pg_database  # noqa: E402
from support.server import LOOPBACK_EXEMPT, Cksd  # noqa: E402

KEYS_PER_CHUNK = 10_000


def _chunk(span: Tuple[int, int]) -> Tuple[bytes, str]:
    """Keys start to end - 1, and their key IDs (a line each)."""
    keys = b"".join(make_key(i) for i in range(*span))
    return keys, "".join(k.keyid.hex().upper() + "\n" for k in parse_keyring(keys).keys)


def keyring(count: int, workdir: str) -> str:
    """A binary keyring of `count` synthetic keys (key i named "Bench Key i"),
    made on every core and kept, with their key IDs in PATH.keyids."""
    path = os.path.join(workdir, "growth-%d.pgp" % count)
    if not os.path.exists(path):
        with multiprocessing.Pool() as pool, open(path + ".tmp", "wb") as out, \
                open(path + ".keyids", "w") as ids:
            for keys, keyids in pool.imap(_chunk, [(start, min(count, start + KEYS_PER_CHUNK))
                                                   for start in range(0, count, KEYS_PER_CHUNK)]):
                out.write(keys)
                ids.write(keyids)
        os.replace(path + ".tmp", path)
    return path


def workloads(path: str, count: int, rng: random.Random) -> Dict[str, List[str]]:
    """200 lookups of each kind, for keys spread over the whole file."""
    picked = sorted(rng.sample(range(count), 200))
    with open(path + ".keyids") as handle:
        every = handle.read().split()
    keyids = [every[i] for i in picked]
    return {
        "get": ["/pks/lookup?op=get&options=mr&search=0x%s" % k for k in keyids],
        "index": ["/pks/lookup?op=index&options=mr&search=0x%s" % k for k in keyids],
        # make_key names key i "Bench Key i <benchi@example.org>"
        "word": ["/pks/lookup?op=index&options=mr&search=bench%d" % i for i in picked],
    }


def database_bytes(url: str) -> int:
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))
    store = open_store(url)
    try:
        with store.read() as cursor:
            return cursor.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    finally:
        store.close()


def children(pid: int) -> List[int]:
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as handle:
            return [int(p) for p in handle.read().split()]
    except OSError:
        return []


def status_kib(pid: int, field: str) -> int:
    """A size of /proc/PID/status (VmRSS, VmHWM) in KiB; 0 once it is gone."""
    try:
        with open("/proc/%d/status" % pid) as handle:
            return max([int(line.split()[1]) for line in handle
                        if line.startswith(field + ":")] or [0])
    except OSError:
        return 0


def serving_rss_kib(pid: int) -> int:
    """The largest resident size among cksd's serving processes (its children,
    or cksd itself when it serves alone)."""
    return max(status_kib(p, "VmRSS") for p in children(pid) or [pid])


@dataclass
class Load:
    seconds: float
    loader_kib: int  # the loading process's peak resident size
    worker_kib: int  # the largest peak of its worker processes


def load(url: str, path: str) -> Load:
    """`cks_admin.py load`, with its processes' peak memory read every 0.1 s."""
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, "cks_admin.py"), "--db",
                                url, "load", "--no-sync", path], stdout=subprocess.DEVNULL)
    loader = workers = 0
    while process.poll() is None:
        loader = max(loader, status_kib(process.pid, "VmHWM"))
        workers = max([workers] + [status_kib(p, "VmHWM") for p in children(process.pid)])
        time.sleep(0.1)
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, process.args)
    return Load(time.monotonic() - started, loader, workers)


Row = Tuple[str, int, Load, int, Dict[str, Tuple[float, float]], int]


def remove_sqlite(url: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(url[len("sqlite:///"):] + suffix):
            os.remove(url[len("sqlite:///"):] + suffix)


def run_size(backend: str, count: int, path: str, args, work: str) -> Row:
    url = create_pg_database() if backend == "postgresql" else \
        "sqlite:///%s" % os.path.join(work, "growth-%d.db" % count)
    if backend == "sqlite":
        remove_sqlite(url)  # a run killed before its clean-up left one: load from scratch
    try:
        loaded = load(url, path)
        size = database_bytes(url)
        os.sync()  # the load's writes go to disk now, not during the lookups
        time.sleep(5)
        results: Dict[str, Tuple[float, float]] = {}
        rss = 0
        for cached in (True, False):  # the answer cache, then the database itself
            config = os.path.join(work, "cks.conf")
            with open(config, "w") as handle:
                handle.write("[server]\n" + ("" if cached else "answer_cache_mb = 0\n")
                             + LOOPBACK_EXEMPT)
            with Cksd(url, config=config) as cksd:
                for name, paths in workloads(path, count, random.Random(count)).items():
                    runs = []
                    for _ in range(args.runs):
                        runs.append(loadgen.run_wrk(cksd.url, paths, 8, args.duration))
                        rss = max(rss, serving_rss_kib(cksd.proc.pid))
                        time.sleep(1)
                    runs.sort(key=answered)
                    median = runs[len(runs) // 2]
                    results[name if cached else name + " uncached"] = (answered(median),
                                                                       median.p99_ms)
        return backend, count, loaded, size, results, rss
    finally:
        if backend == "postgresql":
            drop_pg_database(url)
        else:
            remove_sqlite(url)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=3, help="runs of each kind (the median counts)")
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(),
                                                          "cks-bench-growth"))
    args = parser.parse_args()
    if not loadgen.wrk_available():
        sys.exit("needs wrk (apt-get install wrk)")
    os.makedirs(args.workdir, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    for backend in args.db.split(","):
        for count in sizes:
            path = keyring(count, args.workdir)
            rows.append(run_size(backend, count, path, args, args.workdir))
            print_row(rows[-1], flush=True)
    print("\ncksd with a fresh install's defaults (\"uncached\": answer_cache_mb = 0); wrk, "
          "8 keep-alive clients, median of %d runs of %.0f s; 2xx answers per second"
          % (args.runs, args.duration))
    for backend in args.db.split(","):
        mine = [r for r in rows if r[0] == backend]
        small, large = mine[0], mine[-1]
        print("%s: at %d keys, as a fraction of %d keys: %s" % (
            backend, large[1], small[1], ", ".join(
                "%s %.2f" % (name, large[4][name][0] / max(small[4][name][0], 1e-9))
                for name in small[4])))
    return 0


def print_row(row: Row, flush: bool = False) -> None:
    backend, count, loaded, size, results, rss = row
    print("%-10s %9d keys: load %.2f ms/key (loading process %.0f MB, workers %.0f MB), "
          "database %.0f bytes/key, serving process %.1f MB; %s" % (
              backend, count, loaded.seconds * 1000 / count, loaded.loader_kib / 1024,
              loaded.worker_kib / 1024, size / count, rss / 1024,
              "; ".join("%s %.0f/s p99 %.1f ms" % (name, rate, p99)
                        for name, (rate, p99) in results.items())), flush=flush)


if __name__ == "__main__":
    sys.exit(main())
