"""The [policy] certifications setting: all, verified, attested, none; and the cap."""

import json
import os

import pytest

from cks.openpgp.keys import read_keys
from support import FIXTURES, fixture
from support.server import LOOPBACK_EXEMPT, Cksd

with open(os.path.join(FIXTURES, "attested.json")) as _handle:
    ATTESTED = json.load(_handle)  # made by tests/fixtures/make_attested.py with Sequoia's sq


def third_party_issuers(server, name):
    key = read_keys(fixture(name)).keys[0]
    body = server.lookup(op="get", options="mr", search="0x" + key.fingerprint.hex())[2]
    (served,) = read_keys(body).keys
    return sorted(s.sig.issuer_keyid.hex().upper() for s in served.user_ids[0].sigs
                  if not served.is_self_issued(s.sig))


def keyid(name):
    return read_keys(fixture(name)).keys[0].keyid.hex().upper()


@pytest.fixture
def server_with(db_url, tmp_path):
    def start(policy, cap=100):
        config = tmp_path / ("%s.conf" % policy)
        config.write_text("[policy]\ncertifications = %s\nmax_certifications = %d\n%s"
                          % (policy, cap, LOOPBACK_EXEMPT))
        server = Cksd(db_url, config=str(config)).start()
        for name in ("rsa2048", "certified", "attested"):
            assert server.add(fixture(name))[0] == 200
        return server
    started = []

    def factory(policy, cap=100):
        started.append(start(policy, cap))
        return started[-1]
    yield factory
    for server in started:
        server.close()


def test_verified_keeps_what_verifies_against_keys_held_here(server_with):
    server = server_with("verified")
    # certified.asc is certified by rsa2048 (held here) and nistp256 (not held)
    assert third_party_issuers(server, "certified") == [keyid("rsa2048")]
    assert third_party_issuers(server, "attested") == []


def test_all_keeps_every_one_up_to_the_cap(server_with):
    server = server_with("all", cap=1)
    issuers = third_party_issuers(server, "certified")
    assert len(issuers) == 1  # capped, newest first


def test_attested_keeps_only_what_the_key_holder_attested(server_with):
    server = server_with("attested")
    assert third_party_issuers(server, "attested") == [ATTESTED["attested"]]
    assert third_party_issuers(server, "certified") == []


def test_none_keeps_no_certification(server_with):
    server = server_with("none")
    assert third_party_issuers(server, "certified") == []
    assert third_party_issuers(server, "attested") == []


def test_bad_policy_is_a_clear_startup_error(tmp_path):
    from support.procs import tool
    config = tmp_path / "cks.conf"
    config.write_text("[policy]\ncertifications = some\n")
    out = tool("cksd.py", ["--db", "sqlite:///%s" % (tmp_path / "k.db"), "--port", "0",
                           "--config", str(config)])
    assert out.returncode == 1
    assert b"certification policy must be one of all, verified, attested, none" in out.stderr
