"""The PostgreSQL role of the mail account, exactly as schema.sql documents it:
cks_mail_sync.py works under it (merge, forward, settle the queue) and it can
do nothing else (delete keys, change the rejected list or the peer list)."""

import os
import re
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest

from support import ROOT, fixture
from support.db import _admin, drop_pg_database, new_db_url, with_schema
from support.mailnode import Node, fpr
from support.mails import SKS, multipart_mail, sks_mail


def role_statements(role, database):
    """The commented CREATE ROLE / GRANT lines of schema.sql, for this role and database."""
    with open(os.path.join(ROOT, "schema.sql")) as handle:
        lines = [line[3:] for line in handle.read().splitlines()
                 if re.match(r"-- (CREATE ROLE|GRANT) ", line)]
    assert lines[0] == "CREATE ROLE cks_mail LOGIN;" and len(lines) > 5
    return [line.replace("cks_mail", role).replace("DATABASE cks ", "DATABASE %s " % database)
            for line in lines]


def test_the_readme_shows_the_same_grants():
    with open(os.path.join(ROOT, "README.md")) as handle:
        readme = [line for line in handle.read().splitlines()
                  if re.match(r"(CREATE ROLE cks_mail|GRANT .* TO cks_mail)\b.*;$", line)]
    assert readme == role_statements("cks_mail", "cks")


def as_user(url, user):
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc="%s@%s" % (user, host)))


@pytest.fixture
def mail_account(tmp_path):
    """(node as the owner, node as the mail role) on one PostgreSQL database."""
    import psycopg2
    url = new_db_url("postgresql", tmp_path)
    role = "cks_mail_test_%s" % uuid.uuid4().hex[:8]
    owner = Node(with_schema(url), tmp_path / "owner")
    owner.manage("add", SKS)
    owner.manage("add", "d@d.example")
    database = urlsplit(url).path.lstrip("/")
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        for statement in role_statements(role, database):
            conn.cursor().execute(statement)
    finally:
        conn.close()
    mail = Node(as_user(url, role), tmp_path / "mail")
    try:
        psycopg2.connect(mail.db_url).close()
    except psycopg2.Error as exc:
        pytest.skip("cannot log in as a new role here (no trust auth?): %s" % exc)
    yield owner, mail
    drop_pg_database(url)
    _admin("DROP ROLE IF EXISTS %s" % role)


def test_the_mail_role_merges_and_forwards(mail_account):
    owner, mail = mail_account
    result = mail.mail_sync(sks_mail(fixture("rsa2048")))
    assert result.returncode == 0, result.stderr
    assert owner.keys() == {fpr("rsa2048"): "mail:" + SKS}
    assert len(mail.sent()) == 1  # forwarded to d@d.example; the queue entry settled
    assert owner.query("SELECT count(*) FROM cks_sync_backlog")[0][0] == 0
    assert owner.query("SELECT last_success IS NOT NULL FROM cks_other_servers "
                       "WHERE peer = 'd@d.example'") == [(True,)]
    update = mail.mail_sync(sks_mail(fixture("alice-t1")))
    assert update.returncode == 0, update.stderr
    mail.write_config(accept_add="yes")
    add = mail.mail_sync(multipart_mail([fixture("alice-t2")], sender="a@example.org",
                                        subject="ADD"))
    assert add.returncode == 0, add.stderr
    assert owner.keys()[fpr("alice-t2")] == "user"


@pytest.mark.parametrize("sql", [
    "DELETE FROM cks_keys",
    "DELETE FROM cks_rejected_keys",
    "INSERT INTO cks_rejected_keys (fingerprint, rejected_at) VALUES ('AB', 1)",
    "UPDATE cks_other_servers SET enabled = false",
    "INSERT INTO cks_other_servers (peer, kind, added_at) VALUES ('x@x.example', 'mail', 1)",
    "DROP TABLE cks_words",
])
def test_the_mail_role_can_do_nothing_else(mail_account, sql):
    import psycopg2
    _, mail = mail_account
    conn = psycopg2.connect(mail.db_url)
    try:
        with pytest.raises(psycopg2.Error, match="permission denied|must be owner"):
            conn.cursor().execute(sql)
    finally:
        conn.close()
    refused = mail.run("cks_sync_manage.py", ["add", "x@x.example"])
    assert refused.returncode == 1 and b"permission denied" in refused.stderr
