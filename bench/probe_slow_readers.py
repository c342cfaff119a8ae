#!/usr/bin/env python3
"""Clients that take an answer slowly: a probe of the review's scenario
(README, Serving under abuse), not a timed test.

cksd (two serving processes, loopback an ordinary address) on a database
that holds the Debian keyring: `op=get&options=mr&search=debian` is an
answer of 3.7 MB, more than bodies.MEMORY_BYTES, so each one being sent is
a temporary file.  --connections connections from 127.0.0.2 onwards (56 an
address, under max_connections_per_address), each with a --window receive
buffer, ask it and read --read bytes each --pause seconds.  Each second
the probe adds up the deleted temporary files the serving processes hold;
it prints the most they held, and when they held none again.

The review's clients took a piece (256 KiB) about once per write_timeout
(60 s); that takes a quarter of an hour to watch, so --scale divides the
times (write_timeout 2 s instead of 60, min_write_rate_kb multiplied by
30) and the clients read 30 times faster than at full scale.  On loopback
the kernel's send buffers, megabytes per connection, take most of an
answer whatever the deadline (README, Slow clients).

    python3 bench/probe_slow_readers.py --keyring-db DB [--root CHECKOUT] [--scale 30]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
import tempfile
import time
from typing import List, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "tests")]

from support.server import Cksd  # noqa: E402

REQUEST = (b"GET /pks/lookup?op=get&options=mr&search=debian HTTP/1.1\r\nHost: x\r\n"
           b"Connection: close\r\n\r\n")
PER_ADDRESS = 56


def held_files(pids: List[str]) -> Tuple[int, int]:
    """How many deleted temporary files the processes `pids` hold, and their bytes."""
    count = size = 0
    for pid in pids:
        for fd in os.listdir("/proc/%s/fd" % pid):
            path = "/proc/%s/fd/%s" % (pid, fd)
            try:
                target = os.readlink(path)
                if target.startswith(tempfile.gettempdir()) and target.endswith(" (deleted)"):
                    count, size = count + 1, size + os.stat(path).st_size
            except FileNotFoundError:
                continue
    return count, size


def open_reader(port: int, n: int, window: int) -> socket.socket:
    """The `n`th reader's connection, its request sent."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, window)
    sock.bind(("127.0.0.%d" % (2 + n // PER_ADDRESS), 0))
    sock.connect(("127.0.0.1", port))
    sock.sendall(REQUEST)
    sock.setblocking(False)
    return sock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keyring-db", required=True, help="a SQLite database of the keyring")
    parser.add_argument("--root", default=ROOT, help="the checkout whose cksd.py runs")
    parser.add_argument("--connections", type=int, default=400)
    parser.add_argument("--scale", type=float, default=30)
    parser.add_argument("--window", type=int, default=65536, help="receive buffer, bytes")
    parser.add_argument("--read", type=int, default=32768, help="bytes read each pause")
    parser.add_argument("--pause", type=float, default=7.5, help="seconds, at full scale")
    parser.add_argument("--seconds", type=float, default=900, help="at most, at full scale")
    args = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix="probe-slow-readers-")
    config = os.path.join(scratch, "cks.conf")
    with open(config, "w") as handle:
        handle.write("[server]\nprocesses = 2\nmax_connections = 1024\nwrite_timeout = %g\n"
                     "min_write_rate_kb = %g\n[ratelimit]\ntrusted_proxies =\n"
                     % (60 / args.scale, 16 * args.scale))
    import support.server
    support.server.ROOT = args.root  # (the cksd.py of --root)
    try:
        with Cksd("sqlite:///" + os.path.abspath(args.keyring_db), config=config) as server:
            pids = server.children()
            started = time.monotonic()
            open_ = set()
            opened = 0
            peak = (0, 0)
            last_held = started
            taken = 0
            pause = args.pause / args.scale
            next_read = next_sample = time.monotonic()
            while (open_ or opened < args.connections) \
                    and time.monotonic() - started < args.seconds / args.scale:
                for _ in range(min(20, args.connections - opened)):  # (read meanwhile)
                    open_.add(open_reader(server.port, opened, args.window))
                    opened += 1
                now = time.monotonic()
                if now >= next_sample:
                    held = held_files(pids)
                    peak = max(peak, held, key=lambda h: h[1])
                    last_held = now if held[0] else last_held
                    next_sample = now + 1
                if now >= next_read:
                    for sock in list(open_):
                        try:
                            data = sock.recv(args.read)
                        except (BlockingIOError, InterruptedError):
                            continue
                        except OSError:
                            data = b""
                        taken += len(data)
                        if not data:
                            open_.discard(sock)
                            sock.close()
                    next_read += pause
                time.sleep(max(0.0, min(next_read, next_sample) - time.monotonic()))
            cut = len(server.output().split("answer not taken in time")) - 1
            print("%s: %d connections reading %d B each %.2f s: temporary files held at "
                  "most %d (%.0f MB), none from %.0f s on (%.0f s at full scale); "
                  "%d cut, %.1f MB taken" % (
                      args.root, args.connections, args.read, pause, peak[0],
                      peak[1] / 1e6, last_held - started, (last_held - started) * args.scale,
                      cut, taken / 1e6))
            for sock in open_:
                sock.close()
            cuts = [line for line in server.output().splitlines() if "not taken" in line]
            if cuts:
                print("first and last cut:", cuts[0], cuts[-1], sep="\n")
    finally:
        shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
