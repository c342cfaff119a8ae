"""cks_sync.py delivers this node's signed rejection notices to a stand-in
peer: a notice leaves the peer's backlog on a 2xx, or on the peer's own
refusal of it; any other answer keeps it owed and fails the peer's run, as
for keys.  Until 2026-12-05 every 4xx (a 429 among them) wrote it off."""

import pytest

from support import fixture
from support.db import with_schema
from support.fakepeer import NOTICE_APPLIED, FakePeer
from support.gpg import GnuPG
from support.nodes import fpr
from support.procs import tool

OPERATOR = "revoker"  # signs this node's notices
REJECTED = ["rsa2048", "nistp256", "ed25519"]
SLOW_DOWN = b"too many requests from 192.0.2.9: slow down\n"


class Node:
    """A node that rejected three keys: its signed notices are owed to each
    peer added (with --no-catch-up: no keys)."""

    def __init__(self, db, config):
        self.common = ["--db", db, "--config", str(config)]

    def add(self, peer):
        added = tool("cks_sync_manage.py", self.common[:2] + ["add", peer.name, "--no-catch-up"])
        assert added.returncode == 0, added.stderr

    def sync(self, peer, *args):
        return tool("cks_sync.py", self.common + ["--peer", peer.name] + list(args))


@pytest.fixture
def node(db_url, tmp_path):
    db = with_schema(db_url)
    config = tmp_path / "a.conf"
    config.write_text("[sync]\nnode_name = node-a.example\n[rejection]\nkey = %s\n"
                      % fpr(OPERATOR))
    made = Node(db, config)
    assert tool("cks_admin.py", made.common + ["load", "-"],
                input=fixture(OPERATOR)).returncode == 0
    with GnuPG() as gpg:
        gpg.run(["--import"], input=fixture("secret/" + OPERATOR))
        for name in REJECTED:
            out = tool("cks_admin.py", made.common + ["reject", fpr(name), "--reason", "spam",
                                                      "--sign-with", fpr(OPERATOR)],
                       env={"GNUPGHOME": gpg.home})
            assert out.returncode == 0, out.stderr
    return made


def test_a_429_stops_the_run_and_keeps_the_notices_owed(node):
    """A CKS node with tight upload limits behind a proxy: two notices
    went through, then every other one was written off on its 429."""
    with FakePeer(notice_answers=[NOTICE_APPLIED, NOTICE_APPLIED,
                                  (429, SLOW_DOWN, [("Retry-After", "60")])]) as peer:
        node.add(peer)
        run = node.sync(peer)
        assert run.returncode == 1 and run.stdout == b""
        assert run.stderr.decode() == "%s: FAILED: HTTP 429: %s; 0 keys and 1 rejection " \
            "notice kept for the next run\n" % (peer.name, SLOW_DOWN.decode().strip())
        assert len(peer.notices) == 3  # none sent after the 429
        peer.notice_answers = [NOTICE_APPLIED]
        again = node.sync(peer)
        assert again.returncode == 0 and again.stderr == b"", again.stderr
        assert again.stdout.decode() == "%s: sent 0 keys, 1 rejection notice\n" % peer.name
        assert peer.notices[3] == peer.notices[2] and len(set(peer.notices)) == 3
        assert node.sync(peer, "--quiet").stdout == b"" and len(peer.notices) == 4


@pytest.mark.parametrize("status, body", [
    (404, b"<html><head><title>Down for maintenance</title></head></html>"),
    (401, b"authentication required"),
    (407, b"proxy authentication required"),
    (413, b"<html><head><title>413 Request Entity Too Large</title></head></html>"),
    (403, b"<html><head><title>403 Forbidden</title></head><body>nginx</body></html>"),
    (400, b"<html><head><title>400 Bad Request</title></head></html>"),
])
def test_an_answer_that_says_nothing_of_the_notice_keeps_it_owed(node, status, body):
    """The peer answers so to keys too (asked with a key it took before)."""
    with FakePeer(notice_answers=[(status, body, ())], key_answer=(status, body)) as peer:
        node.add(peer)
        run = node.sync(peer)
        assert run.returncode == 1 and run.stdout == b""
        (line,) = run.stderr.decode().splitlines()
        assert line.startswith("%s: FAILED: HTTP %d" % (peer.name, status))
        assert line.endswith("; 0 keys and 3 rejection notices kept for the next run")
        assert len(peer.notices) == 1
        peer.notice_answers = [NOTICE_APPLIED]
        again = node.sync(peer)
        assert again.returncode == 0, again.stderr
        assert again.stdout.decode() == "%s: sent 0 keys, 3 rejection notices\n" % peer.name


def test_a_cks_peers_refusal_of_a_malformed_notice_is_final(node):
    refusal = (400, b'{"status": "refused", "reason": "not a CKS rejection notice '
                    b'(version 1)"}\n', [("Content-Type", "application/json")])
    with FakePeer(notice_answers=[NOTICE_APPLIED, refusal, NOTICE_APPLIED]) as peer:
        node.add(peer)
        run = node.sync(peer)
        assert run.returncode == 0 and run.stderr == b"", run.stderr
        assert run.stdout.decode().splitlines() == [
            "%s: sent 0 keys, 2 rejection notices" % peer.name,
            "%s: refused notice %s for good: not a CKS rejection notice (version 1)"
            % (peer.name, peer.notices[1])]
        assert node.sync(peer).stdout.decode() == "%s: sent 0 keys\n" % peer.name
        assert len(peer.notices) == 3


@pytest.mark.parametrize("status", [404, 405, 400])
def test_a_peer_taking_keys_and_not_notices_has_them_written_off(node, status):
    """A keyserver without the notice endpoint (Hockeypuck: 404), or an older
    CKS refusing a notice in plain text (400), while it takes keys: each
    notice is refused for good, once, and the run succeeds; it does not fail
    every run for ever."""
    answer = (status, b"<html><title>%d</title></html>" % status, ())
    with FakePeer(notice_answers=[answer]) as peer:
        node.add(peer)
        run = node.sync(peer)
        assert run.returncode == 0 and run.stderr == b"", run.stderr
        lines = run.stdout.decode().splitlines()
        assert lines[0] == "%s: sent 0 keys" % peer.name
        assert lines[1:] == ["%s: refused notice %s for good: HTTP %d: %d (the peer takes keys, "
                             "not this notice)" % (peer.name, serial, status, status)
                             for serial in peer.notices]
        assert len(peer.notices) == 3 and peer.received == [fpr(OPERATOR)]
        assert node.sync(peer).stdout.decode() == "%s: sent 0 keys\n" % peer.name
        assert len(peer.notices) == 3


def test_a_dry_run_counts_the_notices_owed(node):
    """Until 2026-12-05 it said "would send 0 keys" and nothing of them."""
    with FakePeer() as peer:
        node.add(peer)
        dry = node.sync(peer, "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert dry.stdout.decode() == "%s: would send 0 keys, 3 rejection notices\n" % peer.name
        assert peer.requests == 0
