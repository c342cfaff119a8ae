"""Bulk load: `cks_admin.py load` against `sks build` + `sks pbuild`.

Loads the same keyring (default: the Debian keyring) into fresh databases
with `cks_admin.py load` (SQLite and PostgreSQL, their defaults) and builds
an SKS 1.1.6 database from it (`sks build`, `cleandb`, `pbuild`, as an SKS
operator does from a dump), printing the times and their ratio: the whole
load's, and its first phase's (the network views: keys, SKS hashes and the
recon tree, what SKS's build makes, from the start of the command); and the
signatures per second of the served-view phase (every signature CKS checks,
on every core) next to `gpg --check-sigs` on the same keyring.

Each is run --runs times (alternating: SKS, then each backend) and the
medians are printed.  CKS's modules are compiled first (`compileall`), as
the operator's guide installs them.

Usage: python3 bench/bench_load.py [KEYRING] [--backends sqlite,postgresql]
       [--runs 3] [--no-sks] [--no-gpg]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "lib"))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from cks.openpgp.packet import TAG_SIGNATURE, iter_packets  # noqa: E402
from support.checksigs import check_sigs_args  # noqa: E402
from support.db import create_pg_database, drop_pg_database, pg_available  # noqa: E402
from support.sks import sks_node  # noqa: E402

LOAD_LINE = re.compile(r"load: ([\d.]+) s \(network views ([\d.]+) s, then served views "
                       r"([\d.]+) s, then tidying ([\d.]+) s\); (\d+) signatures verified")


def cks_load(url: str, keyring: str):
    """(seconds, seconds until the network views were stored, signatures
    verified, seconds of the served-view phase, summary).  The network
    views' time runs from the command's start: the whole run less the
    served views, the tidying, and what follows the line that reports them
    (the interpreter's exit, after the second phase)."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, "cks_admin.py"), "--db",
                                url, "--verbose", "load", "--no-sync", keyring],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    errors, reported, match = [], 0.0, None
    for line in process.stderr:  # (the summary on standard output is one line)
        errors.append(line)
        if match is None:
            match = LOAD_LINE.search(line.decode())
            reported = time.perf_counter()
    summary = process.stdout.read().decode().strip()
    process.wait()
    ended = time.perf_counter()
    if process.returncode not in (0, 1) or match is None:
        raise SystemExit("cks_admin.py load failed: %s" % b"".join(errors).decode()[-2000:])
    views, tidying = float(match.group(3)), float(match.group(4))
    return ended - started, reported - started - views - tidying, int(match.group(5)), \
        views, summary


def sks_build(workdir: str, keyring: str) -> float:
    """`sks build` + `cleandb` + `pbuild` on the keyring (the node is then stopped)."""
    with sks_node(workdir, [keyring]) as node:
        return sum(node.timings[step] for step in ("build", "clean", "pbuild"))


def gpg_check_sigs(keyring: str) -> float:
    with tempfile.TemporaryDirectory() as home:
        os.chmod(home, 0o700)
        started = time.perf_counter()
        subprocess.run(["gpg", "--homedir", home, "--batch"] + check_sigs_args(keyring),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        elapsed = time.perf_counter() - started
        subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], check=False)
    return elapsed


def load_once(backend: str, work: str, keyring: str):
    """One `cks_admin.py load` into a fresh database of the backend."""
    url = create_pg_database() if backend == "postgresql" else \
        "sqlite:///%s" % os.path.join(work, "cks.db")
    try:
        return cks_load(url, keyring)
    finally:
        if backend == "postgresql":
            drop_pg_database(url)
        else:
            os.unlink(os.path.join(work, "cks.db"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("keyring", nargs="?", default="/usr/share/keyrings/debian-keyring.gpg")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--runs", type=int, default=3,
                        help="runs of each, alternating; the medians are printed")
    parser.add_argument("--no-sks", action="store_true")
    parser.add_argument("--no-gpg", action="store_true")
    args = parser.parse_args()
    keyring = os.path.abspath(args.keyring)
    # As the operator's guide installs CKS: its modules compiled beforehand
    # (the cks user may not write them), not compiled again at every run.
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(ROOT, "lib")],
                   check=True)
    print("keyring: %s (%d bytes), %d cores; medians of %d runs; CKS compiled (compileall)"
          % (keyring, os.path.getsize(keyring), os.cpu_count() or 1, args.runs))
    backends = args.backends.split(",")
    if "postgresql" in backends and pg_available():
        print("postgresql: skipped (%s)" % pg_available())
        backends.remove("postgresql")
    sks_times: list = []
    loads: dict = {backend: [] for backend in backends}
    with tempfile.TemporaryDirectory() as work:
        for _ in range(args.runs):
            if not args.no_sks:
                sks_times.append(sks_build(os.path.join(work, "sks"), keyring))
            for backend in backends:
                loads[backend].append(load_once(backend, work, keyring))
    sks = statistics.median(sks_times) if sks_times else None
    if sks:
        print("sks build + cleandb + pbuild : %8.2f s" % sks)
    for backend, runs in loads.items():
        seconds = statistics.median(run[0] for run in runs)
        network = statistics.median(run[1] for run in runs)
        verified = runs[0][2]
        phase = statistics.median(run[3] for run in runs)
        print("cks load (%-10s)        : %8.2f s  (%s)" % (backend, seconds, runs[0][4]))
        if sks:
            print("  ratio cks / sks            : %8.2f" % (seconds / sks))
        print("  network views (phase 1)    : %8.2f s%s" % (
            network, "  (ratio to sks: %.2f)" % (network / sks) if sks else ""))
        print("  served views (phase 2)     : %8.2f s, %d signatures, %.0f/s"
              % (phase, verified, verified / max(phase, 1e-6)))
    if not args.no_gpg:
        gpg = gpg_check_sigs(keyring)
        with open(keyring, "rb") as handle:
            signatures = sum(1 for p in iter_packets(handle.read()) if p.tag == TAG_SIGNATURE)
        print("gpg --check-sigs             : %8.2f s, %d signatures in the keyring, "
              "%.0f/s" % (gpg, signatures, signatures / gpg))


if __name__ == "__main__":
    main()
