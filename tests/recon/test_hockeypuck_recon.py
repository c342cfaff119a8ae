"""Reconciliation with a real Hockeypuck node (CKS_HOCKEYPUCK names its
binary; skipped without it).  Hockeypuck runs on 127.0.0.1 and cksd on
127.0.0.2: Hockeypuck dials without binding a source address, so its rounds
come from 127.0.0.1, the address cksd knows it by.

Hockeypuck starts with one part of the Debian keyring and cksd with another
that overlaps it (hundreds of differences each way), plus a key whose copies
differ.  Hockeypuck cannot hold all of the union, and some keys it holds
under another hash than ours, because its filters are a policy:

- it refuses keys with no self-signature it can check (its OpenPGP library
  has no RIPEMD-160, so a key self-signed only with it has none): its log
  names each ("could not upsert key FPR");
- it drops packets its filters name (drop:UAT: photo IDs; signatures out of
  place), so its copy of such a key is a strict subset of ours and hashes
  differently.  Each round then finds that key missing on both sides: we
  fetch its copy, merge it into ours (our hash stays) and do not ask again;
  it fetches ours and cuts it down again.
"""

import re

from cks.openpgp.keys import read_keys, sks_hash
from support import fixture, write_keyring
from support.db import run_sql
from support.hockeypuck import HockeypuckNode, hockeypuck_binary
from support.nodes import manage, reread_peers, sync
from support.procs import tool
from support.server import Cksd

CKSD_ADDRESS = "127.0.0.2"


def fingerprint(key):
    return key.fingerprint.hex().upper()


def stored(node):
    return {r[0]: r[1] for r in run_sql(node.db_url,
                                        "SELECT fingerprint, sks_hash FROM cks_keys")}


def packet_set(armored):
    (key,) = read_keys(armored.encode()).keys
    return {(p.tag, p.body) for p in key.packets()}


def cksd_node(db_url):
    return Cksd(db_url, args=["--recon-port", "0"], bind=CKSD_ADDRESS)


def load(cksd, tmp_path, keys):
    """Store `keys` (if any) in cksd's database; its recon port."""
    if keys:
        loaded = tool("cks_admin.py", ["--db", cksd.db_url, "load", "--no-sync",
                                       str(write_keyring(tmp_path / "cks.gpg", keys))])
        assert loaded.returncode == 0, loaded.stderr
    return int(cksd.wait_for_output(r"cksd recon on [\d.]+:(\d+)").group(1))


def add_peer(cksd, hockeypuck, filters):
    """The peer added, and cksd told (a peer added without a reload has its
    first rounds refused, which Hockeypuck logs as failed gossip)."""
    peer = "%s:%d" % (hockeypuck.address, hockeypuck.hkp_port)
    added = manage(cksd, "add", peer, "--type", "recon", "--recon-port",
                   str(hockeypuck.recon_port), "--filters", filters)
    assert added.returncode == 0, added.stderr
    reread_peers(cksd)
    return peer


def sync_config(tmp_path, cksd):
    conf = tmp_path / "cksd.conf"
    conf.write_text("[server]\nport = %d\nbind = %s\n" % (cksd.port, CKSD_ADDRESS))
    return str(conf)


def test_cksd_and_hockeypuck_end_with_the_union(new_db, tmp_path, debian_keys):
    binary = hockeypuck_binary()
    (alice_hp,) = read_keys(fixture("alice-t1")).keys
    (alice_cks,) = read_keys(fixture("alice-t2")).keys
    on_hp = debian_keys[:150] + [alice_hp]
    on_cks = debian_keys[50:250] + [alice_cks]
    union = {fingerprint(k) for k in on_hp + on_cks}
    with cksd_node(new_db("a")) as cksd, HockeypuckNode(
            binary, tmp_path / "hp", [(CKSD_ADDRESS, cksd.port, load(cksd, tmp_path, on_cks))],
            [write_keyring(tmp_path / "hp.gpg", on_hp)], gossip_interval=15) as hp:
        peer = add_peer(cksd, hp, hp.filters())
        conf = sync_config(tmp_path, cksd)
        run = sync(cksd, "--peer", peer, config=conf)        # cksd dials: Hockeypuck requests
        assert run.returncode == 0, run.stderr + run.stdout
        assert "we lacked 51, the peer lacked 101" in run.stdout.decode(), run.stdout
        held = stored(cksd)
        assert set(held) == union
        # Hockeypuck fetches what it lacked once the round is over, but for
        # the keys it refuses.
        hp.wait_for_log('label="serve', "recovery complete")
        refused = hp.refused()
        assert len(refused) < 5, refused
        assert hp.wait_for_key_count(len(union - refused), timeout=60) == len(union - refused)
        theirs = hp.hashes()
        assert set(theirs) == union - refused
        alice = fingerprint(alice_cks)
        assert theirs[alice] == held[alice]
        assert sks_hash(read_keys(hp.get_key(alice).encode()).keys[0]).hex().upper() \
            == held[alice]
        trimmed = {f for f in theirs if theirs[f] != held[f]}
        assert len(trimmed) < 5, trimmed
        for fpr in trimmed:
            ours = cksd.lookup(op="hget", options="mr", search=held[fpr])[2].decode()
            assert packet_set(hp.get_key(fpr)) < packet_set(ours), fpr
        # Hockeypuck's own gossip rounds: it dials cksd, which requests.
        hp.wait_for_log('label="gossip', "recovery complete")
        assert not hp.log_lines('label="gossip', "failed"), hp.log_tail()
        # Later rounds find only the keys Hockeypuck refuses or trims.
        out = sync(cksd, "--peer", peer, config=conf).stdout.decode()
        lacked = re.search(r"we lacked (\d+), the peer lacked (\d+)", out)
        assert lacked, out
        assert int(lacked.group(1)) <= len(trimmed), out
        assert int(lacked.group(2)) <= len(trimmed) + len(refused), out
        assert stored(cksd) == held


def test_what_hockeypuck_leaves_unsaid_its_own_rounds_bring(new_db, tmp_path, debian_keys):
    """When cksd dials, Hockeypuck requests; for the FullElements we send in
    reply to its last batch it owes us Elements (what we lack there) and
    sends Done without them.  cksd says so; Hockeypuck's own round, in which
    cksd requests, brings the keys."""
    binary = hockeypuck_binary()
    with cksd_node(new_db("a")) as cksd, HockeypuckNode(
            binary, tmp_path / "hp", [(CKSD_ADDRESS, cksd.port, load(cksd, tmp_path, []))],
            [write_keyring(tmp_path / "hp.gpg", debian_keys[:60])], gossip_interval=10) as hp:
        peer = add_peer(cksd, hp, hp.filters())
        run = sync(cksd, "--peer", peer, config=sync_config(tmp_path, cksd))
        out = run.stdout.decode()
        assert run.returncode == 0, out
        assert "we lacked 0, the peer lacked 0" in out, out
        assert "did not say what it holds under 1 of our nodes" in out, out
        hp.wait_for_log('label="gossip', "reconciliation done")
        cksd.wait_until(lambda: len(stored(cksd)) == 60, timeout=30)


def test_a_wrong_filter_list_is_refused_cleanly(new_db, tmp_path):
    binary = hockeypuck_binary()
    with cksd_node(new_db("a")) as cksd, HockeypuckNode(binary, tmp_path / "hp") as hp:
        peer = add_peer(cksd, hp, "yminsky.dedup,yminsky.merge")   # SKS's list
        run = sync(cksd, "--peer", peer, config=sync_config(tmp_path, cksd))
        assert run.returncode != 0
        err = (run.stdout + run.stderr).decode()
        assert "Traceback" not in err
        failed = [line for line in err.splitlines() if "recon failed" in line]
        assert len(failed) >= 1 and "filters do not match" in failed[0], err
        assert "remote filters: %s" % hp.filters() in err, err
        assert hp.log_lines("mismatched filters"), hp.log_tail()
        assert cksd.proc.poll() is None
        assert cksd.lookup(op="stats", options="mr")[0] == 200
