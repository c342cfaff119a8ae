"""Keys that a fuzz campaign through the whole key path (2026-12-04) found
to break cksd: each is uploaded, with a plain key after it, and then every
lookup answers, both keys' served views are derived and nothing is left in
the queue of views to derive.  Before the fixes, the first three made the
lookups that settle owed views answer 500 (on both databases) and the
background job fail at every round, so no key uploaded after them was
served; the last two did the same on PostgreSQL alone."""

import email
import json
import random
import threading
import tracemalloc

import pytest

from cks import pipeline, views
from cks.hkp.app import KeyServer, Request, ServerSettings
from cks.openpgp import cryptocheck
from cks.openpgp.keypacket import PublicKey
from cks.openpgp.errors import PacketError
from cks.openpgp.keys import read_keys
from cks.openpgp.packet import Packet
from cks.openpgp.signature import SUB_EXPIRATION_TIME, SUB_KEY_EXPIRATION_TIME, Subpacket
from cks.openpgp.userid import UserAttribute, UserID
from cks.openpgp.verify import verify
from cks.store import open_store
from cks.sync.mail_in import parse_mail
from support import fixture
from support.db import run_sql
from support.forge import Signer, keyring, made_up_self_signatures

OVER_64_KIB = b"\x04" + (1700000000).to_bytes(4, "big") + bytes([99]) + b"A" * 70000
"""A v4 key packet of an unknown algorithm (its material kept whole) too
long for the two-octet length a v4 fingerprint hashes."""


def _header(tag, length):
    return bytes((0xC0 | tag, 0xFF)) + length.to_bytes(4, "big")


def _signed(uid=b"Hostile <h@example.org>", hashed=(), attribute=None):
    """A key whose one user ID (and `attribute`) is validly self-signed."""
    signer = Signer.new()
    user_id = UserID(uid)
    packets = [Packet(6, signer.public.serialize()), Packet(13, user_id.value),
               Packet(2, signer.sign(0x13, signer.public, user_id, hashed=hashed).serialize())]
    if attribute is not None:
        value = UserAttribute.parse(attribute)
        packets += [Packet(17, attribute),
                    Packet(2, signer.sign(0x13, signer.public, value).serialize())]
    return signer.public.fingerprint.hex().upper(), keyring(packets)


def _big_subkey():
    fingerprint, data = _signed(b"Big Subkey <b@example.org>")
    return fingerprint, data + _header(14, len(OVER_64_KIB)) + OVER_64_KIB


HOSTILE = {
    "a subkey packet over 64 KiB": _big_subkey,
    "a photo ID whose image header has no format octet":
        lambda: _signed(b"Photo <p@example.org>", attribute=b"\x04\x01\x03\x00\x01"),
    "a key expiration time of three octets": lambda: _signed(
        hashed=[Subpacket(SUB_KEY_EXPIRATION_TIME, b"\x01\x02\x03")]),
    "a signature expiration time of one octet": lambda: _signed(
        hashed=[Subpacket(SUB_EXPIRATION_TIME, b"\x01")]),
    "a NUL in the user ID": lambda: _signed(b"Nul\x00byte <n@example.org>"),
    "an e-mail address of 9,000 characters": lambda: _signed(
        b"Long <" + bytes(random.Random(7).choices(b"abcdefghijklmnopqrstuvwxyz0123456789",
                                                   k=9000)) + b"@example.org>"),
}


def _call(app, method, target, body=b""):
    return app.handle(Request(method, target, {"content-type": "application/pgp-keys"},
                              body, "127.0.0.1"))


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_a_hostile_key_is_served_and_holds_up_no_other(store, db_url, kind):
    app = KeyServer(store, ServerSettings())
    hostile, data = HOSTILE[kind]()
    plain, plain_data = _signed(b"Plain Other <other@example.org>")
    assert _call(app, "POST", "/pks/add", data).status == 200
    assert _call(app, "POST", "/pks/add", plain_data).status == 200
    # A lookup by fingerprint derives the views owed that it finds (it reads
    # the key IDs of every key owed); a search by words derives them all.
    answer = _call(app, "GET", "/pks/lookup?op=get&options=mr&search=0x" + plain)
    assert answer.status == 200, answer.body[:300]
    answer = _call(app, "GET", "/pks/lookup?op=index&options=mr&search=other")
    assert answer.status == 200 and plain.encode() in answer.body
    for target in ["/pks/lookup?op=get&options=mr&search=0x" + hostile,
                   "/pks/lookup?op=vindex&search=0x" + hostile,
                   "/pks/lookup?op=index&options=mr&search=example.org",
                   "/pks/lookup?op=stats", "/pks/lookup?op=stats&options=mr"]:
        answer = _call(app, "GET", target)
        assert answer.status == 200, (target, answer.body[:300])
    assert app.serve_views() and app.follow_views()
    assert run_sql(db_url, "SELECT count(*) FROM cks_view_work") == [(0,)]
    assert run_sql(db_url, "SELECT count(*) FROM cks_keys WHERE served_crc24 = -1") == [(0,)]


def test_a_primary_key_packet_over_64_kib_is_refused_and_nothing_stored(store, db_url):
    app = KeyServer(store, ServerSettings())
    answer = _call(app, "POST", "/pks/add", _header(6, len(OVER_64_KIB)) + OVER_64_KIB)
    assert answer.status == 422 and b"65,535" in answer.body
    assert run_sql(db_url, "SELECT count(*) FROM cks_keys") == [(0,)]
    with pytest.raises(PacketError, match="65,535"):
        PublicKey.parse(OVER_64_KIB)


def test_text_stored_for_a_user_id_has_no_nul_and_no_overlong_address():
    assert UserID(b"Nul\x00byte <n@example.org>").text == "Nul\ufffdbyte <n@example.org>"
    assert UserID(b"<" + b"x" * 242 + b"@example.org>").email == "x" * 242 + "@example.org"
    assert UserID(b"<" + b"x" * 243 + b"@example.org>").email is None


@pytest.mark.parametrize("subject", [b"=?utf-8?b?QUREIGtleQ=<?=", b"=?ut\xe6-8?b?QUREIGtleQ==?="])
def test_a_mail_with_a_malformed_encoded_subject_is_read(subject):
    """Such a Subject raised out of parse_mail, and cks_mail_sync.py exited
    75 (try again later) for a mail that can never be read differently."""
    raw = b"From: peer@example.org\nSubject: " + subject + b"\nContent-Type: text/plain\n\nx\n"
    mail = parse_mail(raw)
    assert mail.subject == str(email.message_from_bytes(raw)["Subject"])


def test_a_v3_key_is_not_replaced_by_another_with_its_fingerprint(store, db_url):
    """A v3 fingerprint hashes only the RSA numbers: a copy of the key packet
    with another creation time has the same fingerprint.  It used to replace
    the stored key, its packets (a revocation among them) gone."""
    app = KeyServer(store, ServerSettings())
    assert _call(app, "POST", "/pks/add", fixture("v3-rsa")).status == 200
    (held,) = read_keys(fixture("v3-rsa")).keys
    fingerprint = held.fingerprint.hex().upper()
    stored = run_sql(db_url, "SELECT keydata FROM cks_keys")
    other = bytearray(held.primary.body)
    other[1:5] = (int.from_bytes(other[1:5], "big") + 86400).to_bytes(4, "big")  # created
    (copy,) = read_keys(Packet(6, bytes(other)).serialize() + b"".join(
        p.serialize() for p in held.packets()[1:])).keys
    assert copy.fingerprint == held.fingerprint
    answer = _call(app, "POST", "/pks/add?options=mr", copy.serialize())
    assert answer.status == 409, answer.body
    assert json.loads(answer.body)["refused"] == [
        {"fingerprint": fingerprint,
         "reason": "another key with this fingerprint is held here (its primary key "
                   "packet differs)"}]
    assert run_sql(db_url, "SELECT keydata FROM cks_keys") == stored


def test_a_key_whose_view_fails_to_derive_holds_up_no_other(store, db_url, monkeypatch,
                                                             caplog):
    """Whatever the next such bug is: the key it hits is left as it was
    (here: not served), logged, and every other key is served."""
    app = KeyServer(store, ServerSettings())
    hostile, data = _signed(b"Doomed <d@example.org>")
    plain, plain_data = _signed(b"Plain Other <other@example.org>")
    real_derive, real_ids = views.derive_view, views.key_ids

    def derive(key, *args):
        if key.fingerprint.hex().upper() == hostile:
            raise IndexError("a bug")
        return real_derive(key, *args)

    def ids(keydata):
        if keydata == data:
            raise OverflowError("another bug")
        return real_ids(keydata)
    monkeypatch.setattr(views, "derive_view", derive)
    monkeypatch.setattr(views, "key_ids", ids)
    assert _call(app, "POST", "/pks/add", data).status == 200
    assert _call(app, "POST", "/pks/add", plain_data).status == 200
    assert _call(app, "GET", "/pks/lookup?op=get&options=mr&search=0x" + plain).status == 200
    answer = _call(app, "GET", "/pks/lookup?op=index&options=mr&search=other")
    assert answer.status == 200 and plain.encode() in answer.body
    assert _call(app, "GET", "/pks/lookup?op=get&search=0x" + hostile).status == 404
    assert app.follow_views()
    assert run_sql(db_url, "SELECT count(*) FROM cks_view_work") == [(0,)]
    logged = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any("served view of key %s not derived" % hostile in m for m in logged), logged
    assert any("key IDs of key %s not read" % hostile in m for m in logged), logged


def test_a_flood_of_signature_packets_is_refused_without_being_held(store):
    """`max_packets_per_key` counts the packets as sent: past it a key's
    packets are counted, not parsed or kept.  150,000 junk signature
    packets (1.8 MB) on a good key took 34 MB and 10 s to read, and the key
    was stored with 150,000 problems listed in the answer."""
    _, data = _signed(b"Flood <f@example.org>")
    junk = Packet(2, b"\x04\x10\x16\x08\x00\x00\x00\x00\x00\x00").serialize()
    tracemalloc.start()
    try:
        report = pipeline.submit(store, data + junk * 150_000, pipeline.Source.user(),
                                 pipeline.Limits(max_packets_per_key=1000), binary=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    (outcome,) = report.outcomes
    assert (outcome.status, outcome.refusal) == (pipeline.REFUSED, pipeline.OVER_LIMIT)
    assert outcome.reason.startswith("has ") and \
        outcome.reason.endswith(" packets, over this server's limit of 1000")
    assert int(outcome.reason.split()[1]) > 100_000
    assert len(report.problems) < 1000 and peak < 8 << 20


def test_an_updates_signature_checks_come_before_its_transaction(store, db_url, monkeypatch):
    """A key held here sent again with a user ID and hundreds of made-up
    self-signatures (a DSA check each): the checks run before the update's
    write transaction (views.checked_before_writing), so another writer of
    the same key (PostgreSQL: its lock; SQLite: the database's one write
    lock) goes on meanwhile; each signature is checked once."""
    pipeline.submit(store, fixture("dsa-elg"), pipeline.Source.user())
    key = read_keys(fixture("dsa-elg")).keys[0]
    fingerprint = key.fingerprint.hex().upper()
    invalid = "SELECT count(*) FROM cks_sig_verdicts WHERE key_fingerprint = ? " \
              "AND status = 'invalid'"
    [(before,)] = run_sql(db_url, invalid, (fingerprint,))
    flooded = key.serialize() + keyring(
        made_up_self_signatures(key.public_key, b"Made Up <made-up@example.org>", 300))
    checking, go = threading.Event(), threading.Event()
    checks = []

    def held_up_verify(*args):
        checks.append(1)
        checking.set()
        go.wait(30)
        return verify(*args)
    monkeypatch.setattr(cryptocheck, "verify", held_up_verify)
    outcomes = []
    update = threading.Thread(target=lambda: outcomes.extend(pipeline.submit(
        store, flooded, pipeline.Source.user()).outcomes), daemon=True)
    update.start()
    try:
        assert checking.wait(30)
        other = open_store(db_url, statement_timeout=2)
        try:
            with other.write([fingerprint]) as cursor:  # (waits for no check)
                cursor.execute("SELECT 1")
        finally:
            other.close()
    finally:
        go.set()
        update.join(60)
    assert [(o.status, o.fingerprint) for o in outcomes] == [(pipeline.UPDATED, fingerprint)]
    assert len(checks) == 300  # (the transaction found them all checked)
    assert run_sql(db_url, invalid, (fingerprint,)) == [(before + 300,)]
