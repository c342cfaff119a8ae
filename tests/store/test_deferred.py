"""Cursor.defer and executemany: PostgreSQL sends deferred statements with
the next one (one round trip); on both backends a write transaction must
still read its own writes in order and fail whole."""

import pytest

from cks.store import errors, sql


INSERT = "INSERT INTO cks_pending_sync (fingerprint, queued_at, source) VALUES (?, ?, ?)"


def _queued(store, source):
    with store.read() as cursor:
        return [r[0] for r in cursor.execute(
            "SELECT fingerprint FROM cks_pending_sync WHERE source = ? ORDER BY fingerprint",
            (source,)).fetchall()]


def test_a_read_sees_the_writes_deferred_before_it(store):
    with store.write() as cursor:
        cursor.defer(INSERT, ("A", 1, "s1"))
        cursor.executemany(INSERT, [("B", 2, "s1"), ("C%s'\\", 3, "s1")])
        assert cursor.scalar("SELECT count(*) FROM cks_pending_sync WHERE source = ?",
                             ("s1",)) == 3
        cursor.defer("DELETE FROM cks_pending_sync WHERE fingerprint = ?", ("A",))
    assert _queued(store, "s1") == ["B", "C%s'\\"]


def test_a_failing_deferred_statement_fails_the_whole_transaction(store):
    with pytest.raises(errors.StoreError, match="cks_no_such_table"):
        with store.write() as cursor:
            cursor.defer(INSERT, ("NOWHERE", 1, "s2"))
            cursor.defer("DELETE FROM cks_no_such_table WHERE x = ?", (1,))
    assert _queued(store, "s2") == []
    with store.write() as cursor:  # the connection went back to the pool usable
        cursor.defer(INSERT, ("Z", 1, "s2"))
    assert _queued(store, "s2") == ["Z"]


def test_an_exception_in_the_caller_sends_nothing_deferred(store):
    with pytest.raises(RuntimeError):
        with store.write() as cursor:
            cursor.executemany(INSERT, [("W%d" % n, n, "s3") for n in range(10)])
            raise RuntimeError("the caller changed its mind")
    assert _queued(store, "s3") == []


def test_many_rows_and_much_text_go_in_several_statements(store, monkeypatch):
    monkeypatch.setattr(sql, "ROWS_PER_INSERT", 7)
    monkeypatch.setattr(sql, "DEFERRED_BYTES", 300)
    rows = [("W%03d" % n, n, "s4") for n in range(50)]
    with store.write() as cursor:
        cursor.executemany(INSERT, rows)
        cursor.executemany("UPDATE cks_pending_sync SET fingerprint = ? WHERE fingerprint = ?",
                           [("U" + w[1:], w) for w, _, _ in rows[:20]])
    assert _queued(store, "s4") == ["U%03d" % n for n in range(20)] + \
        ["W%03d" % n for n in range(20, 50)]


def test_rows_that_update_the_same_row_on_conflict_each_apply(store):
    upsert = INSERT + " ON CONFLICT (fingerprint) DO UPDATE SET queued_at = excluded.queued_at"
    with store.write() as cursor:
        cursor.executemany(upsert, [("SAME", 1, "s5"), ("SAME", 2, "s5"), ("OTHER", 3, "s5")])
    with store.read() as cursor:
        assert cursor.execute("SELECT fingerprint, queued_at FROM cks_pending_sync WHERE "
                              "source = ? ORDER BY fingerprint", ("s5",)).fetchall() == \
            [("OTHER", 3), ("SAME", 2)]
