"""SKS reconciliation: one round between two cksd nodes and between cksd and a
real SKS 1.1.6 node, on the same sets, and how long a user's key takes to
reach another node by push and by recon.

    python3 bench/bench_recon.py [--sizes 10000,100000] [--diffs 10,100,1000]
                                 [--runs 3] [--backend sqlite|postgresql] [--no-sks]

For each size N and difference D, node A holds N keys and node B holds N keys,
D/2 of them not in A and D/2 of A's not in B (valid Ed25519 keys made by
bench/synthetic_keys.py).  A round is `cks_sync.py --peer B` on A: A dials,
B requests; the time and bytes are the session's (what cks_sync.py prints),
then both sides fetch what they lack; the round starts 2 s after B is up
(SETTLE_SECONDS), and just after B served a warm-up round (warm_up: from
a node holding B's own set, so nothing differs and nothing is fetched; a
node's first round after it started is slower than the ones after, for cksd
2-3 ms more on PostgreSQL, the first queries of its database connections and
first calls of the code, and an operator's node has served many).  Against
SKS, B is an SKS node built from the same keys, warmed up the same way.  SKS needs root (see bench/sks_node.py).  Medians of
--runs runs; every run starts from copies of the same databases.

The cksd databases are filled directly (key rows with the keys' bytes, then
`ptree --rebuild`), not through the upload pipeline: what is measured is the
round, and a million signature checks would only slow the set-up down.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import List, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [os.path.join(ROOT, "lib"), HERE]

from cks.openpgp.crc24 import crc24  # noqa: E402
from cks.openpgp.keys import parse_keyring, sks_hash  # noqa: E402
from cks.store import open_store  # noqa: E402
from cks.store.ptree_rebuild import rebuild  # noqa: E402
from synthetic_keys import make_keys  # noqa: E402

SESSION = re.compile(r"we lacked (\d+), the peer lacked (\d+).*the session: ([\d.]+) ms, "
                     r"(\d+) bytes sent, (\d+) received")
Row = Tuple[str, str, str, bytes]  # fingerprint, keyid, sks hash, key
SETTLE_SECONDS = 2.0
"""A round starts this long after the peer is up, whichever peer: a cksd that
has just started is still running its first background jobs (the peers'
addresses, the served views), which took the interpreter from the round for
milliseconds; an operator's node has been up for hours."""


def key_pool(count: int, cache_dir: str) -> List[Row]:
    """`count` keys, made once and kept in `cache_dir`."""
    path = os.path.join(cache_dir, "keys-%d.pgp" % count)
    if not os.path.exists(path):
        with open(path + ".tmp", "wb") as out:
            for key in make_keys(count):
                out.write(key)
        os.rename(path + ".tmp", path)
    with open(path, "rb") as handle:
        keys = parse_keyring(handle.read()).keys
    return [(k.fingerprint.hex().upper(), k.keyid.hex().upper(), sks_hash(k).hex().upper(),
             k.serialize()) for k in keys]


def fill(url: str, rows: List[Row]) -> None:
    """Key rows (network view = served view) and the recon tree, directly."""
    store = open_store(url)
    now = int(time.time())
    try:
        with store.write() as cursor:
            cursor.executemany(
                "INSERT INTO cks_keys (fingerprint, version, keyid, short_keyid, algorithm, "
                "bits, created, sks_hash, keydata, served, served_crc24, size, first_seen, "
                "last_changed, source) VALUES (?, 4, ?, ?, 22, 255, 1704067200, ?, ?, ?, ?, ?, "
                "?, ?, 'bench')",
                [(f, k, k[-8:], h, d, d, crc24(d), len(d), now, now) for f, k, h, d in rows])
            rebuild(cursor)
        store.tidy_after_bulk_write()  # as cks_admin.py load and ptree --rebuild leave it
    finally:
        store.close()


class Databases:
    """Template databases of one backend, copied for every run."""

    def __init__(self, backend: str, workdir: str) -> None:
        self.backend = backend
        self.workdir = workdir
        self.made: List[str] = []

    def template(self, name: str, rows: List[Row]) -> str:
        url = self._new(name)
        fill(url, rows)
        return url

    def copy(self, template: str, name: str) -> str:
        if self.backend == "sqlite":
            path = template[len("sqlite:///"):]
            target = os.path.join(self.workdir, "%s.db" % name)
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(target + suffix):  # a stale WAL would corrupt the copy
                    os.unlink(target + suffix)
                if os.path.exists(path + suffix):
                    shutil.copy(path + suffix, target + suffix)
            return "sqlite:///" + target
        return self._new(name, template.rsplit("/", 1)[1])

    def _new(self, name: str, template: str = "") -> str:
        if self.backend == "sqlite":
            path = os.path.join(self.workdir, "%s.db" % name)
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(path + suffix):
                    os.unlink(path + suffix)
            return "sqlite:///" + path
        import psycopg2
        db = "cks_bench_%s_%d" % (name, os.getpid())
        conn = psycopg2.connect("postgresql://postgres@127.0.0.1:5432/postgres")
        conn.autocommit = True
        conn.cursor().execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % db)
        conn.cursor().execute("CREATE DATABASE %s%s" % (db, " TEMPLATE " + template
                                                         if template else ""))
        conn.close()
        self.made.append(db)
        return "postgresql://postgres@127.0.0.1:5432/" + db

    def drop(self) -> None:
        if self.made:
            import psycopg2
            conn = psycopg2.connect("postgresql://postgres@127.0.0.1:5432/postgres")
            conn.autocommit = True
            for db in self.made:
                conn.cursor().execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % db)
            conn.close()


class Cksd:
    def __init__(self, url: str, address: str, config: str = "") -> None:
        args = [sys.executable, os.path.join(ROOT, "cksd.py"), "--db", url, "--bind", address,
                "--port", "0", "--recon-port", "0"]
        if config:
            args += ["--config", config]
        self.proc = subprocess.Popen(args, stderr=subprocess.PIPE, cwd=tempfile.gettempdir())
        self.address = address
        self.recon_port = self.port = 0
        while not self.port:
            line = self.proc.stderr.readline().decode()
            if not line:
                raise RuntimeError("cksd did not start")
            found = re.search(r"recon on [\d.]+:(\d+)", line)
            if found:
                self.recon_port = int(found.group(1))
            found = re.search(r"listening on http://[\d.]+:(\d+)", line)
            if found:
                self.port = int(found.group(1))
        subprocess.Popen(["cat"], stdin=self.proc.stderr, stdout=subprocess.DEVNULL)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def tool(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, os.path.join(ROOT, name)] + list(args),
                          capture_output=True, timeout=3600)


def recon_round(url: str, my_address: str, my_port: int, peer: str,
                recon_port: int, workdir: str) -> Tuple[float, int, int]:
    """cks_sync.py --peer on a database: (session seconds, bytes sent, received)."""
    return _round_found(url, my_address, my_port, peer, recon_port, workdir)[:3]


def warm_up(dbs: "Databases", template: str, my_port: int, peer: str, recon_port: int,
            workdir: str) -> None:
    """A round with `peer` from a node that holds the peer's own set (a copy of
    `template`), dialing from A's address: it finds no difference and changes
    nothing, and the peer is measured next as a node that has served rounds
    before (see the module notes)."""
    url = dbs.copy(template, "warm")
    found = _round_found(url, "127.0.0.1", my_port, peer, recon_port, workdir)
    if found[3:] != (0, 0):
        raise RuntimeError("the warm-up round found differences: %d and %d" % found[3:])


def _round_found(url: str, my_address: str, my_port: int, peer: str, recon_port: int,
                 workdir: str) -> Tuple[float, int, int, int, int]:
    """(session seconds, bytes sent, received, keys we lacked, keys the peer lacked)."""
    conf = os.path.join(workdir, "round.conf")
    with open(conf, "w") as out:
        out.write("[server]\nport = %d\nbind = %s\n" % (my_port, my_address))
    tool("cks_sync_manage.py", "--db", url, "add", peer, "--type", "recon", "--recon-port",
         str(recon_port))
    run = tool("cks_sync.py", "--db", url, "--config", conf, "--peer", peer)
    found = SESSION.search(run.stdout.decode())
    if run.returncode != 0 or not found:
        raise RuntimeError("round failed: %s %s" % (run.stdout.decode(), run.stderr.decode()))
    return (float(found.group(3)) / 1000, int(found.group(4)), int(found.group(5)),
            int(found.group(1)), int(found.group(2)))


def sets(pool: List[Row], size: int, diff: int) -> Tuple[List[Row], List[Row]]:
    half = diff // 2
    return pool[:size], pool[:size - half] + pool[size:size + half]


def bench_rounds(args, pool: List[Row], dbs: Databases, workdir: str) -> List[str]:
    lines = []
    for size in args.sizes:
        for diff in args.diffs:
            a_rows, b_rows = sets(pool, size, diff)
            a_template = dbs.template("a%d_%d" % (size, diff), a_rows)
            b_template = dbs.template("b%d_%d" % (size, diff), b_rows)
            cks, sks = [], []
            for run in range(args.runs):
                a = Cksd(dbs.copy(a_template, "ra"), "127.0.0.1")
                b_url = dbs.copy(b_template, "rb")
                # B answers rounds from A's address only.  A is its peer before
                # it starts, as an operator's peers are: each serving process
                # reads the peer list when it starts, and again (once) for an
                # address it does not know, which the round would pay for.
                tool("cks_sync_manage.py", "--db", b_url, "add", "127.0.0.1:%d" % a.port,
                     "--type", "recon", "--recon-port", str(a.recon_port))
                b = Cksd(b_url, "127.0.0.3")
                time.sleep(SETTLE_SECONDS)
                try:
                    warm_up(dbs, b_template, a.port, "127.0.0.3:%d" % b.port, b.recon_port,
                            workdir)
                    cks.append(recon_round(a.proc.args[3], "127.0.0.1", a.port,
                                           "127.0.0.3:%d" % b.port, b.recon_port, workdir))
                finally:
                    a.stop()
                    b.stop()
                if args.sks:
                    sks.append(sks_round(args, dbs, a_template, b_template, b_rows, workdir, run))
            lines.append(_row(size, diff, "cksd", cks))
            if sks:
                lines.append(_row(size, diff, "SKS 1.1.6", sks))
                ratio = statistics.median(s[0] for s in sks) / statistics.median(
                    c[0] for c in cks)
                lines.append("%8d %6d   ratio SKS/cksd time: %.2f (above 1: cksd's round "
                             "is faster)" % (size, diff, ratio))
    return lines


def _row(size: int, diff: int, peer: str, runs) -> str:
    seconds = statistics.median(r[0] for r in runs)
    sent = statistics.median(r[1] for r in runs)
    received = statistics.median(r[2] for r in runs)
    return "%8d %6d   %-10s %8.4f s %10d B sent %10d B received" % (
        size, diff, peer, seconds, sent, received)


def sks_round(args, dbs: Databases, a_template: str, b_template: str, b_rows: List[Row],
              workdir: str, run: int) -> Tuple[float, int, int]:
    from sks_node import SksNode
    keyring = os.path.join(workdir, "sks-%d.pgp" % len(b_rows))
    with open(keyring, "wb") as out:
        for row in b_rows:
            out.write(row[3])
    a = Cksd(dbs.copy(a_template, "sa"), "127.0.0.1")
    ports = _free_ports("127.0.0.2", 2)
    try:
        with SksNode(os.path.join(workdir, "sks%d" % run), ports[0], ports[1],
                     address="127.0.0.2", keyring_files=[keyring],
                     membership=[("127.0.0.1", a.recon_port)]):
            time.sleep(SETTLE_SECONDS)
            warm_up(dbs, b_template, a.port, "127.0.0.2:%d" % ports[0], ports[1], workdir)
            return recon_round(a.proc.args[3], "127.0.0.1", a.port,
                               "127.0.0.2:%d" % ports[0], ports[1], workdir)
    finally:
        a.stop()


def _free_ports(address: str, count: int) -> List[int]:
    socks = [socket.socket() for _ in range(count)]
    for sock in socks:
        sock.bind((address, 0))
    ports = [s.getsockname()[1] for s in socks]
    for sock in socks:
        sock.close()
    return ports


RECON_INTERVAL = 10.0
"""[recon] interval of the latency runs (the default is 60)."""


def latency(args, pool: List[Row], dbs: Databases, workdir: str) -> List[str]:
    """Seconds from a user's upload on A until B serves the key: push with
    push_interval = 1, and recon with [recon] interval = RECON_INTERVAL.  For
    recon the upload comes at a random moment after both nodes' first rounds,
    as on nodes that have been up a while (a node gossips when it starts, when
    the peers are not added yet here, then every interval): what is measured
    is the wait for the next round of either node, then the round and fetch."""
    import random
    import urllib.request
    from cks.openpgp.armor import encode
    lines = []
    for kind, conf_text in (("push (push_interval = 1)", "[sync]\npush_interval = 1\n"),
                            ("recon ([recon] interval = %g, upload at a random moment)"
                             % RECON_INTERVAL, "[recon]\ninterval = %g\n" % RECON_INTERVAL)):
        times = []
        for run in range(args.runs):
            conf = os.path.join(workdir, "lat.conf")
            with open(conf, "w") as out:
                out.write(conf_text)
            a = Cksd(dbs.copy(dbs.template("la", pool[:1000]), "la2"), "127.0.0.1", conf)
            b = Cksd(dbs.copy(dbs.template("lb", pool[:1000]), "lb2"), "127.0.0.3", conf)
            try:
                if kind.startswith("push"):
                    tool("cks_sync_manage.py", "--db", a.proc.args[3], "add",
                         "127.0.0.3:%d" % b.port, "--no-catch-up")
                else:
                    for one, other in ((a, b), (b, a)):
                        tool("cks_sync_manage.py", "--db", one.proc.args[3], "add",
                             "%s:%d" % (other.address, other.port), "--type", "recon",
                             "--recon-port", str(other.recon_port))
                        one.proc.send_signal(signal.SIGHUP)  # (as the README says to)
                    time.sleep(RECON_INTERVAL * 1.1 + random.Random(run).uniform(
                        0, RECON_INTERVAL))
                fingerprint, _, _, data = pool[1000 + run]
                started = time.monotonic()
                request = urllib.request.Request(
                    "http://127.0.0.1:%d/pks/add" % a.port, encode(data).encode(),
                    {"Content-Type": "application/pgp-keys"})
                urllib.request.urlopen(request, timeout=30).read()
                url = "http://127.0.0.3:%d/pks/lookup?op=get&options=mr&search=0x%s" % (
                    b.port, fingerprint)
                while True:
                    try:
                        urllib.request.urlopen(url, timeout=10).read()
                        break
                    except urllib.error.HTTPError:
                        if time.monotonic() - started > 120:
                            raise RuntimeError("the key never arrived by " + kind)
                        time.sleep(0.05)
                times.append(time.monotonic() - started)
            finally:
                a.stop()
                b.stop()
        lines.append("  %-32s median %.2f s (runs: %s)" % (
            kind, statistics.median(times), ", ".join("%.2f" % t for t in times)))
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--diffs", default="10,100,1000")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--no-sks", dest="sks", action="store_false")
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(),
                                                          "cks-bench-recon"))
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",")]
    args.diffs = [int(d) for d in args.diffs.split(",")]
    os.makedirs(args.workdir, exist_ok=True)
    if args.sks:
        from sks_node import sks_available
        if not sks_available():
            print("sks is not available (apt-get install sks; needs root): --no-sks")
            return 1
    # As many keys as the largest pair of sets needs (and the latency runs:
    # 1,000 held, one more uploaded per run), not more: the same key sets
    # whatever --runs, so that runs of different lengths compare.
    pool = key_pool(max(max(args.sizes) + max(args.diffs) // 2, 1000 + args.runs),
                    args.workdir)
    dbs = Databases(args.backend, args.workdir)
    try:
        print("one round (%s; median of %d runs; machine: %d cores)" % (
            args.backend, args.runs, os.cpu_count() or 0))
        print("%8s %6s   %-10s %10s %16s %19s" % ("keys", "diff", "peer", "session", "sent",
                                                  "received"))
        for line in bench_rounds(args, pool, dbs, args.workdir):
            print(line, flush=True)
        print("from an upload on A until B serves the key:")
        for line in latency(args, pool, dbs, args.workdir):
            print(line, flush=True)
    finally:
        dbs.drop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
