"""Storage: one interface (Store) over a backend per database.

`open_store(url)` picks the backend from the URL scheme: sqlite:///path.db
(standard library) or postgresql://... (psycopg2, imported only then).
"""

from __future__ import annotations

from typing import Optional

from .base import Store
from .errors import StoreError, StoreUnavailable

__all__ = ["Store", "StoreError", "StoreUnavailable", "open_store"]


def open_store(url: str, pool_size: int = 8, statement_timeout: Optional[float] = None,
               reads_only: bool = False, must_exist: bool = False) -> Store:
    """A Store on `url` keeping up to `pool_size` connections; a statement running
    longer than `statement_timeout` seconds is cancelled (StoreUnavailable).
    `reads_only` (a streaming replica): never make or migrate the schema, and
    give up connecting after 2 s, not 10 (lookups then read the primary).
    `must_exist` (the tools that work on a server's database, which cksd or
    cks_admin.py made): never make the schema, nor an SQLite file, so that a
    mistyped URL is an error (StoreUnavailable) rather than a new empty database."""
    if url.startswith("sqlite:"):
        from .sqlite import SQLiteBackend
        return Store(SQLiteBackend(url, statement_timeout, create=not must_exist), pool_size,
                     reads_only, must_exist)
    if url.startswith(("postgresql:", "postgres:")):
        from .postgres import PostgresBackend
        return Store(PostgresBackend(url, statement_timeout, 2 if reads_only else 10),
                     pool_size, reads_only, must_exist)
    raise StoreError("unsupported database URL %r: use sqlite:///path.db or "
                     "postgresql://[user@host[:port]]/dbname" % url)
