"""Cutting armored key files into keys (lib/cks/bulk/split.py): a block is
decoded a batch of lines at a time, and its keys are handed on only once
its checksum is checked."""

import io

import pytest

from cks.bulk import split
from cks.bulk.split import read_chunks
from cks.openpgp import armor
from support import fixture

NAMES = ["rsa2048", "nistp256", "dsa-elg", "photo", "v6-ed25519"]


def binary(name):
    blocks, errors = armor.scan(fixture(name))
    assert not errors
    return b"".join(block.data for block in blocks)


def damaged(text):
    """`text` (one block) with its checksum line's last character changed."""
    at = text.index("\n=") + 5
    return text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1:]


@pytest.fixture(params=["whole", "small batches"])
def batches(request, monkeypatch):
    """A block read in one batch, held in memory, decoded in one call; or in
    batches of a few lines, decoded every few characters, into a file."""
    if request.param == "small batches":
        monkeypatch.setattr(split, "ARMOR_BATCH_BYTES", 200)
        monkeypatch.setattr(split, "SPOOL_BYTES", 1000)
        monkeypatch.setattr(armor, "DECODE_BYTES", 300)


def test_a_blocks_keys_are_handed_on_only_when_its_checksum_is_right(batches):
    keys = [binary(name) for name in NAMES]
    good = armor.encode(b"".join(keys[:3]))
    bad = damaged(armor.encode(b"".join(keys[3:])))
    text = ("text before\n" + good + "between\n" + bad + armor.encode(keys[0])).encode()
    found = [(c.data, c.offset, c.resume_at, c.problem) for c in read_chunks(
        io.BytesIO(text), 1 << 20)]
    second = len("text before\n" + good + "between\n")
    third = second + len(bad)
    assert found == [
        (keys[0], 12, 12, ""), (keys[1], 12, 12, ""), (keys[2], 12, second - 8, ""),
        (b"", second, third,
         "armor block PUBLIC KEY BLOCK: checksum mismatch (the block was damaged)"),
        (keys[0], third, len(text), "")]


def test_a_blocks_keys_tell_how_far_the_block_was_read(batches):
    """Each key of a block tells the reader's place for the progress line:
    the block's share that decodes to the data up to the key's end, while
    where a load goes on stays at the block's start (until 2026-12-06 the
    progress line took that: 0.0% of one big block until its last batch)."""
    keys = [binary(name) for name in NAMES]
    block = armor.encode(b"".join(keys))
    text = ("text before\n" + block).encode()
    end = len(text)  # (after the END line)
    decoded = sum(len(k) for k in keys)
    found = [(c.resume_at, c.reached) for c in read_chunks(io.BytesIO(text), 1 << 20)]
    ends = [sum(len(k) for k in keys[:n + 1]) for n in range(len(keys))]
    assert found == [(12, 12 + (end - 12) * at // decoded) for at in ends[:-1]] + [(end, end)]
    assert found[0][1] > 12


def test_a_block_without_an_end_line_gives_no_key(batches):
    text = armor.encode(binary("rsa2048")).rsplit("-----END", 1)[0].encode()
    assert [(c.data, c.problem) for c in read_chunks(io.BytesIO(text), 1 << 20)] == [
        (b"", "armor block 'BEGIN PGP PUBLIC KEY BLOCK' has no END line")]


def test_a_block_cut_short_ends_at_the_next_begin_line(batches):
    """Until 2026-12-06 it ran to the next block's END line, and the key of
    that block, whole, was lost with it."""
    whole = armor.encode(binary("rsa2048")).encode()
    cut = whole[:len(whole) // 2] + b"\n"
    text = cut + armor.encode(binary("nistp256")).encode()
    assert [(c.data, c.offset, c.resume_at, c.problem) for c in read_chunks(
        io.BytesIO(text), 1 << 20)] == [
        (b"", 0, len(cut), "armor block 'BEGIN PGP PUBLIC KEY BLOCK' has no END line"),
        (binary("nistp256"), len(cut), len(text), "")]


def test_a_file_starting_with_a_byte_order_mark_is_armored_text():
    """An editor's UTF-8 byte-order mark before the BEGIN line: until
    2026-12-05 its first byte (0xEF) made the file binary, and no key loaded."""
    data = b"\xef\xbb\xbf" + fixture("rsa2048") + b"\xef\xbb\xbf" + fixture("nistp256")
    chunks = list(read_chunks(io.BytesIO(data), 1 << 20))
    assert [c.problem for c in chunks] == ["", ""]
    assert [c.data for c in chunks] == [binary("rsa2048"), binary("nistp256")]
