"""Mail peers on the sending side: cks_sync_manage.py takes addresses and
cks_sync.py mails each owed key (sendmail or SMTP), keeping what the MTA did
not take; a mail from one CKS node, piped into another, adds the key there."""

import email
import json

import pytest

from cks.openpgp.keys import read_keys
from support import fixture
from support.db import with_schema
from support.mailnode import Node, fpr
from support.mails import US, fake_sendmail, flooded_key
from support.smtpsink import SMTPSink

PEER = "pgp-keys@peer.example.org"


def load(node, *names):
    files = [str(node.directory / ("%s.asc" % n)) for n in names]
    for name, path in zip(names, files):
        open(path, "wb").write(fixture(name))
    result = node.run("cks_admin.py", ["load"] + files)
    assert result.returncode == 0, result.stderr


def test_manage_takes_mail_peers(node):
    load(node, "rsa2048")
    added = node.manage("add", "PGP-Keys@Peer.Example.ORG").stdout.decode()
    assert added.strip() == "added mail peer PGP-Keys@peer.example.org (priority 100)"
    node.manage("add", "keys@other.example", "--catch-up", "--priority", "5")
    peers = {p["peer"]: p for p in json.loads(node.manage("list", "--json").stdout)}
    assert peers["PGP-Keys@peer.example.org"]["kind"] == "mail"
    assert peers["PGP-Keys@peer.example.org"]["catch_up"] == 0  # no mail flood
    assert peers["keys@other.example"]["catch_up"] == 1  # asked for
    bad = node.run("cks_sync_manage.py", ["add", "not an address@"])
    assert bad.returncode == 2 and b"not a valid e-mail address" in bad.stderr
    node.manage("remove", "PGP-Keys@peer.example.org")
    assert "PGP-Keys" not in node.manage("list").stdout.decode()


def test_cks_sync_mails_each_key_in_the_sks_format(node):
    node.manage("add", PEER)
    load(node, "rsa2048", "nistp256")
    run = node.sync()
    assert run.returncode == 0, run.stderr
    assert run.stdout.decode().strip() == "%s: sent 2 keys" % PEER
    sent = node.sent()
    assert len(sent) == 2
    got = set()
    for raw in sent:
        message = email.message_from_bytes(raw)
        assert [message[h] for h in ("To", "From", "Reply-To", "Errors-To", "Subject",
                                     "Precedence", "Content-Type")] == \
            [PEER, US, US, US, "incremental", "list", "application/pgp-keys"]
        assert message.get_all("X-KeyServer-Sent") == [US]
        keys = read_keys(message.get_payload().encode()).keys
        assert len(keys) == 1
        got.add(keys[0].fingerprint.hex().upper())
    assert got == {fpr("rsa2048"), fpr("nistp256")}
    assert node.query("SELECT count(*) FROM cks_pending_sync")[0][0] == 0
    assert node.sync().stdout.decode().strip() == "%s: sent 0 keys" % PEER


def test_a_mail_names_every_other_mail_peer_of_this_node(node):
    """So that the peer does not forward it to them, as pks names its sync
    sites (and SKS's one mail to all its peers names them all): until
    2026-12-05 each mail named this node alone, and in a mesh of CKS mail
    peers every key went (n - 1)^2 times instead of n - 1; then, for a while,
    the peers whose backlog still held the key, so the mail to the last peer
    served in a run named this node alone."""
    peers = ["keys@b.example", "Keys@C.example", "keys@d.example"]
    for peer in peers:
        node.manage("add", peer)
    node.manage("add", "keys@off.example")
    node.manage("set", "keys@off.example", "--disable")
    load(node, "rsa2048")
    assert node.sync().returncode == 0
    mails = [email.message_from_bytes(raw) for raw in node.sent()]
    assert sorted(m["To"] for m in mails) == sorted(p.replace("C.", "c.") for p in peers)
    for message in mails:
        named = message.get_all("X-KeyServer-Sent")
        assert named[0] == US and sorted(named[1:]) == sorted(
            p for p in ("keys@b.example", "Keys@c.example", "keys@d.example")
            if p != message["To"])


def test_the_mta_failing_keeps_the_backlog(node, tmp_path):
    node.manage("add", PEER)
    node.manage("add", "127.0.0.1:1", "--no-catch-up", "--priority", "200")
    load(node, "rsa2048")
    working = node.mail["sendmail"]
    node.write_config(sendmail=fake_sendmail(tmp_path, fail=True))
    run = node.sync()
    assert run.returncode == 1
    err = run.stderr.decode()
    assert "%s: FAILED: " % PEER in err and "exited with status 75" in err
    assert "1 key kept for the next run" in err
    peers = {p["peer"]: p for p in json.loads(node.manage("list", "--json").stdout)}
    assert peers[PEER]["backlog"] == 1 and "queue file write error" in peers[PEER]["last_error"]
    node.write_config(sendmail=working)
    node.manage("remove", "127.0.0.1:1")
    assert node.sync().returncode == 0
    assert len(node.sent()) == 1


def test_no_sync_address_is_a_failure_of_that_peer_only(node):
    node.manage("add", PEER)
    load(node, "rsa2048")
    node.write_config(address=None)
    run = node.sync()
    assert run.returncode == 1 and b"[mail] address" in run.stderr
    assert node.sent() == []


def test_cks_sync_over_smtp(node):
    with SMTPSink() as sink:
        node.write_config(smtp_host="127.0.0.1", smtp_port=str(sink.port))
        node.manage("add", PEER)
        load(node, "ed25519")
        run = node.sync()
        assert run.returncode == 0, run.stderr
        ((sender, recipients, data),) = sink.messages
        assert (sender, recipients) == (US, [PEER])
        assert read_keys(email.message_from_bytes(data).get_payload().encode()).keys[0] \
            .fingerprint.hex().upper() == fpr("ed25519")
    refused = node.sync()  # nothing owed: the server being gone does not matter
    assert refused.returncode == 0
    load(node, "rsa2048")
    down = node.sync()
    assert down.returncode == 1 and b"SMTP 127.0.0.1:" in down.stderr


@pytest.mark.parametrize("transport", ["smtp", "sendmail"])
def test_a_mail_the_mta_refuses_for_good_does_not_hold_up_the_rest(node, transport):
    """A flooded key's mail over the MTA's size limit (SMTP 552; Postfix's
    sendmail exits 69) is refused for good for that peer; the keys queued
    with it are mailed.  Until 2026-12-05 a sendmail status other than 0
    kept every key owed, at every run."""
    flooded = node.directory / "flooded.gpg"
    flooded.write_bytes(flooded_key(fixture("rsa4096"), 200_000))
    with SMTPSink(max_size=100_000) as sink:
        if transport == "smtp":
            node.write_config(smtp_host="127.0.0.1", smtp_port=str(sink.port))
            said = "SMTP 127.0.0.1:%d: 552 5.3.4 Message size exceeds fixed limit" % sink.port
        else:
            node.write_config(sendmail=fake_sendmail(node.directory, max_bytes=100_000))
            said = "%s exited with status 69: sendmail: fatal: root(0): message file too big" \
                % node.mail["sendmail"].split()[0]
        node.manage("add", PEER)
        load(node, "rsa2048")
        assert node.run("cks_admin.py", ["load", str(flooded)]).returncode == 0
        load(node, "nistp256")
        run = node.sync()
        assert run.returncode == 0, run.stderr
        lines = run.stdout.decode().splitlines()
        assert lines[0] == "%s: sent 2 keys" % PEER
        assert lines[1].startswith("%s: refused %s for good: %s" % (PEER, fpr("rsa4096"), said))
        assert lines[1].endswith("(twice, to this key alone, while the peer took other keys)")
        mails = [data for _, _, data in sink.messages] if transport == "smtp" else node.sent()
        mailed = [read_keys(email.message_from_bytes(data).get_payload().encode()).keys[0]
                  .fingerprint.hex().upper() for data in mails]
        assert mailed == [fpr("rsa2048"), fpr("nistp256")]
        assert node.sync("--quiet").stdout == b""


@pytest.fixture
def two_nodes(new_db, tmp_path):
    a = Node(with_schema(new_db("a")), tmp_path / "a", address="pgp-keys@a.example")
    b = Node(with_schema(new_db("b")), tmp_path / "b", address="pgp-keys@b.example")
    a.manage("add", "pgp-keys@b.example")
    b.manage("add", "pgp-keys@a.example")
    return a, b


def test_a_mail_from_one_node_adds_the_key_on_another(two_nodes):
    a, b = two_nodes
    load(a, "alice-t1", "two-keys")
    assert a.sync().returncode == 0
    mails = a.sent()
    assert len(mails) == 3
    for raw in mails:
        result = b.mail_sync(raw, env={"SENDER": "cks@a.example"})
        assert result.returncode == 0, result.stderr
    assert b.keys() == {f: "mail:pgp-keys@a.example"
                        for f in (fpr("alice-t1"), fpr("rsa2048"), fpr("ed25519"))}
    assert b.sent() == []  # nothing goes back: A named itself in X-KeyServer-Sent
    assert b.sync().stdout.decode().strip() == "pgp-keys@a.example: sent 0 keys"
    # an update travels the same way and is merged
    load(a, "alice-t2")
    a.sync()
    assert b.mail_sync(a.sent()[-1]).returncode == 0
    assert b.query("SELECT keydata FROM cks_keys WHERE fingerprint = ?",
                   (fpr("alice-t1"),))[0][0] == \
        a.query("SELECT keydata FROM cks_keys WHERE fingerprint = ?", (fpr("alice-t1"),))[0][0]


def test_keys_from_hkp_sync_are_never_mailed_user_keys_are(node):
    from urllib.parse import urlencode
    from support.server import Cksd
    node.manage("add", PEER)
    with Cksd(node.db_url) as server:
        body = urlencode({"keytext": fixture("rsa2048").decode()}).encode()
        status = server.request("POST", "/pks/add", body, {
            "Content-Type": "application/x-www-form-urlencoded", "X-CKS-Sync": "b.example"})[0]
        assert status == 200
        assert server.add(fixture("nistp256"))[0] == 200
    assert node.keys()[fpr("rsa2048")] == "hkp-sync:b.example"
    assert node.query("SELECT fingerprint FROM cks_sync_backlog") == [(fpr("nistp256"),)]
    assert node.sync().returncode == 0
    (sent,) = node.sent()
    assert read_keys(email.message_from_bytes(sent).get_payload().encode()).keys[0] \
        .fingerprint.hex().upper() == fpr("nistp256")
