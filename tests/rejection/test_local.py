"""Local deletion and rejection with cks_admin.py, and every path refusing a rejected key."""

import json
import os
import re
import shlex
import subprocess
import urllib.parse

import pytest

from cks.openpgp.keys import read_keys
from cks.store import open_store
from support import ROOT, fixture
from support.db import create_pg_database, drop_pg_database, require_postgres, with_schema
from support.gpg import GnuPG
from support.procs import tool
from support.server import Cksd


def fpr(name):
    return read_keys(fixture(name)).keys[0].fingerprint.hex().upper()


def admin(db, *args, **kwargs):
    return tool("cks_admin.py", ["--db", db] + list(args), **kwargs)


def count(db, sql, params=()):
    store = open_store(db)
    try:
        with store.read() as cursor:
            return cursor.scalar(sql, params)
    finally:
        store.close()


def test_the_signing_hint_runs_as_printed(db_url, tmp_path):
    """The commands `reject` prints name the same database, configuration
    and rejection key, so that they can be copied as they are."""
    config = tmp_path / "node.conf"
    config.write_text("[rejection]\nkey = %s\n" % fpr("ed25519"))
    admin(db_url, "load", "-", input=fixture("rsa2048"))
    out = admin(db_url, "--config", str(config), "reject", fpr("rsa2048"), "--reason", "x")
    text_command, sign_command, publish_command = out.stdout.decode().splitlines()[-3:]
    assert "--local-user %s notice.txt" % fpr("ed25519") in sign_command
    admin_path = os.path.join(ROOT, "cks_admin.py")  # (until 2026-12-05: cks_admin.py)
    assert publish_command.strip().startswith("python3 %s --db %s --config %s sign-notice"
                                              % (admin_path, db_url, config))
    command = shlex.split(text_command.split(">")[0])
    assert command[:2] == ["python3", admin_path]
    notice = tool(command[1], command[2:], cwd=str(tmp_path))
    assert notice.returncode == 0 and fpr("rsa2048") in notice.stdout.decode(), notice.stderr


def test_the_signing_hint_names_relative_paths_from_any_directory(tmp_path):
    """`--db sqlite:///cks.db --config node.conf`, relative: the commands name
    them absolute (until 2026-12-05 as given, which named nothing, or another
    node's files, from another directory)."""
    (tmp_path / "node.conf").write_text("[rejection]\nkey = %s\n" % fpr("ed25519"))
    relative = ["--db", "sqlite:///cks.db", "--config", "node.conf"]
    assert tool("cks_admin.py", relative + ["stats"], cwd=str(tmp_path)).returncode == 0
    out = tool("cks_admin.py", relative + ["reject", fpr("rsa2048")], cwd=str(tmp_path))
    text_command, _, publish_command = out.stdout.decode().splitlines()[-3:]
    assert " --db sqlite:///%s --config %s sign-notice " % (
        tmp_path / "cks.db", tmp_path / "node.conf") in publish_command
    command = shlex.split(text_command.split(">")[0])
    (tmp_path / "elsewhere").mkdir()
    notice = tool(command[1], command[2:], cwd=str(tmp_path / "elsewhere"))
    assert notice.returncode == 0 and fpr("rsa2048") in notice.stdout.decode(), notice.stderr


def test_when_gpg_cannot_sign_the_commands_to_sign_by_hand_are_printed(db_url, tmp_path):
    """`[rejection] gpg_key` not in the keyring gpg reads (another user's):
    exit 1 with gpg's complaint, and the commands that finish the job, which
    do once run where the key is (until 2026-12-05 only the complaint)."""
    config = tmp_path / "node.conf"
    config.write_text("[rejection]\nkey = %s\ngpg_key = %s\n" % ((fpr("ed25519"),) * 2))
    admin(db_url, "load", "-", input=fixture("rsa2048") + fixture("ed25519"))
    with GnuPG() as empty:
        out = admin(db_url, "--config", str(config), "reject", fpr("rsa2048"), "--reason", "x",
                    env={"GNUPGHOME": empty.home})
    assert out.returncode == 1 and b"gpg could not sign notice" in out.stderr
    # gpg's lines, joined (until 2026-12-05 a Python list: "['gpg: signing failed: ...']")
    assert out.stderr.decode().rstrip().endswith(
        ": No secret key; gpg: signing failed: No secret key")
    assert "['" not in out.stderr.decode()
    commands = [line.strip() for line in out.stdout.decode().splitlines()[-3:]]
    assert commands[1].startswith("gpg ") and commands[2].endswith("notice.txt.asc")
    sign_by_hand(out, tmp_path)
    assert [n["status"] for n in json.loads(admin(db_url, "notices", "--json").stdout)] \
        == ["issued"]


def sign_by_hand(out, directory):
    """Run the three commands `reject` printed (its indented lines) in
    `directory`, as the holder of the ed25519 key, without $CKS_DB and
    $CKS_CONFIG."""
    env = {name: value for name, value in os.environ.items()
           if name not in ("CKS_DB", "CKS_CONFIG")}
    commands = [line for line in out.stdout.decode().splitlines() if line.startswith("  ")]
    assert len(commands) == 3, out.stdout
    with GnuPG() as operator:
        operator.run(["--import"], input=fixture("secret/ed25519"))
        for line in commands:
            done = subprocess.run(line.strip(), shell=True, cwd=str(directory),
                                  capture_output=True, env=dict(env, GNUPGHOME=operator.home))
            assert done.returncode == 0, (line, done.stderr)


@pytest.mark.parametrize("found", ["./cks.conf", "$CKS_CONFIG and $CKS_DB"])
def test_the_signing_hint_names_the_settings_found_without_options(db_url, tmp_path, found):
    """No --db nor --config: the commands name the configuration file read
    (./cks.conf, $CKS_CONFIG's) and the database used, so that they sign the
    notice from another directory, in another shell (until 2026-12-06 they
    named neither: there they read another database and no [rejection] key)."""
    node, elsewhere = tmp_path / "node", tmp_path / "elsewhere"
    node.mkdir()
    elsewhere.mkdir()
    rejection_key = "[rejection]\nkey = %s\n" % fpr("ed25519")
    if found == "./cks.conf":
        (node / "cks.conf").write_text("[database]\nurl = %s\n%s" % (db_url, rejection_key))
        env = {}
    else:
        (node / "node.conf").write_text(rejection_key)
        env = {"CKS_CONFIG": "node.conf", "CKS_DB": db_url}
    admin(db_url, "load", "-", input=fixture("rsa2048") + fixture("ed25519"))
    out = tool("cks_admin.py", ["reject", fpr("rsa2048")], cwd=str(node), env=env)
    assert out.returncode == 0 and "not signed yet" in out.stdout.decode(), out.stderr
    sign_by_hand(out, elsewhere)
    assert [n["status"] for n in json.loads(admin(db_url, "notices", "--json").stdout)] \
        == ["issued"]


def test_the_signing_hint_names_a_relative_sqlite_path_of_cks_conf(tmp_path):
    """`url = sqlite:///x.db` in ./cks.conf names x.db in the directory the
    tool runs in: the commands name it absolute, with the file."""
    node, elsewhere = tmp_path / "node", tmp_path / "elsewhere"
    node.mkdir()
    elsewhere.mkdir()
    (node / "cks.conf").write_text("[database]\nurl = sqlite:///x.db\n"
                                   "[rejection]\nkey = %s\n" % fpr("ed25519"))
    assert tool("cks_admin.py", ["load", "-"], input=fixture("rsa2048") + fixture("ed25519"),
                cwd=str(node)).returncode == 0
    out = tool("cks_admin.py", ["reject", fpr("rsa2048")], cwd=str(node))
    assert " --db sqlite:///%s --config %s sign-notice " % (
        node / "x.db", node / "cks.conf") in out.stdout.decode()
    sign_by_hand(out, elsewhere)
    listing = tool("cks_admin.py", ["notices", "--json"], cwd=str(node)).stdout
    assert [n["status"] for n in json.loads(listing)] == ["issued"]


def _with_password(db_url):
    """(`db_url` with the password Secret-Word, `db_url` with none): the
    test server trusts its clients, so both connect."""
    scheme, rest = db_url.split("://", 1)
    user, host = rest.split("@", 1)
    plain = "%s://%s@%s" % (scheme, user.split(":")[0], host)
    return plain.replace("@", ":Secret-Word@", 1), plain


def test_the_signing_hint_leaves_a_password_in_the_configuration_file(tmp_path):
    """A PostgreSQL URL of the configuration file, password and all, is named
    by --config, not printed."""
    require_postgres()
    db_url = create_pg_database()
    try:
        admin(db_url, "load", "-", input=fixture("ed25519"))
        with_password, _ = _with_password(db_url)
        (tmp_path / "cks.conf").write_text("[database]\nurl = %s\n[rejection]\nkey = %s\n"
                                           % (with_password, fpr("ed25519")))
        (tmp_path / "elsewhere").mkdir()
        out = tool("cks_admin.py", ["reject", fpr("rsa2048")], cwd=str(tmp_path))
        assert out.returncode == 0 and "Secret-Word" not in out.stdout.decode(), out.stderr
        assert " --config %s sign-notice " % (tmp_path / "cks.conf") in out.stdout.decode()
        sign_by_hand(out, tmp_path / "elsewhere")
        assert [n["status"] for n in json.loads(admin(db_url, "notices", "--json").stdout)] \
            == ["issued"]
    finally:
        drop_pg_database(db_url)


def test_the_signing_hint_leaves_out_the_password_of_cks_db(tmp_path):
    """A URL in $CKS_DB is printed as --db without its password (until
    2026-12-06 whole: on the screen, then in the shell's history and in
    `ps`; found by a review); PostgreSQL takes it from ~/.pgpass."""
    require_postgres()
    db_url = create_pg_database()
    try:
        admin(db_url, "load", "-", input=fixture("rsa2048") + fixture("ed25519"))
        with_password, plain = _with_password(db_url)
        (tmp_path / "node.conf").write_text("[rejection]\nkey = %s\n" % fpr("ed25519"))
        (tmp_path / "elsewhere").mkdir()
        out = tool("cks_admin.py", ["reject", fpr("rsa2048")], cwd=str(tmp_path),
                   env={"CKS_CONFIG": "node.conf", "CKS_DB": with_password})
        printed = out.stdout.decode()
        assert out.returncode == 0 and "Secret-Word" not in printed, out.stderr
        assert " --db %s " % plain in printed
        assert "~/.pgpass" in printed
        sign_by_hand(out, tmp_path / "elsewhere")
        assert [n["status"] for n in json.loads(admin(db_url, "notices", "--json").stdout)] \
            == ["issued"]
    finally:
        drop_pg_database(db_url)


def test_delete_reject_unreject_and_list(db_url):
    admin(db_url, "load", "-", input=fixture("rsa2048") + fixture("nistp256"))
    spaced = " ".join(fpr("rsa2048")[i:i + 4] for i in range(0, 40, 4))
    out = admin(db_url, "delete", spaced)
    assert out.returncode == 0 and out.stdout.decode().startswith("deleted " + fpr("rsa2048"))
    assert admin(db_url, "delete", fpr("rsa2048")).returncode == 1  # not there any more
    out = admin(db_url, "reject", "0x" + fpr("nistp256").lower(), "--reason", "spam report 7")
    assert out.returncode == 0 and out.stdout.decode().startswith(
        "rejected %s: deleted, and refused from now on\n" % fpr("nistp256"))
    assert "not signed yet" in out.stdout.decode()
    listing = json.loads(admin(db_url, "rejected", "--json").stdout)
    assert [(r["fingerprint"], r["reason"], r["source"]) for r in listing] == \
        [(fpr("nistp256"), "spam report 7", "local")]
    assert count(db_url, "SELECT count(*) FROM cks_keys") == 0
    assert admin(db_url, "unreject", fpr("nistp256")).returncode == 0
    assert json.loads(admin(db_url, "rejected", "--json").stdout) == []
    out = admin(db_url, "unreject", fpr("nistp256"))
    assert out.returncode == 1 and b"is not rejected here" in out.stderr
    out = admin(db_url, "reject", fpr("rsa2048"))  # (deleted above; until 2026-12-05 "deleted")
    assert out.returncode == 0 and out.stdout.decode().startswith(
        "rejected %s: not stored here, and refused from now on\n" % fpr("rsa2048"))


@pytest.mark.parametrize("text,message", [
    ("5EF6B51A", "a key ID is ambiguous"),
    ("0x9C1DEEEB5EF6B51A", "a key ID is ambiguous"),
    ("nothex", "is not a fingerprint"),
    ("AD625CE7F94E6F847AF08DB09C1DEEEB5EF6B51", "is not a fingerprint"),
])
def test_ambiguous_or_bad_input_is_refused(db_url, text, message):
    admin(db_url, "load", "-", input=fixture("rsa2048"))
    for command in ("delete", "reject", "unreject"):
        out = admin(db_url, command, text)
        assert out.returncode == 2 and message in out.stderr.decode(), out.stderr
    if "ambiguous" in message:
        assert fpr("rsa2048") in admin(db_url, "delete", text).stderr.decode()
    assert count(db_url, "SELECT count(*) FROM cks_keys") == 1


def test_rejecting_removes_the_key_from_the_sync_queue_and_backlogs(db_url):
    admin(db_url, "load", "-", input=fixture("rsa2048"))
    tool("cks_sync_manage.py", ["--db", db_url, "add", "peer.example", "--no-catch-up"])
    admin(db_url, "load", "-", input=fixture("nistp256"))
    assert count(db_url, "SELECT count(*) FROM cks_sync_backlog") == 1
    admin(db_url, "reject", fpr("nistp256"))
    for table in ("cks_pending_sync", "cks_sync_backlog"):
        assert count(db_url, "SELECT count(*) FROM %s WHERE fingerprint = ?" % table,
                     (fpr("nistp256"),)) == 0
    # the reconciliation set is the stored keys' hashes: it is gone from there too
    assert count(db_url, "SELECT count(*) FROM cks_keys WHERE fingerprint = ?",
                 (fpr("nistp256"),)) == 0


def test_a_rejected_key_is_refused_on_every_path(db_url):
    with_schema(db_url)  # (a new node: rejected before its first load)
    admin(db_url, "reject", fpr("rsa2048"), "--reason", "gone")
    out = admin(db_url, "load", "-", input=fixture("rsa2048"))  # bulk load
    assert out.returncode == 1 and b"rejected on this server: gone" in out.stderr
    with Cksd(db_url) as server:
        status, _, body = server.add(fixture("rsa2048"))  # HKP upload
        assert status == 403 and b"rejected on this server" in body
        body = urllib.parse.urlencode({"keytext": fixture("rsa2048")}).encode()
        status, _, _ = server.request("POST", "/pks/add", body, {  # a peer's HKP sync
            "Content-Type": "application/x-www-form-urlencoded", "X-CKS-Sync": "peer"})
        assert status == 403
        assert server.lookup(op="get", search="0x" + fpr("rsa2048"))[0] == 404
    assert count(db_url, "SELECT count(*) FROM cks_keys") == 0


def test_a_rejected_key_is_refused_by_mail_sync(db_url, tmp_path):
    from support.mailnode import Node
    from support.mails import SKS, sks_mail
    node = Node(with_schema(db_url), tmp_path / "node")
    node.manage("add", SKS)
    assert admin(db_url, "reject", fpr("rsa2048"), "--reason", "gone").returncode == 0
    out = node.mail_sync(sks_mail(fixture("rsa2048") + fixture("nistp256")))
    assert out.returncode == 0, out.stderr  # the other key in the mail is taken
    assert list(node.keys()) == [fpr("nistp256")]


def test_notices_about_one_key_are_dated_in_order_within_a_second(db_url):
    """A peer carries out a notice only when it is newer than the last one it
    carried out about the key, in whole seconds: a reject, unreject and reject
    made in the same second are dated one second apart, in that order."""
    from cks.rejection import NodeIdentity, reject, unreject
    admin(db_url, "load", "-", input=fixture("rsa2048"))
    store = open_store(db_url)
    identity = NodeIdentity("node-a.example")
    try:
        now = 1795950000
        notices = [reject(store, fpr("rsa2048"), "spam", identity, now=now)[0],
                   unreject(store, fpr("rsa2048"), identity, now=now),
                   reject(store, fpr("rsa2048"), "spam again", identity, now=now)[0]]
    finally:
        store.close()
    assert [n.notice_time for n in notices] == [now, now + 1, now + 2]
    assert ["time: %d" % (now + 1) in n.body for n in notices] == [False, True, False]


def test_a_reason_too_long_for_a_notice_is_refused_and_nothing_rejected(db_url):
    """A notice is at most 4096 bytes, and peers refuse a longer one: the
    reason must leave it within that (until 2026-12-05 the key was rejected
    and the notice made, and every peer refused it)."""
    admin(db_url, "load", "-", input=fixture("rsa2048"))
    out = admin(db_url, "reject", fpr("rsa2048"), "--reason", "x" * 4200)
    assert out.returncode == 1
    (line,) = out.stderr.decode().splitlines()
    room = int(re.search(r"room for (\d+) bytes", line).group(1))
    assert "the reason is 4200 bytes" in line and "nothing was rejected" in line
    assert 3900 < room < 4096
    assert json.loads(admin(db_url, "rejected", "--json").stdout) == []
    assert json.loads(admin(db_url, "notices", "--json").stdout) == []
    assert count(db_url, "SELECT count(*) FROM cks_keys") == 1
    out = admin(db_url, "reject", fpr("rsa2048"), "--reason", "é" * (room // 2))
    assert out.returncode == 0, out.stderr
    (notice,) = json.loads(admin(db_url, "notices", "--json").stdout)
    assert len(notice["body"].encode()) == 4096 - room % 2
