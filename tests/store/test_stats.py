"""The stats page's queries (store/stats.py) on SQLite and PostgreSQL: what they
count, that they read indexes and never the key rows, and the migration
that adds those indexes to a version 2 database."""


from cks import pipeline
from cks.store import open_store
from cks.store.rejections import StoredNotice, insert_notice
from cks.store.schema import SCHEMA_VERSION
from cks.store.sql import Cursor
from support import fixture
from support.db import run_sql
from support.nodes import fpr
from support.procs import tool

DAY = 86400
NOW = 1796000000 + 12 * 3600  # noon, so "today" holds times before and after NOW
TODAY = NOW // DAY * DAY
STATS_INDEXES = {"cks_keys_changed", "cks_keys_algorithm", "cks_userids_photos"}


def _store_keys(store, *names):
    for name in names:
        assert pipeline.submit(store, fixture(name), pipeline.Source.admin(queue=False)).stored


def _stamp(db_url, name, first_seen, last_changed):
    run_sql(db_url, "UPDATE cks_keys SET first_seen = ?, last_changed = ? WHERE fingerprint = ?",
            (first_seen, last_changed, fpr(name)), write=True)


def test_counts_by_day_algorithm_and_user_ids(db_url, store):
    _store_keys(store, "rsa2048", "nistp256", "photo", "multi-uid", "alice-t2", "ed25519")
    _stamp(db_url, "rsa2048", TODAY - 2 * DAY + 5, TODAY - 2 * DAY + 50)  # added, changed that day
    _stamp(db_url, "nistp256", TODAY - 40 * DAY, TODAY - DAY + 100)  # old, updated yesterday
    _stamp(db_url, "photo", TODAY - 5 * DAY, NOW - 60)  # added 5 days ago, updated today
    _stamp(db_url, "multi-uid", TODAY + 1, NOW)  # added today
    _stamp(db_url, "alice-t2", TODAY - 40 * DAY, TODAY - 31 * DAY)  # nothing in 30 days
    _stamp(db_url, "ed25519", TODAY - 29 * DAY, TODAY + DAY + 7)  # changed "tomorrow": clock skew
    stats = store.key_statistics(30, NOW)

    days = stats.days
    assert len(days) == 30 and days[-1].day == TODAY and days[0].day == TODAY - 29 * DAY
    counts = {(TODAY - d.day) // DAY: (d.added, d.updated) for d in days
              if d.added or d.updated}
    assert counts == {0: (1, 1), 1: (0, 1), 2: (1, 0), 5: (1, 0), 29: (1, 0)}
    assert sorted(stats.key_types) == [(1, 2048, 1), (19, 256, 1), (22, 255, 4)]
    # rsa2048 1, nistp256 1, photo 1 (and a photo ID), multi-uid 3, alice-t2 2, ed25519 1
    assert stats.user_ids == 9


def test_an_empty_database(store):
    stats = store.key_statistics(7, NOW)
    assert stats.user_ids == 0 and stats.key_types == []
    assert [(d.day, d.added, d.updated) for d in stats.days] == [
        (TODAY - n * DAY, 0, 0) for n in range(6, -1, -1)]


def test_notice_log_is_the_newest_public_notices(store):
    with store.write() as cursor:
        for n, status in enumerate(["issued", "pending", "applied", "issued", "unsigned"]):
            insert_notice(cursor, StoredNotice(
                "S%d" % n, "reject", "AB" * 20, "reason %d" % n, NOW + n, "node", "body",
                None, None, "local" if status in ("issued", "unsigned") else "peer", status,
                "", NOW + n, None))
    log = store.notice_log(2)
    assert [n.serial for n in log.notices] == ["S3", "S2"]
    assert log.counts == {"issued": 2, "pending": 1, "applied": 1, "unsigned": 1}


def test_the_counts_read_indexes_not_key_rows(db_url, store, monkeypatch):
    """Every statement key_statistics runs is planned on an index (PostgreSQL
    is told to avoid table scans: it still makes one where no index fits)."""
    _store_keys(store, "rsa2048", "photo")
    statements = []
    real_execute = Cursor.execute

    def recording(cursor, sql, params=()):
        statements.append((sql, tuple(params)))
        return real_execute(cursor, sql, params)

    monkeypatch.setattr(Cursor, "execute", recording)
    store.key_statistics(30, NOW)
    monkeypatch.setattr(Cursor, "execute", real_execute)
    assert len(statements) == 5
    postgres = db_url.startswith("postgresql")
    with store.read() as cursor:
        if postgres:
            cursor.execute("SET enable_seqscan = off")
        for sql, params in statements:
            plan = [str(r[-1]) for r in cursor.execute(
                ("EXPLAIN " if postgres else "EXPLAIN QUERY PLAN ") + sql, params).fetchall()]
            if postgres:
                assert not any("Seq Scan" in line for line in plan), (sql, plan)
            else:
                reads = [line for line in plan if line.startswith(("SCAN", "SEARCH"))]
                assert reads and all("INDEX" in line for line in reads), (sql, plan)


def _indexes(db_url):
    sql = "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'" \
        if db_url.startswith("postgresql") else \
        "SELECT name FROM sqlite_master WHERE type = 'index'"
    return {r[0] for r in run_sql(db_url, sql)}


def test_a_version_2_database_gets_the_indexes(db_url, store):
    _store_keys(store, "rsa2048", "photo")
    store.close()
    for sql in ["DROP INDEX %s" % name for name in sorted(STATS_INDEXES)] + [
            "CREATE INDEX cks_keys_last_changed ON cks_keys (last_changed)",
            "UPDATE cks_schema_version SET version = 2"]:
        run_sql(db_url, sql, write=True)
    out = tool("cks_admin.py", ["--db", db_url, "stats", "--json"])
    assert out.returncode == 0, out.stderr
    assert b"migrating the database from schema version 2 to 3" in out.stderr
    assert run_sql(db_url, "SELECT version FROM cks_schema_version") == [(SCHEMA_VERSION,)]
    indexes = _indexes(db_url)
    assert STATS_INDEXES <= indexes and "cks_keys_last_changed" not in indexes
    again = open_store(db_url)
    try:
        assert again.key_statistics(30).user_ids == 2
    finally:
        again.close()
