#!/usr/bin/env python3
"""New keys posted one per request, in sequence: cksd against SKS.

The first --keys (100) keys of the Debian maintainers keyring, none held yet,
each armored and POSTed to /pks/add one after the other, as `gpg --send-keys`
sends them, to cksd on a fresh database with a fresh install's defaults
(SQLite and PostgreSQL) and to a fresh private SKS 1.1.6 node, in the same
run, the servers alternating from run to run, over one keep-alive
connection (a server that closes it after an answer, as SKS does, gets a
new one for the next key; --new-connections: a new connection per key, as
GnuPG's dirmngr makes).  The requests' bodies are made before the clock
starts.  A key counts when its answer is 2xx.  Prints
keys/s, the median of --runs runs, and the cksd/SKS ratio (above 1: cksd
takes keys faster), twice: until the last upload is
answered, and until the keys are served: a search by words, then a lookup
of the last key, sent after the last answer, have been answered, the last
key returned, and (cksd) no key is left unserved in its database.  (cksd
answers the upload of a new key before the key's served view is derived;
a search by words derives the views owed before it answers, or waits 2 s
for them at most, where a lookup by key ID derives only those it finds:
hkp/views_owed.py.  So the second figure counts every signature check the
served views needed.)  Then how long the
answers took: the median, the 99th percentile and the longest (each the
median of the runs').  More keys than the maintainers keyring's 231 are
taken from the Debian keyring after them: past about a second of uploads,
cksd's served-views job works while they go on.

    python3 bench/bench_upload.py [--keys 100] [--runs 3] [--db sqlite,postgresql]
                                  [--new-connections]

Needs root and /usr/sbin/sks (apt-get install sks debian-keyring).
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import sys
import tempfile
import time
import urllib.parse
from typing import Callable, Dict, List, Tuple

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path[:0] = [os.path.join(ROOT, "lib"), os.path.join(ROOT, "tests"), BENCH]

from sks_node import SksNode, armor, read_keyring, sks_available  # noqa: E402

from cks.store import open_store  # noqa: E402

from support.db import create_pg_database, drop_pg_database  # noqa: E402
from support.server import Cksd  # noqa: E402
from support.sks import ADDRESS, free_ports  # noqa: E402

MAINTAINERS = "/usr/share/keyrings/debian-maintainers.gpg"
KEYRING = "/usr/share/keyrings/debian-keyring.gpg"


Rates = Tuple[float, float, float, float, float]
"""Keys per second answered 2xx, and served (see the module notes); then the
answers' median, 99th percentile and longest time, in milliseconds."""


def post_all(url: str, armored: List[str], last: str, keepalive: bool,
             all_served: Callable[[], bool] = lambda: True) -> Rates:
    """Post one key per request in sequence; `last`: the last key's fingerprint;
    `all_served`: whether the server has served every key (asked until it says
    so after the lookups: a search by words waits for the views owed only
    views_owed.LOOKUP_WAIT_SECONDS)."""
    address = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=120)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if not keepalive:
        headers["Connection"] = "close"
    accepted = 0
    waits: List[float] = []
    # (encoded before the clock starts: what is timed is the server's work)
    bodies = [urllib.parse.urlencode({"keytext": text}).encode() for text in armored]
    started = time.monotonic()
    for body in bodies:
        sent = time.monotonic()
        # (a connection the server closed is opened again by the next request)
        connection.request("POST", "/pks/add", body, headers)
        answer = connection.getresponse()
        answer.read()
        accepted += 200 <= answer.status < 300
        waits.append((time.monotonic() - sent) * 1000)
    answered = time.monotonic() - started
    connection.request("GET", "/pks/lookup?op=index&options=mr&search=served+yet")
    connection.getresponse().read()  # (any status: what counts is that it waited)
    connection.request("GET", "/pks/lookup?op=get&options=mr&search=0x" + last,
                       headers={"Connection": "close"})
    answer = connection.getresponse()
    answer.read()
    while not all_served():
        time.sleep(0.005)
    served = time.monotonic() - started
    connection.close()
    if answer.status != 200:
        print("  (the last key was not served: %d)" % answer.status, file=sys.stderr)
    if accepted != len(armored):
        print("  (%d of %d keys accepted)" % (accepted, len(armored)), file=sys.stderr)
    waits.sort()
    return (accepted / answered, accepted / served, statistics.median(waits),
            waits[min(len(waits) - 1, int(len(waits) * 0.99))], waits[-1])


def cksd_run(db: str, work: str, armored: List[str], last: str, keepalive: bool) -> Rates:
    url = create_pg_database() if db == "postgresql" else \
        "sqlite:///%s" % os.path.join(tempfile.mkdtemp(dir=work), "cks.db")
    config = os.path.join(work, "defaults.conf")
    open(config, "w").close()  # a fresh install's defaults
    store = None
    try:
        with Cksd(url, config=config) as cksd:
            store = open_store(url)  # (opened before the clock starts)
            store.count_keys()
            return post_all(cksd.url, armored, last, keepalive, lambda: not unserved(store))
    finally:
        if store is not None:
            store.close()
        if db == "postgresql":
            drop_pg_database(url)


def unserved(store) -> int:
    """Keys stored without their served view yet."""
    with store.read() as cursor:
        return store.count_unserved(cursor)


def sks_run(work: str, armored: List[str], last: str, keepalive: bool) -> Rates:
    hkp, recon = free_ports(ADDRESS)
    with SksNode(tempfile.mkdtemp(dir=work), hkp, recon, address=ADDRESS) as sks:
        return post_all(sks.url, armored, last, keepalive)


def medians(results: List[Rates]) -> Rates:
    return tuple(statistics.median(r[i] for r in results)  # type: ignore[return-value]
                 for i in range(len(results[0])))


def run_alternating(args: argparse.Namespace, work: str, armored: List[str], last: str
                    ) -> Dict[str, List[Rates]]:
    """Each server's --runs runs, in turn, so that the machine's drift falls
    on all of them."""
    servers: Dict[str, Callable[[], Rates]] = {
        "SKS 1.1.6": lambda: sks_run(work, armored, last, args.keepalive)}
    for db in args.db.split(","):
        servers["cksd (%s)" % db] = lambda db=db: cksd_run(db, work, armored, last,
                                                           args.keepalive)
    results: Dict[str, List[Rates]] = {name: [] for name in servers}
    for _ in range(args.runs):
        for name, run in servers.items():
            results[name].append(run())
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--new-connections", dest="keepalive", action="store_false",
                        help="a new connection per key, as GnuPG's dirmngr makes "
                             "(default: one keep-alive connection)")
    args = parser.parse_args()
    if not sks_available():
        sys.exit("needs /usr/sbin/sks and root (apt-get install sks)")
    keys = read_keyring(MAINTAINERS)[:args.keys]
    more = args.keys - len(keys)  # taken from the Debian keyring
    if more > 0:
        keys += read_keyring(KEYRING)[:more]
    armored = [armor(k.data) for k in keys]
    with tempfile.TemporaryDirectory(prefix="cks-bench-upload-") as work:
        results = run_alternating(args, work, armored, keys[-1].fingerprint)
    print("%d new keys (Debian maintainers keyring%s), one per request in sequence, %s; "
          "keys/s answered 2xx, and until served; each answer's wait (median, 99th "
          "percentile, longest); medians of %d alternating runs"
          % (len(armored), ", then the Debian keyring" if more > 0 else "",
             "over a keep-alive connection" if args.keepalive else "a new connection each",
             args.runs))
    print("%-22s %10s %7s %10s %7s %24s" % ("server", "answered", "ratio", "served", "ratio",
                                            "wait ms (p50 / p99 / max)"))
    theirs = medians(results.pop("SKS 1.1.6"))
    waits = "%7.1f / %6.1f / %6.1f"
    print("%-22s %10.1f %7s %10.1f %7s %24s" % ("SKS 1.1.6", theirs[0], "", theirs[1], "",
                                               waits % theirs[2:]))
    for name, rates in results.items():
        ours = medians(rates)
        print("%-22s %10.1f %7.2f %10.1f %7.2f %24s" % (
            name, ours[0], ours[0] / theirs[0], ours[1], ours[1] / theirs[1],
            waits % ours[2:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
