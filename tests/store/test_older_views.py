"""Served views derived under older rules (a database made by an older CKS,
or by one whose rules of served views were older) are derived again by
cksd itself, in the background, resuming where a restart stopped it."""

import pytest

from cks import older_views, pipeline
from cks.served import SERVED_VIEWS_VERSION, ServePolicy
from cks.store import open_store
from cks.store.schema import SCHEMA_VERSION
from support import fixture
from support.db import run_sql
from support.nodes import fpr
from support.procs import tool
from support.server import LOOPBACK_EXEMPT, Cksd

SIGNERS = ["rsa2048", "nistp256"]  # both certified "certified"


def stale_view(url):
    """Keys stored with "certified" served as it was before its signers came
    (no certification), as views derived under older rules are: then the
    rules stored older."""
    store = open_store(url)
    try:
        pipeline.submit(store, fixture("certified"), pipeline.Source.admin(queue=False))
        old = served(url, "certified")
        for name in SIGNERS:
            pipeline.submit(store, fixture(name), pipeline.Source.admin(queue=False))
    finally:
        store.close()
    assert served(url, "certified") != old  # (the current rules serve its certifications)
    run_sql(url, "UPDATE cks_keys SET served = ?, served_crc24 = ? WHERE fingerprint = ?",
            (old[0], old[1], fpr("certified")), write=True)
    run_sql(url, "UPDATE cks_schema_version SET served_views = 0", write=True)
    return old


def served(url, name):
    (row,) = run_sql(url, "SELECT served, served_crc24 FROM cks_keys WHERE fingerprint = ?",
                     (fpr(name),))
    return bytes(row[0]), row[1]


def made(url):
    return run_sql(url, "SELECT served_views, served_views_after FROM cks_schema_version")[0]


def test_cksd_derives_views_made_under_older_rules_again(db_url, tmp_path):
    old = stale_view(db_url)
    config = tmp_path / "cks.conf"
    config.write_text(LOOPBACK_EXEMPT)
    with Cksd(db_url, config=str(config)) as server:
        server.wait_until(lambda: served(db_url, "certified") != old)
        status, _, body = server.lookup(op="get", options="mr",
                                        search="0x" + fpr("certified"))
        assert status == 200 and len(body) > len(old[0])  # (its two certifications)
        server.wait_for_output("served views made by an older CKS: "
                               "deriving 3 again in the background")
        server.wait_for_output("served views derived again under the current rules: "
                               "1 of 3 changed")
    assert made(db_url) == (SERVED_VIEWS_VERSION, None)


def test_a_restart_goes_on_where_the_last_run_stopped(db_url, monkeypatch):
    old = stale_view(db_url)
    monkeypatch.setattr(older_views, "KEYS_PER_ROUND", 1)
    done = []
    real = older_views.reverify

    def stops_after_one(store, policy, fingerprints):
        if done:
            raise KeyboardInterrupt  # (a stop in the middle)
        done.extend(fingerprints)
        return real(store, policy, fingerprints)
    monkeypatch.setattr(older_views, "reverify", stops_after_one)
    store = open_store(db_url)
    try:
        with pytest.raises(KeyboardInterrupt):
            older_views.derive_older_views(store, ServePolicy())
        assert made(db_url) == (0, done[0]) and done[0] == min(map(fpr, SIGNERS + ["certified"]))
        # the next run goes on after that key: with "certified" recorded
        # done, its stale view stays, so it is not derived again
        run_sql(db_url, "UPDATE cks_schema_version SET served_views_after = ?",
                (fpr("certified"),), write=True)
        monkeypatch.setattr(older_views, "reverify", real)
        assert older_views.derive_older_views(store, ServePolicy()) == 0
        assert served(db_url, "certified") == old
        assert made(db_url) == (SERVED_VIEWS_VERSION, None)
        assert older_views.views_current(store)
    finally:
        store.close()


def test_cks_admin_reverify_records_the_current_rules(db_url):
    old = stale_view(db_url)
    done = tool("cks_admin.py", ["--db", db_url, "reverify"])
    assert done.returncode == 0, done.stderr
    assert b"1 served view changed" in done.stdout
    assert served(db_url, "certified") != old
    assert made(db_url) == (SERVED_VIEWS_VERSION, None)


def test_a_new_database_records_the_current_rules(db_url):
    open_store(db_url).close()
    assert made(db_url) == (SERVED_VIEWS_VERSION, None)


def test_version_7_gets_older_rules(db_url):
    open_store(db_url).close()
    for sql in ["ALTER TABLE cks_schema_version DROP COLUMN served_views",
                "ALTER TABLE cks_schema_version DROP COLUMN served_views_after",
                "UPDATE cks_schema_version SET version = 7"]:
        run_sql(db_url, sql, write=True)
    open_store(db_url).close()
    assert run_sql(db_url, "SELECT version FROM cks_schema_version") == [(SCHEMA_VERSION,)]
    assert made(db_url) == (0, None)
