"""Upload order never changes what is served: a designated revoker, the key
naming it and that key's revocation, in all six orders; a certified key and
its certifiers, in both orders.  Each order on a fresh cksd, on SQLite and
PostgreSQL, compared by the served bytes, the index flags and what real GnuPG
imports.  Between uploads, nobody runs `cks_admin.py reverify`."""

import itertools

import pytest

from cks.openpgp import packet as pk
from cks.openpgp import signature as sg
from cks.openpgp.armor import scan
from support import fixture
from support.forge import keyring
from support.gpg import GnuPG, parse_colons
from support.nodes import fpr, settled
from support.procs import tool
from support.server import Cksd

REVOKER, TARGET, REVOKED = "revoker", "desig-revoker", "desig-revoked"


def upload(node, data):
    """Upload, and wait for cksd to derive again what depends on it."""
    status, _, body = node.request("POST", "/pks/add", data,
                                   {"Content-Type": "application/pgp-keys"})
    assert status == 200, body
    settled(node)


def served(node, name):
    status, _, body = node.lookup(op="get", options="mr", search="0x" + fpr(name))
    assert status == 200, body
    return scan(body)[0][0].data


def index_flags(node, name):
    """The flags field of the key's mr index line ('r': revoked)."""
    status, _, body = node.lookup(op="index", options="mr", search="0x" + fpr(name))
    assert status == 200
    (pub,) = [line for line in body.decode().splitlines() if line.startswith("pub:")]
    return pub.split(":")[6]


# GnuPG 2.2.17 and later keep only self-signatures of keys from a keyserver by
# default, and a designated revoker's revocation is not one: to see what is
# served, these tests receive with no-self-sigs-only.
ALL_SIGNATURES = ["--keyserver-options", "no-self-sigs-only"]


def gpg_imports(node, name, others):
    """What `gpg --recv-keys` makes of key `name`, received after `others` (GnuPG
    checks a designated revocation against the revoker's key when it imports
    it): its validity, and the listing of the keys and their signatures, less
    what records when and whence they came (the trust database's line, and
    the last-update and origin fields)."""
    with GnuPG(keyserver="hkp://127.0.0.1:%d" % node.port) as gpg:
        for one in others + [name]:
            gpg.run(ALL_SIGNATURES + ["--recv-keys", fpr(one)])
        listing = gpg.run(["--with-colons", "--list-sigs", fpr(name)] + [fpr(n) for n in others])
        text = listing.stdout.decode()
        lines = [":".join(line.split(":")[:18]) for line in text.splitlines()
                 if not line.startswith("tru:")]
        (key,) = [k for k in parse_colons(text) if k["fingerprint"] == fpr(name)]
        return key["validity"], lines


def state(node, name, others):
    return served(node, name), index_flags(node, name), gpg_imports(node, name, others)


@pytest.fixture
def fresh(new_db, tmp_path):
    """A factory of cksd nodes, each on a new database of the backend under test."""
    nodes = []
    counter = itertools.count()

    def make():
        node = Cksd(new_db("n%d" % next(counter))).start()
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.close()


def test_a_designated_revocation_is_served_whatever_the_order(fresh):
    outcomes = {}
    for order in itertools.permutations([REVOKER, TARGET, REVOKED]):
        node = fresh()
        for name in order:
            upload(node, fixture(name))
        outcomes[order] = state(node, TARGET, [REVOKER])
        node.stop()
    first = next(iter(outcomes.values()))
    assert all(outcome == first for outcome in outcomes.values()), outcomes
    data, flags, imported = first
    assert "r" in flags                                     # verified: revoked in index
    assert imported[0] == "r"                               # and GnuPG sees it revoked
    revocations = [p for p in pk.iter_packets(data) if p.tag == pk.TAG_SIGNATURE
                   and sg.Signature.parse(p.body).sig_type == sg.KEY_REVOCATION]
    assert len(revocations) == 1


def test_an_unverifiable_revocation_is_served_and_said_to_be_unverified(fresh):
    node = fresh()
    upload(node, fixture(REVOKED))                          # the revoker's key is not here
    data = served(node, TARGET)
    assert any(p.tag == pk.TAG_SIGNATURE and sg.Signature.parse(p.body).sig_type
               == sg.KEY_REVOCATION for p in pk.iter_packets(data))
    assert "r" not in index_flags(node, TARGET)             # not verified: not in the flags
    for op in ("index", "vindex"):
        page = node.request("GET", "/pks/lookup?op=%s&search=0x%s" % (op, fpr(TARGET)),
                            headers={"Accept": "text/html"})[2].decode()
        assert "cannot verify" in page
    with GnuPG(keyserver="hkp://127.0.0.1:%d" % node.port) as gpg:
        run = gpg.run(ALL_SIGNATURES + ["--recv-keys", fpr(TARGET)])
        assert b"may be revoked" in run.stderr               # GnuPG keeps it and warns
    upload(node, fixture(REVOKER))                          # now it verifies
    assert "r" in index_flags(node, TARGET)
    page = node.request("GET", "/pks/lookup?op=index&search=0x" + fpr(TARGET),
                        headers={"Accept": "text/html"})[2].decode()
    assert "cannot verify" not in page and "[revoked]" in page


def _tampered_revocation():
    packets = list(pk.iter_packets(scan(fixture(REVOKED))[0][0].data))
    out = []
    for packet in packets:
        if packet.tag == pk.TAG_SIGNATURE and \
                sg.Signature.parse(packet.body).sig_type == sg.KEY_REVOCATION:
            packet = pk.Packet(packet.tag, packet.body[:-1] + bytes([packet.body[-1] ^ 1]))
        out.append(packet)
    return keyring(out)


def test_a_revocation_that_fails_verification_is_withdrawn_once_it_can_be_checked(fresh):
    node = fresh()
    upload(node, _tampered_revocation())
    assert sum(1 for p in pk.iter_packets(served(node, TARGET)) if p.tag == pk.TAG_SIGNATURE
               and sg.Signature.parse(p.body).sig_type == sg.KEY_REVOCATION) == 1
    upload(node, fixture(REVOKER))
    assert not any(p.tag == pk.TAG_SIGNATURE and sg.Signature.parse(p.body).sig_type
                   == sg.KEY_REVOCATION for p in pk.iter_packets(served(node, TARGET)))
    assert index_flags(node, TARGET) == ""
    page = node.request("GET", "/pks/lookup?op=index&search=0x" + fpr(TARGET),
                        headers={"Accept": "text/html"})[2].decode()
    assert "cannot verify" not in page and "[revoked]" not in page


def test_certifications_are_served_whatever_the_order(fresh):
    certifiers = ["rsa2048", "nistp256"]
    outcomes = []
    for order in (["certified"] + certifiers, certifiers + ["certified"]):
        node = fresh()
        for name in order:
            upload(node, fixture(name))
        outcomes.append(state(node, "certified", certifiers))
        node.stop()
    assert outcomes[0] == outcomes[1]
    data = outcomes[0][0]
    issuers = {sg.Signature.parse(p.body).issuer_keyid for p in pk.iter_packets(data)
               if p.tag == pk.TAG_SIGNATURE}
    assert {bytes.fromhex(fpr(n)[-16:]) for n in certifiers} <= issuers


def test_deleting_a_certifier_withdraws_its_certifications(fresh):
    node = fresh()
    for name in ("rsa2048", "nistp256", "certified"):
        upload(node, fixture(name))

    def certified_by():
        data = served(node, "certified")
        return {sg.Signature.parse(p.body).issuer_keyid.hex().upper()
                for p in pk.iter_packets(data) if p.tag == pk.TAG_SIGNATURE} - \
            {fpr("certified")[-16:]}

    assert fpr("rsa2048")[-16:] in certified_by()
    out = tool("cks_admin.py", ["--db", node.db_url, "delete", fpr("rsa2048")])
    assert out.returncode == 0, out.stderr
    assert fpr("rsa2048")[-16:] not in certified_by()
    assert fpr("nistp256")[-16:] in certified_by()
