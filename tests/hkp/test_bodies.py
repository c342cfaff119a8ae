"""Answers too large to hold in memory (hkp/bodies.py): written to a Spool
as they are made, sent from a temporary file past bodies.MEMORY_BYTES."""

from __future__ import annotations

import logging
import os
import random
import tempfile
import tracemalloc

import pytest

from cks import pipeline
from cks.hkp import bodies
from cks.hkp.answer_cache import AnswerCache
from cks.hkp.app import KeyServer, Request, ServerSettings
from cks.hkp.bodies import FileBody, Spool
from cks.openpgp import signature as sg
from cks.openpgp.packet import Packet
from cks.openpgp.userid import UserAttribute, UserID
from cks.store import open_store
from support import fixture
from support.disk import fill, tmpfs
from support.forge import Signer, keyring

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


BULKY_KEYS = 100


def _bulky_key(n):
    """A key with the word "bulky" in its one user ID and a self-signed
    photo ID of 60 KB (its index row stays small)."""
    signer = Signer.new(seed=bytes([n + 1]) * 32)
    user_id = UserID(b"Bulky %d <bulky-%d@example.org>" % (n, n))
    image = b"\x10\x00\x01\x01" + bytes(12) + b"\xff\xd8\xff\xe0" + random.randbytes(60_000)
    photo = UserAttribute.parse(b"\xff" + (len(image) + 1).to_bytes(4, "big") + b"\x01" + image)
    return keyring([Packet(6, signer.public.serialize()),
                    Packet(13, user_id.value),
                    Packet(2, signer.sign(sg.CERT_POSITIVE, signer.public, user_id).serialize()),
                    Packet(17, photo.raw),
                    Packet(2, signer.sign(sg.CERT_POSITIVE, signer.public, photo).serialize())])


@pytest.fixture
def bulky(db_url):
    """A server of BULKY_KEYS keys of about 60 KB each, and their size in all."""
    store = open_store(db_url)
    total = 0
    for n in range(BULKY_KEYS):
        data = _bulky_key(n)
        assert pipeline.submit(store, data, pipeline.Source.admin(queue=False)).stored
        total += len(data)
    yield KeyServer(store, ServerSettings()), total
    store.close()


@pytest.mark.parametrize("target", ["/pks/lookup?op=get&options=mr&search=bulky",
                                    "/pks/lookup?op=get&search=bulky",
                                    "/pks/lookup?op=vindex&search=bulky"])
def test_an_answer_of_many_large_keys_holds_few_of_them_at_once(bulky, monkeypatch, target):
    """Each key is read, written to the answer and let go in turn.  Until
    2026-12-06 a get held every key of its answer until the last was
    written, and a vindex held them all and its page whole, as text and as
    bytes: vindexes of the Debian keyring took a serving process to 99-115
    MB, 73-95 MB since."""
    app, total = bulky
    monkeypatch.setattr(bodies, "MEMORY_BYTES", 16 << 10)
    whole = _read(app.handle(Request("GET", target)).body)  # (served views derived first)
    tracemalloc.start()
    try:
        answer = app.handle(Request("GET", target))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert answer.status == 200 and isinstance(answer.body, FileBody)
    assert _read(answer.body) == whole
    if "op=get" in target:
        assert whole.count(b"-----BEGIN PGP PUBLIC KEY BLOCK-----") == BULKY_KEYS
    else:
        assert all(b"bulky-%d@example.org" % n in whole for n in range(BULKY_KEYS))
    assert peak < total / 2, (peak, total)


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
