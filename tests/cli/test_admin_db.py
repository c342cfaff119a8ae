"""cks_admin.py load, dump and stats against SQLite and PostgreSQL."""

import json
import re

import pytest

from cks.openpgp.keys import read_keys
from cks.store import open_store
from cks.store.peers import PeerStore
from support import fixture
from support.db import with_schema
from support.nodes import fpr
from support.procs import tool

NAMES = ["rsa2048", "nistp256", "alice-t1", "v6-ed25519"]


def admin(db, *args, input=None):
    return tool("cks_admin.py", ["--db", db] + list(args), input=input)


def stats(db):
    return json.loads(admin(db, "stats", "--json").stdout)


def _push_peer(db_url):
    store = open_store(db_url)
    PeerStore(store).add("push.example:11371", "hkp", 100, None, catch_up=False)
    store.close()


def test_load_files_and_standard_input_queues_for_sync(db_url, tmp_path):
    _push_peer(db_url)
    for name in NAMES[:3]:
        (tmp_path / (name + ".asc")).write_bytes(fixture(name))
    out = admin(db_url, "load", str(tmp_path / "rsa2048.asc"), str(tmp_path / "nistp256.asc"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode().strip() == "2 added, 0 updated, 0 unchanged, 0 refused; 0 problems"
    out = admin(db_url, "load", "-", input=fixture("alice-t2"))
    assert out.returncode == 0
    counts = stats(db_url)
    assert counts["keys"] == 3 and counts["pending_sync"] == 3


def test_verbose_adds_the_time_of_each_phase(db_url):
    out = admin(db_url, "load", "--verbose", "-", input=fixture("rsa2048"))
    assert out.returncode == 0, out.stderr
    assert re.search(r"^load: [\d.]+ s \(network views [\d.]+ s, then served views [\d.]+ s, "
                     r"then tidying [\d.]+ s\); \d+ signatures verified in ", out.stderr.decode(),
                     re.M), out.stderr


def test_load_directory_without_sync_and_problems(db_url, tmp_path):
    _push_peer(db_url)
    for name in NAMES:
        (tmp_path / (name + ".asc")).write_bytes(fixture(name))
    (tmp_path / "notes.txt").write_text("not a key")
    out = admin(db_url, "load", "--no-sync", str(tmp_path))
    assert out.returncode == 1  # notes.txt is a problem, the keys still load
    assert "notes.txt: no OpenPGP data found" in out.stderr.decode()
    assert out.stdout.decode().startswith("4 added")
    counts = stats(db_url)
    assert counts["keys"] == 4 and counts["pending_sync"] == 0
    missing = admin(db_url, "load", str(tmp_path / "nope.asc"))
    assert missing.returncode == 2 and b"no such file" in missing.stderr


def test_dump_then_load_elsewhere_gives_the_same_keys(db_url, tmp_path):
    for name in NAMES:
        admin(db_url, "load", "-", input=fixture(name))
    out = admin(db_url, "dump", str(tmp_path / "dump"), "--keys-per-file", "3")
    assert out.returncode == 0 and out.stdout.decode().startswith("4 keys in 2 files")
    other = "sqlite:///%s" % (tmp_path / "other.db")
    assert admin(other, "load", "--no-sync", str(tmp_path / "dump")).returncode == 0
    dumped = sorted((tmp_path / "dump").iterdir())
    fingerprints = sorted(k.fingerprint.hex().upper() for path in dumped
                          for k in read_keys(path.read_bytes()).keys)
    want = sorted(k.fingerprint.hex().upper() for n in NAMES for k in read_keys(fixture(n)).keys)
    assert fingerprints == want
    assert stats(other)["keys"] == 4


def test_a_dump_that_cannot_be_written_is_one_line_and_leaves_no_part_file(db_url, tmp_path):
    admin(db_url, "load", "-", input=fixture("rsa2048"))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "a-file").write_text("not a directory")
    for target in (out_dir / "a-file", out_dir / "a-file" / "below"):
        out = admin(db_url, "dump", str(target))
        assert out.returncode == 1 and b"Traceback" not in out.stderr, out.stderr
        assert out.stderr.decode().splitlines() == [
            "cks_admin.py: error: cannot write the dump in %s: %s (the files there are left "
            "as they were)" % (
                target, "File exists" if target.name == "a-file" else "Not a directory")]
    assert [p.name for p in out_dir.iterdir()] == ["a-file"]


def test_stats_text(db_url):
    admin(db_url, "load", "-", input=fixture("rsa2048"))
    out = admin(db_url, "stats")
    assert out.returncode == 0
    assert "keys               1" in out.stdout.decode()


def test_the_common_options_go_before_or_after_the_command(tmp_path):
    (tmp_path / "cks.conf").write_text("[database]\nurl = sqlite:///from-config.db\n")
    runs = [("cks_admin.py", ["stats", "--db", "sqlite:///after.db", "-v"]),
            ("cks_admin.py", ["--db", "sqlite:///before.db", "stats"]),
            ("cks_admin.py", ["stats", "--config", str(tmp_path / "cks.conf")]),
            ("cks_admin.py", ["--db", "sqlite:///overridden.db", "stats", "--db",
                              "sqlite:///later.db"])]
    for name, args in runs:
        run = tool(name, args, cwd=str(tmp_path))
        assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in tmp_path.glob("*.db")) == [
        "after.db", "before.db", "from-config.db", "later.db"]


def test_a_closed_standard_input_is_one_error_line(tmp_path):
    """Started with standard input closed (`<&-`, as from some cron or
    service setups), `load -` and `passwd` say so: no traceback."""
    closed = ["sh", "-c", 'exec "$0" "$@" <&-']
    db = "sqlite:///%s" % (tmp_path / "keys.db")
    for args, expected in ((["--db", db, "load", "-"], "cannot read -: standard input is closed"),
                           (["passwd"], "cannot read the password: standard input is closed")):
        out = tool("cks_admin.py", args, under=closed)
        assert out.returncode == 2, out.stderr
        assert out.stderr.decode() == "cks_admin.py: error: %s\n" % expected
    assert not (tmp_path / "keys.db").exists()


def test_reverify_says_of_each_key_named_that_is_not_stored_as_delete_does(db_url):
    """It printed "0 served views changed", exit 0, for a key not stored."""
    assert admin(db_url, "load", "-", input=fixture("rsa2048")).returncode == 0
    absent = ["0" * 39 + "1", "0" * 39 + "2"]
    alone, deleted = admin(db_url, "reverify", absent[0]), admin(db_url, "delete", absent[0])
    assert alone.returncode == deleted.returncode == 1
    assert alone.stdout == deleted.stdout == b""
    assert alone.stderr == deleted.stderr == (
        "cks_admin.py: error: no key %s is stored here\n" % absent[0]).encode()
    mixed = admin(db_url, "reverify", fpr("rsa2048"), *absent)
    assert mixed.returncode == 1
    assert mixed.stdout == b"0 served views changed\n"
    assert mixed.stderr.decode() == "".join(
        "cks_admin.py: error: no key %s is stored here\n" % f for f in absent)
    assert admin(db_url, "reverify", fpr("rsa2048")).returncode == 0


@pytest.mark.parametrize("days", ["nan", "inf", "1e300", "-5", "two"])
def test_drop_pending_older_than_takes_only_a_number_of_days(db_url, days):
    """Until 2026-12-06 nan, inf and 1e300 ended in a traceback, and -5
    dropped every pending notice (received before 5 days from now)."""
    db_url = with_schema(db_url)
    out = admin(db_url, "notices", "--drop-pending", "--older-than", days)
    assert out.returncode == 2 and out.stdout == b"", out.stdout
    assert out.stderr.decode().splitlines()[-1] == (
        "cks_admin.py notices: error: argument --older-than: must be a number of days "
        "from 0 to 36500, not %s" % days), out.stderr.decode()
    for days in ("0", "2.5"):
        out = admin(db_url, "notices", "--drop-pending", "--older-than", days)
        assert out.returncode == 0 and out.stdout == b"dropped 0 pending notices\n", out.stderr
