"""Who may start a round on cksd's recon port: rounds.Members, the enabled
recon peers by address, resolved ahead of the connections."""

from __future__ import annotations

import os

from cks.store import open_store
from cks.store.peers import PeerStore
from cks.sync.recon.rounds import Members
from support.nodes import manage, reread_peers
from support.server import Cksd


class Resolver:
    """Names to addresses, counting the lookups."""

    def __init__(self, table):
        self.table, self.calls = table, 0

    def __call__(self, host):
        self.calls += 1
        if host not in self.table:
            raise OSError("no such host")
        return self.table[host]


def test_members_are_found_without_a_lookup_and_new_peers_at_the_refresh(db_url):
    store = open_store(db_url)
    try:
        peers = PeerStore(store)
        peers.add("sks.example.org:11371", "recon", 0, None, False, recon_port=11370)
        peers.add("push.example.org:11371", "hkp", 0, None, False)  # not a recon peer
        peers.add("gone.example.org:11371", "recon", 0, None, False)  # does not resolve
        resolver = Resolver({"sks.example.org": ["192.0.2.1", "2001:db8::1"],
                             "push.example.org": ["192.0.2.2"],
                             "new.example.org": ["192.0.2.3"]})
        members = Members(store, resolver)
        members.refresh()
        looked_up = resolver.calls
        assert members.find("192.0.2.1").peer == "sks.example.org:11371"
        assert members.find("::ffff:192.0.2.1").peer == "sks.example.org:11371"
        assert members.find("2001:db8::1").peer == "sks.example.org:11371"
        assert resolver.calls == looked_up  # known addresses: no lookup
        assert members.find("192.0.2.2") is None  # an HKP peer may not start rounds
        assert members.find("not an address") is None
        # a peer added is served from the next refresh; an unknown address
        # costs no lookup (until 2026-12-05 each one read and resolved the list)
        peers.add("new.example.org:11371", "recon", 0, None, False)
        assert members.find("192.0.2.3") is None and resolver.calls == looked_up
        members.refresh()
        assert members.find("192.0.2.3").peer == "new.example.org:11371"
        # a disabled peer is refused once the list is read again
        peers.update("sks.example.org:11371", enabled=False)
        assert members.find("192.0.2.1") is not None
        members.refresh()
        assert members.find("192.0.2.1") is None
    finally:
        store.close()


def test_each_serving_process_answers_a_reload_with_its_peers_line(db_url, tmp_path):
    """After SIGHUP (`systemctl reload cksd`) each serving process says who
    may start rounds, changed or not: until 2026-12-06 the line came only
    on a change, so a reload after a background refresh had read the list
    already went unanswered (and a test that waited for it timed out)."""
    settings = tmp_path / "two.conf"
    settings.write_text("[server]\nprocesses = 2\n")
    with Cksd(db_url, args=["--recon-port", "0"], config=str(settings)) as cksd:
        assert manage(cksd, "add", "127.0.0.2:11371", "--type", "recon").returncode == 0
        reread_peers(cksd)  # (one line in each: the list changed)
        for _ in range(2):  # nothing changed: a line in each all the same
            start = os.path.getsize(cksd.log.name)
            reread_peers(cksd)
            assert cksd.output(start).count(
                "recon peers: 1 may start rounds, from 1 addresses") == 2
