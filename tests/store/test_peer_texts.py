"""What a peer says, stored: its errors and refusals, cut to one printable
line of STORED_TEXT_CHARS, on SQLite and PostgreSQL.  The callers cut a
peer's text already; the store is the last line of defence (until
2026-12-07 a text with a NUL could not be stored on PostgreSQL)."""

from cks.store.peers import STORED_TEXT_CHARS, PeerStore
from support.nodes import fpr

HOSTILE = "bad\n\x00" + "E" * (1 << 20)
SHOWN = "bad??" + "E" * (STORED_TEXT_CHARS - 5) + "..."


def test_a_peers_error_is_stored_cut_and_on_one_line(store):
    peers = PeerStore(store)
    recon = peers.add("recon.example:11371", "recon", 0, None, catch_up=False)
    push = peers.add("push.example:11371", "hkp", 0, None, catch_up=False)
    peers.record_round(recon.id, 5, 0, 0, 0, HOSTILE, completed=False)
    peers.record_attempt(push.id, 6, HOSTILE)
    assert peers.get(recon.peer).last_error == SHOWN
    assert peers.get(push.peer).last_error == SHOWN


def test_a_peers_refusal_is_stored_cut_and_on_one_line(store):
    peers = PeerStore(store)
    peer = peers.add("push.example:11371", "hkp", 0, None, catch_up=True)
    assert peers.record_refusal(peer.id, fpr("rsa2048"), HOSTILE, 1) is True
    assert peers.record_refusal(peer.id, fpr("rsa2048"), HOSTILE, 2) is False
    assert peers.refusals(peer.id) == [(fpr("rsa2048"), 2, SHOWN)]
