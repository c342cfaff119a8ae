"""An upload is charged by its work (upload_cost.py): many keys or many
self-signatures put its client's upload bucket in debt."""

import time

from cks.cli.cksd import server_settings
from cks.config import Settings
from cks.hkp.ratelimit import Rate, RateLimiter, parse_networks
from cks.openpgp.keys import parse_keyring, read_keys
from cks.openpgp.packet import Packet
from cks.openpgp.keypacket import PublicKey
from support import fixture
from cks.openpgp.signature import CERT_GENERIC, CERT_POSITIVE
from cks.openpgp.userid import UserID
from support.forge import CREATED, Signer, keyring, made_up_self_signatures, self_signed_key
from support.server import Cksd

BINARY = {"Content-Type": "application/pgp-keys"}


def test_a_charge_goes_into_debt_and_the_next_check_waits_for_it():
    limiter = RateLimiter(Rate(per_second=2, burst=3))
    assert limiter.check("a", now=10.0) == 0
    assert limiter.charge("a", 1, now=10.0)  # 1 token left: out of debt
    assert not limiter.charge("a", 5, now=10.0)  # -4
    assert limiter.check("a", now=10.0) == 2.5  # (1 - -4) / 2 tokens a second
    assert limiter.check("a", now=12.5) == 0
    assert limiter.check("b", now=10.0) == 0  # another client's bucket is its own
    exempt = RateLimiter(Rate(1, 1), exempt=parse_networks("192.0.2.0/24"))
    assert exempt.charge("192.0.2.9", 1000, now=1.0) and exempt.check("192.0.2.9", now=1.0) == 0


def test_the_upload_checks_per_token_setting():
    assert server_settings(Settings(), 11371).upload_checks_per_token == 200
    settings = Settings()
    settings.parser.read_string("[ratelimit]\nupload_checks_per_token = 0\n")
    assert server_settings(settings, 11371).upload_checks_per_token == 0  # one token an upload


def _cksd(db_url, tmp_path, ratelimit):
    """cksd with one serving process (each keeps its own buckets) and these
    `[ratelimit]` lines; loopback is limited as the client X-Forwarded-For names."""
    config = tmp_path / "cks.conf"
    config.write_text("[server]\nprocesses = 1\n[ratelimit]\n" + ratelimit)
    return Cksd(db_url, config=str(config))


def _small_keys(first, count):
    return b"".join(self_signed_key(n.to_bytes(32, "big"), [b"Small %d <s@example.org>" % n])[1]
                    for n in range(first, first + count))


def _post(server, client, body):
    status, headers, _ = server.request("POST", "/pks/add", body,
                                        dict(BINARY, **{"X-Forwarded-For": client}))
    return status, headers.get("retry-after")


def test_an_upload_of_many_keys_puts_its_client_in_debt(db_url, tmp_path):
    # 100 keys of one self-signature each: 200 checks, 10 tokens; the request took one
    with _cksd(db_url, tmp_path, "uploads_per_minute = 6\nupload_burst = 5\n"
                                 "upload_checks_per_token = 20\n") as server:
        assert _post(server, "192.0.2.1", _small_keys(1, 100)) == (200, None)
        status, retry_after = _post(server, "192.0.2.1", _small_keys(200, 1))
        assert status == 429 and int(retry_after) >= 50  # 5 tokens of debt, 6 a minute
        assert _post(server, "192.0.2.2", _small_keys(300, 1))[0] == 200  # another client
        # the operator's own tools (loopback, no X-Forwarded-For) are never charged
        for first in (400, 600, 800):
            assert server.request("POST", "/pks/add", _small_keys(first, 100), BINARY)[0] == 200


def test_single_key_uploads_at_the_allowed_rate_are_never_held_back(db_url, tmp_path):
    with _cksd(db_url, tmp_path, "uploads_per_minute = 600\nupload_burst = 2\n") as server:
        statuses = []
        for n in range(12):
            statuses.append(_post(server, "192.0.2.1", fixture("rsa2048") if n == 0
                                  else _small_keys(n, 1))[0])
            time.sleep(0.12)  # a little slower than 10 a second
        assert statuses == [200] * 12


def _made_up_dsa_keys(count, self_signatures):
    """`count` DSA keys (dsa-elg's primary key, created a second apart),
    each with a user ID and `self_signatures` made-up self-signatures."""
    body = bytearray(read_keys(fixture("dsa-elg")).keys[0].public_key.serialize())
    keys = []
    for n in range(count):
        body[1:5] = (1600000000 + n).to_bytes(4, "big")
        primary = PublicKey.parse(bytes(body))
        keys.append(keyring([Packet(6, bytes(body))] + made_up_self_signatures(
            primary, b"Made Up %d <made-up@example.org>" % n, self_signatures)))
    return b"".join(keys)


def test_a_search_does_not_wait_for_the_views_of_an_upload_over_its_budget(db_url, tmp_path):
    """12 keys of 999 made-up DSA self-signatures: seconds of checks after
    the answer.  Until 2026-12-06 the upload cost one token and every text
    search waited LOOKUP_WAIT_SECONDS (2 s) for its served views."""
    flood = _made_up_dsa_keys(12, 999)
    last = "0x" + parse_keyring(flood).keys[-1].fingerprint.hex().upper()
    with _cksd(db_url, tmp_path, "") as server:  # the defaults: 60 a minute, burst 20
        assert server.add(fixture("rsa2048"))[0] == 200  # a key to search for
        assert server.lookup(op="index", search="rsa2048", options="mr")[0] == 200
        assert _post(server, "192.0.2.1", flood)[0] == 200
        started = time.monotonic()
        assert server.lookup(op="index", search="rsa2048", options="mr")[0] == 200
        assert time.monotonic() - started < 1.5
        status, retry_after = _post(server, "192.0.2.1", _small_keys(1, 1))
        assert status == 429 and int(retry_after) >= 30  # 60 tokens, 19 left in the bucket
        deadline = time.monotonic() + 60  # the background job serves them all the same
        while server.lookup(op="get", search=last, options="mr")[0] != 200:
            assert time.monotonic() < deadline
            time.sleep(0.5)
        assert _post(server, "192.0.2.2", _small_keys(2, 1))[0] == 200  # another client


def _certified_keys(count, certifications, certifier):
    """`count` keys, each with `certifications` certifications by
    `certifier` on its one user ID."""
    keys = []
    for n in range(count):
        owner = Signer.new(seed=(1000 + n).to_bytes(32, "big"))
        user_id = UserID(b"Certified %d <certified@example.org>" % n)
        keys.append(keyring(
            [Packet(6, owner.public.serialize()), Packet(13, user_id.value),
             Packet(2, owner.sign(CERT_POSITIVE, owner.public, user_id).serialize())]
            + [Packet(2, certifier.sign(CERT_GENERIC, owner.public, user_id,
                                        created=CREATED + i).serialize())
               for i in range(certifications)]))
    return keys


def test_certifications_by_keys_not_held_cost_no_check(db_url, tmp_path):
    """Keys of 300 certifications each, sent one by one as dirmngr sends
    them (the defaults: 60 a minute, a burst of 20): by a key not held, they
    cost no check, and 20 of them are each charged their one token; by a key
    held, 301 checks, a token and a half each.  For a few hours on
    2026-12-06 every certification counted: the Debian keyring's 20 best
    certified keys in one gpg --send-keys got 429 for 12 of them (found by
    a review)."""
    certifier = Signer.new(seed=b"\x09" * 32)
    keys = _certified_keys(36, 300, certifier)
    with _cksd(db_url, tmp_path, "") as server:
        assert [_post(server, "192.0.2.1", key)[0] for key in keys[:20]] == [200] * 20
        _, certifiers_key = self_signed_key(b"\x09" * 32, [b"Certifier"])
        assert server.request("POST", "/pks/add", certifiers_key, BINARY)[0] == 200
        statuses = [_post(server, "192.0.2.2", key)[0] for key in keys[20:]]
        assert statuses[:13] == [200] * 13 and 429 in statuses[13:], statuses
