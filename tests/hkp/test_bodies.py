"""Answers too large to hold in memory (hkp/bodies.py): written to a Spool
as they are made, sent from a temporary file past bodies.MEMORY_BYTES."""

from __future__ import annotations

import logging
import os
import tempfile

import pytest

from cks import pipeline
from cks.hkp import bodies
from cks.hkp.answer_cache import AnswerCache
from cks.hkp.app import KeyServer, Request, ServerSettings
from cks.hkp.bodies import FileBody, Spool
from cks.store import open_store
from support import fixture
from support.disk import fill, tmpfs

KEYS = ("rsa2048", "ed25519", "nistp256", "dsa-elg")


def _read(body):
    if isinstance(body, bytes):
        return body
    assert isinstance(body, FileBody)
    with body.file as file:
        data = file.read()
    assert len(data) == body.size
    return data


def test_a_spool_stays_in_memory_up_to_its_limit():
    spool = Spool(memory_bytes=10)
    spool.write(b"12345")
    spool.write(b"67890")
    assert spool.body() == b"1234567890"


def test_a_spool_goes_to_a_file_with_the_write_that_would_pass_its_limit():
    spool = Spool(memory_bytes=10)
    spool.write(b"\0\0\0\0")  # a count, written over at the end (as hashquery's is)
    spool.write(b"123456")
    assert spool.tell() == 10
    spool.write(b"7")
    spool.write(b"89" * 1000)
    end = spool.tell()
    spool.seek(0)
    spool.write(b"CNT:")
    spool.seek(end)
    body = spool.body()
    assert isinstance(body, FileBody) and body.file.fileno() >= 0
    assert _read(body) == b"CNT:1234567" + b"89" * 1000


def test_a_spool_closed_before_its_body_drops_its_file():
    spool = Spool(memory_bytes=1)
    spool.write(b"too much")
    file = spool._file
    spool.close()
    assert file.closed


@pytest.fixture
def app(db_url):
    store = open_store(db_url)
    for name in KEYS:
        assert pipeline.submit(store, fixture(name), pipeline.Source.admin(queue=False)).stored
    yield KeyServer(store, ServerSettings())
    store.close()


@pytest.mark.parametrize("target", ["/pks/lookup?op=get&options=mr&search=fixture",
                                    "/pks/lookup?op=get&search=fixture"])
def test_a_large_answer_of_keys_is_sent_from_a_file_with_the_same_bytes(app, monkeypatch,
                                                                         target):
    """Until 2026-12-06 an answer of keys was made whole in memory, three
    copies of it at once, and held until the client took it: a few answers
    of 100 keys took a serving process from about 50 MB to 100-150 MB."""
    in_memory = app.handle(Request("GET", target))
    assert in_memory.status == 200 and isinstance(in_memory.body, bytes)
    assert in_memory.body.count(b"-----BEGIN PGP PUBLIC KEY BLOCK-----") == len(KEYS)
    monkeypatch.setattr(bodies, "MEMORY_BYTES", len(in_memory.body) // 3)
    in_file = app.handle(Request("GET", target))
    assert (in_file.status, in_file.content_type, in_file.headers) == \
        (in_memory.status, in_memory.content_type, in_memory.headers)
    assert isinstance(in_file.body, FileBody)
    assert _read(in_file.body) == in_memory.body


def test_an_answer_in_a_file_is_not_kept_by_the_answer_cache(app, monkeypatch):
    """It is read once, as it is sent: the cache would have handed the next
    client a closed file."""
    class Unchanging:
        def generation(self):
            return 1

    app.cache = AnswerCache(Unchanging(), 64 << 20)
    monkeypatch.setattr(bodies, "MEMORY_BYTES", 100)
    target = "/pks/lookup?op=get&options=mr&search=fixture"
    first = app.handle(Request("GET", target))
    data = _read(first.body)
    again = app.handle(Request("GET", target))
    assert again.body is not first.body and _read(again.body) == data
    assert app.cache.size == 0


def test_an_answer_its_temporary_file_has_no_room_for_is_503(app, monkeypatch, tmp_path,
                                                             caplog):
    """TMPDIR full: the answer is a 503 with Retry-After and a line in the log
    (not a 500 and a traceback each time), and a line when answers fit again."""
    target = "/pks/lookup?op=get&options=mr&search=fixture"
    whole = app.handle(Request("GET", target)).body
    monkeypatch.setattr(bodies, "MEMORY_BYTES", 100)
    caplog.set_level(logging.INFO, "cks.hkp")
    with tmpfs(tmp_path / "tmp", "64k") as directory:
        monkeypatch.setattr(tempfile, "tempdir", str(directory))
        fill(directory / "filler")
        for _ in range(3):
            answer = app.handle(Request("GET", target))
            assert answer.status == 503 and ("Retry-After", "60") in answer.headers
            assert b"no room for that answer" in answer.body
        os.unlink(directory / "filler")
        assert _read(app.handle(Request("GET", target)).body) == whole
    lines = [r.getMessage() for r in caplog.records]
    assert len([line for line in lines if "temporary files fail" in line]) == 1, lines
    assert lines[-1] == "answers' temporary files work again"
