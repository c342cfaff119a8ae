"""What every PostgreSQL connection of CKS's sets for its session."""

import pytest

from cks.store import open_store
from support.db import create_pg_database, drop_pg_database, require_postgres


@pytest.mark.parametrize("timeout", [None, 2.5])
def test_postgresql_connections_compile_no_query_just_in_time(timeout):
    """(A recon round's joined ranges were planned at two million rows and
    JIT-compiled, 25-45 ms a query instead of 8 ms; see store/postgres.py.)
    The statement timeout is still set beside it."""
    require_postgres()
    url = create_pg_database()
    store = open_store(url, statement_timeout=timeout)
    try:
        with store.read() as cursor:
            assert cursor.scalar("SHOW jit") == "off"
            assert cursor.scalar("SHOW statement_timeout") == ("2500ms" if timeout else "0")
    finally:
        store.close()
        drop_pg_database(url)
