"""A request that runs past its time gets 503, not a hung worker."""

import subprocess
import sys
import time

from support import fixture
from support.nodes import settled
from support.server import LOOPBACK_EXEMPT, Cksd


def _config(tmp_path):
    config = tmp_path / "cks.conf"
    config.write_text("[server]\nrequest_timeout = 1\n" + LOOPBACK_EXEMPT)
    return str(config)


def test_locked_database_gives_503_then_recovers(db_url, tmp_path):
    with Cksd(db_url, config=_config(tmp_path)) as server:
        assert server.add(fixture("rsa2048"))[0] == 200
        settled(server)  # its served view, which follows the answer, is there before the lock
        if db_url.startswith("sqlite"):
            # another process holds SQLite's write lock: uploads cannot commit
            holder = subprocess.Popen([sys.executable, "-c", (
                "import sqlite3, sys, time\n"
                "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
                "c.execute('BEGIN IMMEDIATE')\nprint('locked', flush=True)\ntime.sleep(30)\n"),
                db_url[len("sqlite:///"):]], stdout=subprocess.PIPE)
            request = lambda: server.add(fixture("nistp256"))  # noqa: E731
        else:
            import psycopg2
            holder_conn = psycopg2.connect(db_url)
            holder_conn.cursor().execute("LOCK TABLE cks_keys IN ACCESS EXCLUSIVE MODE")
            holder = None
            request = lambda: server.lookup(op="index", options="mr",  # noqa: E731
                                            search="rsa2048")
        try:
            if holder:
                assert holder.stdout.readline() == b"locked\n"
            started = time.monotonic()
            status, headers, body = request()
            assert status == 503 and headers["retry-after"] == "30"
            assert b"unavailable" in body
            assert time.monotonic() - started < 10
        finally:
            if holder:
                holder.kill()
                holder.wait()
            else:
                holder_conn.rollback()
                holder_conn.close()
        assert request()[0] == 200  # the workers were not left hanging
