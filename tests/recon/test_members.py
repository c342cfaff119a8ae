"""Who may start a round on cksd's recon port: rounds.Members, the enabled
recon peers by address, resolved ahead of the connections."""

from __future__ import annotations

from cks.store import open_store
from cks.store.peers import PeerStore
from cks.sync.recon.rounds import Members


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
