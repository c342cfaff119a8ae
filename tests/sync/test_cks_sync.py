"""cks_sync.py and cks_sync_manage.py end to end: three cksd processes (A, B, C),
stand-in peers that fail on purpose, crashes; on SQLite and PostgreSQL."""

import signal
import subprocess
import sys
import os
import time

import pytest

from cks.store import open_store
from support import ROOT, fixture
from support.db import run_sql, with_schema
from support.fakepeer import FakePeer
from support.nodes import fpr, has, manage, peer_name, peers_json, sync, table
from support.procs import tool
from support.server import Cksd

KEYS = ["rsa2048", "nistp256", "ed25519"]


@pytest.fixture
def nodes(new_db):
    started = [Cksd(new_db(n)).start() for n in "abc"]
    yield started
    for node in started:
        node.close()


def test_keys_reach_every_peer_and_travel_one_hop(nodes):
    a, b, c = nodes
    assert manage(a, "add", peer_name(b), "--priority", "10").returncode == 0
    assert manage(a, "add", peer_name(c), "--priority", "20").returncode == 0
    for name in KEYS:
        assert a.add(fixture(name))[0] == 200
    run = sync(a)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.decode().splitlines()
    assert lines == ["%s: sent 3 keys" % peer_name(b), "%s: sent 3 keys" % peer_name(c)]
    for node in (b, c):
        assert all(has(node, name) for name in KEYS)
        assert table(node, "SELECT count(*) FROM cks_pending_sync")[0][0] == 0
        source = table(node, "SELECT DISTINCT source FROM cks_keys")
        assert source == [("hkp-sync:" + a.url.split("//")[1].split(":")[0],)] or \
            all(s[0].startswith("hkp-sync:") for s in source)
    assert table(a, "SELECT count(*) FROM cks_pending_sync")[0][0] == 0
    assert all(p["backlog"] == 0 for p in peers_json(a).values())
    # nothing left: a second run sends nothing and says so; --quiet says nothing
    assert sync(a).stdout.decode().count("sent 0 keys") == 2
    quiet = sync(a, "--quiet")
    assert quiet.returncode == 0 and quiet.stdout == b"" and quiet.stderr == b""


def test_a_peer_down_keeps_its_backlog_and_the_others_are_served(nodes):
    a, b, c = nodes
    manage(a, "add", peer_name(b), "--no-catch-up")
    manage(a, "add", peer_name(c), "--no-catch-up")
    c_port = c.port
    c.stop()
    a.add(fixture("rsa2048"))
    run = sync(a, "--quiet")
    assert run.returncode == 1
    assert run.stderr.decode().strip() == \
        "%s: FAILED: connection refused; 1 key kept for the next run" % peer_name(c)
    assert has(b, "rsa2048")
    peers = peers_json(a)
    assert peers[peer_name(c)]["backlog"] == 1 and peers[peer_name(b)]["backlog"] == 0
    assert "connection refused" in peers[peer_name(c)]["last_error"]
    assert table(a, "SELECT count(*) FROM cks_pending_sync")[0][0] == 1
    c.start(port=c_port)
    run = sync(a)
    assert run.returncode == 0, run.stderr
    assert has(c, "rsa2048")
    assert table(a, "SELECT count(*) FROM cks_pending_sync")[0][0] == 0


@pytest.mark.parametrize("mode", ["error", "hang"])
def test_a_failing_or_hanging_peer_keeps_its_backlog(nodes, mode, tmp_path):
    a, b, _ = nodes
    config = tmp_path / "sync.conf"
    config.write_text("[sync]\ntimeout = 1\n")
    with FakePeer(mode) as bad:
        manage(a, "add", bad.name, "--priority", "1", "--no-catch-up")
        manage(a, "add", peer_name(b), "--priority", "2", "--no-catch-up")
        a.add(fixture("nistp256"))
        started = time.monotonic()
        run = sync(a, config=str(config))
        assert time.monotonic() - started < 20
        assert run.returncode == 1
        expected = "HTTP 500" if mode == "error" else "timed out"
        assert expected in run.stderr.decode()
        assert has(b, "nistp256")  # the peer after the bad one was still served
        assert peers_json(a)[bad.name]["backlog"] == 1
        bad.mode = "ok"
        bad.release.set()
        assert sync(a, config=str(config)).returncode == 0
        assert fpr("nistp256") in bad.received
        assert peers_json(a)[bad.name]["backlog"] == 0


def test_a_peer_whose_last_attempt_failed_waits_for_the_others(nodes, tmp_path):
    """A hung peer first in priority order holds the others up for its
    timeouts once; from the next pass on, it is served after them."""
    a, _, _ = nodes
    config = tmp_path / "sync.conf"
    config.write_text("[sync]\ntimeout = 1\n")
    with FakePeer("hang") as bad, FakePeer() as good:
        manage(a, "add", bad.name, "--priority", "1", "--no-catch-up")
        manage(a, "add", good.name, "--priority", "2", "--no-catch-up")
        a.add(fixture("nistp256"))
        assert sync(a, config=str(config)).returncode == 1
        assert bad.arrivals[0] < good.arrivals[0]  # (never tried: priority order)
        a.add(fixture("rsa2048"))
        tried = len(bad.arrivals)
        assert sync(a, config=str(config)).returncode == 1
        assert good.received == [fpr("nistp256"), fpr("rsa2048")]
        assert good.arrivals[-1] < bad.arrivals[tried]
        assert peers_json(a)[bad.name]["backlog"] == 2


def test_a_key_the_peer_rejects_is_reported_once_and_not_retried(nodes):
    a, b, c = nodes
    manage(a, "add", peer_name(c), "--no-catch-up")
    store = open_store(c.db_url)
    with store.write() as cursor:
        cursor.execute("INSERT INTO cks_rejected_keys (fingerprint, reason, rejected_at) "
                       "VALUES (?, ?, ?)", (fpr("ed25519"), "abuse", 1))
    store.close()
    a.add(fixture("ed25519"))
    a.add(fixture("rsa2048"))
    run = sync(a, "--quiet")
    assert run.returncode == 0, run.stderr
    out = run.stdout.decode()
    assert "%s: refused %s for good" % (peer_name(c), fpr("ed25519")) in out
    assert "abuse" in out
    assert has(c, "rsa2048") and not has(c, "ed25519")
    assert peers_json(a)[peer_name(c)]["backlog"] == 0
    again = sync(a, "--quiet")
    assert again.returncode == 0 and again.stdout == b""
    refusals = manage(a, "refusals", peer_name(c)).stdout.decode()
    assert fpr("ed25519") in refusals


def test_a_refusal_is_one_message_and_an_update_refused_again_says_nothing(nodes):
    """A CKS peer's refusal reads the same from a 403 to the key alone and
    from a 200 to a batch; a later version is offered again, and refused for
    the same reason it is not reported again (before 2026-12-05 every update
    of the key printed its refusal, in one format or the other); a full send
    offers it again too, and the peer takes it once its operator unrejected it."""
    a, b, c = nodes
    manage(a, "add", peer_name(c), "--no-catch-up")
    admin = ["--db", c.db_url]
    assert tool("cks_admin.py", admin + ["reject", fpr("alice-t1"), "--reason",
                                         "reject on C"]).returncode == 0
    assert a.add(fixture("alice-t1"))[0] == 200
    first = sync(a, "--quiet")                    # the key alone: C answers 403
    assert first.returncode == 0, first.stderr
    assert first.stdout.decode().splitlines() == [
        "%s: refused %s for good: key is rejected on this server: reject on C"
        % (peer_name(c), fpr("alice-t1"))]
    assert a.add(fixture("alice-t2"))[0] == 200   # an update, with another key: a 200
    assert a.add(fixture("rsa2048"))[0] == 200
    again = sync(a, "--quiet", "--verbose")
    assert (again.returncode, again.stdout) == (0, b""), again.stderr
    assert b"refused" not in again.stderr, again.stderr
    assert has(c, "rsa2048") and not has(c, "alice-t2")
    assert peers_json(a)[peer_name(c)]["backlog"] == 0
    refusals = manage(a, "refusals", peer_name(c)).stdout.decode().splitlines()
    assert len(refusals) == 1 and refusals[0].endswith(
        "%s  key is rejected on this server: reject on C" % fpr("alice-t1"))
    assert tool("cks_admin.py", admin + ["unreject", fpr("alice-t1")]).returncode == 0
    manage(a, "set", peer_name(c), "--catch-up")
    assert sync(a, "--quiet").stdout == b""
    assert has(c, "alice-t2")


def test_new_peers_catch_up_unless_told_not_to(nodes):
    a, b, c = nodes
    for name in KEYS:
        a.add(fixture(name))
    manage(a, "add", peer_name(b))                     # catches up (the default)
    manage(a, "add", peer_name(c), "--no-catch-up")    # only what comes later
    assert "catching up" in manage(a, "list").stdout.decode()
    assert sync(a, "--dry-run").stdout.decode().splitlines()[0] == \
        "%s: would send 3 keys (a full send)" % peer_name(b)
    run = sync(a)
    assert run.returncode == 0
    assert all(has(b, n) for n in KEYS) and not any(has(c, n) for n in KEYS)
    a.add(fixture("rsa4096"))
    sync(a)
    assert has(c, "rsa4096")
    # a full send on request
    manage(a, "set", peer_name(c), "--catch-up")
    assert sync(a).returncode == 0
    assert all(has(c, n) for n in KEYS)


def test_push_and_recon_peers_are_served_in_one_priority_order(nodes):
    a, b, c = nodes
    manage(a, "add", peer_name(b), "--priority", "10", "--no-catch-up")
    manage(a, "add", "127.0.0.9:11371", "--type", "recon", "--recon-port", "11370",
           "--priority", "50")
    manage(a, "add", peer_name(c), "--priority", "90", "--no-catch-up")
    assert sync(a, "--dry-run").stdout.decode().splitlines() == [
        "%s: would send 0 keys" % peer_name(b), "127.0.0.9:11371: would run a recon round",
        "%s: would send 0 keys" % peer_name(c)]


def test_a_run_drops_queue_entries_no_peer_is_owed(nodes):
    """Entries a node without push peers queued before 2026-12-05 stayed,
    counted by op=stats as waiting, until a peer was removed."""
    a = nodes[0]
    assert a.add(fixture("rsa2048"))[0] == 200  # (no push peer: nothing queued)
    run_sql(a.db_url, "INSERT INTO cks_pending_sync (fingerprint, queued_at, source) "
            "VALUES (?, 0, 'hkp')", (fpr("rsa2048"),), write=True)
    assert sync(a, "--dry-run").returncode == 0
    assert table(a, "SELECT count(*) FROM cks_pending_sync") == [(1,)]  # (changes nothing)
    assert sync(a).returncode == 0
    assert table(a, "SELECT count(*) FROM cks_pending_sync") == [(0,)]


def test_dry_run_changes_nothing_and_peer_option(nodes):
    a, b, c = nodes
    manage(a, "add", peer_name(b), "--no-catch-up")
    manage(a, "add", peer_name(c), "--no-catch-up")
    a.add(fixture("rsa2048"))
    dry = sync(a, "--dry-run")
    assert dry.returncode == 0
    assert dry.stdout.decode().splitlines() == ["%s: would send 1 key" % peer_name(b),
                                                "%s: would send 1 key" % peer_name(c)]
    assert not has(b, "rsa2048")
    only = sync(a, "--peer", peer_name(c))
    assert only.stdout.decode().strip() == "%s: sent 1 key" % peer_name(c)
    assert has(c, "rsa2048") and not has(b, "rsa2048")
    assert table(a, "SELECT count(*) FROM cks_pending_sync")[0][0] == 1  # b still owed
    bad = sync(a, "--peer", "127.0.0.1:1")
    assert bad.returncode == 1 and b"no peer 127.0.0.1:1" in bad.stderr


def test_priority_order_and_disabled_peers(nodes):
    a, b, c = nodes
    manage(a, "add", peer_name(b), "--priority", "50", "--no-catch-up")
    manage(a, "add", peer_name(c), "--priority", "5", "--no-catch-up")
    a.add(fixture("rsa2048"))
    lines = sync(a).stdout.decode().splitlines()
    assert [line.split(":")[0] + ":" + line.split(":")[1] for line in lines] == \
        [peer_name(c), peer_name(b)]
    manage(a, "set", peer_name(c), "--disable")
    a.add(fixture("nistp256"))
    lines = sync(a).stdout.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith(peer_name(b))
    assert peers_json(a)[peer_name(c)]["backlog"] == 1  # a disabled peer is still owed
    manage(a, "set", peer_name(c), "--enable")
    sync(a)
    assert has(c, "nistp256")


def test_kill_9_mid_run_loses_nothing(nodes, tmp_path):
    a, b, _ = nodes
    config = tmp_path / "slow.conf"
    config.write_text("[sync]\nkeys_per_request = 1\n")
    names = ["rsa1024", "rsa2048", "rsa4096", "nistp256", "nistp384", "nistp521",
             "brainpoolp256", "brainpoolp384", "brainpoolp512", "secp256k1", "ed25519",
             "dsa-elg"]
    with FakePeer("ok", delay=0.25) as slow:
        manage(a, "add", slow.name, "--no-catch-up")
        manage(a, "add", peer_name(b), "--no-catch-up")
        for name in names:
            a.add(fixture(name))
        proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "cks_sync.py"), "--db",
                                 a.db_url, "--config", str(config)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60  # some keys delivered, most still owed
        while not slow.received and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert 0 < len(slow.received) < len(names)
        run = sync(a, config=str(config))
        assert run.returncode == 0, run.stderr
        assert set(slow.received) == {fpr(n) for n in names}
        assert all(has(b, n) for n in names)
        assert table(a, "SELECT count(*) FROM cks_pending_sync")[0][0] == 0


def test_a_peer_removed_while_a_run_pushes_to_it_ends_its_part_alone(nodes):
    """Until 2026-12-06 the run ended in an error (`no peer ... in the
    list`), status 1, and the peers after it were not served."""
    a, b, _ = nodes
    with FakePeer("ok", delay=1.5) as slow:
        manage(a, "add", slow.name, "--no-catch-up", "--priority", "10")
        manage(a, "add", peer_name(b), "--no-catch-up", "--priority", "20")
        for name in KEYS:
            a.add(fixture(name))
        proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "cks_sync.py"), "--db",
                                 a.db_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while not slow.requests and time.monotonic() < deadline:
            time.sleep(0.02)
        assert manage(a, "remove", slow.name).returncode == 0
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out.decode().splitlines() == [
        "%s: removed from the peer list during this run: nothing more is sent to it"
        % slow.name, "%s: sent 3 keys" % peer_name(b)]
    assert all(has(b, name) for name in KEYS)


BIG_KEYS = ["photo", "rsa4096", "rsa2048", "dsa-elg", "multi-uid", "certified", "nistp521",
            "brainpoolp512", "ed25519"]


def test_bytes_per_request_bounds_the_body_as_sent(db_url, tmp_path):
    """The keys go out armored and URL-encoded, about 1.48 times their binary
    size: until 2026-12-05 the limit counted binary bytes, and a peer whose
    proxy takes a body of bytes_per_request at most (nginx's
    client_max_body_size) was sent every batch over it."""
    db = with_schema(db_url)
    keys = b"".join(fixture(name) for name in BIG_KEYS)
    assert tool("cks_admin.py", ["--db", db, "load", "-"], input=keys).returncode == 0
    ((binary,),) = run_sql(db, "SELECT sum(size) FROM cks_keys")
    limit = binary * 13 // 10  # (every key in one request by their binary size)
    config = tmp_path / "sync.conf"
    config.write_text("[sync]\nbytes_per_request = %d\n" % limit)
    with FakePeer(max_body=limit) as peer:
        assert tool("cks_sync_manage.py", ["--db", db, "add", peer.name]).returncode == 0
        run = tool("cks_sync.py", ["--db", db, "--config", str(config)])
        assert run.returncode == 0 and run.stderr == b"", run.stderr
        assert run.stdout.decode() == "%s: sent %d keys\n" % (peer.name, len(BIG_KEYS))
        assert max(peer.lengths) <= limit and 1 < len(peer.lengths) < len(BIG_KEYS), \
            (peer.lengths, limit)
        assert sorted(peer.received) == sorted(fpr(name) for name in BIG_KEYS)


def test_one_run_at_a_time(nodes, tmp_path):
    a, _, _ = nodes
    config = tmp_path / "sync.conf"
    config.write_text("[sync]\ntimeout = 4\n")
    with FakePeer("hang") as hanging:
        manage(a, "add", hanging.name, "--no-catch-up")
        a.add(fixture("rsa2048"))
        first = subprocess.Popen([sys.executable, os.path.join(ROOT, "cks_sync.py"), "--db",
                                  a.db_url, "--config", str(config)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while hanging.requests == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        second = sync(a)
        assert second.returncode == 75
        assert b"another run is still working" in second.stderr
        hanging.release.set()
        first.wait(20)
    third = sync(a)
    assert third.returncode in (0, 1) and b"another run" not in third.stderr
