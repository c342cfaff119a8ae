"""cks_sync.py and cksd's rapid push against push peers that answer what no
keyserver would: an answer of megabytes, refusals of keys never sent with
reasons holding line breaks and NULs, and an error no one foresaw while
serving one peer: that peer's keys stay owed, its failure is said once and
recorded, and the peers after it are served; on SQLite and PostgreSQL."""

import json
import logging
import re
import time

import pytest

from cks.cli import sync as sync_cli
from cks.sync import runner
from support import fixture
from support.fakepeer import FakePeer
from support.nodes import fpr, manage, peers_json, sync
from support.server import LOOPBACK_EXEMPT, Cksd
from test_keys_a_peer_fails_on import upload
import test_keys_a_peer_fails_on

node = test_keys_a_peer_fails_on.node  # (a fixture: a node's database)

MEGABYTES = b"A" * (3 << 20)
"""An answer over the 1 MiB read of a push's answer (hkp_push.ANSWER_BYTES)."""


def failed_lines(run):
    return [line for line in run.stderr.decode().splitlines() if "FAILED" in line]


@pytest.mark.parametrize("chunked", [False, True])
def test_an_answer_of_megabytes_is_no_answer(node, chunked):
    """Until 2026-12-07 it was read whole: an endless one took cks_sync.py to
    14.6 GB, and the keys counted as taken."""
    with FakePeer(key_answer=(200, MEGABYTES), chunked=chunked) as hostile, \
            FakePeer() as good:
        manage(node, "add", hostile.name, "--priority", "1", "--no-catch-up")
        manage(node, "add", good.name, "--priority", "2", "--no-catch-up")
        upload(node, "rsa2048")
        run = sync(node)
        assert run.returncode == 1
        said = "HTTP 200 with an answer of over 1 MiB, not read"
        assert failed_lines(run) == [
            "%s: FAILED: %s; 1 key kept for the next run" % (hostile.name, said)]
        assert hostile.requests == 1 and good.received == [fpr("rsa2048")]
        listed = peers_json(node)[hostile.name]
        assert listed["backlog"] == 1 and said in listed["last_error"]


def test_refusals_count_only_for_the_keys_sent_and_are_cut(node):
    """Until 2026-12-07 a CKS peer's "refused" list was taken whole: keys
    never sent were recorded as refused, each reason went into the summary
    whole, line breaks and all, and a NUL in one stopped the run on
    PostgreSQL."""
    made_up = [{"fingerprint": "%040X" % n, "reason": "forged\nline"} for n in range(50)]
    refused = made_up + [{"fingerprint": fpr("nistp256"), "reason": "bad\nline\0" + "x" * 999}]
    answer = json.dumps({"refused": refused}).encode()
    with FakePeer(key_answer=(200, answer)) as peer:
        manage(node, "add", peer.name, "--no-catch-up")
        upload(node, "rsa2048", "nistp256")
        run = sync(node)
        assert run.returncode == 0, run.stderr
        reason = "bad?line?" + "x" * 191 + "..."  # (wire.peer_text: 200 characters)
        assert run.stdout.decode().splitlines() == [
            "%s: sent 1 key" % peer.name,
            "%s: refused %s for good: %s" % (peer.name, fpr("nistp256"), reason)]
        listed = manage(node, "refusals", peer.name).stdout.decode()
        assert fpr("nistp256") in listed and "forged" not in listed
        assert peers_json(node)[peer.name]["backlog"] == 0


def test_an_unexpected_error_stops_that_peer_only(node, monkeypatch, capsys):
    """Until 2026-12-07 it went up and ended cks_sync.py, with the peers
    after that one never served and the failure not recorded."""
    with FakePeer() as broken, FakePeer() as good:
        manage(node, "add", broken.name, "--priority", "1", "--no-catch-up")
        manage(node, "add", good.name, "--priority", "2", "--no-catch-up")
        upload(node, "rsa2048")
        push = runner.HKPPusher.push

        def failing(pusher, items):
            if pusher.client.port == broken.port:
                raise MemoryError()
            return push(pusher, items)

        monkeypatch.setattr(runner.HKPPusher, "push", failing)
        root = logging.getLogger()
        level = root.level
        try:
            assert sync_cli.main(["--db", node.db_url]) == 1
        finally:
            root.setLevel(level)
        err = capsys.readouterr().err
        assert err.count(broken.name) == 1 and "Traceback" not in err
        assert "%s: FAILED: unexpected error: MemoryError(); 1 key kept for the next run" \
            % broken.name in err
        assert good.received == [fpr("rsa2048")]
        listed = peers_json(node)[broken.name]
        assert listed["backlog"] == 1 and listed["last_error"] == "unexpected error: MemoryError()"


def test_cksd_reads_no_answer_of_megabytes(new_db, tmp_path):
    """cksd's rapid push, whose serving process grew to 6.5 GB on an endless
    answer before 2026-12-07: the push fails, said in the log, and the key
    stays owed."""
    config = tmp_path / "a.conf"
    config.write_text(LOOPBACK_EXEMPT + "[sync]\npush_interval = 0.5\n")
    with FakePeer(key_answer=(200, MEGABYTES), chunked=True) as hostile, \
            Cksd(new_db("a"), config=str(config)) as a:
        manage(a, "add", hostile.name, "--no-catch-up")
        assert a.add(fixture("rsa2048"))[0] == 200
        a.wait_for_output(re.escape(
            "push to %s failed: HTTP 200 with an answer of over 1 MiB, not read; 1 key kept"
            % hostile.name))
        time.sleep(0.5)
        assert peers_json(a)[hostile.name]["backlog"] == 1
