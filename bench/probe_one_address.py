#!/usr/bin/env python3
"""One client address against everyone else: a probe of the review's two
scenarios (README, Serving under abuse), not a timed test.

cksd with its defaults (two serving processes), loopback made an ordinary
address (not a trusted proxy, not exempt).  From 127.0.0.2:

- slowloris: --connections connections, each sending a request head a byte
  a second, a new one for each that is closed (408, 503);
- slow-body: as many uploads with Content-Length 5000000, a byte a second;
- memory: --uploads uploads of 5 MiB less a byte, then nothing.

For the first two, another client (127.0.0.3) asks a lookup every 0.2 s on
a new connection and the probe prints its answers by status; for the last,
the serving processes' resident memory before and after.

    python3 bench/probe_one_address.py [--root CHECKOUT] [--db sqlite|postgresql]
                                       [--scenario slowloris|slow-body|memory]
"""

from __future__ import annotations

import argparse
import collections
import os
import pathlib
import selectors
import shutil
import socket
import sys
import tempfile
import threading
import time
from typing import Counter, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "tests")]

from support.db import drop_pg_database, new_db_url  # noqa: E402
from support.server import Cksd  # noqa: E402

ATTACKER, OTHER = "127.0.0.2", "127.0.0.3"
CONFIG = "[server]\nprocesses = 2\n[ratelimit]\ntrusted_proxies =\n"
BODY_LENGTH = 5_000_000


def _connect(port: int, source: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10,
                                    source_address=(source, 0))
    sock.setblocking(False)
    return sock


def trickle(port: int, count: int, start: bytes, stop: threading.Event) -> None:
    """`count` connections from ATTACKER, each sending `start` then a byte a
    second, each closed one opened again at the next second."""
    selector = selectors.DefaultSelector()
    open_ = set()
    while not stop.is_set():
        while len(open_) < count and not stop.is_set():
            try:
                sock = _connect(port, ATTACKER)
                sock.send(start)
            except OSError:
                break
            open_.add(sock)
            selector.register(sock, selectors.EVENT_READ)
        ticked = time.monotonic()
        while time.monotonic() - ticked < 1 and not stop.is_set():
            for key, _ in selector.select(0.1):
                try:
                    data = key.fileobj.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    selector.unregister(key.fileobj)
                    key.fileobj.close()
                    open_.discard(key.fileobj)
        for sock in list(open_):
            try:
                sock.send(b"X")
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                selector.unregister(sock)
                sock.close()
                open_.discard(sock)
    for sock in open_:
        sock.close()
    selector.close()


def others_answers(port: int, seconds: float) -> Counter[str]:
    """OTHER's lookups, one every 0.2 s on a new connection: their answers by status."""
    answers: Counter[str] = collections.Counter()
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10,
                                          source_address=(OTHER, 0)) as sock:
                sock.sendall(b"GET /pks/lookup?op=stats&options=mr HTTP/1.1\r\nHost: x\r\n"
                             b"Connection: close\r\n\r\n")
                answers[sock.recv(12)[9:12].decode() or "closed"] += 1
        except OSError as exc:
            answers[type(exc).__name__] += 1
        time.sleep(0.2)
    return answers


def resident_mb(pids: List[str]) -> List[int]:
    sizes = []
    for pid in pids:
        with open("/proc/%s/status" % pid) as handle:
            rss = next(line for line in handle if line.startswith("VmRSS:"))
        sizes.append(int(rss.split()[1]) // 1024)
    return sizes


def hold_uploads(port: int, count: int) -> List[socket.socket]:
    """`count` uploads of 5 MiB less a byte from ATTACKER, left unfinished."""
    length = 5 << 20
    held = []
    for _ in range(count):
        sock = _connect(port, ATTACKER)
        sock.setblocking(True)
        try:
            sock.sendall(b"POST /pks/add HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                         % length + b"k" * (length - 1))
        except OSError:
            pass
        held.append(sock)
    return held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=ROOT, help="the checkout whose cksd.py runs")
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--scenario", choices=("slowloris", "slow-body", "memory"),
                        default="slowloris")
    parser.add_argument("--connections", type=int, default=1100)
    parser.add_argument("--uploads", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=40)
    args = parser.parse_args()
    scratch = pathlib.Path(tempfile.mkdtemp(prefix="probe-one-address-"))
    url = new_db_url(args.db, scratch)
    config = os.path.join(scratch, "cks.conf")
    with open(config, "w") as handle:
        handle.write(CONFIG)
    server = Cksd(url, config=config)
    import support.server
    support.server.ROOT = args.root  # (the cksd.py of --root)
    try:
        with server:
            if args.scenario == "memory":
                before = resident_mb(server.children())
                held = hold_uploads(server.port, args.uploads)
                time.sleep(3)
                print("resident MB before: %s, with %d unfinished uploads: %s"
                      % (before, args.uploads, resident_mb(server.children())))
                for sock in held:
                    sock.close()
                return
            start = (b"GET /pks/lookup?op=stats HTTP/1.1\r\nHost: x\r\n"
                     if args.scenario == "slowloris" else
                     b"POST /pks/add HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                     % BODY_LENGTH)
            stop = threading.Event()
            attacker = threading.Thread(target=trickle, args=(server.port, args.connections,
                                                              start, stop))
            attacker.start()
            time.sleep(5)  # (its connections opened)
            answers = others_answers(server.port, args.seconds)
            stop.set()
            attacker.join()
            print("%s, %d connections from %s: %s's answers %s" % (
                args.scenario, args.connections, ATTACKER, OTHER, dict(answers)))
    finally:
        if url.startswith("postgresql"):
            drop_pg_database(url)
        shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
