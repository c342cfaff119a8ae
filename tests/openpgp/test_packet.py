import tracemalloc

import pytest

from cks.openpgp import packet as pk
from cks.openpgp.errors import PacketError


def _all(data):
    return list(pk.iter_packets(data))


@pytest.mark.parametrize("length", [0, 1, 191, 192, 193, 8383, 8384, 70000])
def test_new_format_lengths_round_trip(length):
    body = bytes(length)
    data = pk.encode_header(13, length) + body
    (packet,) = _all(data)
    assert (packet.tag, packet.body) == (13, body)
    assert packet.raw is None  # canonical: no second copy kept
    assert packet.serialize() == data


@pytest.mark.parametrize("length_type,size", [(0, 1), (1, 2), (2, 4)])
def test_old_format_lengths_round_trip(length_type, size):
    body = b"x" * 100
    data = bytes((0x80 | (13 << 2) | length_type,)) + (100).to_bytes(size, "big") + body
    (packet,) = _all(data)
    assert (packet.tag, packet.body) == (13, body)
    assert packet.serialize() == data  # original framing kept
    assert packet.canonical().serialize() == pk.encode_header(13, 100) + body


@pytest.mark.parametrize("data", [
    bytes((0x80 | (13 << 2) | 1,)) + (3).to_bytes(2, "big") + b"abc",  # legacy format
    b"\xcd\xff\x00\x00\x00\x03abc",  # a five-octet length for 3 bytes
])
def test_without_framing_packets_come_canonical(data):
    """What parse_keyring reads (it stores keys canonical): no copy of the
    original framing is made."""
    (packet,) = list(pk.iter_packets(data, framing=False))
    assert (packet.tag, packet.body, packet.raw) == (13, b"abc", None)
    assert packet.serialize() == pk.encode_header(13, 3) + b"abc"


def test_non_minimal_new_length_kept_byte_identical():
    data = b"\xcd\xff\x00\x00\x00\x03abc"  # 5-octet length for 3 bytes
    (packet,) = _all(data)
    assert packet.body == b"abc" and packet.serialize() == data


def test_partial_lengths_on_a_literal_packet():
    # first chunk 512 bytes (0xE9), then a final 1-octet length of 10
    data = b"\xcb\xe9" + b"a" * 512 + b"\x0a" + b"b" * 10
    (packet,) = _all(data)
    assert packet.tag == pk.TAG_LITERAL and packet.body == b"a" * 512 + b"b" * 10
    assert packet.serialize() == data


def test_partial_lengths_refused_on_key_packets():
    data = b"\xc6\xe9" + b"a" * 512 + b"\x00"
    with pytest.raises(PacketError, match="partial body length not allowed"):
        _all(data)


def test_indeterminate_length_only_for_data_packets():
    assert _all(b"\xaf" + b"literal")[0].body == b"literal"  # old tag 11, type 3
    with pytest.raises(PacketError, match="indeterminate"):
        _all(b"\x9b" + b"key")  # old tag 6, type 3


def test_four_gib_length_over_fifty_bytes_is_an_error_not_an_allocation():
    data = b"\xc6\xff\xff\xff\xff\xff" + bytes(50)
    tracemalloc.start()
    with pytest.raises(PacketError, match="declares 4294967295 bytes, only 50 present"):
        _all(data)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1 << 20


@pytest.mark.parametrize("data,message", [
    (b"\x06", "not an OpenPGP packet"),
    (b"\xc6", "truncated packet length"),
    (b"\xc6\xc5", "truncated packet length"),
    (b"\x99\x01", "truncated packet header"),
    (b"\xc0\x00", "tag 0 is reserved"),
    (b"\xcd\x05ab", "declares 5 bytes"),
])
def test_broken_framing(data, message):
    with pytest.raises(PacketError, match=message):
        _all(data)


def test_packet_equality_ignores_framing():
    old = _all(b"\xb4\x03abc")[0]
    new = _all(b"\xcd\x03abc")[0]
    assert old == new and hash(old) == hash(new)
    assert old.serialize() != new.serialize()
