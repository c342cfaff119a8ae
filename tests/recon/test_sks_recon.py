"""Reconciliation with a real SKS 1.1.6 node (Debian's sks, in its own mount
namespace, on 127.0.0.2; cksd on 127.0.0.1: SKS tells peers apart by IP).
SKS starts with one part of the Debian keyring and cksd with another that
overlaps it: hundreds of differences each way (the round recurses), one
key whose copies differ (merged on both sides to the same SKS hash), and
one that SKS holds with a signature CKS cannot read (kept, so the same SKS
hash on both sides: until 2026-12-06 CKS dropped it, and SKS fetched the
key again at every round)."""

import time

from cks.openpgp import packet as pk
from cks.openpgp.keys import packets_hash, read_keys, sks_hash
from support import fixture, write_keyring
from support.db import run_sql
from support.nodes import manage, reread_peers, sync
from support.procs import tool
from support.server import Cksd
from support.sks import sks_node


def stored(node):
    return {r[0]: r[1] for r in run_sql(node.db_url,
                                        "SELECT fingerprint, sks_hash FROM cks_keys")}


def test_cksd_and_sks_end_with_the_union(new_db, tmp_path, debian_keys):
    (alice_sks,) = read_keys(fixture("alice-t1")).keys
    (alice_cks,) = read_keys(fixture("alice-t2")).keys
    on_sks = debian_keys[:150] + [alice_sks]
    on_cks = debian_keys[50:250] + [alice_cks]
    union = {k.fingerprint.hex().upper() for k in on_sks + on_cks}
    # SKS's copy of its first key ends with a signature whose MPI is cut short
    unreadable = list(pk.iter_packets(on_sks[0].serialize())) + [pk.Packet(
        pk.TAG_SIGNATURE, b"\x04\x10\x16\x08\x00\x00\x00\x00\xab\xcd\x00\x08\xff")]
    sks_keyring = tmp_path / "sks.gpg"
    sks_keyring.write_bytes(b"".join(p.serialize() for p in unreadable)
                            + b"".join(k.serialize() for k in on_sks[1:]))
    with Cksd(new_db("a"), args=["--recon-port", "0"]) as a:
        loaded = tool("cks_admin.py", ["--db", a.db_url, "load", "--no-sync",
                                       str(write_keyring(tmp_path / "cks.gpg", on_cks))])
        assert loaded.returncode == 0, loaded.stderr
        recon = int(a.wait_for_output(r"cksd recon on [\d.]+:(\d+)").group(1))
        with sks_node(tmp_path / "sks", [sks_keyring],
                      membership=[("127.0.0.1", recon)], gossip_interval_min=0.1) as sks:
            peer = "127.0.0.2:%d" % sks.hkp_port
            assert manage(a, "add", peer, "--type", "recon", "--recon-port",
                          str(sks.recon_port)).returncode == 0
            reread_peers(a)  # SKS's own rounds: cksd answers them from now on
            conf = tmp_path / "a.conf"
            conf.write_text("[server]\nport = %d\nbind = 127.0.0.1\n" % a.port)
            run = sync(a, "--peer", peer, config=str(conf))      # cksd dials: SKS requests
            assert run.returncode == 0, run.stderr + run.stdout
            assert "we lacked 51, the peer lacked 101" in run.stdout.decode(), run.stdout
            held = stored(a)
            assert set(held) == union
            assert held[on_sks[0].fingerprint.hex().upper()] == \
                packets_hash(unreadable).hex().upper()
            # SKS fetches what it lacks from cksd (after its 10 s pause) and
            # in its own gossip rounds, which cksd answers as requester.
            assert sks.wait_for_key_count(len(union), timeout=180) == len(union)
            theirs = read_keys(sks.get_key(alice_cks.fingerprint.hex().upper()).encode()).keys
            assert sks_hash(theirs[0]).hex().upper() == held[alice_cks.fingerprint.hex().upper()]
            # a later round finds nothing left
            deadline = time.monotonic() + 60
            while True:
                out = sync(a, "--peer", peer, config=str(conf)).stdout.decode()
                if "we lacked 0, the peer lacked 0" in out:
                    break
                assert time.monotonic() < deadline, out
                time.sleep(3)
            assert run_sql(a.db_url, "SELECT count(*) FROM cks_pending_sync")[0][0] == 0
