#!/usr/bin/env python3
"""Parse the Debian keyring with CKS and with GnuPG, side by side.

Prints the wall time of `cks_admin.py show` and of `gpg --show-keys
--with-colons` on the same file (best of N interleaved runs, whole processes),
CKS's in-process parse time, and the ratios.  A ratio below 1 means CKS is
faster.  Usage: python3 bench/bench_parse.py [KEYRING] [--runs N]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "lib"))

from cks.openpgp.info import describe  # noqa: E402
from cks.openpgp.keys import merge_all, read_keys  # noqa: E402


def timed(cmd, env=None):
    started = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                   env=env)
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("keyring", nargs="?", default="/usr/share/keyrings/debian-keyring.gpg")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    home = tempfile.mkdtemp()
    os.chmod(home, 0o700)
    env = dict(os.environ, GNUPGHOME=home)
    ours, theirs, inproc = [], [], []
    try:
        with open(args.keyring, "rb") as handle:
            data = handle.read()
        for _ in range(args.runs):
            ours.append(timed([sys.executable, os.path.join(ROOT, "cks_admin.py"), "show",
                               args.keyring]))
            theirs.append(timed(["gpg", "--show-keys", "--with-colons", args.keyring], env))
            started = time.perf_counter()
            keys = merge_all(read_keys(data).keys)
            for key in keys:
                describe(key)
            inproc.append(time.perf_counter() - started)
    finally:
        subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], check=False)
        shutil.rmtree(home, ignore_errors=True)
    print("keyring: %s (%.1f MB, %d keys)" % (args.keyring, len(data) / 1e6, len(keys)))
    print("gpg --show-keys --with-colons : %.3f s" % min(theirs))
    print("cks_admin.py show             : %.3f s   ratio cks/gpg = %.2f"
          % (min(ours), min(ours) / min(theirs)))
    print("cks parse+describe in-process : %.3f s   ratio cks/gpg = %.2f"
          % (min(inproc), min(inproc) / min(theirs)))


if __name__ == "__main__":
    main()
