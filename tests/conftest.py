"""Shared test set-up: import paths and helpers for every test module."""

import compileall
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for path in (os.path.join(ROOT, "lib"), os.path.join(ROOT, "tests")):
    if path not in sys.path:
        sys.path.insert(0, path)


import pytest  # noqa: E402

from support.db import BACKENDS, drop_pg_database, new_db_url  # noqa: E402


def pytest_configure(config):
    """Compile CKS's modules once, before the workers start, as the install
    guide does (README: `compileall`).  Hundreds of tests start cksd or a tool
    as a new Python process; where the environment says not to keep compiled
    modules (PYTHONDONTWRITEBYTECODE=1), each of them would compile every
    module again from its source: a fifth of the suite's time on a 2-core
    machine (375 s against 291 s)."""
    if not hasattr(config, "workerinput"):  # (the controller, or a run without -n)
        compileall.compile_dir(os.path.join(ROOT, "lib"), quiet=1)


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path):
    """A throw-away database URL, once per backend (SQLite and PostgreSQL)."""
    url = new_db_url(request.param, tmp_path)
    yield url
    if url.startswith("postgresql"):
        drop_pg_database(url)


@pytest.fixture
def store(db_url):
    """A Store open on db_url."""
    from cks.store import open_store
    store = open_store(db_url)
    yield store
    store.close()


@pytest.fixture(scope="module", params=BACKENDS)
def module_db_url(request, tmp_path_factory):
    """Like db_url, shared by the tests of one module."""
    url = new_db_url(request.param, tmp_path_factory.mktemp("db"))
    yield url
    if url.startswith("postgresql"):
        drop_pg_database(url)


@pytest.fixture(params=BACKENDS)
def new_db(request, tmp_path):
    """A factory of fresh databases of one backend, e.g. one per cksd node."""
    made = []

    def make(name="node"):
        directory = tmp_path / name
        directory.mkdir(exist_ok=True)
        url = new_db_url(request.param, directory)
        made.append(url)
        return url

    yield make
    for url in made:
        if url.startswith("postgresql"):
            drop_pg_database(url)
