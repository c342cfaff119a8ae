"""A database file SQLite makes itself is 0644 whatever the umask; CKS makes
it, so that the umask decides (README: the units' UMask=0007 lets the mail
account, in cksd's group, write the database)."""

import os
import stat

from cks.store import open_store


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_database_and_its_log_files_follow_the_umask(tmp_path):
    old = os.umask(0o007)
    try:
        store = open_store("sqlite:///%s" % (tmp_path / "cks.db"))
        try:
            with store.write() as cursor:
                cursor.execute("INSERT INTO cks_rejected_keys (fingerprint, reason, "
                               "rejected_at) VALUES (?, ?, ?)", ("AB" * 20, "test", 1))
            for name in ("cks.db", "cks.db-wal", "cks.db-shm"):
                assert mode(tmp_path / name) == 0o660, name
        finally:
            store.close()
    finally:
        os.umask(old)


def test_an_existing_database_keeps_its_mode(tmp_path):
    path = tmp_path / "cks.db"
    first = open_store("sqlite:///%s" % path)
    first.stats()
    first.close()
    os.chmod(path, 0o600)
    store = open_store("sqlite:///%s" % path)
    try:
        assert store.stats()["keys"] == 0 and mode(path) == 0o600
    finally:
        store.close()
