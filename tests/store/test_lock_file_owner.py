"""The lock files CKS makes beside an SQLite database belong to the
database's owner even when root made them (README "Backups"): until
2026-12-05 a `cks_admin.py load` or `cks_sync.py` run as root left them
root's, and every later run as cks failed with "Permission denied"."""

import os
import pwd

import pytest

from support import FIXTURES
from support.procs import tool


@pytest.fixture
def database(tmp_path):
    """An SQLite database (schema made) owned by the user nobody."""
    if os.geteuid() != 0:
        pytest.skip("needs root, to make files of another user")
    path = str(tmp_path / "cks.db")
    assert tool("cks_admin.py", ["--db", "sqlite:///" + path, "stats"]).returncode == 0
    nobody = pwd.getpwnam("nobody")
    for name in os.listdir(tmp_path):
        if name.endswith(".lock"):  # (made again below, by root)
            os.remove(tmp_path / name)
        else:
            os.chown(tmp_path / name, nobody.pw_uid, nobody.pw_gid)
    return path


def owners(path) -> dict:
    """Each lock file beside the database: (owner, mode)."""
    folder = os.path.dirname(path)
    return {name: (os.stat(os.path.join(folder, name)).st_uid,
                   os.stat(os.path.join(folder, name)).st_mode & 0o600)
            for name in os.listdir(folder) if name.endswith(".lock")}


def test_lock_files_made_by_root_belong_to_the_database_owner(database):
    url = "sqlite:///" + database
    load = tool("cks_admin.py", ["--db", url, "load", os.path.join(FIXTURES, "alice-t1.asc")])
    assert load.returncode == 0, load.stderr
    added = tool("cks_sync_manage.py", ["--db", url, "add", "127.0.0.1:9", "--no-catch-up"])
    assert added.returncode == 0, added.stderr
    assert tool("cks_admin.py", ["--db", url, "load",
                                 os.path.join(FIXTURES, "alice-t2.asc")]).returncode == 0
    tool("cks_sync.py", ["--db", url])  # (the peer fails: nothing listens on port 9)
    nobody = pwd.getpwnam("nobody").pw_uid
    made = owners(database)
    assert {"cks.db.load.lock", "cks.db.cks_sync.lock", "cks.db.write.lock",
            "cks.db.cks_sync_peer_1.lock"} <= set(made)
    assert made == {name: (nobody, 0o600) for name in made}
