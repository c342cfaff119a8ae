"""Cutting binary key files into keys (lib/cks/bulk/split.py): where keys
start and end, and what broken framing reports and loses."""

import io

import pytest

from cks.bulk import split
from cks.bulk.split import read_chunks
from cks.openpgp import armor
from cks.openpgp.packet import read_packet
from support import fixture


@pytest.fixture(autouse=True, params=[7, 100, split.READ_AHEAD])
def read_ahead(request, monkeypatch):
    """Every case with blocks smaller than a header, than most packets, and
    as large as a load reads (packets and keys across blocks' ends)."""
    monkeypatch.setattr(split, "READ_AHEAD", request.param)


NAMES = ["rsa2048", "nistp256", "dsa-elg", "photo", "v6-ed25519", "v3-rsa", "two-keys"]


def binary(name):
    blocks, errors = armor.scan(fixture(name))
    assert not errors
    return b"".join(block.data for block in blocks)


def chunks(data, max_length=1 << 20):
    return [(c.data, c.offset, c.resume_at, c.problem)
            for c in read_chunks(io.BytesIO(data), max_length)]


def keys():
    """The fixtures' keys, one per item (two-keys holds two)."""
    out = []
    for name in NAMES:
        data = binary(name)
        out.extend(c[0] for c in chunks(data))
    return out


def test_each_key_is_cut_where_the_next_primary_key_starts():
    parts = keys()
    assert len(parts) == len(NAMES) + 1
    data = b"".join(parts)
    ends = [sum(map(len, parts[:i + 1])) for i in range(len(parts))]
    assert chunks(data) == [(part, end - len(part), end, "")
                            for part, end in zip(parts, ends)]


BROKEN = {
    # what follows a good key: (bytes, the problem reported at the key's end)
    "a byte that is no packet": (b"\x7f", "not an OpenPGP packet (byte 0x7F)"),
    "tag 0": (b"\x80\x05abcde", "packet tag 0 is reserved"),
    "a partial length on a signature": (b"\xc2\xe2" + b"x" * 8,
                                        "partial body length on packet tag 2"),
    "an indeterminate length on a signature": (b"\x8b" + b"x" * 8,
                                               "indeterminate length on packet tag 2"),
    "a packet over the limit": (b"\xc2\xff\x7f\x00\x00\x00",
                                "packet tag 2 declares 2130706432 bytes, over this "
                                "server's limit of 1048576"),
}
TRUNCATED = {
    # the end of the input
    "a truncated body": (b"\xc2\x05abc", "truncated packet (needs 5 bytes, 3 left)"),
    "a body one byte short": (b"\xc2\x05abcd", "truncated packet (needs 5 bytes, 4 left)"),
    "a truncated two-octet length": (b"\xc2\xc5", "truncated packet (needs 1 bytes, 0 left)"),
    "a truncated five-octet length": (b"\xc2\xff\x00\x00",
                                      "truncated packet (needs 4 bytes, 2 left)"),
    "no length at all": (b"\xc2", "truncated packet (needs 1 bytes, 0 left)"),
    "a truncated old-format length": (b"\x89\x01", "truncated packet (needs 2 bytes, 1 left)"),
}


def lost(problem, start, at, next_key):
    """The chunk reported for a key starting at `start`, lost where it breaks
    (`at`); reading goes on at `next_key` (a load goes on there: the
    problem is not found again)."""
    return (b"", start, next_key, "%s at offset %d; the key there is incomplete and was "
            "skipped" % (problem, at))


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_framing_loses_the_key_it_is_in_and_reading_goes_on(case):
    tail, problem = BROKEN[case]
    first, second = keys()[:2]
    data = first + tail + second
    assert chunks(data) == [lost(problem, 0, len(first), len(first + tail)),
                            (second, len(first + tail), len(data), "")]


@pytest.mark.parametrize("case", sorted(TRUNCATED))
def test_a_truncated_packet_at_the_end_loses_its_key(case):
    tail, problem = TRUNCATED[case]
    first, second = keys()[:2]
    assert chunks(first + second + tail) == [
        (first, 0, len(first), ""),
        lost(problem, len(first), len(first + second), len(first + second + tail))]
    assert chunks(first + tail) == [lost(problem, 0, len(first), len(first + tail))]


BROKEN_PRIMARY = {
    # a key's first packet, broken, between two good keys
    "a public key packet over the limit": (b"\xc6\xff\x7f\x00\x00\x00",
                                           "packet tag 6 declares 2130706432 bytes, over "
                                           "this server's limit of 1048576"),
    "a secret key packet with a partial length": (b"\xc5\xe2" + b"x" * 8,
                                                  "partial body length on packet tag 5"),
    "an indeterminate length on a public key packet": (b"\x9b" + b"x" * 8,
                                                       "indeterminate length on packet tag 6"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_PRIMARY))
def test_a_key_whose_first_packet_is_broken_is_lost_alone(case):
    """The key before it ended where it starts: it is whole, and kept."""
    tail, problem = BROKEN_PRIMARY[case]
    first, second = keys()[:2]
    data = first + tail + second
    assert chunks(data) == [(first, 0, len(first), ""),
                            (b"", len(first), len(first + tail), problem),
                            (second, len(first + tail), len(data), "")]


def test_a_file_cut_inside_a_keys_first_packet_loses_that_key_alone():
    first, second = keys()[:2]
    first_packet = read_packet(second)[1]
    for cut in (1, 2, 3, 10, first_packet - 1):
        found = chunks(first + second[:cut])
        assert found[0] == (first, 0, len(first), ""), cut
        assert found[1][:3] == (b"", len(first), len(first) + cut), cut
        assert found[1][3].startswith("truncated packet (needs "), cut
        assert len(found) == 2


def test_data_packets_with_partial_or_indeterminate_lengths_stay_in_the_key():
    """(The worker that parses the key refuses them, with the key.)"""
    first = keys()[0]
    partial = b"\xcb\xe2" + b"x" * 4 + b"\x01" + b"y"  # literal data: 4 bytes, then 1
    indeterminate = b"\xaf" + b"rest of the file"  # old-format literal data
    for tail in (partial, indeterminate):
        assert chunks(first + tail) == [(first + tail, 0, len(first + tail), "")]


def test_an_indeterminate_length_reads_no_further_than_the_limit():
    """It runs to the end of the input; past the limit, what follows it is
    read as the next packet, and the key is lost."""
    first = keys()[0]  # no packet over 2,000 bytes
    tail = b"\xaf" + b"z" * 5000
    stop = len(first) + 1 + 2001
    assert chunks(first + tail, max_length=2000) == [
        lost("not an OpenPGP packet (byte 0x7A)", 0, stop, len(first + tail))]
    assert chunks(first + tail, max_length=5000) == [(first + tail, 0, len(first + tail), "")]


CORRUPT = {"zero bytes": b"\x00" * 4096, "text": b"some text, not a key\n" * 8}


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_reading_on_where_any_chunk_says_finds_the_keys_after_it(case):
    """A load interrupted after any chunk goes on at its resume_at (after a
    problem, the next key; after a key, where the next packet starts, a
    corrupt one too): the file is still read as binary (judged from its
    start), and every key the whole read finds after that chunk is found."""
    parts = keys()
    cut = len(parts[0]) + read_packet(parts[1])[1]  # after the second key's first packet
    data = b"".join(parts)
    data = data[:cut] + CORRUPT[case] + data[cut:]
    whole = chunks(data)
    # the second key lost; go on at the third
    assert whole[1][1:3] == (len(parts[0]), len(b"".join(parts[:2])) + len(CORRUPT[case]))
    for index, (_, _, resume_at, _) in enumerate(whole):
        handle = io.BytesIO(data)
        handle.seek(resume_at)
        found = [(c.data, c.offset) for c in read_chunks(handle, 1 << 20) if not c.problem]
        assert found == [(c[0], c[1]) for c in whole[index + 1:] if not c[3]], index


def test_a_block_that_is_not_a_public_key_is_checked_not_kept(monkeypatch):
    """A PRIVATE KEY BLOCK in a load file is refused: its secret key material
    is never written to the temporary file (on disk past 4 MiB) that a
    PUBLIC KEY BLOCK is decoded into."""
    written = []

    class Recording(io.BytesIO):
        def __init__(self, *_args, **_kwargs):
            super().__init__()

        def write(self, data):
            written.append(len(data))
            return super().write(data)
    monkeypatch.setattr(split.tempfile, "SpooledTemporaryFile", Recording)
    key = armor.scan(fixture("rsa2048"))[0][0].data
    secret = armor.encode(b"\x95" + bytes(5 << 20), kind="PRIVATE KEY BLOCK").encode()
    text = secret + armor.encode(key).encode()
    chunks = list(read_chunks(io.BytesIO(text), 1 << 30))
    assert chunks[0].problem == "secret key material refused: send only your public key"
    assert [c.data for c in chunks[1:]] == [key]
    assert sum(written) == len(key)  # the public block's alone
