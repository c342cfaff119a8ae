"""Throw-away databases for tests: a fresh SQLite file or PostgreSQL database."""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import uuid
from urllib.parse import urlsplit, urlunsplit

BACKENDS = ["sqlite", "postgresql"]
PG_ADMIN_URL = os.environ.get("CKS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
_counter = itertools.count()


def pg_available() -> str:
    """'' when a PostgreSQL server answers, else why not."""
    try:
        import psycopg2
    except ImportError:
        return "psycopg2 is not installed"
    try:
        psycopg2.connect(PG_ADMIN_URL, connect_timeout=5).close()
    except psycopg2.Error as exc:
        return "PostgreSQL at %s: %s" % (PG_ADMIN_URL, str(exc).strip())
    return ""


def _admin(sql: str) -> None:
    import psycopg2
    conn = psycopg2.connect(PG_ADMIN_URL, connect_timeout=5)
    conn.autocommit = True
    try:
        conn.cursor().execute(sql)
    finally:
        conn.close()


def create_pg_database() -> str:
    """A new empty database; returns its URL."""
    name = "cks_test_%d_%d_%s" % (os.getpid(), next(_counter), uuid.uuid4().hex[:6])
    _admin("CREATE DATABASE %s" % name)
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    _admin("DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)


def require_postgres() -> None:
    """Skip the test (fail it under CI) when no PostgreSQL server answers."""
    import pytest
    from . import in_ci
    missing = pg_available()
    if missing:
        if in_ci():
            pytest.fail("CI must run the PostgreSQL tests: " + missing)
        pytest.skip(missing)


def pg_url(user: str, database: str) -> str:
    """The test server's URL for this role and database."""
    parts = urlsplit(PG_ADMIN_URL)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc="%s@%s" % (user, host), path="/" + database))


def new_db_url(backend: str, directory) -> str:
    """A fresh, empty database of the given kind (skipped, or failed under CI, when
    PostgreSQL is not there)."""
    if backend == "sqlite":
        return "sqlite:///%s" % (directory / "cks.db")
    require_postgres()
    return create_pg_database()


def with_schema(url: str) -> str:
    """`url`, its CKS tables made as cksd or cks_admin.py make them on first
    use (cks_sync.py, cks_sync_manage.py and cks_mail_sync.py refuse a
    database without them)."""
    from cks.store import open_store
    store = open_store(url)
    try:
        store.check()
    finally:
        store.close()
    return url


def nothing_made(url: str) -> bool:
    """Whether `url` still names no file (nor lock file beside one) on SQLite, a
    database without tables on PostgreSQL."""
    if url.startswith("sqlite:"):
        return not glob.glob(url[len("sqlite:///"):] + "*")
    import psycopg2
    conn = psycopg2.connect(url)
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        return cursor.fetchone()[0] == 0
    finally:
        conn.close()


def run_sql(url: str, sql: str, params=(), write: bool = False):
    """Run one statement through the project's store; the rows of a query."""
    from cks.store import open_store
    store = open_store(url)
    try:
        with (store.write() if write else store.read()) as cursor:
            cursor.execute(sql, params)
            return None if write else cursor.fetchall()
    finally:
        store.close()


@contextlib.contextmanager
def listening_watch(store):
    """store.watch_key_changes(), once it hears every change (PostgreSQL:
    once its LISTEN is in place; before, its generation is None), closed
    at the end."""
    watch = store.watch_key_changes()
    try:
        if hasattr(watch, "wait_listening"):
            assert watch.wait_listening(10)
        yield watch
    finally:
        watch.close()


def terminate_backends(url: str, query_like: str = "%") -> int:
    """End the server sessions on `url`'s database whose statement is like
    `query_like` (their connections then fail as after a server restart);
    how many were ended.  Each is waited for (up to 10 s): without a
    timeout pg_terminate_backend only signals the backend."""
    import psycopg2
    conn = psycopg2.connect(PG_ADMIN_URL, connect_timeout=5)
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT count(pg_terminate_backend(pid, 10000)) FROM pg_stat_activity "
                       "WHERE datname = %s AND query LIKE %s",
                       (url.rsplit("/", 1)[1], query_like))
        return cursor.fetchone()[0]
    finally:
        conn.close()


def allow_connections(url: str, allowed: bool) -> None:
    """Let `url`'s database take new connections, or refuse them as a
    server that is down would (those open already stay: terminate_backends)."""
    _admin("ALTER DATABASE %s ALLOW_CONNECTIONS %s"
           % (url.rsplit("/", 1)[1], "true" if allowed else "false"))
