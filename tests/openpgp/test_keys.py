"""Grouping packets into keys, what is dropped or refused, merge and the SKS hash."""

import hashlib

import pytest

from cks.openpgp import keys, packet as pk
from cks.openpgp.armor import scan
from support import fixture


def _binary(name):
    return scan(fixture(name))[0][0].data


def _packets(name):
    return list(pk.iter_packets(_binary(name)))


def _join(packets):
    return b"".join(p.serialize() for p in packets)


def _one_key(data):
    result = keys.parse_keyring(data)
    assert result.problems == [], [str(p) for p in result.problems]
    (key,) = result.keys
    return key


def _packet_set(key):
    return {(p.tag, p.body) for p in key.packets()}


def test_grouping_of_a_full_key():
    key = _one_key(_binary("revoked-parts"))
    assert len(key.user_ids) == 2 and len(key.subkeys) == 2
    assert all(c.sigs for c in key.user_ids + key.subkeys)
    assert _packet_set(key) == {(p.tag, p.body) for p in _packets("revoked-parts")}


def test_marker_padding_and_trust_packets_are_dropped():
    packets = _packets("rsa2048")
    marker = pk.Packet(pk.TAG_MARKER, b"PGP")
    padding = pk.Packet(pk.TAG_PADDING, b"\0" * 32)
    trust = pk.Packet(pk.TAG_TRUST, b"\x00\x00")
    data = _join([marker] + packets[:2] + [trust] + packets[2:] + [padding])
    key = _one_key(data)
    assert _packet_set(key) == {(p.tag, p.body) for p in packets}


def test_non_critical_unknown_tags_are_dropped():
    packets = _packets("rsa2048")
    data = _join(packets[:1] + [pk.Packet(45, b"whatever")] + packets[1:])
    assert _packet_set(_one_key(data)) == {(p.tag, p.body) for p in packets}


@pytest.mark.parametrize("tag", [15, 16, 22, 39])
def test_critical_unknown_tags_make_the_key_malformed(tag):
    packets = _packets("rsa2048")
    other = _packets("nistp256")
    data = _join(packets[:2] + [pk.Packet(tag, b"x")] + packets[2:] + other)
    result = keys.parse_keyring(data)
    assert [k.fingerprint for k in result.keys] == [_one_key(_join(other)).fingerprint]
    (problem,) = result.problems
    assert "unknown critical packet tag %d" % tag in str(problem) and problem.fatal


def test_secret_subkey_inside_a_public_key_is_refused():
    packets = _packets("rsa2048")
    data = _join(packets + [pk.Packet(pk.TAG_SECRET_SUBKEY, packets[-2].body)])
    result = keys.parse_keyring(data)
    assert result.keys == [] and "secret key material refused" in str(result.problems[0])


def test_messages_are_not_keys():
    literal = pk.Packet(pk.TAG_LITERAL, b"b\x00\x00\x00\x00\x00hello")
    result = keys.parse_keyring(literal.serialize())
    assert result.keys == [] and "OpenPGP message" in str(result.problems[0])


TRUNCATED_MPI = b"\x04\x10\x16\x08\x00\x00\x00\x00\xab\xcd\x00\x08\xff"
"""A v4 signature body whose one MPI says 8 bits and ends before them."""


@pytest.mark.parametrize("where", [1, 3, -1])  # on the key itself, a user ID, a subkey
def test_an_unreadable_signature_is_kept_as_sent_and_not_served(where):
    """SKS and Hockeypuck keep every packet and hash them all: until
    2026-12-06 CKS dropped a signature it could not read, so its SKS hash
    of the key was another than theirs, and an SKS peer that held the key
    fetched it from us again at every round."""
    packets = _packets("rsa2048")
    for bad in (pk.Packet(pk.TAG_SIGNATURE, b"\x07" + packets[2].body[1:]),  # version 7
                pk.Packet(pk.TAG_SIGNATURE, TRUNCATED_MPI)):
        sent = packets[:where] + [bad] + packets[where:] if where > 0 else packets + [bad]
        result = keys.parse_keyring(_join(sent))
        (key,) = result.keys
        assert _packet_set(key) == {(p.tag, p.body) for p in sent}
        assert keys.sks_hash(key) == keys.packets_hash(sent)
        assert bad.body not in {e.packet.body for c in [key] + key.identities + key.subkeys
                                for e in (c.direct_sigs if c is key else c.sigs)}
        (problem,) = result.problems
        assert not problem.fatal and "cannot be read" in str(problem)
        # read again from what is stored: the same key, the same hash
        again = _one_key_with_problems(key.serialize())
        assert again.serialize() == key.serialize()
        # a union with a copy that lacks it keeps it, once
        merged = keys.merge(keys.parse_keyring(_join(packets)).keys[0], key)
        assert merged.serialize() == key.serialize()
        assert keys.merge(key, key).serialize() == key.serialize()


def test_an_unreadable_subkey_is_kept_with_its_signatures_after_the_others():
    packets = _packets("rsa2048")
    subkey = next(p for p in packets if p.tag == pk.TAG_PUBLIC_SUBKEY)
    binding = packets[packets.index(subkey) + 1]
    unknown = pk.Packet(pk.TAG_PUBLIC_SUBKEY, b"\x63" + subkey.body[1:])  # version 99
    sent = packets[:3] + [unknown, binding] + packets[3:]
    result = keys.parse_keyring(_join(sent))
    (key,) = result.keys
    assert keys.sks_hash(key) == keys.packets_hash(sent)
    assert [c.value for c in key.subkeys] == [keys.parse_keyring(_join(packets)).keys[0]
                                              .subkeys[0].value]
    (component,) = key.unread_components
    assert component.packet.body == unknown.body and component.unread == [binding]
    assert [p.body for p in key.packets()[-2:]] == [unknown.body, binding.body]
    assert "a subkey that cannot be read" in str(result.problems[0])


def _one_key_with_problems(data):
    (key,) = keys.parse_keyring(data).keys
    return key


def test_truncated_input_keeps_the_keys_before_it():
    first = _binary("rsa2048")
    second = _binary("nistp256")
    result = keys.parse_keyring(first + second[:-10])
    assert len(result.keys) == 1 and "incomplete" in str(result.problems[0])


@pytest.mark.parametrize("cut", [1, 2, 3, 10, 40])
def test_input_cut_inside_a_keys_first_packet_keeps_the_whole_key_before_it(cut):
    """The broken key packet starts a key of its own: the one read before
    it is whole (until 2026-12-05 it was skipped in its place, and named
    as the incomplete one)."""
    first, second = _binary("rsa2048"), _binary("nistp256")
    result = keys.parse_keyring(first + second[:cut])
    assert [k.fingerprint for k in result.keys] == [keys.parse_keyring(first).keys[0].fingerprint]
    (problem,) = result.problems
    assert problem.fingerprint is None and "offset %d" % len(first) in str(problem)
    assert "the key starting there is incomplete and was skipped" in str(problem)
    both = keys.parse_keyring(first + second + first[:cut])
    assert len(both.keys) == 2 and len(both.problems) == 1


def test_data_before_the_first_key():
    uid = pk.Packet(pk.TAG_USER_ID, b"nobody")
    result = keys.parse_keyring(uid.serialize() + _binary("rsa2048"))
    assert len(result.keys) == 1  # the stream recovers at the next primary key
    assert "before the first public key packet" in str(result.problems[0])


def test_empty_and_garbage_input():
    assert "empty input" in str(keys.read_keys(b"").problems[0])
    assert "no OpenPGP data" in str(keys.read_keys(b"hello world").problems[0])
    assert keys.read_keys(b"\xff\xff\xff").keys == []


# --- canonical form and merge -------------------------------------------------

def test_merge_of_two_exports_equals_the_later_one():
    early = _one_key(_binary("alice-t1"))
    late = _one_key(_binary("alice-t2"))
    assert _packet_set(early) < _packet_set(late)
    merged = keys.merge(early, late)
    assert _packet_set(merged) == _packet_set(late)
    assert merged.serialize() == keys.merge(late, early).serialize()


def _sub_keys(name, selections):
    """Copies of a key holding only some of its non-primary packets."""
    packets = _packets(name)
    out = []
    for chooser in selections:
        # keep the structure: a signature is only kept with its component
        kept, keep_current = [packets[0]], True
        for index, packet in enumerate(packets[1:], 1):
            if packet.tag != pk.TAG_SIGNATURE:
                keep_current = chooser(index)
                if keep_current:
                    kept.append(packet)
            elif keep_current and chooser(index):
                kept.append(packet)
        out.append(_one_key(_join(kept)))
    return out


def test_merge_laws_on_copies_of_one_key():
    a, b, c = _sub_keys("certified", [lambda i: i % 2 == 0, lambda i: i % 3 != 0,
                                      lambda i: i > 3])
    ab = keys.merge(a, b)
    assert ab.serialize() == keys.merge(b, a).serialize()                       # commutative
    assert keys.merge(ab, c).serialize() == keys.merge(a, keys.merge(b, c)).serialize()
    assert keys.merge(ab, ab).serialize() == ab.serialize()                    # idempotent
    assert _packet_set(ab) == _packet_set(a) | _packet_set(b)                  # union


def test_duplicate_packets_are_stored_once():
    packets = _packets("rsa2048")
    doubled = _join(packets + packets[1:])  # the same uid and subkey again, in one key
    key = _one_key(doubled)
    assert len(key.packets()) == len(packets)


def test_merging_different_keys_is_refused():
    from cks.openpgp.errors import PGPError
    with pytest.raises(PGPError, match="cannot merge different keys"):
        keys.merge(_one_key(_binary("rsa2048")), _one_key(_binary("nistp256")))


def test_merge_all_groups_by_primary_key():
    data = _binary("alice-t1") + _binary("rsa2048") + _binary("alice-t2")
    merged = keys.merge_all(keys.parse_keyring(data).keys)
    assert len(merged) == 2
    assert _packet_set(merged[0]) == _packet_set(_one_key(_binary("alice-t2")))


def _reference_sks_hash(packets):
    """SKS's hash as SKS 1.1.6 keyHash.ml computes it, written independently."""
    items = sorted((p.tag, p.body) for p in packets)
    data = b"".join(t.to_bytes(4, "big") + len(b).to_bytes(4, "big") + b for t, b in items)
    return hashlib.md5(data).digest()


@pytest.mark.parametrize("name", ["rsa2048", "certified", "photo", "revoked-parts",
                                  "alice-t2", "v6-ed25519"])
def test_sks_hash(name):
    key = _one_key(_binary(name))
    assert keys.sks_hash(key) == _reference_sks_hash(_packets(name))


def test_sks_hash_ignores_order_and_framing():
    packets = _packets("rsa2048")
    reordered = packets[:1] + packets[3:] + packets[1:3]  # subkey before user ID
    old_framing = [pk.Packet(p.tag, p.body,
                             bytes((0x80 | (p.tag << 2) | 2,)) + len(p.body).to_bytes(4, "big")
                             + p.body) for p in reordered]
    key = _one_key(_join(old_framing))
    assert keys.sks_hash(key) == keys.sks_hash(_one_key(_join(packets)))


def test_signature_subpacket_accessors():
    key = _one_key(_binary("revoked"))
    (revocation,) = [s.sig for s in key.direct_sigs if s.sig.sig_type == 0x20]
    code, text = revocation.revocation_reason
    assert code == 2 and text  # "key compromised", with the text given to --gen-revoke
    assert revocation.exportable and revocation.created is not None
    selfsig = key.user_ids[0].sigs[0].sig
    assert selfsig.key_flags & 0x03 and selfsig.issuer_fingerprint == key.fingerprint
    named = _one_key(_binary("desig-revoker"))
    (direct,) = [s.sig for s in named.direct_sigs]
    (revoker,) = direct.revocation_keys
    assert revoker.fingerprint == _one_key(_binary("revoker")).fingerprint
    expiring = _one_key(_binary("expires-2040"))
    sig = expiring.user_ids[0].sigs[-1].sig
    assert expiring.public_key.created + sig.key_expiration_seconds == 2208988800


def test_a_key_keeps_at_most_max_packets_and_counts_the_rest():
    data = _binary("revoked-parts")
    whole = _one_key(data)
    count = len(whole.packets())
    (capped,) = keys.parse_keyring(data, max_packets=count - 3).keys
    assert len(capped.packets()) <= count - 3 and capped.skipped == 3
    assert _one_key(data).skipped == 0
    assert keys.parse_keyring(data, max_packets=count).keys[0].skipped == 0
    assert keys.merge(capped, capped).skipped == 6  # (each copy as read)
