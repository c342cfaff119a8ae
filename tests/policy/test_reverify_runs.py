"""views.reverify parses a chunk's keys in runs of at most PARSED_BYTES of key
data, reading what each run's views need at once: the runs change nothing
of the result.  It checks signatures outside any write transaction: a key
written meanwhile is not held up, and is derived again as it is now."""

import threading

import pytest

from cks import pipeline, views
from cks.runs import in_runs
from cks.served import ServePolicy
from cks.store import open_store
from support import fixture
from support.db import run_sql

NAMES = ("certified", "revoker", "desig-revoked", "alice-t2", "photo", "multi-uid", "rsa2048")


def _views(db_url):
    return [(f, bytes(s)) for f, s in run_sql(
        db_url, "SELECT fingerprint, served FROM cks_keys ORDER BY fingerprint")]


def _stored_with(db_url, policy, names=NAMES):
    store = open_store(db_url)
    try:
        for name in names:
            pipeline.submit(store, fixture(name), pipeline.Source.admin(queue=False),
                            pipeline.Limits(serve=policy))
    finally:
        store.close()
    return _views(db_url)


@pytest.mark.parametrize("parsed_bytes", [1, views.PARSED_BYTES])
def test_reverify_in_runs_gives_what_the_pipeline_gives(store, db_url, tmp_path,
                                                       monkeypatch, parsed_bytes):
    """Keys stored serving no certifications, then derived again under the
    default policy, serve what the pipeline serves under it (another
    database), and back."""
    none = ServePolicy(certifications="none")
    as_stored = _stored_with(db_url, none)
    verified = _stored_with("sqlite:///%s" % (tmp_path / "verified.db"), ServePolicy())
    assert verified != as_stored  # (the keys have certifications to serve)
    monkeypatch.setattr(views, "PARSED_BYTES", parsed_bytes)
    changed = views.reverify(store, ServePolicy())
    assert changed > 0 and _views(db_url) == verified
    assert views.reverify(store, none) == changed and _views(db_url) == as_stored


def test_runs_by_bytes():
    sizes = {"A": 3, "B": 3, "C": 9, "D": 1}
    assert list(in_runs([(f, sizes[f]) for f in "ABCD"], 6)) == [["A", "B"], ["C"], ["D"]]
    assert list(in_runs([], 6)) == []


def test_key_data_is_read_a_run_at_a_time(store, db_url, monkeypatch):
    """Not a chunk of 200 keys at once: every thread deriving views holds what
    it read until its run is written (three nodes syncing the Debian keyring
    grew to 120-300 MB a serving process with 4 MiB runs read 200 keys at a
    time)."""
    _stored_with(db_url, ServePolicy(certifications="none"))
    sizes = dict(run_sql(db_url, "SELECT fingerprint, length(keydata) FROM cks_keys"))
    limit = sorted(sizes.values())[-2] * 2  # the two largest keys' runs hold them alone
    monkeypatch.setattr(views, "PARSED_BYTES", limit)
    read, stored_keys = [], store.stored_keys

    def reading(cursor, fingerprints):
        found = stored_keys(cursor, fingerprints)
        read.append(sorted(found))
        return found

    monkeypatch.setattr(store, "stored_keys", reading)
    assert views.reverify(store, ServePolicy()) > 0
    assert sorted(f for run in read for f in run) == sorted(sizes)  # each key once
    assert len(read) > 1 and all(
        len(run) == 1 or sum(sizes[f] for f in run) <= limit for run in read)


def _meanwhile(monkeypatch, work):
    """Patch views.derive_view so that its first call runs `work` in another
    thread first, which must end within 10 s (nothing of reverify's may hold
    it up); returns the list that gets the thread, then what `work` gave."""
    done = []
    derive_view = views.derive_view

    def derive_after_work(key, *args):
        if not done:
            thread = threading.Thread(target=lambda: done.append(work()))
            done.append(thread)
            thread.start()
            thread.join(10)
            assert not thread.is_alive(), "held up by reverify's transaction"
        return derive_view(key, *args)

    monkeypatch.setattr(views, "derive_view", derive_after_work)
    return done


def test_a_key_written_while_the_views_are_derived_is_not_held_up_and_is_derived_again(
        store, db_url, tmp_path, monkeypatch):
    """alice-t2 (alice-t1 with a second user ID and subkey) is uploaded from
    another thread while reverify checks the signatures of alice-t1 as
    stored: the upload is not kept waiting (under the old write transaction
    it waited for the whole run, on SQLite for the database's write lock,
    on PostgreSQL for the key's), and reverify does not write over the view
    the upload gave alice-t2 with its own of alice-t1."""
    names = NAMES[:3] + ("alice-t1",)
    _stored_with(db_url, ServePolicy(certifications="none"), names)
    expected = _stored_with("sqlite:///%s" % (tmp_path / "expected.db"), ServePolicy(),
                            names + ("alice-t2",))
    uploads = _meanwhile(monkeypatch, lambda: pipeline.submit(
        store, fixture("alice-t2"), pipeline.Source.admin(queue=False), pipeline.Limits(),
        follow=False))
    views.reverify(store, ServePolicy())
    assert [o.status for o in uploads[1].outcomes] == [pipeline.UPDATED]
    assert _views(db_url) == expected


def test_a_signer_stored_while_the_views_are_derived_is_not_lost(
        store, db_url, tmp_path, monkeypatch):
    """rsa2048 certified `certified`; it is uploaded while reverify derives
    `certified` without it, and its upload derives `certified` again with
    its certification (follow_signers) before reverify writes: reverify must
    not put back the view without it."""
    _stored_with(db_url, ServePolicy(), ("certified",))
    expected = _stored_with("sqlite:///%s" % (tmp_path / "expected.db"), ServePolicy(),
                            ("certified", "rsa2048"))
    certified = [f for f, _ in _views(db_url)]
    uploads = _meanwhile(monkeypatch, lambda: pipeline.submit(
        store, fixture("rsa2048"), pipeline.Source.admin(queue=False), pipeline.Limits()))
    views.reverify(store, ServePolicy(), certified)
    assert [o.status for o in uploads[1].outcomes] == [pipeline.ADDED]
    assert _views(db_url) == expected
