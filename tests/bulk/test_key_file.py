"""Opening a key file to cut (split.key_file): standard input and pipes,
which cannot seek, are copied aside without holding them in memory."""

import io
import os
import sys
import threading
import tracemalloc

from cks.bulk import split
from cks.bulk.split import key_file, read_chunks
from cks.openpgp import armor
from support import fixture

INPUT_BYTES = 24 << 20


def _binary_key():
    blocks, errors = armor.scan(fixture("rsa2048"))
    assert not errors
    return blocks[0].data


def _pipe_as_stdin(monkeypatch, data):
    """Standard input replaced by a pipe that a thread fills with `data`."""
    read_end, write_end = os.pipe()

    def fill():
        with open(write_end, "wb") as handle:
            handle.write(data)

    writer = threading.Thread(target=fill, daemon=True)
    writer.start()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(open(read_end, "rb")))
    return writer


def test_standard_input_from_a_pipe_is_read_in_full_with_memory_flat(monkeypatch):
    key = _binary_key()
    data = key * (INPUT_BYTES // len(key))
    writer = _pipe_as_stdin(monkeypatch, data)
    assert not sys.stdin.buffer.seekable()
    tracemalloc.start()
    try:
        with key_file("-") as handle:
            _, peak = tracemalloc.get_traced_memory()
            first = next(read_chunks(handle, 1 << 20))
            handle.seek(0, io.SEEK_END)
            size = handle.tell()
    finally:
        tracemalloc.stop()
    writer.join()
    assert first.data == key and first.problem == ""
    assert size == len(data)
    # the copy's buffers (split.READ_AHEAD, and SPOOL_BYTES held before it
    # goes to disk), not the input's 24 MiB
    assert peak < split.SPOOL_BYTES + 3 * split.READ_AHEAD, peak


def test_standard_input_that_can_seek_is_read_where_it_is(monkeypatch, tmp_path):
    path = tmp_path / "keys.pgp"
    path.write_bytes(_binary_key() * 3)
    with open(path, "rb") as handle:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(handle))
        with key_file("-") as opened:
            assert opened is handle
            assert len(list(read_chunks(opened, 1 << 20))) == 3
