"""A small HTTP GET load generator for keyserver benchmarks.

Two engines, same :class:`Result`:

``run_load(base_url, paths, clients, duration_s, keepalive, processes=1)``
    Pure Python, ``http.client``.  Each of *clients* client threads loops
    over *paths*, starting at its own offset (client k of n starts at
    ``k * len(paths) // n``), one request at a time (closed loop, no
    think time).  ``keepalive=True``: HTTP/1.1 with a persistent
    connection, re-opened whenever the server closes it (SKS closes every
    connection, so there it degenerates to one connection per request).
    ``keepalive=False``: a new TCP connection and ``Connection: close`` for
    every request, as GnuPG/dirmngr does.

    Threads share the GIL: one Python process tops out at roughly
    2,000-3,000 small requests/s of *client* CPU.  With ``processes=N``
    the clients are spread over N worker processes (``clients/N`` threads
    each, results merged) so the generator is not the bottleneck.  Use
    ``processes=1`` for light loads and functional checks (a few hundred
    req/s), ``processes=os.cpu_count()`` for throughput measurements.

``run_wrk(base_url, paths, clients, duration_s, keepalive=True)``
    Drives ``wrk`` (C, epoll) with a generated Lua script that rotates
    through *paths* the same way.  It needs far less CPU per request than
    Python, which matters on a small box where the generator and the
    server share the cores, so its throughput figures are the more
    accurate (higher) ones; prefer it for throughput numbers.  Its
    latency percentiles come from wrk's own histogram.  Use ``run_load``
    where wrk is missing, or when you need exact per-request control
    (e.g. true ``Connection: close`` semantics, or error classification
    beyond wrk's counters).

Keep-alive latencies of ~40 ms flat mean the *server* writes headers and
body in separate small sends with Nagle on (delayed-ACK interaction): seen
with ``http.server`` unless ``disable_nagle_algorithm = True``; both
engines show it, it is not a client artifact.

404 is a valid answer for lookups of absent keys: it is counted as OK but
reported separately (``not_found``).  Other non-2xx answers and transport
failures are ``errors`` (with a breakdown in ``error_kinds``).

CLI::

    python3 bench/loadgen.py http://127.0.0.2:11371 -c 8 -d 5 \\
        --path '/pks/lookup?op=stats' [--paths-file FILE] \\
        [--no-keepalive] [--processes 2 | --wrk] [--json]

Standard library only.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

__all__ = ["Result", "run_load", "run_wrk", "wrk_available", "percentile"]


@dataclass
class Result:
    """Outcome of one load run.

    ``requests``: HTTP responses received (any status) -- ``ok + errors``
    minus transport failures.  ``ok``: 2xx plus 404.  ``not_found``: the
    404s (included in ``ok``).  ``errors``: other statuses plus transport
    failures (timeouts, resets, refused connections).  ``throughput``:
    ``requests / duration_s``.  Latencies (ms) are over the responses.
    """

    engine: str
    clients: int
    processes: int
    keepalive: bool
    duration_s: float
    requests: int = 0
    ok: int = 0
    not_found: int = 0
    errors: int = 0
    error_kinds: Dict[str, int] = field(default_factory=dict)
    connections: Optional[int] = None  # TCP connects made (python engine)
    bytes_received: int = 0
    throughput: float = 0.0
    mean_ms: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0

    def summary(self) -> str:
        s = (
            "%s c=%d%s %s: %d req in %.2fs = %.0f req/s; "
            "p50 %.2f p90 %.2f p99 %.2f max %.1f ms; ok %d (404: %d), errors %d"
            % (
                self.engine,
                self.clients,
                " p=%d" % self.processes if self.processes > 1 else "",
                "keepalive" if self.keepalive else "close",
                self.requests,
                self.duration_s,
                self.throughput,
                self.p50_ms,
                self.p90_ms,
                self.p99_ms,
                self.max_ms,
                self.ok,
                self.not_found,
                self.errors,
            )
        )
        if self.error_kinds:
            s += " " + json.dumps(self.error_kinds, sort_keys=True)
        return s

    def to_dict(self) -> dict:
        return asdict(self)


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (0 if empty)."""
    if not sorted_values:
        return 0.0
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100.0 * len(sorted_values)) - 1))
    return sorted_values[k]


# ---------------------------------------------------------------------------
# Python engine


def _split_url(base_url: str) -> Tuple[str, int, str]:
    u = urllib.parse.urlsplit(base_url)
    if u.scheme != "http":
        raise ValueError("only http:// URLs are supported: %r" % base_url)
    return u.hostname, u.port or 80, u.path.rstrip("/")


class _Tally:
    """Per-thread counters (merged after the run; no locking needed)."""

    __slots__ = ("lat", "statuses", "errors", "connections", "bytes")

    def __init__(self) -> None:
        self.lat: List[float] = []
        self.statuses: Dict[int, int] = collections.Counter()
        self.errors: Dict[str, int] = collections.Counter()
        self.connections = 0
        self.bytes = 0


# Failures on a reused keep-alive connection that mean "the server closed
# it while idle": retried once on a new connection, like browsers do.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


def _client_loop(
    host: str,
    port: int,
    paths: Sequence[str],
    offset: int,
    keepalive: bool,
    timeout: float,
    go: threading.Event,
    deadline_box: list,
    tally: _Tally,
) -> None:
    headers = {} if keepalive else {"Connection": "close"}
    n = len(paths)
    i = offset
    conn: Optional[http.client.HTTPConnection] = None
    used = 0  # requests done on conn
    clock = time.perf_counter
    go.wait()
    deadline = deadline_box[0]
    while True:
        t0 = clock()
        if t0 >= deadline:
            break
        path = paths[i % n]
        i += 1
        attempt = 0
        while True:
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host, port, timeout=timeout)
                    conn.connect()
                    tally.connections += 1
                    used = 0
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
                body = resp.read()
                t1 = clock()
            except _STALE as e:
                reused = used > 0
                if conn is not None:
                    conn.close()
                conn = None
                if reused and attempt == 0:
                    attempt += 1
                    continue
                tally.errors[type(e).__name__] += 1
                break
            except (OSError, http.client.HTTPException) as e:
                if conn is not None:
                    conn.close()
                conn = None
                tally.errors[type(e).__name__] += 1
                # Do not spin at full speed against a dead server.
                time.sleep(0.001)
                break
            used += 1
            tally.lat.append(t1 - t0)
            tally.statuses[resp.status] += 1
            tally.bytes += len(body)
            if not keepalive or resp.will_close:
                conn.close()
                conn = None
            break
    if conn is not None:
        conn.close()


def _run_threads(
    base_url: str,
    paths: Sequence[str],
    client_ids: Sequence[int],
    total_clients: int,
    duration_s: float,
    keepalive: bool,
    timeout: float,
    on_ready=None,
) -> dict:
    """Run the given clients as threads in this process; return raw tallies."""
    host, port, prefix = _split_url(base_url)
    full = [prefix + p for p in paths]
    go = threading.Event()
    deadline_box = [0.0]
    tallies = [_Tally() for _ in client_ids]
    threads = [
        threading.Thread(
            target=_client_loop,
            args=(
                host,
                port,
                full,
                k * len(full) // max(1, total_clients),
                keepalive,
                timeout,
                go,
                deadline_box,
                t,
            ),
            daemon=True,
        )
        for k, t in zip(client_ids, tallies)
    ]
    for th in threads:
        th.start()
    if on_ready is not None:
        on_ready()
    t0 = time.perf_counter()
    deadline_box[0] = t0 + duration_s
    go.set()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - t0
    statuses: Dict[int, int] = collections.Counter()
    errors: Dict[str, int] = collections.Counter()
    lat: List[float] = []
    conns = nbytes = 0
    for t in tallies:
        statuses.update(t.statuses)
        errors.update(t.errors)
        lat.extend(t.lat)
        conns += t.connections
        nbytes += t.bytes
    return {
        "elapsed": elapsed,
        "statuses": {str(k): v for k, v in statuses.items()},
        "errors": dict(errors),
        "lat": lat,
        "connections": conns,
        "bytes": nbytes,
    }


def _worker_main() -> int:
    """Body of a ``--_worker`` subprocess (multi-process mode).

    Protocol on stdin/stdout, one JSON or keyword line each: read the job,
    start the threads, print ``READY``, wait for a ``GO`` line, run, print
    the raw tallies as JSON.
    """
    job = json.loads(sys.stdin.readline())

    def ready() -> None:
        sys.stdout.write("READY\n")
        sys.stdout.flush()
        if sys.stdin.readline().strip() != "GO":
            raise SystemExit(1)

    part = _run_threads(
        job["base_url"],
        job["paths"],
        job["client_ids"],
        job["total_clients"],
        job["duration_s"],
        job["keepalive"],
        job["timeout"],
        on_ready=ready,
    )
    sys.stdout.write(json.dumps(part) + "\n")
    sys.stdout.flush()
    return 0


def _build_result(parts: List[dict], clients: int, processes: int, keepalive: bool) -> Result:
    statuses: Dict[int, int] = collections.Counter()
    errors: Dict[str, int] = collections.Counter()
    lat: List[float] = []
    conns = nbytes = 0
    elapsed = 0.0
    for p in parts:
        statuses.update({int(k): v for k, v in p["statuses"].items()})
        errors.update(p["errors"])
        lat.extend(p["lat"])
        conns += p["connections"]
        nbytes += p["bytes"]
        elapsed = max(elapsed, p["elapsed"])
    lat.sort()
    requests = sum(statuses.values())
    ok = sum(c for s, c in statuses.items() if 200 <= s < 300 or s == 404)
    kinds = dict(errors)
    for s, c in statuses.items():
        if not (200 <= s < 300 or s == 404):
            kinds["HTTP %d" % s] = c
    return Result(
        engine="python",
        clients=clients,
        processes=processes,
        keepalive=keepalive,
        duration_s=elapsed,
        requests=requests,
        ok=ok,
        not_found=statuses.get(404, 0),
        errors=sum(kinds.values()),
        error_kinds=kinds,
        connections=conns,
        bytes_received=nbytes,
        throughput=requests / elapsed if elapsed > 0 else 0.0,
        mean_ms=(sum(lat) / len(lat) * 1000.0) if lat else 0.0,
        p50_ms=percentile(lat, 50) * 1000.0,
        p90_ms=percentile(lat, 90) * 1000.0,
        p99_ms=percentile(lat, 99) * 1000.0,
        max_ms=(lat[-1] * 1000.0) if lat else 0.0,
    )


def run_load(
    base_url: str,
    paths: List[str],
    clients: int,
    duration_s: float,
    keepalive: bool,
    processes: int = 1,
    timeout: float = 10.0,
) -> Result:
    """GET *paths* from *base_url* with *clients* concurrent closed-loop
    clients for *duration_s* seconds; see the module docstring.

    *paths* are appended to *base_url* (``"/pks/lookup?op=..."``, already
    URL-encoded).  *processes* > 1 spreads the clients over that many
    worker processes (subprocesses running this file; clients are split
    as evenly as possible, so ``processes`` is capped at ``clients``).  All clients
    start together after every process is ready; ``duration_s`` is the
    longest per-process measured run time.  *timeout* is per socket
    operation.
    """
    if not paths:
        raise ValueError("no paths")
    if clients < 1:
        raise ValueError("clients must be >= 1")
    _split_url(base_url)  # validate early
    processes = max(1, min(int(processes), clients))
    if processes == 1:
        part = _run_threads(
            base_url, paths, range(clients), clients, duration_s, keepalive, timeout
        )
        return _build_result([part], clients, 1, keepalive)

    # Worker processes are plain subprocesses running this file, not
    # multiprocessing: spawn/forkserver would re-import the caller's
    # __main__ (which may start servers), fork is unsafe with threads.
    ids = list(range(clients))
    groups = [ids[i::processes] for i in range(processes)]
    procs = []
    try:
        for g in groups:
            p = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--_worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            procs.append(p)
            job = {
                "base_url": base_url,
                "paths": list(paths),
                "client_ids": g,
                "total_clients": clients,
                "duration_s": duration_s,
                "keepalive": keepalive,
                "timeout": timeout,
            }
            p.stdin.write(json.dumps(job) + "\n")
            p.stdin.flush()
        for p in procs:
            line = p.stdout.readline()
            if line.strip() != "READY":
                raise RuntimeError("load worker failed to start (%r)" % line)
        for p in procs:  # start them as close together as possible
            p.stdin.write("GO\n")
            p.stdin.flush()
        parts = []
        for p in procs:
            out, _ = p.communicate(timeout=duration_s + timeout + 60)
            if p.returncode != 0:
                raise RuntimeError("load worker exited with %d" % p.returncode)
            parts.append(json.loads(out))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return _build_result(parts, clients, processes, keepalive)


# ---------------------------------------------------------------------------
# wrk engine

_WRK_LUA = r"""
local paths = {
%(paths)s
}
local nthreads = %(nthreads)d
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  idx = math.floor(tid * #paths / nthreads) + 1
  n2xx, n404, nother = 0, 0, 0
  %(headers)s
end

function request()
  local p = paths[idx]
  idx = idx + 1
  if idx > #paths then idx = 1 end
  return wrk.format(nil, p)
end

function response(status, headers, body)
  if status == 404 then
    n404 = n404 + 1
  elseif status >= 200 and status < 300 then
    n2xx = n2xx + 1
  else
    nother = nother + 1
  end
end

function done(summary, latency, requests)
  local a, b, c = 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("n2xx")
    b = b + t:get("n404")
    c = c + t:get("nother")
  end
  local e = summary.errors
  io.write(string.format(
    "WRKRESULT {\"duration_us\": %%d, \"requests\": %%d, \"bytes\": %%d, " ..
    "\"n2xx\": %%d, \"n404\": %%d, \"nother\": %%d, " ..
    "\"connect\": %%d, \"read\": %%d, \"write\": %%d, \"status\": %%d, \"timeout\": %%d, " ..
    "\"mean_us\": %%f, \"max_us\": %%f, \"p50_us\": %%f, \"p90_us\": %%f, \"p99_us\": %%f}\n",
    summary.duration, summary.requests, summary.bytes, a, b, c,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
"""


def _lua_string(s: str) -> str:
    return '"' + "".join(
        c if (c.isascii() and c.isprintable() and c not in '"\\') else "\\%03d" % b
        for c in s
        for b in ([ord(c)] if ord(c) < 128 else list(c.encode("utf-8")))
    ) + '"'


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(
    base_url: str,
    paths: List[str],
    clients: int,
    duration_s: float,
    keepalive: bool = True,
    threads: Optional[int] = None,
    timeout: float = 10.0,
) -> Result:
    """Like :func:`run_load` but driven by ``wrk`` (must be on PATH).

    *clients* is wrk's ``-c`` (connections), *threads* its ``-t``
    (default ``min(clients, cpu_count)``).  ``keepalive=False`` sends
    ``Connection: close`` so every request uses a new connection.
    ``duration_s`` is rounded to whole seconds (wrk's resolution), minimum 1.
    ``connections`` is None (wrk does not report it); wrk's
    socket errors appear in ``error_kinds`` as connect/read/write/timeout.

    Quirk: with ``keepalive=False``, a server that closes the connection
    without saying ``Connection: close`` in an HTTP/1.1 response makes wrk
    count one "read" error per request (the response itself is still
    counted).  SKS answers HTTP/1.0, so it does not show this.
    """
    if not paths:
        raise ValueError("no paths")
    exe = shutil.which("wrk")
    if exe is None:
        raise RuntimeError("wrk not found on PATH")
    _, _, prefix = _split_url(base_url)
    nthreads = max(1, min(clients, threads or (os.cpu_count() or 1)))
    headers = "" if keepalive else 'wrk.headers["Connection"] = "close"'
    script = _WRK_LUA % {
        "paths": ",\n".join("  " + _lua_string(prefix + p) for p in paths),
        "nthreads": nthreads,
        "headers": headers,
    }
    secs = max(1, int(round(duration_s)))
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
        script_path = f.name
    try:
        proc = subprocess.run(
            [
                exe,
                "-t", str(nthreads),
                "-c", str(clients),
                "-d", "%ds" % secs,
                "--timeout", "%ds" % max(1, int(math.ceil(timeout))),
                "-s", script_path,
                base_url,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=secs + timeout + 60,
        )
    finally:
        os.unlink(script_path)
    out = proc.stdout.decode("utf-8", "replace")
    m = re.search(r"^WRKRESULT (\{.*\})$", out, re.M)
    if proc.returncode != 0 or not m:
        raise RuntimeError("wrk failed (exit %d):\n%s" % (proc.returncode, out))
    d = json.loads(m.group(1))
    duration = d["duration_us"] / 1e6
    kinds = {k: d[k] for k in ("connect", "read", "write", "timeout") if d[k]}
    if d["nother"]:
        kinds["HTTP non-2xx/404"] = d["nother"]
    return Result(
        engine="wrk",
        clients=clients,
        processes=nthreads,
        keepalive=keepalive,
        duration_s=duration,
        requests=d["requests"],
        ok=d["n2xx"] + d["n404"],
        not_found=d["n404"],
        errors=sum(kinds.values()),
        error_kinds=kinds,
        connections=None,
        bytes_received=d["bytes"],
        throughput=d["requests"] / duration if duration > 0 else 0.0,
        mean_ms=d["mean_us"] / 1000.0,
        p50_ms=d["p50_us"] / 1000.0,
        p90_ms=d["p90_us"] / 1000.0,
        p99_ms=d["p99_us"] / 1000.0,
        max_ms=d["max_us"] / 1000.0,
    )


# ---------------------------------------------------------------------------
# CLI


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="HTTP GET load generator")
    ap.add_argument("base_url", help="e.g. http://127.0.0.2:11371")
    ap.add_argument("--path", action="append", default=[], help="request path (repeatable)")
    ap.add_argument("--paths-file", help="file with one path per line")
    ap.add_argument("-c", "--clients", type=int, default=8)
    ap.add_argument("-d", "--duration", type=float, default=5.0, help="seconds")
    ap.add_argument("--no-keepalive", action="store_true", help="new connection per request")
    ap.add_argument("-p", "--processes", type=int, default=1, help="python engine worker processes")
    ap.add_argument("--wrk", action="store_true", help="use wrk instead of Python clients")
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--json", action="store_true", help="print the Result as JSON")
    a = ap.parse_args(argv)
    paths = list(a.path)
    if a.paths_file:
        with open(a.paths_file) as f:
            paths += [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]
    if not paths:
        paths = ["/"]
    if a.wrk:
        r = run_wrk(a.base_url, paths, a.clients, a.duration, not a.no_keepalive, timeout=a.timeout)
    else:
        r = run_load(
            a.base_url,
            paths,
            a.clients,
            a.duration,
            not a.no_keepalive,
            processes=a.processes,
            timeout=a.timeout,
        )
    print(json.dumps(r.to_dict(), indent=2) if a.json else r.summary())
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--_worker"]:
        sys.exit(_worker_main())
    sys.exit(main())
