"""cks_mail_sync.py as the MTA runs it: real-looking mails on standard input,
exit codes per sysexits, on SQLite and PostgreSQL."""

import email
import os
import re
import signal
import threading
import time

import pytest

from cks import pipeline
from cks.cli import mail_sync
from cks.openpgp.armor import encode
from cks.store import open_store
from cks.store.peers import PeerStore
from cks.store.rows import UNSERVED
from cks.sync.mail_in import parse_mail
from cks.sync.mailconf import MailSettings
from cks.sync.push import peer_lock
from support import fixture
from support.mails import PKS, SKS, US, base64_mail, crlf, eight_bit_mail, flooded_key, \
    many_parts_mail, multipart_mail, pks_mail, quoted_printable_mail, sks_mail

from support.db import nothing_made
from support.disk import fill, tmpfs
from support.mailnode import fpr
from support.writes import checks_in_writes

VARIANTS = {
    "sks": sks_mail,
    "pks": lambda key: pks_mail(key, sender=SKS, sent_by=[SKS]),
    "quoted-printable": quoted_printable_mail,
    "base64": base64_mail,
    "multipart-binary": lambda key: multipart_mail([key], binary=True),
    "multipart-crlf": lambda key: crlf(multipart_mail([key])),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_a_peer_mail_is_merged_and_queued_for_nobody(node, variant):
    node.manage("add", SKS)
    result = node.mail_sync(VARIANTS[variant](fixture("rsa2048")))
    assert result.returncode == 0, result.stderr
    assert node.keys() == {fpr("rsa2048"): "mail:" + SKS}
    assert node.query("SELECT count(*) FROM cks_pending_sync")[0][0] == 0
    assert node.sent() == []
    assert "1 added" in result.stderr.decode()


NON_ASCII_FIRST = {
    "byte-order mark, then an attachment":
        lambda key: multipart_mail([key], text="\ufeffHello, key attached\n"),
    "umlaut, then a binary attachment":
        lambda key: multipart_mail([key], binary=True, text="\u00dcbersicht\n"),
    "utf-8 umlaut, then the armor": lambda key: eight_bit_mail(
        "\u00dcbersicht der Schl\u00fcssel\n\n".encode("utf-8") + key, "utf-8"),
    "latin-1": lambda key: eight_bit_mail("\u00e9t\u00e9\n".encode("latin-1") + key,
                                          "iso-8859-1"),
    "unknown charset": lambda key: eight_bit_mail(b"\xa4\xe9\xff text\n" + key, "x-no-such"),
    "umlaut in the key part": lambda key: base64_mail("\u00dcbersicht\n".encode() + key),
    "byte-order mark right before the armor, in the key part":
        lambda key: multipart_mail([b"\xef\xbb\xbf" + key]),
}


@pytest.mark.parametrize("variant", sorted(NON_ASCII_FIRST))
def test_a_text_starting_with_a_non_ascii_byte_still_gives_its_keys(node, variant):
    """Until 2026-12-05 the keys of such a mail were read as binary data: none
    was found, and the mail bounced with 65."""
    node.manage("add", SKS)
    result = node.mail_sync(NON_ASCII_FIRST[variant](fixture("two-keys")))
    assert result.returncode == 0, result.stderr
    assert set(node.keys()) == {fpr("rsa2048"), fpr("ed25519")}
    assert result.stderr.decode().splitlines() == [
        "cks.mail: mail (no Message-ID) from mail:%s: 2 added, 0 updated, 0 unchanged, "
        "0 refused" % SKS]


def damaged(keytext):
    """The armor with its checksum line changed: a block broken in transit."""
    head, _, tail = keytext.rpartition(b"\n=")
    return head + b"\n=AAAA" + tail[4:]


def test_a_mail_checks_no_signature_while_it_holds_a_write_transaction(node, monkeypatch):
    """Its new keys are stored as cksd stores an upload, and served when it
    ends.  (The mail's handling, called in this process: the tool's main()
    starts a watchdog that would end the test's process.)"""
    node.manage("add", SKS)
    checked = checks_in_writes(monkeypatch)
    names = ["rsa2048", "certified", "dsa-elg"]
    store = open_store(node.db_url)
    try:
        mail = parse_mail(multipart_mail([fixture(n) for n in names]), "")
        assert mail_sync._merge(store, mail, MailSettings(), pipeline.Limits(),
                                threading.Event()) == 0
    finally:
        store.close()
    assert checked and not any(checked)  # checked, and never inside a write
    assert node.keys() == {fpr(n): "mail:" + SKS for n in names}
    assert node.query("SELECT count(*) FROM cks_keys WHERE served_crc24 = ?",
                      (UNSERVED,)) == [(0,)]
    assert node.query("SELECT count(*) FROM cks_view_work") == [(0,)]


def test_several_blocks_several_keys_and_a_broken_block(node):
    node.manage("add", SKS)
    raw = multipart_mail([fixture("two-keys"), fixture("two-blocks"),
                          damaged(fixture("nistp384"))])
    result = node.mail_sync(raw)
    assert result.returncode == 0, result.stderr
    assert set(node.keys()) == {fpr(n) for n in ("rsa2048", "ed25519", "rsa1024", "nistp256")}
    assert "checksum mismatch" in result.stderr.decode()


def test_a_key_after_a_block_cut_short_is_merged(node):
    """Until 2026-12-06 the cut block ran to the good one's END line: no key
    was read, and the mail bounced (65)."""
    node.manage("add", SKS)
    begin = b"-----BEGIN PGP PUBLIC KEY BLOCK-----"
    cut = fixture("rsa2048")[:len(fixture("rsa2048")) // 2]
    result = node.mail_sync(sks_mail(fixture("ed25519")).replace(begin, cut + b"\n" + begin, 1))
    assert result.returncode == 0, result.stderr
    assert set(node.keys()) == {fpr("ed25519")}
    assert "has no END line" in result.stderr.decode()


def test_the_same_mail_twice_changes_nothing(node, tmp_path):
    node.manage("add", SKS)
    node.manage("add", "d@d.example")
    raw = sks_mail(fixture("alice-t1"))
    assert node.mail_sync(raw).returncode == 0
    assert len(node.sent()) == 1  # forwarded to d@d.example
    before = node.snapshot()
    again = node.mail_sync(raw)
    assert again.returncode == 0, again.stderr
    assert "0 added, 0 updated, 1 unchanged" in again.stderr.decode()
    assert node.snapshot() == before and len(node.sent()) == 1
    # a newer version of the key is an update, and is forwarded again
    assert node.mail_sync(sks_mail(fixture("alice-t2"))).returncode == 0
    assert len(node.sent()) == 2


@pytest.mark.parametrize("forgery", ["stranger", "look-alike", "disabled-peer"])
def test_mail_from_no_peer_is_refused_with_77(node, forgery):
    node.manage("add", SKS)
    node.manage("add", PKS)
    node.manage("set", PKS, "--disable")
    sender, sent_by = {
        "stranger": ("mallory@evil.example", "mallory@evil.example"),
        "look-alike": ('"%s" <mallory@evil.example>' % SKS, SKS + ".evil.example"),
        "disabled-peer": (PKS, PKS)}[forgery]
    raw = sks_mail(fixture("rsa2048"), sender=sender, sent_by=[sent_by],
                   envelope="mallory@evil.example")
    before = node.snapshot()
    result = node.mail_sync(raw)
    assert result.returncode == 77
    assert node.snapshot() == before
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and "refused mail <20261128100000.4242@sks.example.net>" in lines[0]


def test_envelope_sender_and_keyserver_sent_authorize(node):
    node.manage("add", SKS)
    relayed = sks_mail(fixture("rsa2048"), sender="list@relay.example",
                       sent_by=[SKS, "list@relay.example"], envelope="list@relay.example")
    assert node.mail_sync(relayed).returncode == 0
    by_envelope = sks_mail(fixture("nistp256"), sender="keys@sks.example.net", sent_by=[],
                           envelope="x@y.example")
    assert node.mail_sync(by_envelope, env={"SENDER": SKS}).returncode == 0
    assert set(node.keys().values()) == {"mail:" + SKS}


@pytest.mark.parametrize("what", ["empty", "no-key", "broken-armor", "not-sync", "secret"])
def test_no_usable_key_is_65(node, what):
    node.manage("add", SKS)
    raw = {"empty": b"",
           "no-key": sks_mail(b""),
           "broken-armor": multipart_mail([damaged(fixture("rsa2048"))]),
           "not-sync": multipart_mail([fixture("rsa2048")], subject="hello"),
           "secret": multipart_mail([fixture("secret/rsa2048")])}[what]
    before = node.snapshot()
    result = node.mail_sync(raw)
    assert result.returncode == 65, result.stderr
    assert node.snapshot() == before
    assert result.stderr.decode().startswith("cks.mail: ")


def nested_mail(keytext: bytes, sender: str, levels: int = 1000) -> bytes:
    """A multipart/mixed `levels` deep, the armored key in the innermost part."""
    head = "From: %s\nTo: %s\nSubject: incremental\nMIME-Version: 1.0\n" % (sender, US)
    opening = "".join('Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n' % (n, n)
                      for n in range(levels))
    closing = "".join("\n--b%d--\n" % n for n in reversed(range(levels)))
    return (head + opening + "Content-Type: text/plain\n\n").encode() + keytext + \
        closing.encode()


@pytest.mark.parametrize("sender, status", [(SKS, 65), ("mallory@evil.example", 77)])
def test_mime_parts_nested_too_deeply_are_the_mails_fault(node, sender, status):
    """Until 2026-12-06 the email package's RecursionError was an internal
    error, 75: the MTA kept the mail and tried it again for days.  A
    stranger's is refused from its headers, before its body is read (a
    stranger's mail of many thousand parts took 1.4 GB and 40 s to refuse)."""
    node.manage("add", SKS)
    before = node.snapshot()
    result = node.mail_sync(nested_mail(fixture("rsa2048"), sender))
    assert result.returncode == status, result.stderr
    assert node.snapshot() == before
    err = result.stderr.decode()
    assert "Traceback" not in err and "internal error" not in err
    if status == 65:
        assert "its MIME parts nest too deeply to be read" in err
    assert node.mail_sync(nested_mail(fixture("rsa2048"), SKS, levels=20)).returncode == 0


def test_a_mail_of_over_1000_mime_parts_is_65_and_read_no_further(node):
    """Until 2026-12-07 every part was built: 600,000 one-line parts in a mail
    from a peer (a forged From: will do) took 459 MB and 14 s."""
    node.manage("add", SKS)
    before = node.snapshot()
    for parts in (1001, 600_000):
        started = time.monotonic()
        result = node.mail_sync(many_parts_mail(fixture("rsa2048"), parts))
        elapsed = time.monotonic() - started
        assert result.returncode == 65, result.stderr
        assert result.stderr.decode().splitlines() == [
            "cks.mail: refused mail (no Message-ID): it has over 1000 MIME parts"]
        assert node.snapshot() == before
    assert elapsed < 5
    assert node.mail_sync(many_parts_mail(fixture("rsa2048"), 1000)).returncode == 0
    assert fpr("rsa2048") in node.keys()


def test_the_signature_checks_follow_once_the_mail_is_done(node, monkeypatch):
    """A mail is done (0, whatever [mail] timeout then cuts short) once its
    keys are in; the served views' checks follow.  Until 2026-12-06 they came
    first, and checks that outlasted the timeout made such a mail 75."""
    node.manage("add", SKS)
    done = threading.Event()
    seen = []
    monkeypatch.setattr(mail_sync, "follow_signers",
                        lambda *args: seen.append(done.is_set()))
    store = open_store(node.db_url)
    try:
        mail = parse_mail(sks_mail(fixture("rsa2048")), "")
        assert mail_sync._merge(store, mail, MailSettings(), pipeline.Limits(), done) == 0
    finally:
        store.close()
    assert seen == [True]


def test_rejected_keys_are_never_added(node):
    node.manage("add", SKS)
    node.execute("INSERT INTO cks_rejected_keys (fingerprint, reason, rejected_at) "
                 "VALUES (?, ?, ?)", (fpr("ed25519"), "abuse", 1))
    result = node.mail_sync(sks_mail(fixture("two-keys")))
    assert result.returncode == 0, result.stderr
    assert set(node.keys()) == {fpr("rsa2048")}
    assert "key %s refused" % fpr("ed25519") in result.stderr.decode()
    only = node.mail_sync(sks_mail(fixture("ed25519")))
    assert only.returncode == 0 and fpr("ed25519") not in node.keys()


def test_add_from_users_is_off_by_default_and_queued_when_on(node):
    node.manage("add", SKS)
    node.manage("add", "127.0.0.1:11371", "--no-catch-up")
    raw = multipart_mail([fixture("rsa2048")], sender="alice@example.org", subject="ADD")
    off = node.mail_sync(raw)
    assert off.returncode == 77 and node.keys() == {}
    node.write_config(accept_add="yes")
    on = node.mail_sync(raw)
    assert on.returncode == 0, on.stderr
    assert node.keys() == {fpr("rsa2048"): "user"}
    assert node.query("SELECT source FROM cks_pending_sync") == [("user",)]
    backlog = dict(node.query("SELECT p.peer, count(*) FROM cks_sync_backlog b JOIN "
                              "cks_other_servers p ON p.id = b.peer_id GROUP BY p.peer"))
    assert backlog == {"127.0.0.1:11371": 1}  # the mail peer got it at once
    (sent,) = node.sent()
    assert b"To: " + SKS.encode() in sent


def test_forwarding_like_pks(node):
    for peer in (SKS, "b@b.example", "c@c.example", "d@d.example", "e@e.example",
                 "f@f.example"):
        node.manage("add", peer)
    node.manage("set", "f@f.example", "--disable")
    node.manage("add", "127.0.0.1:11371", "--no-catch-up")
    raw = sks_mail(fixture("rsa2048"), to=[US, "b@b.example"], sent_by=["c@c.example", SKS])
    result = node.mail_sync(raw)
    assert result.returncode == 0, result.stderr
    (sent,) = node.sent()
    text = sent.decode()
    assert text.startswith("To: d@d.example, e@e.example\n")
    # the chain, this node, then its other mail peers (those the mail named
    # in To: as well): until 2026-12-05 b@b.example was left out, and d and e
    # (other CKS nodes) forwarded the key to it
    assert email.message_from_string(text).get_all("X-KeyServer-Sent") == [
        "c@c.example", SKS, US, "b@b.example"]
    assert fpr("rsa2048") in result.stderr.decode() and "forwarded" in result.stderr.decode()
    # delivered at once: nothing owed to anyone, the HKP peer is never owed mail keys
    assert node.query("SELECT count(*) FROM cks_sync_backlog")[0][0] == 0
    assert node.query("SELECT count(*) FROM cks_pending_sync")[0][0] == 0


def test_a_forward_names_50_servers_of_the_mail_at_most(node):
    """The X-KeyServer-Sent list of a mail is copied into every forward of its
    keys, its first 50 addresses (well-formed ones) since 2026-12-07: until
    then a mail of 100,000 such lines and 30 new keys made 30 forwards of
    4.9 MB each."""
    node.manage("add", SKS)
    node.manage("add", "d@d.example")
    spam = ["k%d@spam%d.example.org" % (n, n) for n in range(20_000)]
    result = node.mail_sync(sks_mail(fixture("rsa2048"), sent_by=[SKS] + spam))
    assert result.returncode == 0, result.stderr
    (sent,) = node.sent()
    assert email.message_from_bytes(sent).get_all("X-KeyServer-Sent") == \
        [SKS] + spam[:49] + [US]
    assert len(sent) < 8000


def test_a_failed_forward_stays_owed_and_cks_sync_sends_it(node, tmp_path):
    from support.mails import fake_sendmail
    node.manage("add", SKS)
    node.manage("add", "d@d.example")
    working = node.mail["sendmail"]
    node.write_config(sendmail=fake_sendmail(tmp_path, fail=True))
    result = node.mail_sync(sks_mail(fixture("rsa2048")))
    assert result.returncode == 0, result.stderr  # the keys are in: the mail is done
    assert "cks_sync.py will send it" in result.stderr.decode()
    assert fpr("rsa2048") in node.keys()
    assert node.query("SELECT fingerprint FROM cks_sync_backlog") == [(fpr("rsa2048"),)]
    node.write_config(sendmail=working)
    run = node.sync()
    assert run.returncode == 0, run.stderr
    assert run.stdout.decode().splitlines() == ["%s: sent 0 keys" % SKS,
                                                "d@d.example: sent 1 key"]
    (sent,) = node.sent()
    assert b"To: d@d.example\n" in sent
    assert node.query("SELECT count(*) FROM cks_sync_backlog")[0][0] == 0


def test_without_our_address_the_forward_is_said_and_stays_owed(node):
    """No [mail] address: the forward cannot be sent (the mail has no From:),
    and one line says so (until 2026-12-06 nothing did); the mail is done and
    the keys stay owed, for cks_sync.py once the address is set."""
    node.write_config(address=None)
    node.manage("add", SKS)
    node.manage("add", "d@d.example")
    result = node.mail_sync(sks_mail(fixture("rsa2048")))
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.decode().splitlines() if "not forwarded" in line]
    assert warnings == ["cks.mail: mail <20261128100000.4242@sks.example.net>: not forwarded "
                        "to d@d.example (no [mail] address in the configuration: mail peers "
                        "need this server's sync address); the keys stay owed: cks_sync.py "
                        "sends them once it is set"], result.stderr
    assert node.sent() == [] and fpr("rsa2048") in node.keys()
    assert node.query("SELECT fingerprint FROM cks_sync_backlog") == [(fpr("rsa2048"),)]
    run = node.sync()  # (cks_sync.py's line for each mail peer)
    assert run.returncode == 1 and run.stderr.decode().startswith(
        "d@d.example: FAILED: no [mail] address in the configuration"), run.stderr
    node.write_config(address=US)
    run = node.sync()
    assert run.returncode == 0, run.stderr
    (sent,) = node.sent()
    assert b"To: d@d.example\n" in sent


def test_a_forward_cut_short_by_the_timeout_leaves_the_mail_done(node, tmp_path):
    """Past [mail] timeout with its keys committed, the mail is done (0) and
    what the forward did not send stays owed, the key the MTA was taking too.
    Until 2026-12-05 the watchdog made such a mail 75: the MTA delivered it
    again, for nothing."""
    node.manage("add", SKS)
    node.manage("add", "d@d.example")
    working = node.mail["sendmail"]
    first = tmp_path / "first-done"
    slow = tmp_path / "slow-sendmail"  # takes one mail, then hangs on the next
    slow.write_text('#!/bin/sh\nif [ -e "%s" ]; then cat >/dev/null; echo $$ >"%s.pid"; '
                    'exec sleep 60; fi\ntouch "%s"\nexec %s "$@"\n'
                    % (first, first, first, working.split()[0]))
    slow.chmod(0o755)
    node.write_config(sendmail="%s -t -oi" % slow, timeout="5")
    names = ["rsa2048", "nistp256", "dsa-elg"]
    try:
        result = node.mail_sync(multipart_mail([fixture(n) for n in names]))
    finally:
        pid = tmp_path / "first-done.pid"
        if pid.exists():
            os.kill(int(pid.read_text()), signal.SIGKILL)
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert "3 added" in err and "cut short after 5 s ([mail] timeout), the keys in" in err
    forwarded = re.findall(r"forwarded (\w+) to d@d.example", err)
    assert len(forwarded) == 1 and len(node.sent()) == 1
    owed = {f for (f,) in node.query("SELECT fingerprint FROM cks_sync_backlog")}
    assert owed == {fpr(n) for n in names} - set(forwarded)
    node.write_config(sendmail=working)
    run = node.sync()
    assert run.stdout.decode().splitlines() == ["%s: sent 0 keys" % SKS,
                                                "d@d.example: sent 2 keys"]


def test_the_forward_leaves_a_peer_being_pushed_to_and_sends_no_key_twice(node):
    """cksd's rapid push and cks_sync.py hold a peer's lock while they push to
    it: the forward leaves that peer to them, and what it sent is not owed."""
    for peer in (SKS, "d@d.example", "e@e.example"):
        node.manage("add", peer)
    store = open_store(node.db_url)
    try:
        busy = PeerStore(store).get("d@d.example")
        with store.exclusive(peer_lock(busy)) as locked:
            assert locked
            result = node.mail_sync(sks_mail(fixture("rsa2048")))
    finally:
        store.close()
    assert result.returncode == 0, result.stderr
    (forwarded,) = node.sent()
    assert forwarded.startswith(b"To: e@e.example\n")
    assert email.message_from_bytes(forwarded).get_all("X-KeyServer-Sent")[-1] == "d@d.example"
    assert "d@d.example: another process is pushing to it" in result.stderr.decode()
    assert node.query("SELECT peer_id, fingerprint FROM cks_sync_backlog") == [
        (busy.id, fpr("rsa2048"))]
    run = node.sync()
    assert run.returncode == 0, run.stderr
    assert run.stdout.decode().splitlines() == ["%s: sent 0 keys" % SKS,
                                                "d@d.example: sent 1 key",
                                                "e@e.example: sent 0 keys"]
    assert [m.split(b"\n")[0] for m in node.sent()] == [b"To: e@e.example", b"To: d@d.example"]


def test_unreachable_postgresql_is_75(tmp_path):
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nobody listens once the socket is closed
    from support.procs import tool
    result = tool("cks_mail_sync.py", ["--db", "postgresql://cks@127.0.0.1:%d/cks" % port],
                  input=sks_mail(fixture("rsa2048")))
    assert result.returncode == 75
    assert "stays with the MTA" in result.stderr.decode()


def test_unreachable_sqlite_is_75(tmp_path):
    from support.procs import tool
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    result = tool("cks_mail_sync.py", ["--db", "sqlite:///%s/cks.db" % blocker],
                  input=sks_mail(fixture("rsa2048")))
    assert result.returncode == 75
    assert blocker.read_text() == ""


def test_a_database_cksd_did_not_make_is_75_and_stays_so(db_url):
    """A mistyped SQLite path, an empty PostgreSQL database: the mail waits with
    the MTA (until 2026-12-05 the tool made an empty database and refused
    every mail with 77: no peers in it)."""
    from support.procs import tool
    result = tool("cks_mail_sync.py", ["--db", db_url], input=sks_mail(fixture("rsa2048")))
    assert result.returncode == 75, result.stderr
    assert nothing_made(db_url)


def test_a_wrong_option_in_the_forward_line_is_75(node):
    """The operator's mistake: the MTA keeps the mail (argparse's 2 bounced it
    until 2026-12-05)."""
    result = node.run("cks_mail_sync.py", ["--quiet"], input=sks_mail(fixture("rsa2048")))
    assert result.returncode == 75, result.stderr
    assert "unrecognized arguments: --quiet" in result.stderr.decode()
    assert "the mail stays with the MTA" in result.stderr.decode()


def test_a_locked_database_is_75_and_unchanged(node):
    node.manage("add", SKS)
    node.write_config(timeout="3")
    before = node.snapshot()
    with hold_lock(node.db_url):
        started = time.monotonic()
        result = node.mail_sync(sks_mail(fixture("rsa2048")))
        elapsed = time.monotonic() - started
    assert result.returncode == 75, result.stderr
    assert elapsed < 20
    assert "gave up after 3 s" in result.stderr.decode()
    assert node.snapshot() == before
    assert node.mail_sync(sks_mail(fixture("rsa2048"))).returncode == 0  # the MTA's retry


class hold_lock:
    """Another writer holding the key table: SQLite's write lock, or a PostgreSQL
    table lock that blocks every reader and writer of cks_keys."""

    def __init__(self, url):
        self.url = url

    def __enter__(self):
        if self.url.startswith("sqlite"):
            import sqlite3
            self.conn = sqlite3.connect(self.url[len("sqlite:///"):], isolation_level=None)
            self.conn.execute("BEGIN EXCLUSIVE")
        else:
            import psycopg2
            self.conn = psycopg2.connect(self.url)
            self.conn.cursor().execute("LOCK TABLE cks_keys IN ACCESS EXCLUSIVE MODE")
        return self

    def __exit__(self, *exc):
        self.conn.rollback() if not self.url.startswith("sqlite") else \
            self.conn.execute("ROLLBACK")
        self.conn.close()


def test_a_20_mb_mail_and_one_over_the_limit(node):
    node.manage("add", SKS)
    filler = bytes(range(256)) * (15 * 4096)  # 15 MiB, 20 MB as base64
    raw = multipart_mail([fixture("rsa4096")], extra=[filler])
    assert 20_000_000 < len(raw) < 25 << 20
    started = time.monotonic()
    result = node.mail_sync(raw)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert fpr("rsa4096") in node.keys()
    assert elapsed < 60
    print("20 MB mail: %.1f s" % elapsed)
    huge = multipart_mail([fixture("rsa2048")], extra=[filler, filler[:4 << 20]])
    assert len(huge) > 25 << 20
    over = node.mail_sync(huge)
    assert over.returncode == 65
    assert "max_mail_bytes" in over.stderr.decode()
    assert fpr("rsa2048") not in node.keys()


def test_a_20_mb_flooded_key(node):
    """One key of 15 MB (44,000 signatures; 20 MB armored): refused by the default
    key limits (the mail is still done: 0), merged when the limits allow it."""
    node.manage("add", SKS)
    raw = sks_mail(encode(flooded_key(fixture("rsa2048"), 15_000_000)).encode())
    assert 20_000_000 < len(raw) < 25 << 20
    refused = node.mail_sync(raw)
    assert refused.returncode == 0, refused.stderr
    assert "over this server's limit" in refused.stderr.decode()
    assert node.keys() == {}
    node.write_config(extra="[limits]\nmax_key_bytes = 33554432\n"
                            "max_packets_per_key = 100000\n")
    started = time.monotonic()
    result = node.mail_sync(raw)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert node.query("SELECT size > 15000000 FROM cks_keys WHERE fingerprint = ?",
                      (fpr("rsa2048"),)) == [(True,)]
    print("20 MB flooded key: %.1f s" % elapsed)
    assert node.mail_sync(raw).returncode == 0  # again: unchanged


def test_log_file(node, tmp_path):
    node.manage("add", SKS)
    log_file = tmp_path / "mail.log"
    node.write_config(log_file=str(log_file))
    assert node.mail_sync(sks_mail(fixture("rsa2048"))).returncode == 0
    assert re.search(r"^\S+ \S+ cks.mail: mail <\S+> from mail:%s: 1 added" % re.escape(SKS),
                     log_file.read_text(), re.M)
    with tmpfs(tmp_path / "disk", "64k") as disk:  # a full disk: the mail is done all the same
        node.write_config(log_file=str(disk / "mail.log"))
        fill(disk / "filler")
        full = node.mail_sync(sks_mail(fixture("ed25519")))
    assert full.returncode == 0 and fpr("ed25519") in node.keys()
    said = full.stderr.decode()  # (until 2026-12-06 a traceback for each line)
    assert said.count("cks_mail_sync.py: cannot write to the log file %s: No space left on "
                      "device (this run's lines are lost)\n" % (disk / "mail.log")) == 1
    assert "Traceback" not in said and "Logging error" not in said
    node.write_config(log_file=str(tmp_path))  # a directory: cannot log, so try again later
    unloggable = node.mail_sync(sks_mail(fixture("nistp256")))
    assert unloggable.returncode == 75 and fpr("nistp256") not in node.keys()
