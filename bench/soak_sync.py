#!/usr/bin/env python3
"""Soak: three cksd nodes syncing by recon and push while clients upload and
look up, then convergence and the checks an operator would make.

Node A (PostgreSQL) on 127.0.0.1, B (SQLite) on 127.0.0.2, C (PostgreSQL) on
127.0.0.3; A and B, B and C are recon peers (`[recon] interval = 3`), A and C
push peers of each other (`[sync] push_interval = 1`).  For --seconds,
three clients upload the Debian keyring's keys, each to one node (one in ten
to two), and two clients look keys up (get, index, vindex) on random nodes.
Then it waits until the nodes hold the same keys with no served view owed,
and checks: `ptree --check` on each, no key unserved, no error in the logs;
it prints the lookups answered, each node's median, 99th percentile and
longest lookup, those slower than --slow seconds, the serving processes'
memory before and after.  With py-spy installed, the
first slow lookup on each node leaves a dump of its processes (and, on
PostgreSQL, its sessions) in the work directory.  Not a test: a probe (it
found lookups waiting a minute behind a sync's view work, 2026-12-04).

    python3 bench/soak_sync.py [--seconds 150] [--slow 2]

Needs PostgreSQL (as the tests do) and the debian-keyring package.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import http.client
import urllib.parse
from typing import Dict

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path[:0] = [os.path.join(ROOT, "tests"), BENCH]

from sks_node import armor, read_keyring  # noqa: E402

from support.db import create_pg_database, drop_pg_database, run_sql  # noqa: E402
from support.nodes import manage  # noqa: E402
from support.server import Cksd  # noqa: E402

KEYRING = "/usr/share/keyrings/debian-keyring.gpg"
ADDRESSES = {"a": "127.0.0.1", "b": "127.0.0.2", "c": "127.0.0.3"}
IDLE_SECONDS = 10.0
"""A client's keep-alive connection idle longer is closed, not reused: cksd
closes one idle for 15 s ([server] idle_timeout), and a request sent as it
does is lost to the race (http.client's RemoteDisconnected)."""
CONFIG = ("[ratelimit]\nexempt = 127.0.0.0/8\n[recon]\ninterval = 3\n"
          "[sync]\npush_interval = 1\n")


def start_nodes(work: str) -> Dict[str, Cksd]:
    urls = {"a": create_pg_database(), "b": "sqlite:///%s/b.db" % work,
            "c": create_pg_database()}
    nodes = {}
    for name, url in urls.items():
        config = os.path.join(work, name + ".conf")
        with open(config, "w") as handle:
            handle.write(CONFIG)
        nodes[name] = Cksd(url, args=["--recon-port", "0"], config=config,
                           bind=ADDRESSES[name]).start()
    for one, other, kind in (("a", "b", "recon"), ("b", "a", "recon"), ("b", "c", "recon"),
                             ("c", "b", "recon"), ("a", "c", "push"), ("c", "a", "push")):
        peer = nodes[other]
        args = ["add", "%s:%d" % (peer.bind, peer.port)]
        if kind == "recon":
            port = peer.wait_for_output(r"cksd recon on [\d.]+:(\d+)").group(1)
            args += ["--type", "recon", "--recon-port", port]
        else:
            args += ["--no-catch-up"]
        added = manage(nodes[one], *args)
        assert added.returncode == 0, added.stderr
    for node in nodes.values():  # the new peers, now (SIGHUP rereads them)
        for pid in processes(node):
            os.kill(pid, signal.SIGHUP)
    return nodes


def processes(node: Cksd) -> list:
    return [node.proc.pid] + [int(p) for p in node.children()]


def memory(node: Cksd) -> list:
    """Resident megabytes of each of the node's processes."""
    sizes = []
    for pid in processes(node):
        with open("/proc/%d/status" % pid) as status:
            sizes += [int(line.split()[1]) // 1024 for line in status
                      if line.startswith("VmRSS")]
    return sizes


class Load:
    """The clients: uploads and lookups until `until`, counted."""

    def __init__(self, nodes: Dict[str, Cksd], keys: list, until: float, slow: float,
                 work: str) -> None:
        self.nodes, self.keys, self.until, self.slow, self.work = nodes, keys, until, slow, work
        self.counts: collections.Counter = collections.Counter()
        self.rng = random.Random(7)
        self.todo = list(keys)
        self.rng.shuffle(self.todo)
        self.lock = threading.Lock()
        self.dumped: set = set()
        self.times: Dict[str, list] = collections.defaultdict(list)

    def run(self) -> None:
        threads = [threading.Thread(target=self.upload) for _ in range(3)] + \
            [threading.Thread(target=self.look_up) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _request(self, connections: dict, name: str, method: str, target: str,
                 body: bytes = b"") -> str:
        connection, used = connections.get(name, (None, 0.0))
        if connection is None or time.time() - used > IDLE_SECONDS:
            if connection is not None:
                connection.close()
            connection = http.client.HTTPConnection(self.nodes[name].bind,
                                                    self.nodes[name].port, timeout=60)
        connections[name] = connection, time.time()
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
        try:
            connection.request(method, target, body or None, headers)
            answer = connection.getresponse()
            answer.read()
            return str(answer.status)
        except (OSError, http.client.HTTPException) as exc:
            connections.pop(name, None)
            return exc.__class__.__name__

    def upload(self) -> None:
        connections: dict = {}
        while time.time() < self.until:
            with self.lock:
                if not self.todo:
                    return
                key = self.todo.pop()
            body = urllib.parse.urlencode({"keytext": armor(key.data)}).encode()
            for name in self.rng.sample("abc", 2 if self.rng.random() < 0.1 else 1):
                self.counts["add " + self._request(connections, name, "POST", "/pks/add",
                                                   body)] += 1

    def look_up(self) -> None:
        connections: dict = {}
        while time.time() < self.until:
            name, key = self.rng.choice("abc"), self.rng.choice(self.keys)
            op = self.rng.choice(["get", "index", "vindex"])
            started = time.time()
            timer = threading.Timer(self.slow, self._dump, (name,))
            timer.start()
            status = self._request(connections, name, "GET", "/pks/lookup?op=%s&options=mr"
                                   "&search=0x%s" % (op, key.keyid))
            timer.cancel()
            took = time.time() - started
            self.counts["%s %s" % (op, status)] += 1
            with self.lock:
                self.times[name].append(took)
            if took > self.slow:
                self.counts["slower than %gs on %s" % (self.slow, name)] += 1

    def lookup_times(self) -> Dict[str, str]:
        """Each node's lookups: how many, and their median, 99th percentile
        and longest time, in seconds."""
        shown = {}
        for name, times in sorted(self.times.items()):
            times.sort()
            shown[name] = "%d, %.3f / %.2f / %.1f s" % (
                len(times), times[len(times) // 2], times[int(len(times) * 0.99)], times[-1])
        return shown

    def _dump(self, name: str) -> None:
        """The first slow lookup's node, as py-spy and PostgreSQL see it."""
        if name in self.dumped or not shutil.which("py-spy"):
            return
        self.dumped.add(name)
        node = self.nodes[name]
        with open(os.path.join(self.work, "slow-%s.txt" % name), "w") as out:
            for pid in processes(node):
                out.write(subprocess.run(["py-spy", "dump", "--pid", str(pid)],
                                         capture_output=True, text=True).stdout)
            if node.db_url.startswith("postgresql"):
                out.write("\n".join(map(str, run_sql(
                    node.db_url, "SELECT pid, state, wait_event_type, wait_event, "
                    "left(query, 200) FROM pg_stat_activity WHERE datname = current_database()"))))


def converge(nodes: Dict[str, Cksd], seconds: float) -> float:
    """Seconds until every node holds the same keys with no view work left."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        held = {frozenset(r[0] for r in run_sql(n.db_url, "SELECT sks_hash FROM cks_keys"))
                for n in nodes.values()}
        work = sum(run_sql(n.db_url, "SELECT count(*) FROM cks_view_work")[0][0]
                   for n in nodes.values())
        if len(held) == 1 and not work:
            return time.monotonic() - started
        time.sleep(2)
    return -1.0


def checks(nodes: Dict[str, Cksd]) -> int:
    """Print each node's checks; the number that failed."""
    failed = 0
    for name, node in nodes.items():
        tree = subprocess.run([sys.executable, os.path.join(ROOT, "cks_admin.py"), "--db",
                               node.db_url, "ptree", "--check"], capture_output=True, text=True)
        unserved = run_sql(node.db_url, "SELECT count(*) FROM cks_keys WHERE served_crc24 = -1")
        errors = [line for line in node.output().splitlines()
                  if re.search(r"Traceback|ERROR", line)]
        ok = tree.returncode == 0 and unserved == [(0,)] and not errors
        failed += not ok
        print("%s: %s; ptree: %s; %d unserved; %d error lines%s" % (
            name, "ok" if ok else "FAILED", (tree.stdout + tree.stderr).strip().splitlines()[-1],
            unserved[0][0], len(errors), "".join("\n    " + e[:200] for e in errors[:5])))
    return failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=150.0)
    parser.add_argument("--slow", type=float, default=2.0,
                        help="a lookup slower than this is counted (and dumped once a node)")
    args = parser.parse_args()
    keys = read_keyring(KEYRING)
    work = tempfile.mkdtemp(prefix="cks-soak-")
    nodes = start_nodes(work)
    try:
        before = {name: memory(node) for name, node in nodes.items()}
        load = Load(nodes, keys, time.time() + args.seconds, args.slow, work)
        load.run()
        print("requests:", dict(sorted(load.counts.items())))
        print("lookups (median / 99th percentile / longest):", load.lookup_times())
        took = converge(nodes, 300)
        print("converged after %.0f s" % took if took >= 0 else "NOT converged in 300 s")
        failed = checks(nodes) + (took < 0)
        print("memory, MB per process (the parent first):", {
            name: "%s -> %s" % (before[name], memory(node)) for name, node in nodes.items()})
        print("work directory (logs of slow lookups):", work)
        return 1 if failed else 0
    finally:
        for node in nodes.values():
            node.close()
        for node in nodes.values():
            if node.db_url.startswith("postgresql"):
                drop_pg_database(node.db_url)


if __name__ == "__main__":
    sys.exit(main())
