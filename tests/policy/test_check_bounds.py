"""What a key with made-up signatures can cost: a signature check each (up to
2 ms for DSA at 4096 bits) for about 124 bytes.  Self-signatures (and
revocations by a designated revoker) are bounded where keys are stored: a
key over `max_self_signatures_per_key` is refused whole and changes
nothing.  Third-party certifications are bounded where views are derived:
at most `max_certification_checks` checks a key, shared by its user IDs in
turn."""

import random

import pytest

from cks import pipeline
from cks.openpgp import cryptocheck
from cks.openpgp import packet as pk
from cks.openpgp import signature as sg
from cks.openpgp.cryptocheck import CryptoCheck
from cks.openpgp.keys import parse_keyring, read_keys
from cks.openpgp.userid import UserID
from cks.openpgp.verify import verify
from cks.served import ServePolicy, served_view
from support import fixture
from support.db import run_sql
from support.forge import CREATED, Signer, key_of_made_up_self_signatures, keyring
from support.procs import tool
from support.server import Cksd


@pytest.fixture
def checks(monkeypatch):
    """Every signature check made, as (issuer fingerprint, signature created)."""
    made = []

    def counted(key, component, sig, issuer):
        made.append((issuer.fingerprint, sig.created))
        return verify(key, component, sig, issuer)
    monkeypatch.setattr(cryptocheck, "verify", counted)
    return made


def _certified_twice(junk_on_first):
    """A key with user IDs "one" and "two", each self-certified and
    certified by `certifier`, and `junk_on_first` made-up certifications
    naming the certifier on "one", all newer than the real ones."""
    owner, certifier = Signer.new(), Signer.new()
    rng = random.Random(junk_on_first)
    packets = [pk.Packet(pk.TAG_PUBLIC_KEY, owner.public.serialize())]
    for name in (b"one", b"two"):
        packets.append(pk.Packet(pk.TAG_USER_ID, name))
        signatures = [owner.sign(sg.CERT_POSITIVE, owner.public, UserID(name)),
                      certifier.sign(sg.CERT_GENERIC, owner.public, UserID(name),
                                     created=CREATED + 10)]
        if name == b"one":
            signatures += [certifier.made_up(sg.CERT_GENERIC, owner.public, UserID(name),
                                             CREATED + 100 + n, rng)
                           for n in range(junk_on_first)]
        packets += [pk.Packet(pk.TAG_SIGNATURE, s.serialize()) for s in signatures]
    (key,) = parse_keyring(keyring(packets)).keys
    return key, owner, certifier


def _third_party(served, name):
    (uid,) = [u for u in served.key.user_ids if u.packet.body == name]
    return [e for e in uid.sigs if not served.key.is_self_issued(e.sig)]


def test_made_up_certifications_cost_the_budget_and_no_other_user_ids_share(checks):
    key, owner, certifier = _certified_twice(300)
    held = {certifier.public.keyid: [certifier.public]}
    served = served_view(key, CryptoCheck({}), ServePolicy(max_certification_checks=50),
                         lambda keyid: held.get(keyid, ()))
    by_certifier = [c for c in checks if c[0] == certifier.public.fingerprint]
    assert len(by_certifier) == 50 and len(checks) == 52  # (two self-certifications)
    # "two" took its turn beside the flooded "one": its real certification is served.
    assert [e.sig.created for e in _third_party(served, b"two")] == [CREATED + 10]
    # "one"'s real certification, older than the 300 made up, was not reached.
    assert _third_party(served, b"one") == []

    checks.clear()
    served = served_view(key, CryptoCheck({}), ServePolicy(), lambda keyid: held.get(keyid, ()))
    assert len(checks) == 2 + 302  # under the default budget every one is checked
    assert [e.sig.created for e in _third_party(served, b"one")] == [CREATED + 10]
    assert [e.sig.created for e in _third_party(served, b"two")] == [CREATED + 10]


def test_the_budget_bounds_checks_alone(checks):
    """`all` serves certifications unchecked: no budget applies."""
    key, _, certifier = _certified_twice(30)
    served = served_view(key, CryptoCheck({}), ServePolicy("all", max_certifications=20,
                                                         max_certification_checks=0))
    assert len(_third_party(served, b"one")) == 20  # newest first: the made-up ones
    assert len(_third_party(served, b"two")) == 1
    assert len(checks) == 2


def _made_up_on_dsa_elg(count):
    """dsa-elg's key, and its primary key with a user ID and `count`
    made-up self-signatures on it (forge.key_of_made_up_self_signatures)."""
    key = read_keys(fixture("dsa-elg")).keys[0]
    return key, key_of_made_up_self_signatures(key.public_key, count)


def _post(server, data):
    return server.request("POST", "/pks/add", data, {"Content-Type": "application/pgp-keys"})


def test_too_many_self_signatures_are_refused_and_change_nothing(db_url):
    """Through cksd with its defaults: a new key with 1,001 made-up
    self-signatures is refused before any check; a key held here sent with
    enough of them that the merged key is over the limit is refused and
    stays as it was."""
    key, flooded = _made_up_on_dsa_elg(1001)
    own = pipeline.own_checks(key)
    assert 0 < own < 10
    with Cksd(db_url) as server:
        status, _, answer = _post(server, flooded)
        assert status == 413, answer
        assert b"has 1001 self-signatures and revocations, over this server's limit of " \
            b"1000" in answer
        assert run_sql(db_url, "SELECT count(*) FROM cks_keys") == [(0,)]

        assert _post(server, fixture("dsa-elg"))[0] == 200
        before = run_sql(db_url, "SELECT sks_hash, keydata FROM cks_keys")
        _, flooded = _made_up_on_dsa_elg(1001 - own)  # (under the limit alone)
        status, _, answer = _post(server, flooded)
        assert status == 413, answer
        assert b"merged key has 1001 self-signatures and revocations" in answer
        assert run_sql(db_url, "SELECT sks_hash, keydata FROM cks_keys") == before
    assert run_sql(db_url, "SELECT count(*) FROM cks_sig_verdicts WHERE key_fingerprint = ? "
                           "AND status = 'invalid'", (key.fingerprint.hex().upper(),)) == [(0,)]


def test_the_bulk_load_reads_the_limit_from_the_configuration(db_url, tmp_path):
    config = tmp_path / "cks.conf"
    config.write_text("[limits]\nmax_self_signatures_per_key = 20\n")
    _, flooded = _made_up_on_dsa_elg(21)
    out = tool("cks_admin.py", ["--db", db_url, "--config", str(config), "load", "-"],
               input=flooded + read_keys(fixture("rsa2048")).keys[0].serialize())
    assert out.returncode == 1
    assert out.stdout.decode().startswith("1 added, 0 updated, 0 unchanged, 1 refused "
                                          "(over-limit: 1)"), out.stdout
    assert "self-signatures and revocations, over this server's limit of 20" in \
        out.stderr.decode()
