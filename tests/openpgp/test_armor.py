import base64
import subprocess

import pytest

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


def test_missing_end_line():
    text = armor.encode(DATA).rsplit("-----END", 1)[0]
    blocks, errors = armor.scan(text)
    assert blocks == [] and isinstance(errors[0], ArmorError) and "no END" in str(errors[0])


def test_other_block_kinds_are_reported_with_their_kind():
    blocks, errors = armor.scan(armor.encode(b"\xc3\x01\x02", kind="MESSAGE"))
    assert [b.kind for b in blocks] == ["MESSAGE"]


def test_bytes_input_and_looks_armored():
    text = armor.encode(DATA).encode()
    assert armor.looks_armored(text)
    assert not armor.looks_armored(b"\x99\x01\x0d")
    assert armor.scan(text)[0][0].data == DATA
