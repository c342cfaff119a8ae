"""Store.write(bulk=True), the transactions a bulk load writes its batches in."""

from cks.store.sqlite import BULK_CACHE_KIB


def test_a_bulk_write_is_a_write(store):
    with store.write(bulk=True) as cursor:
        cursor.execute("INSERT INTO cks_schema_version (version) VALUES (?)", (99,))
    with store.read() as cursor:
        assert cursor.scalar("SELECT max(version) FROM cks_schema_version") == 99


def test_sqlite_gives_a_bulk_writes_connection_a_larger_page_cache(tmp_path):
    from cks.store import open_store
    store = open_store("sqlite:///%s" % (tmp_path / "cks.db"), pool_size=1)
    try:
        with store.write() as cursor:
            default = cursor.scalar("PRAGMA cache_size")
        with store.write(bulk=True) as cursor:
            assert cursor.scalar("PRAGMA cache_size") == -BULK_CACHE_KIB
    finally:
        store.close()
    assert -BULK_CACHE_KIB < default < 0  # SQLite's 2 MiB (in KiB), smaller
