"""Shared test set-up: import paths and helpers for every test module."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for path in (os.path.join(ROOT, "lib"), os.path.join(ROOT, "tests")):
    if path not in sys.path:
        sys.path.insert(0, path)


import pytest  # noqa: E402

from support import in_ci  # noqa: E402
from support.db import create_pg_database, drop_pg_database, pg_available  # noqa: E402

BACKENDS = ["sqlite", "postgresql"]


def new_db_url(backend, tmp_path):
    """A fresh, empty database of the given kind (skipped or failed when absent)."""
    if backend == "sqlite":
        return "sqlite:///%s" % (tmp_path / "cks.db")
    missing = pg_available()
    if missing:
        if in_ci():
            pytest.fail("CI must run the PostgreSQL tests: " + missing)
        pytest.skip(missing)
    return create_pg_database()


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path):
    """A throw-away database URL, once per backend (SQLite and PostgreSQL)."""
    url = new_db_url(request.param, tmp_path)
    yield url
    if url.startswith("postgresql"):
        drop_pg_database(url)


@pytest.fixture(scope="module", params=BACKENDS)
def module_db_url(request, tmp_path_factory):
    """Like db_url, shared by the tests of one module."""
    url = new_db_url(request.param, tmp_path_factory.mktemp("db"))
    yield url
    if url.startswith("postgresql"):
        drop_pg_database(url)
