#!/usr/bin/env python3
"""What one costly upload does to the uploader's next upload and to text
searches: a probe, not a benchmark (the review of 2026-12-06 that made
uploads charged by their work, hkp/upload_cost.py).

Starts cksd (default settings, one serving process; the uploads come
through a "proxy" on loopback that names client 192.0.2.1), stores a key
to search for, then sends one upload of the scenario and prints: its
answer's time, the answer to the same client's next upload, the times of
text searches (op=index&search=debian+org) sent every 0.25 s until the
upload's last key is served, and when that was.

  made-up: 38 DSA-3072 keys, each with 999 made-up self-signatures (4.2 MB)
  many:    20,000 small EdDSA keys (4 MB)

    python3 bench/probe_upload_cost.py [--scenario made-up|many] [--db sqlite|postgresql]
                                       [--root CHECKOUT]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import statistics
import sys
import tempfile
import time
from typing import List, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "lib"), os.path.join(ROOT, "tests"),
                os.path.join(ROOT, "bench")]

from cryptography.hazmat.primitives.asymmetric import dsa  # noqa: E402

from cks.openpgp.keypacket import PublicKey  # noqa: E402
from cks.openpgp.packet import Packet  # noqa: E402
from cks.store import Store, open_store  # noqa: E402
from support.db import drop_pg_database, new_db_url  # noqa: E402
from support.forge import keyring, made_up_self_signatures, self_signed_key  # noqa: E402
from support.server import Cksd  # noqa: E402
from synthetic_keys import make_keys  # noqa: E402

CONFIG = "[server]\nprocesses = 1\n"  # (each process keeps its own buckets)
KEYS = "application/pgp-keys"
CLIENT = {"X-Forwarded-For": "192.0.2.1", "Content-Type": KEYS}


def _mpi(value: int) -> bytes:
    return value.bit_length().to_bytes(2, "big") + value.to_bytes((value.bit_length() + 7) // 8,
                                                                  "big")


def made_up_keys(count: int, self_signatures: int) -> bytes:
    """`count` DSA-3072 keys (one key's numbers, created a second apart) of
    `self_signatures` made-up self-signatures each."""
    numbers = dsa.generate_private_key(3072).public_key().public_numbers()
    mpis = b"".join(_mpi(n) for n in (numbers.parameter_numbers.p, numbers.parameter_numbers.q,
                                      numbers.parameter_numbers.g, numbers.y))
    keys = []
    for n in range(count):
        primary = PublicKey.parse(b"\x04" + (1600000000 + n).to_bytes(4, "big") + b"\x11" + mpis)
        keys.append(keyring([Packet(6, primary.serialize())] + made_up_self_signatures(
            primary, b"Made Up %d <made-up@example.org>" % n, self_signatures)))
    return b"".join(keys)


def many_keys(count: int) -> bytes:
    """`count` small keys."""
    return b"".join(make_keys(count))


def searches_until_served(server: Cksd, store: Store) -> Tuple[List[float], float]:
    """The times of text searches sent every 0.25 s until no served view is
    owed (cks_view_work is empty: read from the database, as a lookup by
    fingerprint would derive that key's itself), and when that was
    (seconds from now)."""
    started, times = time.monotonic(), []
    while True:
        before = time.monotonic()
        status = server.lookup(op="index", search="debian org", options="mr")[0]
        times.append(time.monotonic() - before)
        assert status == 200, status
        with store.read() as cursor:
            if not store.view_work(cursor, 1):
                return times, time.monotonic() - started
        time.sleep(0.25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=ROOT, help="the checkout whose cksd.py runs")
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--scenario", choices=("made-up", "many"), default="made-up")
    args = parser.parse_args()
    body = made_up_keys(38, 999) if args.scenario == "made-up" else many_keys(20_000)
    scratch = pathlib.Path(tempfile.mkdtemp(prefix="probe-upload-cost-"))
    url = new_db_url(args.db, scratch)
    config = scratch / "cks.conf"
    config.write_text(CONFIG)
    import support.server
    support.server.ROOT = args.root  # (the cksd.py of --root)
    try:
        with Cksd(url, config=str(config)) as server:
            someone = self_signed_key(b"d" * 32, [b"Someone <someone@debian.org>"])[1]
            assert server.request("POST", "/pks/add", someone, {"Content-Type": KEYS})[0] == 200
            started = time.monotonic()
            status = server.request("POST", "/pks/add", body, CLIENT, timeout=120)[0]
            print("%s: upload of %.1f MB: %d in %.1f s" % (args.scenario, len(body) / 1e6,
                                                          status, time.monotonic() - started))
            status, headers, _ = server.request("POST", "/pks/add", many_keys(1), CLIENT)
            print("the same client's next upload: %d, Retry-After %s"
                  % (status, headers.get("retry-after")))
            times, served = searches_until_served(server, open_store(url))
            print("text searches meanwhile: %d, median %.3f s, slowest %.3f s; "
                  "all served after %.1f s" % (len(times), statistics.median(times),
                                                    max(times), served))
    finally:
        if args.db == "postgresql":
            drop_pg_database(url)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
