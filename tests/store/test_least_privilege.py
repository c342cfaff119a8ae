"""The PostgreSQL roles of README "Operating a CKS node", made with the
README's own statements: cks_owner holds the schema (cks_admin.py creates and
migrates it); cks_runtime runs cksd and cks_sync.py, and can change no
schema. An upgrade is migrated by the owner, and the runtime role has the
tables the migration added. (PostgreSQL only: SQLite has no roles.)"""

import contextlib
import os
import re
import uuid
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List

import psycopg2
import psycopg2.errors
import pytest

from cks.store.schema import SCHEMA_VERSION
from support import ROOT, fixture
from support.db import _admin, new_db_url, pg_url, require_postgres, run_sql
from support.nodes import has, peer_name
from support.procs import tool
from support.server import Cksd
from test_migration import make_keys, make_version_1, make_version_4  # (older databases)


def readme_statements() -> List[List[str]]:
    """The statements of each SQL block of README "Operating a CKS node": the
    superuser's, then the owner's grants."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as handle:
        readme = handle.read()
    section = re.search(r"\n## Operating a CKS node\n(.*?)\n## ", readme, re.S).group(1)
    blocks = re.findall(r"```sql\n(.*?)```", section, re.S)
    return [[" ".join(s.split()) for s in block.split(";") if s.strip()] for block in blocks]


@dataclass
class Roles:
    names: Dict[str, str]  # the README's role and database names -> this test's
    owner_url: str
    runtime_url: str

    def statements(self, block: int) -> List[str]:
        """The README's statements of `block`, with this test's names."""
        word = re.compile(r"\b(%s)\b" % "|".join(self.names))
        return [word.sub(lambda m: self.names[m.group(1)], statement)
                for statement in readme_statements()[block]]

    @contextlib.contextmanager
    def owner_cursor(self) -> Iterator[Any]:
        connection = psycopg2.connect(self.owner_url)
        connection.autocommit = True
        try:
            yield connection.cursor()
        finally:
            connection.close()

    def as_owner(self, statements: List[str]) -> None:
        with self.owner_cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)

    def schema_version(self) -> int:
        """As the table says (a store would migrate the database first)."""
        with self.owner_cursor() as cursor:
            cursor.execute("SELECT version FROM cks_schema_version")
            return cursor.fetchone()[0]

    def admin(self, *args):
        return tool("cks_admin.py", ["--db", self.owner_url] + list(args))


@pytest.fixture
def roles():
    """The README's roles and database, under names of this test's own."""
    require_postgres()
    suffix = uuid.uuid4().hex[:8]
    names = {"cks_owner": "cks_owner_" + suffix, "cks_runtime": "cks_runtime_" + suffix,
             "cks": "cks_roles_" + suffix}
    made = Roles(names, pg_url(names["cks_owner"], names["cks"]),
                 pg_url(names["cks_runtime"], names["cks"]))
    superuser = made.statements(0)
    assert [s.split()[:2] for s in superuser] == [["CREATE", "ROLE"]] * 2 + [["CREATE",
                                                                              "DATABASE"]]
    try:
        for statement in superuser:
            _admin(statement)
        yield made
    finally:
        _admin("DROP DATABASE IF EXISTS %s WITH (FORCE)" % names["cks"])
        for role in ("cks_runtime", "cks_owner"):
            _admin("DROP ROLE IF EXISTS %s" % names[role])


def test_the_runtime_role_serves_and_syncs_and_changes_no_schema(roles, tmp_path):
    made = roles.admin("stats")
    assert made.returncode == 0, made.stderr
    roles.as_owner(roles.statements(1))
    runtime = psycopg2.connect(roles.runtime_url)
    runtime.autocommit = True
    try:
        for ddl in ("CREATE TABLE cks_more (a integer)", "ALTER TABLE cks_keys ADD COLUMN b text",
                    "DROP TABLE cks_pending_sync", "CREATE INDEX cks_more ON cks_keys (keydata)"):
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                runtime.cursor().execute(ddl)
    finally:
        runtime.close()
    with Cksd(roles.runtime_url) as server, Cksd(new_db_url("sqlite", tmp_path)) as peer:
        assert server.add(fixture("rsa2048"))[0] == 200
        assert has(server, "rsa2048")
        added = tool("cks_sync_manage.py", ["--db", roles.runtime_url, "add", peer_name(peer)])
        assert added.returncode == 0, added.stderr
        synced = tool("cks_sync.py", ["--db", roles.runtime_url])
        assert synced.returncode == 0, synced.stderr
        assert has(peer, "rsa2048")


def make_version_5(url):
    """Keys stored at version 5: its steps to 6 (the word index, rows only)
    and to 7 (the address index, the owner's) to come."""
    make_keys(url)
    for sql in ("DROP INDEX cks_userids_email",
                "CREATE INDEX cks_userids_email ON cks_userids (email)",
                "UPDATE cks_schema_version SET version = 5"):
        run_sql(url, sql, write=True)


@pytest.mark.parametrize("make_old, version", [(make_version_1, 1), (make_version_5, 5)])
def test_an_upgrade_is_migrated_by_the_owner(roles, make_old, version):
    """The runtime role runs no step, not even those that only rewrite rows:
    until 2026-12-06 it ran 5 to 6 and committed it, then failed at 6 to 7
    ("must be owner of index cks_userids_email"), leaving version 6, which
    the old release refused to serve and the new one could not finish
    (found by a review of upgrades)."""
    make_old(roles.owner_url)
    roles.as_owner(roles.statements(1))
    refused = tool("cksd.py", ["--db", roles.runtime_url, "--port", "0"], timeout=60)
    assert refused.returncode == 1
    assert refused.stderr.decode().endswith(
        "error: database %s holds CKS schema version %d, not yet %d, and its role may not "
        "migrate it: it does not own every CKS table, or may not create tables (their owner "
        "migrates it first: cks_admin.py stats as that role); nothing was changed\n"
        % (roles.runtime_url, version, SCHEMA_VERSION))
    assert roles.schema_version() == version
    migrated = roles.admin("stats")
    assert migrated.returncode == 0, migrated.stderr
    assert roles.schema_version() == SCHEMA_VERSION
    with Cksd(roles.runtime_url) as server:  # writes the tables the migration made
        assert server.add(fixture("alice-t1"))[0] == 200
        assert has(server, "alice-t1")


def test_after_the_owners_upgrade_the_runtime_role_loads(roles, tmp_path):
    """The bulk load's tables come with the owner's migration (version 5):
    until then the first load made them, and under the runtime role failed
    with "permission denied for schema public"."""
    make_version_4(roles.owner_url)
    roles.as_owner(roles.statements(1))
    migrated = roles.admin("stats")
    assert migrated.returncode == 0, migrated.stderr
    (tmp_path / "key.asc").write_bytes(fixture("alice-t1"))
    loaded = tool("cks_admin.py", ["--db", roles.runtime_url, "load", str(tmp_path / "key.asc")])
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.decode().startswith("1 added")


@pytest.mark.parametrize("program, args", [("cks_admin.py", ["stats"]),
                                           ("cks_admin.py", ["load", "-"]),
                                           ("cksd.py", ["--port", "0"])])
def test_the_runtime_role_on_an_empty_database_is_told_the_owner_makes_the_tables(
        roles, program, args):
    """schema.sql failed in its own transaction, and the advisory unlock
    after it, in that aborted transaction, replaced its error with "current
    transaction is aborted"."""
    roles.as_owner(roles.statements(1))
    refused = tool(program, ["--db", roles.runtime_url] + args, input=b"", timeout=60)
    assert refused.returncode == 1
    assert refused.stderr.decode().endswith(
        "error: database error: permission denied for schema public (the database's owner "
        "makes the CKS tables first: cks_admin.py stats as that role)\n")
    assert roles.admin("stats").returncode == 0  # (the schema lock is free)
