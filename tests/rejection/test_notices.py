"""Authenticated rejection sync, end to end: three cksd nodes.

A rejects a key and signs the notice with its operator's key (GnuPG, as the
README says); cks_sync.py on A delivers it.  B trusts A's rejection key and
carries it out; C does not and keeps the notice for review.  Forged,
tampered, replayed and malformed notices change nothing."""

import json
import os
import time
import urllib.parse

import pytest

from cks.notices import Notice, new_serial
from cks.openpgp.armor import encode, scan
from cks.openpgp.keys import read_keys
from cks.store import open_store
from support import fixture
from support.db import run_sql
from support.forge import Signer, key_binding
from support.gpg import GnuPG
from support.procs import tool
from support.server import LOOPBACK_EXEMPT, Cksd


def fpr(name):
    return read_keys(fixture(name)).keys[0].fingerprint.hex().upper()


OPERATOR = "revoker"  # A's operator signs notices with this fixture key
HASH = "0123456789ABCDEF0123456789ABCDEF"  # a recon hash refused for a key


def run(node, name, *args, env=None):
    return tool(name, ["--db", node.db_url, "--config", node.config] + list(args), env=env)


def notices_of(node, *args):
    return json.loads(run(node, "cks_admin.py", "notices", "--json", *args).stdout)


def has(node, name):
    return node.lookup(op="get", options="mr", search="0x" + fpr(name))[0] == 200


def deliver(node, body, signature):
    fields = urllib.parse.urlencode({"notice": body, "signature": signature}).encode()
    status, _, answer = node.request("POST", "/pks/x-cks-rejection", fields,
                                     {"Content-Type": "application/x-www-form-urlencoded"})
    return status, json.loads(answer)


@pytest.fixture
def operator():
    with GnuPG() as gpg:
        gpg.run(["--import"], input=fixture("secret/" + OPERATOR))
        gpg.run(["--import"], input=fixture("secret/ed25519"))  # someone else's key
        yield gpg


@pytest.fixture
def nodes(new_db, tmp_path):
    started = []
    for name in "abc":
        config = tmp_path / ("%s.conf" % name)
        text = "[sync]\nnode_name = node-%s.example\n" % name + LOOPBACK_EXEMPT
        if name == "a":
            text += "[rejection]\nkey = %s\n" % fpr(OPERATOR)
        config.write_text(text)
        node = Cksd(new_db(name), config=str(config)).start()
        started.append(node)
        for key in ("rsa2048", "nistp256", OPERATOR, "ed25519"):
            assert node.add(fixture(key))[0] == 200
    a, b, c = started
    for peer in (b, c):
        assert run(a, "cks_sync_manage.py", "add", "127.0.0.1:%d" % peer.port,
                   "--no-catch-up").returncode == 0
    assert run(b, "cks_sync_manage.py", "add", "127.0.0.1:%d" % a.port, "--rejection-key",
               fpr(OPERATOR), "--honour-rejections").returncode == 0
    assert run(c, "cks_sync_manage.py", "add", "127.0.0.1:%d" % a.port, "--rejection-key",
               fpr(OPERATOR)).returncode == 0  # known, but not honoured
    yield started
    for node in started:
        node.close()


def test_rejection_travels_to_the_peers_that_trust_it(nodes, operator):
    a, b, c = nodes
    env = {"GNUPGHOME": operator.home}
    out = run(a, "cks_admin.py", "reject", fpr("rsa2048"), "--reason", "abuse report 42",
              "--sign-with", fpr(OPERATOR), env=env)
    assert out.returncode == 0, out.stderr
    assert "signed and queued for the peers" in out.stdout.decode()
    assert not has(a, "rsa2048") and a.add(fixture("rsa2048"))[0] == 403

    sync = run(a, "cks_sync.py")
    assert sync.returncode == 0, sync.stderr
    assert sync.stdout.decode().count("sent 0 keys, 1 rejection notice") == 2

    # B trusts A: deleted, rejected, and refused from now on
    assert not has(b, "rsa2048")
    assert b.add(fixture("rsa2048"))[0] == 403
    rejected = json.loads(run(b, "cks_admin.py", "rejected", "--json").stdout)
    assert [r["fingerprint"] for r in rejected] == [fpr("rsa2048")]
    assert rejected[0]["reason"] == "rejected by node-a.example: abuse report 42"
    # C does not: the key stays, the notice waits for its operator
    assert has(c, "rsa2048")
    (pending,) = notices_of(c, "--pending")
    assert pending["fingerprint"] == fpr("rsa2048") and "not trusted" in pending["status_reason"]

    # anyone can audit what A issued and B applied, and check the signature
    for node, status in ((a, "issued"), (b, "applied")):
        code, _, body = node.request("GET", "/pks/x-cks-rejections?options=mr")
        (published,) = json.loads(body)
        assert code == 200 and published["status"] == status
        assert "fingerprint: %s" % fpr("rsa2048") in published["notice"]
        with GnuPG() as auditor:
            auditor.run(["--import"], input=fixture(OPERATOR))
            notice_file = os.path.join(auditor.home, "notice.txt")
            with open(notice_file, "w") as handle:
                handle.write(published["notice"])
            auditor.run(["--verify", "-", notice_file], input=published["signature"].encode())

    # a second sync run delivers nothing again; a replay changes nothing
    again = run(a, "cks_sync.py")
    assert "rejection notice" not in again.stdout.decode()
    (ours,) = notices_of(a)
    assert deliver(b, ours["body"], ours["signature"]) == \
        (200, {"status": "applied", "reason": "already received"})

    # un-rejecting is a signed notice too; recon asks for the key's hashes again
    run_sql(b.db_url, "INSERT INTO cks_recon_refused (sks_hash, fingerprint, refused_at, "
            "reason) VALUES (?, ?, 0, 'rejected')", (HASH, fpr("rsa2048")), write=True)
    out = run(a, "cks_admin.py", "unreject", fpr("rsa2048"), "--sign-with", fpr(OPERATOR),
              env=env)
    assert out.returncode == 0, out.stderr
    assert run(a, "cks_sync.py").returncode == 0
    assert run_sql(b.db_url, "SELECT count(*) FROM cks_recon_refused") == [(0,)]
    assert b.add(fixture("rsa2048"))[0] == 200
    assert json.loads(run(b, "cks_admin.py", "rejected", "--json").stdout) == []


def _bound_by_a_key_sorted_first(node, name):
    """Upload to `node` a new key, its fingerprint sorted before `name`'s,
    that binds `name`'s public primary key as a subkey (no secret key needed)."""
    taker = Signer.new()
    while taker.public.fingerprint.hex().upper() >= fpr(name):
        taker = Signer.new()
    public = read_keys(fixture(name)).keys[0].public_key
    assert node.add(encode(key_binding([public], b"Taker <taker@example.org>",
                                       owner=taker)))[0] == 200


def test_a_key_binding_a_peers_rejection_key_does_not_block_its_notices(nodes, operator):
    """Anyone can upload a key of their own that binds a peer's public
    rejection key (or anyone's) as a subkey that signs nothing: a notice is
    still checked against the key whose primary key signed it.  Until
    2026-12-07 such a key whose fingerprint sorted first stood in for it,
    and every notice of the peer's waited for review, "the signature does
    not verify" (found by a review)."""
    a, b, c = nodes
    for name in (OPERATOR, "ed25519"):
        _bound_by_a_key_sorted_first(b, name)
    out = run(a, "cks_admin.py", "reject", fpr("rsa2048"), "--reason", "abuse report 43",
              "--sign-with", fpr(OPERATOR), env={"GNUPGHOME": operator.home})
    assert out.returncode == 0, out.stderr
    assert run(a, "cks_sync.py").returncode == 0
    (applied,) = notices_of(b)
    assert (applied["status"], applied["status_reason"]) == ("applied", "")
    assert not has(b, "rsa2048")
    body, signature = _signed(operator, Notice("reject", fpr("nistp256"), "stranger's",
                                               1795950000, "node-x.example", new_serial()),
                              fpr("ed25519"))
    assert deliver(b, body, signature) == (200, {
        "status": "pending", "reason": "%s is not trusted for rejections here" % fpr("ed25519")})


def _signed(operator, notice, key):
    path = os.path.join(operator.home, "n-%s.txt" % notice.serial)
    with open(path, "w") as handle:
        handle.write(notice.render())
    operator.run(["--armor", "--detach-sign", "--local-user", key, path])
    with open(path + ".asc") as handle:
        return notice.render(), handle.read()


def test_forged_tampered_and_malformed_notices_change_nothing(nodes, operator):
    a, b, c = nodes
    notice = Notice("reject", fpr("nistp256"), "forged", 1795950000, "node-a.example",
                    new_serial())
    # signed by a key that is not A's operator key
    body, signature = _signed(operator, notice, fpr("ed25519"))
    status, answer = deliver(b, body, signature)
    assert status == 200 and answer["status"] == "pending"
    assert "not trusted" in answer["reason"]
    # signed by A's operator, then altered
    body, signature = _signed(operator, Notice("reject", fpr("ed25519"), "real", 1795950000,
                                               "node-a.example", new_serial()), fpr(OPERATOR))
    status, answer = deliver(b, body.replace(fpr("ed25519"), fpr("nistp256")), signature)
    assert status == 200 and answer == {"status": "pending",
                                        "reason": "the signature does not verify"}
    # unsigned, or not a notice at all: refused, in words the sender takes for final
    assert deliver(b, body, "") == (400, {"status": "refused", "reason":
                                          "expected one armored PGP SIGNATURE block and "
                                          "nothing else"})
    assert deliver(b, "reject everything\n", signature) == \
        (400, {"status": "refused", "reason": "not a CKS rejection notice (version 1)"})
    assert has(b, "nistp256") and has(b, "ed25519")
    assert json.loads(run(b, "cks_admin.py", "rejected", "--json").stdout) == []
    assert len(notices_of(b, "--pending")) == 2


def test_a_peer_cannot_lift_a_rejection_made_here(nodes, operator):
    a, b, c = nodes
    assert run(b, "cks_admin.py", "reject", fpr("nistp256"), "--reason", "ours").returncode == 0
    newer = int(time.time()) + 60  # newer than B's own rejection
    body, signature = _signed(operator, Notice("unreject", fpr("nistp256"), "", newer,
                                               "node-a.example", new_serial()), fpr(OPERATOR))
    status, answer = deliver(b, body, signature)
    assert answer["status"] == "pending" and "operator" in answer["reason"]
    assert b.add(fixture("nistp256"))[0] == 403


def test_notice_for_a_key_not_held_still_keeps_it_out(nodes, operator):
    a, b, c = nodes
    body, signature = _signed(operator, Notice("reject", fpr("nistp521"), "never wanted",
                                               1795950000, "node-a.example", new_serial()),
                              fpr(OPERATOR))
    assert deliver(b, body, signature)[1]["status"] == "applied"
    assert b.add(fixture("nistp521"))[0] == 403


def test_older_notice_does_not_undo_a_newer_one(nodes, operator):
    a, b, c = nodes
    old = Notice("reject", fpr("nistp256"), "old", 1795950000, "node-a.example", new_serial())
    new = Notice("unreject", fpr("nistp256"), "", 1795950100, "node-a.example", new_serial())
    first = _signed(operator, new, fpr(OPERATOR))
    second = _signed(operator, old, fpr(OPERATOR))
    assert deliver(b, *first)[1]["status"] == "applied"  # nothing was rejected: no change
    assert deliver(b, *second)[1]["status"] == "superseded"
    assert has(b, "nistp256")


def test_a_notice_a_cks_peer_cannot_read_is_refused_for_good(nodes, operator):
    """B's 400 for it names the notice ("refused"): it leaves the backlog, and
    the run says so; until 2026-12-05 a bare 400 said it, and any 4xx did."""
    a, b, c = nodes
    out = run(a, "cks_admin.py", "reject", fpr("rsa2048"), "--sign-with", fpr(OPERATOR),
              env={"GNUPGHOME": operator.home})
    assert out.returncode == 0, out.stderr
    (ours,) = notices_of(a)
    run_sql(a.db_url, "UPDATE cks_rejection_notices SET body = ? WHERE serial = ?",
            ("reject everything\n", ours["serial"]), write=True)
    sync = run(a, "cks_sync.py", "--peer", "127.0.0.1:%d" % b.port)
    assert sync.returncode == 0 and sync.stderr == b"", sync.stderr
    assert sync.stdout.decode().splitlines()[1:] == [
        "127.0.0.1:%d: refused notice %s for good: not a CKS rejection notice (version 1)"
        % (b.port, ours["serial"])]
    again = run(a, "cks_sync.py", "--peer", "127.0.0.1:%d" % b.port)
    assert again.stdout.decode() == "127.0.0.1:%d: sent 0 keys\n" % b.port


def published(node):
    status, _, body = node.request("GET", "/pks/x-cks-rejections?options=mr")
    assert status == 200
    return json.loads(body)


def test_a_forged_notice_with_a_real_serial_does_not_block_the_real_one(nodes, operator):
    """Anyone can read a notice's serial at /pks/x-cks-rejections before the
    peers have it.  A notice posted first with that serial and a signature
    that does not make it carried out claims nothing (until 2026-12-05 it
    claimed the serial, and the real notice was taken for its replay)."""
    a, b, c = nodes
    env = {"GNUPGHOME": operator.home}
    out = run(a, "cks_admin.py", "reject", fpr("rsa2048"), "--reason", "abuse",
              "--sign-with", fpr(OPERATOR), env=env)
    assert out.returncode == 0, out.stderr
    (real,) = published(a)
    forged = _signed(operator, Notice("unreject", fpr("rsa2048"), "", real["time"],
                                      "node-a.example", real["serial"]), fpr("ed25519"))
    for node in (b, c):
        status, answer = deliver(node, *forged)
        assert status == 200 and answer["status"] == "pending", answer

    sync = run(a, "cks_sync.py")
    assert sync.stdout.decode().count("sent 0 keys, 1 rejection notice") == 2, sync.stdout
    assert not has(b, "rsa2048")
    (kept,) = notices_of(b)
    assert (kept["status"], kept["body"], kept["signer"]) == \
        ("applied", real["notice"], fpr(OPERATOR))
    # C does not honour A: the real notice, not the forged one, waits for review
    (kept,) = notices_of(c)
    assert (kept["status"], kept["body"], kept["signer"]) == \
        ("pending", real["notice"], fpr(OPERATOR))
    assert has(c, "rsa2048")

    # the same notice again is a replay; another with a serial carried out is refused
    assert deliver(b, real["notice"], real["signature"]) == \
        (200, {"status": "applied", "reason": "already received"})
    status, answer = deliver(b, *forged)
    assert status == 400 and "serial" in answer["reason"]
    assert notices_of(b)[0]["body"] == real["notice"] and not has(b, "rsa2048")

    # nor does one posted after the real one, which waits on C for review
    status, answer = deliver(c, *forged)
    assert status == 400 and "waiting for review" in answer["reason"], answer
    assert notices_of(c)[0]["body"] == real["notice"]

    # a pending notice delivered again is judged again: C's operator now honours A
    assert run(c, "cks_sync_manage.py", "set", "127.0.0.1:%d" % a.port,
               "--honour-rejections").returncode == 0
    assert deliver(c, real["notice"], real["signature"]) == \
        (200, {"status": "applied", "reason": ""})
    assert not has(c, "rsa2048")


def test_a_peers_reject_and_unreject_leave_a_rejection_made_here(nodes, operator):
    """B's operator rejected the key first: A's reject and then A's unreject
    leave B's rejection as it is (until 2026-12-05 A's reject took it over,
    and A's unreject then lifted it)."""
    a, b, c = nodes
    env = {"GNUPGHOME": operator.home}
    out = run(b, "cks_admin.py", "reject", fpr("nistp256"), "--reason", "B's own")
    assert out.returncode == 0, out.stderr
    ours = json.loads(run(b, "cks_admin.py", "rejected", "--json").stdout)
    assert [(r["source"], r["reason"]) for r in ours] == [("local", "B's own")]
    time.sleep(1.1)  # (A's notices are newer than B's: not superseded by it)
    for command in (["reject", fpr("nistp256"), "--reason", "A's"],
                    ["unreject", fpr("nistp256")]):
        out = run(a, "cks_admin.py", *command, "--sign-with", fpr(OPERATOR), env=env)
        assert out.returncode == 0, out.stderr
        assert run(a, "cks_sync.py").returncode == 0
        assert json.loads(run(b, "cks_admin.py", "rejected", "--json").stdout) == ours
    assert b.add(fixture("nistp256"))[0] == 403
    assert sorted((n["action"], n["status"]) for n in notices_of(b) if n["origin"] != "local") \
        == [("reject", "applied"), ("unreject", "pending")]


def test_a_notice_time_not_ascii_digits_or_out_of_range_is_refused(db_url, operator):
    """Until 2026-12-05 `time: ²` and a time past a 64-bit integer got 500 (a
    traceback), and Arabic-Indic digits were taken."""
    notice = Notice("reject", fpr("nistp256"), "x", 1795950000, "node-a.example", new_serial())
    body, signature = _signed(operator, notice, fpr(OPERATOR))
    with Cksd(db_url) as node:
        for bad in ("²", "\u0661\u0667\u0669\u0665", "99999999999999999999999",
                    str(2 ** 63), "-1", "+1795950000", " 1795950000", ""):
            status, answer = deliver(node, body.replace("1795950000", bad), signature)
            assert status == 400 and "notice time must be" in answer["reason"], (bad, answer)
        status, answer = deliver(node, body.replace("1795950000", str(2 ** 63 - 1)), signature)
        assert status == 200 and answer["status"] == "pending"  # (the signature does not fit)


def pending_rows(db_url, count, now):
    """`count` pending notices from strangers, put straight into the table."""
    store = open_store(db_url)
    try:
        with store.write() as cursor:
            cursor.executemany(
                "INSERT INTO cks_rejection_notices (serial, action, fingerprint, reason, "
                "notice_time, node, body, signature, signer, origin, status, status_reason, "
                "received_at, applied_at) VALUES (?, 'reject', ?, '', 0, 'x', ?, NULL, NULL, "
                "'203.0.113.9', 'pending', '', ?, NULL)",
                [(serial, fpr("nistp256"), serial, now)
                 for serial in (new_serial() for _ in range(count))])
    finally:
        store.close()


def test_a_notice_stores_only_its_signature_packet_and_strangers_pending_are_bounded(
        db_url, operator, monkeypatch):
    """Until 2026-12-06 text around the signature block was stored too (megabytes
    per notice, kept for ever as pending), and strangers' pending notices had no
    bound."""
    notice = Notice("reject", fpr("nistp256"), "x", 1795950000, "node-a.example", new_serial())
    body, signature = _signed(operator, notice, fpr(OPERATOR))
    stranger = {"Content-Type": "application/x-www-form-urlencoded",
                "X-Forwarded-For": "203.0.113.9"}

    def post(signature, headers=stranger):
        fields = urllib.parse.urlencode({"notice": body, "signature": signature}).encode()
        status, _, answer = node.request("POST", "/pks/x-cks-rejection", fields, headers)
        return status, json.loads(answer)

    with Cksd(db_url) as node:
        for padded in ("X" * 100000 + "\n" + signature, signature + "junk\n",
                       signature + signature):
            status, answer = post(padded)
            assert (status, answer["status"]) == (400, "refused"), answer
            assert "one armored PGP SIGNATURE block and nothing else" in answer["reason"]
        commented = signature.replace("-----\n", "-----\nComment: " + "c" * 3000 + "\n", 1)
        assert post("\n  " + commented + "\n\n")[0] == 200
        (kept,) = notices_of(node)
        (stored,), _ = scan(kept["signature"])
        assert stored.data == scan(signature)[0][0].data and not stored.headers
        assert kept["signature"].startswith("-----BEGIN") and len(kept["signature"]) < 1000

        # at most MAX_PENDING wait for review; the operator can drop them
        pending_rows(db_url, 999, int(time.time()) - 3 * 86400)
        other = _signed(operator, Notice("reject", fpr("rsa2048"), "y", 1795950000,
                                         "node-a.example", new_serial()), fpr(OPERATOR))
        body, signature = other
        status, answer = post(signature)
        assert status == 503 and "too many" in answer["reason"], answer
        # (a peer or the operator's own tools are not bounded)
        assert post(signature, {"Content-Type": "application/x-www-form-urlencoded"})[0] == 200
        out = run(node, "cks_admin.py", "notices", "--drop-pending", "--older-than", "2")
        assert out.returncode == 0 and "dropped 999 pending notices" in out.stdout.decode()
        assert len(notices_of(node, "--pending")) == 2
        assert run(node, "cks_admin.py", "notices", "--drop-pending").returncode == 0
        assert notices_of(node) == []


def test_a_strangers_x_cks_sync_does_not_name_where_a_notice_came_from(db_url, operator):
    """X-CKS-Sync names the sender only from a peer's address (or the operator's
    own tools); until 2026-12-06 a stranger's named any node it liked."""
    notice = Notice("reject", fpr("nistp256"), "x", 1795950000, "node-a.example", new_serial())
    body, signature = _signed(operator, notice, fpr(OPERATOR))
    fields = urllib.parse.urlencode({"notice": body, "signature": signature}).encode()
    with Cksd(db_url) as node:
        status, _, _ = node.request("POST", "/pks/x-cks-rejection", fields, {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Forwarded-For": "203.0.113.9", "X-CKS-Sync": "trusted-peer.example.net"})
        assert status == 200
        (kept,) = notices_of(node, "--pending")
        assert kept["origin"] == "203.0.113.9"
        listed = run(node, "cks_admin.py", "notices", "--pending").stdout.decode()
        assert "from node-a.example (sent by 203.0.113.9)" in listed, listed
