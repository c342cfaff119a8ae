"""SKS recon wire messages: encodings written out by hand from SKS
1.1.6's reconMessages.ml and cMarshal.ml, round trips, incremental reading,
and refusal of malformed input."""

import pytest

from cks.sync.recon.wire import (
    MAX_MESSAGE_BYTES, ROOT, Config, Done, Elements, Error, Flush, FullElements,
    MessageReader, Prefix, ReconPeerError, ReconProtocolError, ReconRqstFull, ReconRqstPoly,
    SyncFail, check_config, decode_body, decode_message, element_key, encode_string,
    encode_verdict, our_config, parse_version)

P = 530512889551602322505127520352579437339


def i32(n):
    return n.to_bytes(4, "big")


def zz(n):
    return n.to_bytes(17, "little")


def frame(body):
    return i32(len(body)) + body


def s(data):
    return i32(len(data)) + data


SAMPLES = [1, 2, P - 1, 0, 12345678901234567890, 2 ** 128 - 1]
ELEMS = [5, 2 ** 127 + 3, 1, 0xFFFF]

ALL_MESSAGES = [
    ReconRqstPoly(ROOT, 0, [1] * 6),
    ReconRqstPoly(Prefix.parse("0110"), 1234, SAMPLES),
    ReconRqstPoly(Prefix.parse("1" * 136), 2 ** 32 - 1, []),
    ReconRqstFull(ROOT, []),
    ReconRqstFull(Prefix.parse("101"), ELEMS),
    Elements([]),
    Elements(ELEMS),
    FullElements([]),
    FullElements(ELEMS),
    SyncFail(),
    Done(),
    Flush(),
    Error(""),
    Error("server should never receive request for non-existant node \u00e9"),
    our_config(11371),
    Config(version="1.1.6", http_port=0, bitquantum=2, mbar=5, filters="",
           extra={"custom": b"\x00\xffbinary", "other": b""}),
    Config(),
]


# ----------------------------------------------------------------------------
# Byte-exact encodings, written from SKS's format

def test_config_bytes_with_binary_ints():
    body = (b"\x0a" + i32(5)
            + s(b"bitquantum") + s(b"\x00\x00\x00\x02")
            + s(b"filters") + s(b"yminsky.dedup,yminsky.merge")
            + s(b"http port") + s(b"\x00\x00\x2c\x6b")
            + s(b"mbar") + s(b"\x00\x00\x00\x05")
            + s(b"version") + s(b"1.1.6"))
    expected = frame(body)
    assert our_config(11371).encode() == expected
    assert our_config(11371, ["yminsky.dedup", "yminsky.merge"]).encode() == expected
    config = decode_message(expected)
    assert config == Config(version="1.1.6", http_port=11371, bitquantum=2, mbar=5,
                            filters="yminsky.dedup,yminsky.merge")


def test_config_key_order_does_not_matter_when_reading():
    body = (b"\x0a" + i32(3) + s(b"version") + s(b"1.1.6") + s(b"mbar") + s(i32(5))
            + s(b"http port") + s(i32(80)))
    config = decode_message(frame(body))
    assert (config.version, config.mbar, config.http_port) == ("1.1.6", 5, 80)
    assert config.bitquantum is None and config.filters is None


def test_empty_elements_bytes():
    assert Elements([]).encode() == b"\x00\x00\x00\x05\x02\x00\x00\x00\x00"
    assert FullElements().encode() == b"\x00\x00\x00\x05\x03\x00\x00\x00\x00"


def test_recon_rqst_full_with_two_bit_prefix_bytes():
    element = 0x0102  # little-endian: 02 01 00 ... 00
    expected = frame(b"\x01" + i32(2) + i32(1) + b"\x80" + i32(1)
                     + b"\x02\x01" + b"\x00" * 15)
    assert len(expected) == 4 + 31
    assert ReconRqstFull(Prefix.parse("10"), [element]).encode() == expected
    assert decode_message(expected) == ReconRqstFull(Prefix(2, 0b10), [element])


def test_recon_rqst_poly_bytes():
    samples = [1, 2, 3, 4, 5, P - 1]
    expected = frame(b"\x00" + i32(10) + i32(2) + b"\xb5\x40" + i32(77) + i32(6)
                     + b"".join(zz(v) for v in samples))
    message = ReconRqstPoly(Prefix.parse("1011010101"), 77, samples)
    assert message.encode() == expected
    assert decode_message(expected) == message


def test_root_prefix_and_empty_messages_bytes():
    assert ReconRqstFull(ROOT, []).encode() == frame(b"\x01" + i32(0) + i32(0) + i32(0))
    assert SyncFail().encode() == b"\x00\x00\x00\x01\x04"
    assert Done().encode() == b"\x00\x00\x00\x01\x05"
    assert Flush().encode() == b"\x00\x00\x00\x01\x06"
    assert Error("x").encode() == b"\x00\x00\x00\x06\x07\x00\x00\x00\x01x"


def test_elements_sorted_on_the_wire():
    message = Elements({3, 1, 2})
    assert message.elements == [1, 2, 3]
    assert message.encode() == frame(b"\x02" + i32(3) + zz(1) + zz(2) + zz(3))
    # A peer's unsorted list with a duplicate is read as the set it means.
    assert decode_message(frame(b"\x02" + i32(3) + zz(3) + zz(1) + zz(3))) == Elements([1, 3])


def test_verdict_strings_are_unframed():
    assert encode_verdict(None) == b"\x00\x00\x00\x06passed"
    assert encode_verdict("mbar values do not match") == (
        b"\x00\x00\x00\x06failed" + s(b"mbar values do not match"))
    assert encode_string("\u00e9") == b"\x00\x00\x00\x02\xc3\xa9"


# ----------------------------------------------------------------------------
# Round trips and incremental reading

@pytest.mark.parametrize("message", ALL_MESSAGES, ids=lambda m: type(m).__name__)
def test_round_trip(message):
    data = message.encode()
    assert int.from_bytes(data[:4], "big") == len(data) - 4
    assert data[4] == message.TYPE
    assert decode_message(data) == message
    assert decode_body(data[4:]) == message


def test_reader_one_byte_at_a_time():
    stream = b"".join(m.encode() for m in ALL_MESSAGES)
    reader = MessageReader()
    seen = []
    for i in range(len(stream)):
        seen.extend(reader.feed(stream[i:i + 1]))
        if i < 4:
            assert not seen
    assert seen == ALL_MESSAGES
    assert reader.buffered() == 0


def test_reader_whole_stream_and_remainder():
    stream = b"".join(m.encode() for m in ALL_MESSAGES)
    reader = MessageReader()
    assert reader.feed(stream + b"\x00\x00") == ALL_MESSAGES
    assert reader.buffered() == 2
    assert reader.leftover() == b"\x00\x00" and reader.buffered() == 0


def test_reader_strings_and_messages_share_the_buffer():
    reader = MessageReader()
    reader.push(our_config(1).encode() + encode_verdict(None)[:7])
    assert reader.next_message() == our_config(1)
    assert reader.next_string() is None
    reader.push(encode_verdict(None)[7:] + Flush().encode())
    assert reader.next_string() == b"passed"
    assert reader.feed(b"") == [Flush()]


# ----------------------------------------------------------------------------
# Prefixes

def test_prefix_children_and_order():
    assert [str(c) for c in ROOT.children()] == ["00", "01", "10", "11"]
    assert [str(c) for c in Prefix.parse("10").children()] == ["1000", "1001", "1010", "1011"]
    assert Prefix.parse("1").children(1) == [Prefix.parse("10"), Prefix.parse("11")]
    assert sorted([Prefix.parse("11"), ROOT, Prefix.parse("0")]) == [
        ROOT, Prefix.parse("0"), Prefix.parse("11")]
    assert str(ROOT) == "" and Prefix.parse("") == ROOT
    assert len({Prefix.parse("01"), Prefix(2, 1)}) == 1


def test_prefix_of_element_reads_little_endian_bytes_msb_first():
    element = int.from_bytes(bytes([0b10110000, 0b01000000]) + bytes(14), "little")
    assert Prefix.of_element(element, 4) == Prefix.parse("1011")
    assert Prefix.of_element(element, 10) == Prefix.parse("1011000001")
    assert Prefix.of_element(element, 0) == ROOT
    assert Prefix.parse("1011").contains(element)
    assert not Prefix.parse("1010").contains(element)
    low, high = Prefix.parse("1011").key_range()
    assert low <= element_key(element) < high
    assert element_key(element) >> 128 == 0b10110000  # first byte is the top of the key


def test_prefix_bytes():
    prefix = Prefix.parse("1011010101")
    assert prefix.to_bytes() == b"\xb5\x40"
    assert Prefix.from_bytes(b"\xb5\x7f", 10) == prefix  # tail bits ignored
    assert ROOT.to_bytes() == b"" and ROOT.encode() == bytes(8)
    assert Prefix.parse("1" * 136).to_bytes() == b"\xff" * 17


@pytest.mark.parametrize("args", [(-1, 0), (137, 0), (2, 4), (0, 1), (3, -1)])
def test_prefix_refuses_bad_values(args):
    with pytest.raises(ValueError):
        Prefix(*args)


def test_prefix_parse_refuses_other_characters():
    with pytest.raises(ValueError):
        Prefix.parse("012")


def test_encode_refuses_values_outside_the_field_and_ints_out_of_range():
    with pytest.raises(ValueError):
        Elements([P]).encode()
    with pytest.raises(ValueError):
        Elements([-1]).encode()
    with pytest.raises(ValueError):
        ReconRqstPoly(ROOT, 2 ** 32, []).encode()


# ----------------------------------------------------------------------------
# Malformed input

GARBAGE = {
    "unknown type 8 (DbRqst)": frame(b"\x08" + s(b"x")),
    "unknown type 11": frame(b"\x0b"),
    "unknown type 255": frame(b"\xff"),
    "empty body": frame(b""),
    "set count does not fit": frame(b"\x02" + i32(2) + zz(1)),
    "huge set count": frame(b"\x02" + b"\xff\xff\xff\xff" + zz(1)),
    "truncated set count": frame(b"\x03\x00\x00"),
    "truncated prefix": frame(b"\x01" + i32(2) + i32(1)),
    "truncated prefix header": frame(b"\x00" + i32(2)),
    "prefix byte count wrong": frame(b"\x01" + i32(2) + i32(2) + b"\x80\x00" + i32(0)),
    "prefix longer than an element": frame(b"\x01" + i32(137) + i32(18) + bytes(18) + i32(0)),
    "truncated poly size": frame(b"\x00" + i32(0) + i32(0) + b"\x00"),
    "truncated samples": frame(b"\x00" + i32(0) + i32(0) + i32(5) + i32(6) + zz(1)),
    "field element >= P": frame(b"\x02" + i32(1) + zz(P)),
    "field element 2**136-1": frame(b"\x02" + i32(1) + b"\xff" * 17),
    "error text truncated": frame(b"\x07" + i32(10) + b"abc"),
    "trailing byte after SyncFail": frame(b"\x04\x00"),
    "trailing bytes after Done": frame(b"\x05abc"),
    "trailing bytes after Elements": frame(b"\x02" + i32(1) + zz(1) + b"\x00"),
    "trailing bytes after Full": frame(b"\x01" + i32(0) + i32(0) + i32(0) + b"\x01"),
    "config count does not fit": frame(b"\x0a" + i32(1000)),
    "config value truncated": frame(b"\x0a" + i32(1) + s(b"version") + i32(9) + b"1.1"),
    "config int of 3 bytes": frame(b"\x0a" + i32(1) + s(b"mbar") + s(b"\x00\x00\x05")),
    "config int as decimal text": frame(b"\x0a" + i32(1) + s(b"http port") + s(b"11371")),
    "config key twice": frame(b"\x0a" + i32(2) + s(b"version") + s(b"1")
                              + s(b"version") + s(b"2")),
    "config version not UTF-8": frame(b"\x0a" + i32(1) + s(b"version") + s(b"\xff")),
    "config key not UTF-8": frame(b"\x0a" + i32(1) + s(b"\xc3") + s(b"")),
}


@pytest.mark.parametrize("name", sorted(GARBAGE))
def test_garbage_is_refused(name):
    data = GARBAGE[name]
    with pytest.raises(ReconProtocolError):
        MessageReader().feed(data)
    reader = MessageReader()  # the same, arriving a byte at a time
    with pytest.raises(ReconProtocolError):
        for i in range(len(data)):
            reader.feed(data[i:i + 1])


def test_four_gib_length_refused_from_the_length_alone():
    reader = MessageReader()
    with pytest.raises(ReconProtocolError, match="over the limit"):
        reader.feed(b"\xff\xff\xff\xff")
    with pytest.raises(ReconProtocolError):
        MessageReader().feed(i32(MAX_MESSAGE_BYTES + 1))
    assert MessageReader().feed(i32(MAX_MESSAGE_BYTES)) == []  # at the limit: wait for it


def test_reader_limits_are_settable_and_failure_sticks():
    reader = MessageReader(max_length=100)
    with pytest.raises(ReconProtocolError):
        reader.feed(Elements(range(10)).encode())
    with pytest.raises(ReconProtocolError):
        reader.feed(Flush().encode())
    reader = MessageReader()
    reader.push(s(b"passed!"))
    with pytest.raises(ReconProtocolError):
        reader.next_string(max_length=5)


def test_error_text_that_is_not_utf8_is_kept_readable():
    message = decode_message(frame(b"\x07" + s(b"bad \xff")))
    assert message == Error("bad \ufffd")


def test_decode_message_wants_exactly_one():
    with pytest.raises(ReconProtocolError):
        decode_message(Flush().encode() + Done().encode())
    with pytest.raises(ReconProtocolError):
        decode_message(Flush().encode()[:-1])


def test_peer_error_is_a_protocol_error():
    error = ReconPeerError("busy")
    assert isinstance(error, ReconProtocolError) and error.text == "busy"


# ----------------------------------------------------------------------------
# Handshake checks

def test_our_filters_go_sorted_and_once():
    # Hockeypuck compares the filter text as is, against its own sorted list.
    assert our_config(80, "yminsky.merge,drop:UAT,,yminsky.merge").filters == \
        "drop:UAT,yminsky.merge"
    assert our_config(80, ["b", "a"]).filters == "a,b"


def test_check_config_accepts_matching_peer():
    ours = our_config(11371)
    assert check_config(our_config(80), ours) is None
    # SKS compares the filters as a set.
    assert check_config(our_config(80, "yminsky.merge,yminsky.dedup"), ours) is None
    assert check_config(our_config(80, version="0.1.5"), ours) is None
    assert check_config(our_config(80, version="2.0.0"), ours) is None


@pytest.mark.parametrize("theirs, reason", [
    (our_config(80, "yminsky.dedup"), "filters do not match"),
    (our_config(80, "yminsky.dedup,yminsky.merge,x"), "filters do not match"),
    (our_config(80, version="0.1.4"), "Requires version at least 0.1.5"),
    (our_config(80, version="1.1"), "Error parsing configdata"),
    (our_config(80, version="1.1.6.1"), "Error parsing configdata"),
    (our_config(80, version="1.1.6+"), "Error parsing configdata"),
    (Config(version="1.1.6", http_port=80, bitquantum=3, mbar=5,
            filters="yminsky.dedup,yminsky.merge"), "bitquantum values do not match"),
    (Config(version="1.1.6", http_port=80, bitquantum=2, mbar=6,
            filters="yminsky.dedup,yminsky.merge"), "mbar values do not match"),
    (Config(version="1.1.6", bitquantum=2, mbar=5, filters="yminsky.dedup,yminsky.merge"),
     "Missing entry"),
    (Config(), "Missing entry"),
])
def test_check_config_refusals(theirs, reason):
    result = check_config(theirs, our_config(11371))
    assert result is not None and result.startswith(reason)


@pytest.mark.parametrize("theirs, start", [
    (our_config(80, "evil\n\x00" + "F" * (10 << 20)),
     "filters do not match.\n\tlocal filters: yminsky.dedup,yminsky.merge\n\t"
     "remote filters: evil??"),
    (our_config(80, version="0.1.0" + "0" * 4000 + "4"),
     "Requires version at least 0.1.5.  0.1.0000"),
    (our_config(80, version="x\n" * (1 << 20)), "Error parsing configdata: "
     "unreadable version 'x?x?"),
])
def test_check_config_quotes_the_peers_text_cut(theirs, start):
    """As peer_text: 200 printable characters; until 2026-12-07 uncut, a
    10 MiB filters value went into every log line and the last error."""
    result = check_config(theirs, our_config(11371))
    assert result.startswith(start) and len(result) < 400
    assert "..." in result and "\x00" not in result and result.count("\n") <= 2


def test_a_config_of_more_than_32_entries_is_refused():
    config = Config(version="1.1.6", extra={"k%02d" % i: b"" for i in range(28)})
    assert decode_message(config.encode()).extra == config.extra  # 29 entries
    with pytest.raises(ReconProtocolError, match="Config: 33 entries, more than 32"):
        decode_message(Config(extra={"k%02d" % i: b"" for i in range(33)}).encode())


def test_an_element_set_of_more_than_100000_is_refused_before_it_is_decoded():
    elements = list(range(1, 100_002))
    assert len(decode_message(Elements(elements[1:]).encode()).elements) == 100_000
    for message in (Elements(elements), FullElements(elements), ReconRqstFull(ROOT, elements)):
        with pytest.raises(ReconProtocolError, match=": 100001 elements, more than 100000"):
            decode_message(message.encode())


def test_parse_version():
    assert parse_version("1.1.6") == (1, 1, 6)
    assert parse_version("0.1.10") > (0, 1, 5)
    with pytest.raises(ValueError):
        parse_version("one.two.three")
