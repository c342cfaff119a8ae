#!/usr/bin/env python3
"""Smoke benchmark of Debian's SKS, proving sks_node + loadgen work.

Starts a private SKS node loaded with the Debian keyring (905 keys),
picks 200 key IDs from it and measures, for each of

  get    /pks/lookup?op=get&search=0x<16 hex keyid>&options=mr
  index  /pks/lookup?op=index&search=0x<16 hex keyid>&options=mr
  word   /pks/lookup?op=index&options=mr&search=<most common given name>
  word1  the same for 200 name words that each occur on exactly one key

req/s and latency percentiles at 8 clients for 5 s, with the Python
load generator (multi-process) and/or wrk.  Reference figures from the
team's notes on running SKS locally (2 cores, 8 clients): get ~1,100/s,
index ~5,200/s, word ~5,300/s.  The reference's word figure matches small
answers (word1), not the common-name word: an index answer for a word on
~20 keys is ~7 KB and SKS serves only a few hundred of those per second.

    python3 bench/bench_sks_smoke.py [--engine both|python|wrk] [--json]

Needs root and /usr/sbin/sks (see sks_node.sks_available()).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import loadgen  # noqa: E402
from sks_node import SksNode, read_keyring, sks_available  # noqa: E402

DEBIAN_KEYRING = "/usr/share/keyrings/debian-keyring.gpg"
REFERENCE = {"get": 1100, "index": 5200, "word": 5300, "word1": 5300}  # req/s


def common_name_word(keys) -> tuple:
    """The given name (first word of the uid's name part) on most keys."""
    c = collections.Counter()
    for k in keys:
        first = set()
        for uid in k.uids:
            m = re.match(r"\s*([^\W\d_]{3,})\b", uid.split("<")[0])
            if m:
                first.add(m.group(1).lower())
        c.update(first)
    word, n = c.most_common(1)[0]
    return word, n


def unique_name_words(keys, n: int) -> list:
    """Up to *n* ASCII name words (4+ letters) that occur on exactly one key.
    A word is a whole one: "Beaupré" and "1bahnerYXdQ..." give none, where
    a run of ASCII letters would be a fragment ("beaupr") that no server's
    word index holds."""
    c = collections.Counter()
    for k in keys:
        words = set()
        for uid in k.uids:
            words |= {w.lower() for w in re.findall(r"\w+", uid.split("<")[0])
                      if len(w) >= 4 and w.isascii() and w.isalpha()}
        c.update(words)
    return sorted(w for w, m in c.items() if m == 1)[:n]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keyring", default=DEBIAN_KEYRING)
    ap.add_argument("--workdir", help="node dir (default: a temp dir, removed)")
    ap.add_argument("--address", default="127.0.0.2")
    ap.add_argument("--hkp-port", type=int, default=21371)
    ap.add_argument("--recon-port", type=int, default=21370)
    ap.add_argument("-c", "--clients", type=int, default=8)
    ap.add_argument("-d", "--duration", type=float, default=5.0)
    ap.add_argument("-n", "--nkeys", type=int, default=200)
    ap.add_argument("--engine", choices=("both", "python", "wrk"), default="both")
    ap.add_argument("-p", "--processes", type=int, default=os.cpu_count() or 1,
                    help="worker processes for the python engine")
    ap.add_argument("--pause", type=float, default=2.0,
                    help="seconds between runs (lets TIME-WAIT sockets drain)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)

    if not sks_available():
        print("sks not available (need /usr/sbin/sks and root)", file=sys.stderr)
        return 2
    engines = ["python", "wrk"] if a.engine == "both" else [a.engine]
    if "wrk" in engines and not loadgen.wrk_available():
        print("wrk not found, python engine only", file=sys.stderr)
        engines.remove("wrk")
        if not engines:
            return 2

    keys = read_keyring(a.keyring)
    sample = random.Random(1).sample(keys, min(a.nkeys, len(keys)))
    word, nword = common_name_word(keys)
    workloads = {
        "get": ["/pks/lookup?op=get&search=0x%s&options=mr" % k.keyid for k in sample],
        "index": ["/pks/lookup?op=index&search=0x%s&options=mr" % k.keyid for k in sample],
        "word": ["/pks/lookup?op=index&options=mr&search=%s" % word],
        "word1": ["/pks/lookup?op=index&options=mr&search=%s" % w
                  for w in unique_name_words(keys, a.nkeys)],
    }

    tmp = None
    workdir = a.workdir
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="sks-smoke-")
        workdir = tmp.name
    results = []
    try:
        t0 = time.monotonic()
        with SksNode(workdir, a.hkp_port, a.recon_port, address=a.address,
                     keyring_files=[a.keyring]) as node:
            print("sks node %s up in %.2fs (%s); %d keys in keyring, %d sampled; "
                  "word %r on %d keys"
                  % (node.url, time.monotonic() - t0,
                     ", ".join("%s %.2fs" % kv for kv in node.timings.items()),
                     len(keys), len(sample), word, nword))
            first = True
            for name, paths in workloads.items():
                for engine in engines:
                    if not first:
                        time.sleep(a.pause)
                    first = False
                    if engine == "wrk":
                        r = loadgen.run_wrk(node.url, paths, a.clients, a.duration)
                    else:
                        r = loadgen.run_load(node.url, paths, a.clients, a.duration,
                                             keepalive=True, processes=a.processes)
                    results.append((name, r))
                    print("%-5s %-6s %7.0f req/s  p50 %6.2f ms  p99 %6.2f ms  "
                          "(ref %5d/s)  n=%d 404=%d err=%d %s"
                          % (name, engine, r.throughput, r.p50_ms, r.p99_ms,
                             REFERENCE[name], r.requests, r.not_found, r.errors,
                             json.dumps(r.error_kinds) if r.error_kinds else ""),
                          flush=True)
    finally:
        if tmp is not None:
            tmp.cleanup()
    if a.json:
        print(json.dumps([dict(workload=n, **r.to_dict()) for n, r in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
