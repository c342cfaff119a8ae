#!/usr/bin/env python3
"""Verify every self-signature of the Debian keyring, next to `gpg --check-sigs`.

Times, in-process: parsing; CryptoCheck.is_valid on every self-signature with
an empty verdict cache (cold, broken down by the issuer key's algorithm); the
same again with the cache filled (warm).  Then the wall time of
`gpg --check-sigs` (whole process, best of N) on the same keyring with the
third-party signatures taken out, so both sides check the same signatures,
and the ratio.  --full-gpg also times gpg on the whole keyring, where it
checks every certification whose issuer is in the keyring (minutes).

Usage: python3 bench/bench_verify.py [KEYRING] [--runs N] [--full-gpg]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "lib"))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from cks.openpgp.cryptocheck import CryptoCheck  # noqa: E402
from cks.openpgp.keys import read_keys  # noqa: E402
from support.checksigs import check_sigs_args, self_signatures_only, signatures  # noqa: E402


def timed_gpg(home, path):
    started = time.perf_counter()
    subprocess.run(["gpg", "--homedir", home, "--batch"] + check_sigs_args(path),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def verify_all(keys, check, per_algorithm=None):
    """Seconds to run check.is_valid on every signature of `keys`; counts valid ones."""
    valid = 0
    started = time.perf_counter()
    for key in keys:
        name = key.public_key.algorithm_name
        for component, entry in signatures(key):
            t0 = time.perf_counter()
            valid += check.is_valid(key, component, entry)
            if per_algorithm is not None:
                per_algorithm[name][0] += 1
                per_algorithm[name][1] += time.perf_counter() - t0
    return time.perf_counter() - started, valid


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("keyring", nargs="?", default="/usr/share/keyrings/debian-keyring.gpg")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--full-gpg", action="store_true")
    args = parser.parse_args()
    with open(args.keyring, "rb") as handle:
        full = handle.read()
    data = self_signatures_only(full)
    started = time.perf_counter()
    keys = read_keys(data).keys
    parse = time.perf_counter() - started
    count = sum(1 for key in keys for _ in signatures(key))

    cold, warm = [], []
    per_algorithm = defaultdict(lambda: [0, 0.0])
    for run in range(args.runs):
        cache = {}
        check = CryptoCheck(cache)
        seconds, valid = verify_all(keys, check, per_algorithm if run == 0 else None)
        cold.append(seconds)
        warm.append(verify_all(keys, check)[0])

    home = tempfile.mkdtemp()
    os.chmod(home, 0o700)
    try:
        path = os.path.join(home, "self.gpg")
        with open(path, "wb") as handle:
            handle.write(data)
        theirs = min(timed_gpg(home, path) for _ in range(args.runs))
        if args.full_gpg:
            whole = os.path.join(home, "full.gpg")
            shutil.copyfile(args.keyring, whole)
            theirs_full = timed_gpg(home, whole)
    finally:
        subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], check=False)
        shutil.rmtree(home, ignore_errors=True)

    print("keyring: %s (%d keys, %d self-signatures, %d valid)"
          % (args.keyring, len(keys), count, valid))
    print("\ncold verification by issuer algorithm (first run):")
    print("  %-16s %6s %9s %10s" % ("algorithm", "sigs", "total s", "ms/sig"))
    for name, (sigs, seconds) in sorted(per_algorithm.items(), key=lambda i: -i[1][1]):
        print("  %-16s %6d %9.3f %10.3f" % (name, sigs, seconds, 1000 * seconds / sigs))
    print("\nparse (self-signatures only)      : %7.3f s" % parse)
    print("verify, cold cache (best of %d)    : %7.3f s  (%.3f ms/sig)"
          % (args.runs, min(cold), 1000 * min(cold) / count))
    print("verify, warm cache (best of %d)    : %7.3f s  (%.3f ms/sig)"
          % (args.runs, min(warm), 1000 * min(warm) / count))
    print("gpg --check-sigs, same signatures : %7.3f s  (whole process)" % theirs)
    print("ratio cks parse+cold / gpg        : %7.2f" % ((parse + min(cold)) / theirs))
    print("ratio cks parse+warm / gpg        : %7.2f" % ((parse + min(warm)) / theirs))
    if args.full_gpg:
        print("gpg --check-sigs, whole keyring   : %7.3f s  (also third-party signatures)"
              % theirs_full)


if __name__ == "__main__":
    main()
