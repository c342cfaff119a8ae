"""A private PostgreSQL primary and streaming replica, made with initdb and
pg_basebackup, on free ports of 127.0.0.1 (the machine's own cluster is left
alone).  The servers run as the postgres user; tests run as root.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Iterator, List, Optional

SERVER_USER = "postgres"


def pg_bindir() -> Optional[str]:
    """The newest /usr/lib/postgresql/*/bin holding initdb, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda path: int(path.split("/")[4]))
    return os.path.dirname(found[-1]) if found else None


def missing() -> str:
    """'' when a cluster can be made here, else why not."""
    if pg_bindir() is None:
        return "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin"
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        return "no %s user to run PostgreSQL as" % SERVER_USER
    if os.geteuid() != 0:
        return "making a PostgreSQL cluster needs root (to run it as %s)" % SERVER_USER
    return ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PgServer:
    """One PostgreSQL server: a data directory and a port."""

    def __init__(self, datadir: str, sockdir: str) -> None:
        self.datadir = datadir
        self.sockdir = sockdir
        self.port = free_port()

    def url(self, dbname: str = "postgres") -> str:
        return "postgresql://postgres@127.0.0.1:%d/%s" % (self.port, dbname)

    def start(self) -> None:
        _run("pg_ctl", "-D", self.datadir, "-l", self.datadir + ".log", "-w",
             "-o", "-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off "
             "-c wal_retrieve_retry_interval=200ms" % (self.port, self.sockdir), "start")

    def stop(self, mode: str = "fast") -> None:
        _run("pg_ctl", "-D", self.datadir, "-m", mode, "-w", "stop")

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Within the block every process of the server is stopped (SIGSTOP):
        it is up, its kernel acknowledges packets, and nothing answers."""
        with open(os.path.join(self.datadir, "postmaster.pid")) as pidfile:
            postmaster = int(pidfile.readline())
        os.kill(postmaster, signal.SIGSTOP)  # (first: it starts no process after)
        children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(postmaster)],
                                  stdout=subprocess.PIPE, text=True).stdout.split()
        pids = [int(pid) for pid in children] + [postmaster]
        try:
            _signal(pids[:-1], signal.SIGSTOP)
            yield
        finally:
            _signal(pids, signal.SIGCONT)

    def running(self) -> bool:
        return subprocess.run(_as_server("pg_ctl", "-D", self.datadir, "status"),
                              stdout=subprocess.DEVNULL).returncode == 0


class PgCluster:
    """A primary and one streaming replica (hot standby) of it, or, not
    `replicated`, the primary alone; a context manager."""

    def __init__(self, replicated: bool = True) -> None:
        self.replicated = replicated
        self.workdir = tempfile.mkdtemp(prefix="cks-pgcluster-")
        server = pwd.getpwnam(SERVER_USER)
        os.chown(self.workdir, server.pw_uid, server.pw_gid)
        self.primary = PgServer(os.path.join(self.workdir, "primary"), self.workdir)
        self.replica = PgServer(os.path.join(self.workdir, "replica"), self.workdir)

    def start(self) -> "PgCluster":
        _run("initdb", "-D", self.primary.datadir, "-U", "postgres", "-A", "trust",
             "--no-sync")
        self.primary.start()
        if not self.replicated:
            return self
        _run("pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary.port), "-U",
             "postgres", "-D", self.replica.datadir, "-R", "-X", "stream", "--no-sync")
        self.replica.start()
        return self

    def close(self) -> None:
        for server in (self.replica, self.primary):
            if os.path.isdir(server.datadir) and server.running():
                server.stop("immediate")
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "PgCluster":
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc) -> None:
        self.close()

    def create_database(self, name: str) -> None:
        """A new database on the primary (the replica replays it)."""
        self.sql(self.primary, "CREATE DATABASE %s" % name)

    def wait_replayed(self, timeout: float = 30) -> None:
        """Until the replica has replayed everything the primary wrote so far."""
        lsn = self.sql(self.primary, "SELECT pg_current_wal_lsn()")[0][0]
        deadline = time.monotonic() + timeout
        while not self.sql(self.replica, "SELECT pg_last_wal_replay_lsn() >= %s", (lsn,))[0][0]:
            assert time.monotonic() < deadline, "the replica did not catch up"
            time.sleep(0.05)

    @staticmethod
    def sql(server: PgServer, statement: str, params=(), dbname: str = "postgres") -> List[tuple]:
        """Run one statement on `server` directly (not through CKS); its rows."""
        import psycopg2
        conn = psycopg2.connect(server.url(dbname), connect_timeout=5)
        conn.autocommit = True
        try:
            cursor = conn.cursor()
            cursor.execute(statement, params)
            return cursor.fetchall() if cursor.description else []
        finally:
            conn.close()


def _signal(pids: List[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # (one that ended meanwhile)
            os.kill(pid, signum)


def _as_server(program: str, *args: str) -> List[str]:
    return ["runuser", "-u", SERVER_USER, "--", os.path.join(pg_bindir() or "", program)] \
        + list(args)


def _run(program: str, *args: str) -> None:
    done = subprocess.run(_as_server(program, *args), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, cwd="/")
    if done.returncode != 0:
        raise RuntimeError("%s failed: %s" % (program, done.stdout.decode(errors="replace")))
