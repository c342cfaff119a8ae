import base64
import binascii
import re
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cks.openpgp import armor
from cks.openpgp.crc24 import crc24
from cks.openpgp.errors import ArmorError

DATA = bytes(range(256)) * 3


def test_encode_decode_round_trip():
    text = armor.encode(DATA, headers=[("Comment", "test")])
    blocks, errors = armor.scan(text)
    assert errors == []
    assert len(blocks) == 1
    assert blocks[0].data == DATA
    assert blocks[0].headers == [("Comment", "test")]
    assert blocks[0].has_checksum
    lines = text.splitlines()
    assert lines[0] == "-----BEGIN PGP PUBLIC KEY BLOCK-----"
    assert all(len(line) <= 64 for line in lines)


def test_gnupg_accepts_our_checksum(tmp_path):
    path = tmp_path / "x.asc"
    path.write_text(armor.encode(DATA))
    out = subprocess.run(["gpg", "--dearmor"], input=path.read_bytes(), capture_output=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout == DATA


def _mangle(text: str, newline: str, trailing: str) -> str:
    return "".join(line + trailing + newline for line in text.splitlines())


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("trailing", ["", "  ", "\t"])
def test_line_ends_and_trailing_blanks(newline, trailing):
    text = _mangle(armor.encode(DATA, headers=[("Version", "x"), ("Charset", "UTF-8")]),
                   newline, trailing)
    blocks, errors = armor.scan(text)
    assert errors == [] and [b.data for b in blocks] == [DATA]


def test_text_around_and_several_blocks():
    mail = ("Hi,\n\nhere is my key:\n\n" + armor.encode(b"first") + "\nand another one\n"
            + armor.encode(b"second") + "\n-- \nsignature\n")
    blocks, errors = armor.scan(mail)
    assert errors == []
    assert [b.data for b in blocks] == [b"first", b"second"]


def test_without_checksum_line():
    text = armor.encode(DATA)
    lines = [line for line in text.splitlines() if not (line.startswith("=") and len(line) == 5)]
    blocks, errors = armor.scan("\n".join(lines))
    assert errors == [] and blocks[0].data == DATA and not blocks[0].has_checksum


def test_without_blank_line_after_begin():
    text = armor.encode(DATA).replace("-----\n\n", "-----\n", 1)
    blocks, errors = armor.scan(text)
    assert errors == [] and blocks[0].data == DATA


def test_wrong_checksum_rejects_the_block_only():
    good = armor.encode(b"good data")
    bad = armor.encode(DATA)
    lines = bad.splitlines()
    crc_index = next(i for i, line in enumerate(lines) if line.startswith("="))
    wrong = crc24(DATA) ^ 1
    lines[crc_index] = "=" + base64.b64encode(wrong.to_bytes(3, "big")).decode()
    blocks, errors = armor.scan("\n".join(lines) + "\n" + good)
    assert [b.data for b in blocks] == [b"good data"]
    assert len(errors) == 1 and "checksum mismatch" in str(errors[0])


def test_corrupted_base64_is_an_error():
    lines = armor.encode(DATA).splitlines()
    lines[3] = lines[3][:10] + "*" + lines[3][11:]
    blocks, errors = armor.scan("\n".join(lines))
    assert blocks == [] and "invalid characters" in str(errors[0])


def test_padding_inside_the_data_is_an_error_without_a_checksum_line_too():
    """Two pieces of base64, each padded, joined: a2b_base64 stops at the
    first padding, so without a checksum line the second piece was lost
    without a word (the subkey of a key), where GnuPG refuses the block."""
    first, second = b"key packet", b"subkey packet"
    body = base64.b64encode(first) + base64.b64encode(second)
    assert b"=" in body.rstrip(b"=")  # the first piece's padding, inside
    for checksum in ("", "=" + base64.b64encode(crc24(first + second).to_bytes(3, "big"))
                     .decode() + "\n"):
        text = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n%s\n%s-----END PGP PUBLIC KEY BLOCK-----" \
            % (body.decode(), checksum)
        blocks, errors = armor.scan(text)
        assert blocks == [] and "'=' inside the base64 data" in str(errors[0])


def test_missing_end_line():
    text = armor.encode(DATA).rsplit("-----END", 1)[0]
    blocks, errors = armor.scan(text)
    assert blocks == [] and isinstance(errors[0], ArmorError) and "no END" in str(errors[0])


def test_a_block_cut_short_ends_at_the_next_begin_line():
    """Until 2026-12-06 it ran to the next block's END line: the whole block
    after a cut one was lost with it."""
    cut = armor.encode(DATA)[:300]
    blocks, errors = armor.scan(cut + "\n" + armor.encode(DATA[:7]) + armor.encode(DATA[7:]))
    assert [b.data for b in blocks] == [DATA[:7], DATA[7:]]
    assert [str(e) for e in errors] == ["armor block 'BEGIN PGP PUBLIC KEY BLOCK' has no END line"]


def test_a_begin_marker_inside_a_line_does_not_end_a_block():
    """Only a BEGIN line (at a line's start, after a byte-order mark too) ends
    a block cut short; markers inside a line are base64 gone wrong.  (A line
    of 300,000 of them, 4.8 MB, took 27 s to scan for a few hours on
    2026-12-06, each marker looking back for its line's start; 0.2 s now.)"""
    cut = armor.encode(DATA)[:300].encode()
    blocks, errors = armor.scan(cut + b"\n\xef\xbb\xbf" + armor.encode(DATA[:7]).encode())
    assert [b.data for b in blocks] == [DATA[:7]] and "no END line" in str(errors[0])
    inside = b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n" + b"x-----BEGIN PGP " * 1000 + \
        b"\n-----END PGP PUBLIC KEY BLOCK-----\n"
    blocks, errors = armor.scan(inside + armor.encode(DATA).encode())
    assert [b.data for b in blocks] == [DATA]
    assert [str(e) for e in errors] == ["armor block PUBLIC KEY BLOCK: invalid characters in "
                                        "base64 data"]


def test_other_block_kinds_are_reported_with_their_kind():
    blocks, errors = armor.scan(armor.encode(b"\xc3\x01\x02", kind="MESSAGE"))
    assert [b.kind for b in blocks] == ["MESSAGE"]


def test_bytes_input_and_looks_armored():
    text = armor.encode(DATA).encode()
    assert armor.looks_armored(text)
    assert not armor.looks_armored(b"\x99\x01\x0d")
    assert armor.scan(text)[0][0].data == DATA


def _decode_lines_one_by_one(kind, lines):
    """The data lines' rules as written before they were checked together
    (one line at a time), to compare with: (data, has checksum) or the error."""
    data_lines, checksum = [], None
    for line in lines:
        if not line:
            continue
        if checksum is not None:
            return "armor block %s: data after the checksum line" % kind
        if line.startswith(b"=") and len(line) == 5:
            checksum = line[1:]
            continue
        if not re.match(rb"^[A-Za-z0-9+/=]+$", line):
            return "armor block %s: invalid characters in base64 data" % kind
        data_lines.append(line)
    if b"=" in b"".join(data_lines).rstrip(b"="):
        return "armor block %s: '=' inside the base64 data (the block was damaged)" % kind
    try:
        data = binascii.a2b_base64(b"".join(data_lines))
    except binascii.Error as exc:
        return "armor block %s: bad base64 (%s)" % (kind, exc)
    if checksum is not None:
        try:
            expected = int.from_bytes(base64.b64decode(checksum, validate=True), "big")
        except binascii.Error:
            return "armor block %s: unreadable checksum line" % kind
        if crc24(data) != expected:
            return "armor block %s: checksum mismatch (the block was damaged)" % kind
    if not data:
        return "armor block %s holds no data" % kind
    return data, checksum is not None


_GOOD = base64.b64encode(b"\x99\x01\x0d\x04some key bytes!").decode()
_LINE_PIECES = [_GOOD, _GOOD[:8], "=" + base64.b64encode(crc24(
    base64.b64decode(_GOOD)).to_bytes(3, "big")).decode(), "=AAAA", "=ab c", "", "  ",
    "ab cd", "abc\r", "QUJD", "QUJDRA==", "====", "a-b", "\t=XYZW", "=XYZ", "=AAAAAB",
    "QU=AAAA", "é"]


@given(st.lists(st.sampled_from(_LINE_PIECES), max_size=8))
@settings(max_examples=1000, deadline=None)
def test_data_lines_read_as_one_at_a_time(pieces):
    text = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n%s\n-----END PGP PUBLIC KEY BLOCK-----\n" \
        % "\n".join(pieces)
    blocks, errors = armor.scan(text)
    expected = _decode_lines_one_by_one(armor.PUBLIC_KEY_BLOCK,
                                        [p.encode().strip() for p in pieces])
    if isinstance(expected, str):
        assert [str(e) for e in errors] == [expected] and not blocks
    else:
        assert not errors
        assert (blocks[0].data, blocks[0].has_checksum) == expected


@given(st.lists(st.sampled_from(_LINE_PIECES), max_size=8),
       st.lists(st.integers(0, 3), max_size=8), st.integers(1, 12))
@settings(max_examples=1000, deadline=None)
def test_a_body_fed_in_batches_reads_as_scan_reads_it(pieces, batches, decode_bytes):
    """armor.BodyReader fed a few lines at a time, decoding every few
    characters (a load reads a large block so), takes the block scan takes,
    with its data, and refuses the block scan refuses."""
    lines = ["Comment: x"] * (len(batches) % 2) + [""] + pieces
    text = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n%s\n-----END PGP PUBLIC KEY BLOCK-----\n" \
        % "\n".join(lines)
    blocks, errors = armor.scan(text)
    parts = []
    reader = armor.BodyReader(armor.PUBLIC_KEY_BLOCK, parts.append)
    todo = [line.encode() + b"\n" for line in lines]
    try:
        with pytest.MonkeyPatch.context() as patched:
            patched.setattr(armor, "DECODE_BYTES", decode_bytes)
            for size in batches + [len(todo)]:
                reader.feed(todo[:size])
                todo = todo[size:]
            reader.end()
    except ArmorError:
        assert errors and not blocks
    else:
        assert not errors
        assert (blocks[0].data, blocks[0].headers, blocks[0].has_checksum) == (
            b"".join(parts), reader.headers, reader.checksum is not None)


_END = "-----END PGP PUBLIC KEY BLOCK-----"
_TEXT_PIECES = [_END, _END + " \t", _END + "\r", _END + "x", "x" + _END, "\n", "\r\n", " ",
                "QUJD", "-----END PGP MESSAGE-----", "-----END PGP PUBLIC KEY BLOCK----"]


@given(st.lists(st.sampled_from(_TEXT_PIECES), max_size=8), st.integers(0, 40))
@settings(max_examples=1000, deadline=None)
def test_the_end_line_is_found_as_a_multiline_pattern_finds_it(pieces, start):
    text = "".join(pieces).encode()
    kind = b"PUBLIC KEY BLOCK"
    pattern = re.compile(rb"^-----END PGP " + re.escape(kind) + rb"-----[ \t\r]*$", re.M)
    found = pattern.search(text, min(start, len(text)))
    assert armor._end_line(text, kind, min(start, len(text))) == (
        None if found is None else found.span())


@pytest.mark.parametrize("line,expected", [
    (b"-----END PGP PUBLIC KEY BLOCK-----\n", True),
    (b"-----END PGP PUBLIC KEY BLOCK-----", True),
    (b"-----END PGP PUBLIC KEY BLOCK----- \t\r\n", True),
    (b"-----END PGP PUBLIC KEY BLOCK-----x\n", False),
    (b" -----END PGP PUBLIC KEY BLOCK-----\n", False),
    (b"-----END PGP MESSAGE-----\n", False),
    (b"\n", False),
])
def test_is_end_line(line, expected):
    # (the bulk loader reads armored files a line at a time)
    assert armor.is_end_line(line, b"PUBLIC KEY BLOCK") is expected
