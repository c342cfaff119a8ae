"""Uploads answered before their served views are derived (pipeline
defer_views, views.derive_followups, hkp/followups.py): the network view is
stored at once, lookups find nothing half-made, and the served view follows,
after a crash too."""

import multiprocessing
import time
import urllib.request

from cks import pipeline
from cks.counter import Counter
from cks.hkp.followups import ViewFollowups
from cks.openpgp.keys import read_keys, sks_hash
from cks.served import ServePolicy
from cks.store.base import NO_VIEW
from cks.views import derive_followups, follow_signers
from support import fixture
from support.db import run_sql
from support.nodes import fpr
from support.server import Cksd


def deferred(store, name):
    report = pipeline.submit(store, fixture(name), pipeline.Source.user(), follow=False,
                             defer_views=True)
    (outcome,) = report.outcomes
    assert outcome.view_work is not None
    return outcome


def served_state(db_url, name):
    return run_sql(db_url, "SELECT served_crc24, length(served) FROM cks_keys "
                           "WHERE fingerprint = ?", (fpr(name),))


def test_a_new_key_is_stored_but_not_found_until_its_view_is_derived(db_url, store):
    outcome = deferred(store, "alice-t1")
    assert outcome.status == pipeline.ADDED
    assert served_state(db_url, "alice-t1") == [(NO_VIEW, 0)]
    assert store.served_parts([fpr("alice-t1")]) == {}
    assert store.key_rows([fpr("alice-t1")]) == []
    assert store.find_by_words(["alice"], 10) == []
    # the network view is stored: recon's set, hget and the push queue have it
    (key,) = read_keys(fixture("alice-t1")).keys
    assert store.find_by_hash(sks_hash(key).hex()) == [fpr("alice-t1")]
    assert run_sql(db_url, "SELECT count(*) FROM cks_ptree")[0][0] > 0
    assert run_sql(db_url, "SELECT fingerprint FROM cks_pending_sync") == [(fpr("alice-t1"),)]

    assert derive_followups(store, ServePolicy(), [(outcome.fingerprint, outcome.view_work)]) == 1
    (crc, size), = served_state(db_url, "alice-t1")
    assert crc != NO_VIEW and size > 0
    assert [r.fingerprint for r in store.key_rows([fpr("alice-t1")])] == [fpr("alice-t1")]
    assert store.find_by_words(["alice"], 10) == [fpr("alice-t1")]
    assert run_sql(db_url, "SELECT count(*) FROM cks_view_work WHERE own")[0][0] == 0


def test_a_changed_key_serves_its_old_view_until_the_new_one_is_derived(db_url, store):
    pipeline.submit(store, fixture("alice-t1"), pipeline.Source.user())  # served at once
    before = store.served([fpr("alice-t1")])[fpr("alice-t1")]
    outcome = deferred(store, "alice-t2")  # the same key with more packets
    assert outcome.status == pipeline.UPDATED
    assert store.served([fpr("alice-t1")])[fpr("alice-t1")] == before
    derive_followups(store, ServePolicy(), [(outcome.fingerprint, outcome.view_work)])
    after = store.served([fpr("alice-t1")])[fpr("alice-t1")]
    assert after != before and len(after) > len(before)


def test_views_a_crash_left_underived_are_derived_by_the_background_job(db_url, store):
    deferred(store, "rsa2048")  # and the program stops before deriving it
    assert store.served_parts([fpr("rsa2048")]) == {}
    follow_signers(store, ServePolicy())
    assert fpr("rsa2048") in store.served_parts([fpr("rsa2048")])
    assert run_sql(db_url, "SELECT count(*) FROM cks_view_work")[0][0] == 0


def test_a_signer_missing_when_the_view_was_derived_is_followed(db_url, store):
    # "certified" carries certifications by rsa2048 and nistp256, not held yet
    outcome = deferred(store, "certified")
    derive_followups(store, ServePolicy(), [(outcome.fingerprint, outcome.view_work)])
    assert run_sql(db_url, "SELECT fingerprint FROM cks_view_work WHERE missing <> ''") == \
        [(fpr("certified"),)]
    pipeline.submit(store, fixture("rsa2048"), pipeline.Source.user())
    served = read_keys(store.served([fpr("certified")])[fpr("certified")]).keys[0]
    others = [s for c in served.identities for s in c.sigs if not served.is_self_issued(s.sig)]
    assert others  # the certification is served now that its signer is here


def _hold_one_in_flight(followups, started, release):
    followups.started()
    started.set()
    release.wait(10)
    followups.finished()


def test_followups_are_counted_across_processes_and_waited_for_a_bounded_time():
    followups = ViewFollowups(Counter.shared(), wait=0.2)
    started, release = multiprocessing.Event(), multiprocessing.Event()
    child = multiprocessing.get_context("fork").Process(
        target=_hold_one_in_flight, args=(followups, started, release))
    child.start()
    try:
        assert started.wait(10)
        assert followups.in_flight
        began = time.monotonic()
        followups.settle()  # gives up after `wait`
        assert 0.2 <= time.monotonic() - began < 2
        release.set()
        child.join(10)
        assert not followups.in_flight
        began = time.monotonic()
        followups.settle()
        assert time.monotonic() - began < 0.05
    finally:
        release.set()
        child.join(10)


def test_a_key_uploaded_is_found_by_the_very_next_lookup(db_url, tmp_path):
    """Every lookup after an upload's answer finds the key, on any serving
    process, though its view was derived after the answer."""
    names = ["rsa2048", "ed25519", "nistp256", "dsa-elg", "multi-uid", "photo", "certified",
             "revoked-parts"]
    config = tmp_path / "cks.conf"
    config.write_text("[server]\nprocesses = 2\n")
    with Cksd(db_url, config=str(config)) as node:
        for name in names:
            assert node.add(fixture(name))[0] == 200
            for query in ("op=get&options=mr&search=0x" + fpr(name),
                          "op=index&options=mr&search=0x" + fpr(name)):
                # a new connection each time: another serving process may take it
                with urllib.request.urlopen(node.url + "/pks/lookup?" + query) as answer:
                    assert answer.status == 200, (name, query)
        assert run_sql(db_url, "SELECT count(*) FROM cks_view_work WHERE own")[0][0] == 0
