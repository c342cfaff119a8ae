"""An edit of the peer list and the uploads in flight wait for each other, on
SQLite (its writes take turns) and PostgreSQL (the edit holds every key's
lock): a key uploaded while a peer is added with a full send is owed to it,
and an upload while a peer is removed is stored (it failed on the backlog's
foreign key).  So do an edit and the signing of a rejection notice, which
owes the notice to every HKP peer.

Each test holds one side's transaction open between two of its steps, the
other side started meanwhile, as in the races found in 2026-12."""

import os
import threading
import time

from cks import pipeline, rejection
from cks.store import rejections
from cks.store.peers import PeerStore
from support import fixture
from support.gpg import GnuPG
from support.nodes import fpr

PEER = "peer.example:11371"


class Paused:
    """owner.name, a step inside a write transaction, patched: once it ran
    and sent what it deferred, its transaction waits, open, for resume()."""

    def __init__(self, monkeypatch, owner, name):
        self.reached, self._go = threading.Event(), threading.Event()
        step = getattr(owner, name)

        def paused(cursor, *args, **kwargs):
            step(cursor, *args, **kwargs)
            cursor.send_deferred()
            self.reached.set()
            assert self._go.wait(30)
        monkeypatch.setattr(owner, name, paused)

    def resume(self):
        self._go.set()


class Running(threading.Thread):
    """work() in a thread of its own; `outcome`: what it returned or raised."""

    def __init__(self, work):
        super().__init__(daemon=True)
        self.work, self.outcome = work, None
        self.start()

    def run(self):
        try:
            self.outcome = self.work()
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            self.outcome = exc

    def outcome_within(self, seconds=30):
        self.join(seconds)
        assert not self.is_alive()
        return self.outcome


def ended_or_waiting(store, running):
    """Wait until `running` has ended or waits for a lock: on PostgreSQL, a
    lock not granted; on SQLite, whose writes take turns, half a second."""
    if store.backend.name != "postgresql":
        running.join(0.5)
        return
    deadline = time.monotonic() + 30
    while running.is_alive() and time.monotonic() < deadline:
        with store.read() as cursor:
            if cursor.scalar("SELECT count(*) FROM pg_locks WHERE NOT granted"):
                return
        time.sleep(0.02)


def upload(store, name="rsa2048"):
    return pipeline.submit(store, fixture(name), pipeline.Source.user())


def owed(store, peer):
    """The fingerprints in the peer's backlog."""
    with store.read() as cursor:
        return {r[0] for r in cursor.execute(
            "SELECT b.fingerprint FROM cks_sync_backlog b JOIN cks_other_servers s "
            "ON s.id = b.peer_id WHERE s.peer = ?", (peer,)).fetchall()}


def stored(store):
    with store.read() as cursor:
        return {r[0] for r in cursor.execute("SELECT fingerprint FROM cks_keys").fetchall()}


def test_a_peer_added_during_an_upload_is_owed_its_key(store, monkeypatch):
    # the upload has read the peer list (no peer yet) and written its key
    queued = Paused(monkeypatch, store, "queue_sync")
    uploading = Running(lambda: upload(store))
    assert queued.reached.wait(30)
    adding = Running(lambda: PeerStore(store).add(PEER, "hkp", 0, None, catch_up=True))
    ended_or_waiting(store, adding)
    queued.resume()
    assert uploading.outcome_within().with_status(pipeline.ADDED)
    assert not isinstance(adding.outcome_within(), Exception)
    assert owed(store, PEER) == {fpr("rsa2048")}  # by the full send


def test_an_upload_during_the_add_of_a_peer_is_queued_for_it(store, monkeypatch):
    peers = PeerStore(store)
    # the add's full send has read the stored keys, and not committed yet
    caught_up = Paused(monkeypatch, peers, "_owe_every_key")
    adding = Running(lambda: peers.add(PEER, "hkp", 0, None, catch_up=True))
    assert caught_up.reached.wait(30)
    uploading = Running(lambda: upload(store))
    ended_or_waiting(store, uploading)
    caught_up.resume()
    assert not isinstance(adding.outcome_within(), Exception)
    assert uploading.outcome_within().with_status(pipeline.ADDED)
    assert owed(store, PEER) == {fpr("rsa2048")}  # by the queue


def test_a_peer_removed_during_an_upload_does_not_fail_it(store, monkeypatch):
    peers = PeerStore(store)
    peers.add(PEER, "hkp", 0, None, catch_up=False)
    # the removal has deleted the peer's row, and not committed yet
    deleted = Paused(monkeypatch, peers, "drop_delivered")
    removing = Running(lambda: peers.remove(PEER))
    assert deleted.reached.wait(30)
    uploading = Running(lambda: upload(store))
    ended_or_waiting(store, uploading)
    deleted.resume()
    assert removing.outcome_within() is None
    report = uploading.outcome_within()
    assert not isinstance(report, Exception), report
    assert [o.fingerprint for o in report.with_status(pipeline.ADDED)] == [fpr("rsa2048")]
    assert stored(store) == {fpr("rsa2048")}
    assert peers.list() == []


def signed_notice(store, home):
    """A rejection notice of ours and its signature by the operator's key
    (the fixture key "revoker", stored here), with the node's identity."""
    identity = rejection.NodeIdentity("node-a.example", fpr("revoker"))
    upload(store, "revoker")
    notice, _ = rejection.reject(store, fpr("nistp256"), "spam", identity)
    with GnuPG() as operator:
        operator.run(["--import"], input=fixture("secret/revoker"))
        path = os.path.join(home, "notice.txt")
        with open(path, "w") as handle:
            handle.write(notice.body)
        operator.run(["--armor", "--detach-sign", "--local-user", identity.key, path])
    with open(path + ".asc") as handle:
        return notice.serial, handle.read(), identity


def owed_notices(store, peer):
    with store.read() as cursor:
        return {r[0] for r in cursor.execute(
            "SELECT b.serial FROM cks_notice_backlog b JOIN cks_other_servers s "
            "ON s.id = b.peer_id WHERE s.peer = ?", (peer,)).fetchall()}


def test_a_peer_added_while_a_notice_is_signed_is_owed_the_notice(store, monkeypatch,
                                                                  tmp_path):
    """The signing read the peers (none) and the add the signed notices
    (none yet): until 2026-12-06 neither owed the notice to the peer."""
    serial, signature, identity = signed_notice(store, str(tmp_path))
    queued = Paused(monkeypatch, rejections, "queue_notice")
    signing = Running(lambda: rejection.sign(store, serial, signature, identity))
    assert queued.reached.wait(30)
    adding = Running(lambda: PeerStore(store).add(PEER, "hkp", 0, None, catch_up=False))
    ended_or_waiting(store, adding)
    queued.resume()
    assert not isinstance(signing.outcome_within(), Exception), signing.outcome
    assert not isinstance(adding.outcome_within(), Exception), adding.outcome
    assert owed_notices(store, PEER) == {serial}


def test_a_notice_signed_while_a_peer_is_removed_is_signed(store, monkeypatch, tmp_path):
    """Until 2026-12-06 the signing failed on the notices' backlog's foreign
    key (PostgreSQL)."""
    serial, signature, identity = signed_notice(store, str(tmp_path))
    peers = PeerStore(store)
    peers.add(PEER, "hkp", 0, None, catch_up=False)
    deleted = Paused(monkeypatch, peers, "drop_delivered")
    removing = Running(lambda: peers.remove(PEER))
    assert deleted.reached.wait(30)
    signing = Running(lambda: rejection.sign(store, serial, signature, identity))
    ended_or_waiting(store, signing)
    deleted.resume()
    assert removing.outcome_within() is None
    assert not isinstance(signing.outcome_within(), Exception), signing.outcome
    assert peers.list() == []
    with store.read() as cursor:
        assert rejections.get_notice(cursor, serial).status == rejection.ISSUED


def test_a_refusal_by_a_peer_removed_meanwhile_is_dropped(store):
    """cks_sync.py pushing to a peer that `cks_sync_manage.py remove` took
    out meanwhile: the peer's refusal of a key has no peer left to belong
    to.  Until 2026-12-06 its row failed on the foreign key (PostgreSQL),
    and the run ended in an error for a peer no longer there."""
    peers = PeerStore(store)
    peer = peers.add(PEER, "hkp", 0, None, catch_up=False)
    peers.remove(PEER)
    assert peers.record_refusal(peer.id, fpr("rsa2048"), "no", 1) is True
    with store.read() as cursor:
        assert cursor.execute("SELECT count(*) FROM cks_sync_refusals").fetchone()[0] == 0
