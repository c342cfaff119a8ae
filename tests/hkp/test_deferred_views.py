"""An upload of a new key is answered once its network view is committed; its
served view (the signature checks) follows, and a lookup after the answer
finds the key all the same (hkp/views_owed.py)."""

import http.client
import json
import multiprocessing
import threading
import time
import urllib.error
import urllib.request

import pytest

from cks import pipeline, views
from cks.hkp import app as app_module
from cks.hkp.app import KeyServer, Request, ServerSettings
from cks.hkp import views_owed
from cks.hkp.views_owed import ViewsOwed
from cks.openpgp.keys import read_keys
from cks.periodic import Periodic
from cks.store import StoreError
from cks.store.rows import UNSERVED
from cks.store.peers import PeerStore
from support import fixture
from support.content import content, pipeline_content
from support.db import BACKENDS, drop_pg_database, new_db_url, run_sql
from support.forge import key_of_made_up_self_signatures
from support.nodes import fpr
from support.server import Cksd, serving_here


def _post(app, name):
    request = Request("POST", "/pks/add?options=mr", {"content-type": "application/pgp-keys"},
                      fixture(name), "127.0.0.1")
    response = app.handle(request)
    assert response.status == 200, response.body
    return json.loads(response.body)


def _get(app, target, headers=None):
    return app.handle(Request("GET", target, headers or {}, b"", "127.0.0.1"))


def _row(db_url, name):
    return run_sql(db_url, "SELECT served_crc24, length(served) FROM cks_keys "
                           "WHERE fingerprint = ?", (fpr(name),))


def test_a_new_key_is_answered_before_its_served_view_and_found_after(store, db_url,
                                                                       tmp_path):
    PeerStore(store).add("push.example:11371", "hkp", 100, None, catch_up=False)
    app = KeyServer(store, ServerSettings())
    assert _post(app, "alice-t1")["added"] == [fpr("alice-t1")]
    # Answered: the network view, in the recon set and queued for the peer;
    # no served view, no index rows, no verdicts yet; its work item queued.
    assert _row(db_url, "alice-t1") == [(UNSERVED, 0)]
    assert run_sql(db_url, "SELECT size FROM cks_ptree WHERE prefix = ''") == [(1,)]
    assert run_sql(db_url, "SELECT count(*) FROM cks_userids") == [(0,)]
    assert run_sql(db_url, "SELECT count(*) FROM cks_sig_verdicts") == [(0,)]
    assert run_sql(db_url, "SELECT fingerprint, signed FROM cks_view_work") == [
        (fpr("alice-t1"), True)]
    assert run_sql(db_url, "SELECT fingerprint FROM cks_pending_sync") == [(fpr("alice-t1"),)]
    # A search by word, the first lookup after the answer, finds it: it
    # derives the new key's served view first.  The rest of its work item
    # (the keys it signed) is the background job's.
    response = _get(app, "/pks/lookup?op=index&options=mr&search=alice")
    assert response.status == 200 and fpr("alice-t1").encode() in response.body
    (status, size), = _row(db_url, "alice-t1")
    assert status != UNSERVED and size > 0
    assert run_sql(db_url, "SELECT count(*) FROM cks_sig_verdicts") == [(2,)]
    assert run_sql(db_url, "SELECT count(*) FROM cks_view_work") == [(1,)]
    app.views_owed.run(app.serve_views, app.follow_views)  # the background job's round
    assert run_sql(db_url, "SELECT count(*) FROM cks_view_work") == [(0,)]
    # The same rows as the pipeline writes when it derives the view in the
    # upload's own transaction (another database).
    at_once = pipeline_content(tmp_path, fixture("alice-t1"))
    assert content(db_url) == at_once
    key = read_keys(_get(app, "/pks/lookup?op=get&options=mr&search=0x"
                              + fpr("alice-t1")).body).keys[0]
    assert key.serialize() == at_once[0][0][3]  # (its served view)


def test_only_new_keys_wait_for_their_view(store, db_url):
    """An update of a served key is derived in its own transaction, as before;
    nothing is owed for it, nor for an unchanged or refused upload."""
    app = KeyServer(store, ServerSettings())
    pipeline.submit(store, fixture("alice-t1"), pipeline.Source.user())
    assert _post(app, "alice-t2")["updated"] == [fpr("alice-t1")]
    assert _post(app, "alice-t2")["unchanged"] == [fpr("alice-t1")]
    assert app.views_owed.settled
    assert _row(db_url, "alice-t1")[0][0] != UNSERVED


def test_a_lookup_by_key_id_finds_a_key_just_uploaded(store):
    app = KeyServer(store, ServerSettings())
    for name in ("rsa1024", "nistp384", "ed25519"):
        _post(app, name)
        response = _get(app, "/pks/lookup?op=get&options=mr&search=0x" + fpr(name))
        assert response.status == 200
        assert read_keys(response.body).keys[0].fingerprint.hex().upper() == fpr(name)


def test_a_failed_settling_leaves_the_work_owed_to_the_background_job(store, monkeypatch):
    """A failed settling (the primary database gone) leaves the work owed;
    lookups do not try again at once (a replica may answer them meanwhile),
    the background job does, and so do lookups after a pause."""
    app = KeyServer(store, ServerSettings())
    _post(app, "rsa1024")
    calls = []
    app.views_owed.settle(lambda: calls.append(1) or False)
    assert calls == [1] and not app.views_owed.settled
    lookup = "/pks/lookup?op=index&options=mr&search=0x" + fpr("rsa1024")
    assert _get(app, lookup).status == 404  # not tried again yet
    app.views_owed.run(app.serve_views, app.follow_views)  # the background job's round
    assert app.views_owed.settled and _get(app, lookup).status == 200
    _post(app, "nistp384")
    app.views_owed.settle(lambda: False)
    now = time.monotonic()
    monkeypatch.setattr(views_owed.time, "monotonic",
                        lambda: now + views_owed.FAILED_PAUSE_SECONDS)
    assert _get(app, "/pks/lookup?op=index&options=mr&search=0x"
                     + fpr("nistp384")).status == 200


def test_an_upload_answered_after_a_failed_settling_ends_the_pause(store):
    """An upload's commit says the primary takes writes again: a lookup sent
    after its answer derives the key's view at once (until 2026-12-05 a key
    uploaded right after an outage waited for the background job)."""
    app = KeyServer(store, ServerSettings())
    _post(app, "rsa1024")
    app.views_owed.settle(lambda: False)  # (the primary away)
    _post(app, "nistp384")
    for name in ("nistp384", "rsa1024"):
        assert _get(app, "/pks/lookup?op=get&options=mr&search=0x" + fpr(name)).status == 200


def test_the_work_says_whether_it_was_done_and_logs_a_database_error(monkeypatch, caplog):
    """serve_views and follow_views: True when done (even when no view
    changed: 0), False when a database error stopped them; a lookup's
    serve_views_with_id: the answer of the work, None on such an error.
    The error is logged when it starts, not again at every try
    (repeated.RepeatedFailure), and its end once."""
    results = {"serve_new_keys": 0, "follow_signers": 0, "serve_new_keys_with_id": False}
    for name, value in results.items():
        monkeypatch.setattr(views_owed, name, lambda *a, value=value, **k: value)
    assert views_owed.serve_views(None, None) is True
    assert views_owed.follow_views(None, None) is True
    assert views_owed.serve_views_with_id(None, None, None, "keyid", "0" * 16) is False

    def gone(*_args, **_kwargs):
        raise StoreError("the database is away")
    for name in results:
        monkeypatch.setattr(views_owed, name, gone)
    with caplog.at_level("INFO", logger="cks.hkp"):
        assert views_owed.serve_views(None, None) is False
        assert views_owed.follow_views(None, None) is False
        assert views_owed.serve_views_with_id(None, None, None, "keyid", "0" * 16) is None
        monkeypatch.setattr(views_owed, "serve_new_keys", lambda *a, **k: 0)
        assert views_owed.serve_views(None, None) is True
    assert [r.getMessage() for r in caplog.records] == [
        "served views not derived yet: the database is away", "served views derived again"]


def test_a_lookup_does_not_wait_for_the_rest_of_the_queue(store):
    """The background job works off the rest of the queue (the keys the new
    ones signed, what recon brought: many seconds under a sync's load)
    without holding up a lookup's settling."""
    app = KeyServer(store, ServerSettings())
    entered, release = threading.Event(), threading.Event()

    def rest():
        entered.set()
        return release.wait(30)

    background = threading.Thread(target=app.views_owed.run, args=(app.serve_views, rest))
    background.start()
    try:
        assert entered.wait(10)
        _post(app, "rsa1024")
        started = time.monotonic()
        response = _get(app, "/pks/lookup?op=get&options=mr&search=0x" + fpr("rsa1024"))
        assert response.status == 200 and time.monotonic() - started < 10
        assert app.views_owed.settled
    finally:
        release.set()
        background.join()


def test_a_settling_derives_only_what_was_owed_when_it_began(store, db_url, monkeypatch):
    """Uploads that go on while a lookup settles are the next settling's (or
    the background job's): under a stream of them, a lookup that chased the
    queue took 43 s."""
    app = KeyServer(store, ServerSettings())
    _post(app, "rsa1024")
    derived, reverify = [], views.reverify

    def upload_meanwhile(store, policy, fingerprints, **options):
        derived.extend(fingerprints)
        if len(derived) == 1:
            _post(app, "nistp384")  # answered while the settling works
        return reverify(store, policy, fingerprints, **options)

    monkeypatch.setattr(views, "reverify", upload_meanwhile)
    app.views_owed.settle(app.serve_views)  # (as a search by words does)
    assert derived == [fpr("rsa1024")]
    assert _row(db_url, "nistp384")[0][0] == UNSERVED and not app.views_owed.settled
    # The next settling derives the upload that came meanwhile.
    app.views_owed.settle(app.serve_views)
    assert derived == [fpr("rsa1024"), fpr("nistp384")] and app.views_owed.settled


def _subkey_id(name):
    return read_keys(fixture(name)).keys[0].subkeys[0].value.keyid.hex().upper()


def test_a_lookup_by_key_id_derives_only_the_new_keys_it_finds(store, db_url, tmp_path,
                                                                monkeypatch):
    """What GnuPG's --recv-keys and --refresh-keys send: a lookup by key ID or
    fingerprint waits for the signature checks of the new keys it finds (by
    their primary keys' or their subkeys' IDs), not for every upload owed."""
    app = KeyServer(store, ServerSettings())
    names = ["rsa1024", "nistp384", "ed25519", "v6-ed25519"]
    for name in names:
        _post(app, name)
    derived, reverify = [], views.reverify
    monkeypatch.setattr(views, "reverify", lambda store, policy, fingerprints, **options: (
        derived.extend(fingerprints), reverify(store, policy, fingerprints, **options))[1])

    def get(search, op="get"):
        return _get(app, "/pks/lookup?op=%s&options=mr&search=%s" % (op, search),
                    {"user-agent": "curl/8"}).status  # (GnuPG gets no v6 key by a subkey)

    assert get("0x0123456789ABCDEF") == 404 and derived == []
    assert get("0x" + fpr("nistp384")) == 200 and derived == [fpr("nistp384")]
    assert get("0x" + fpr("rsa1024")[-16:], "index") == 200  # a long key ID
    assert get("0x" + _subkey_id("ed25519")[-8:]) == 200  # a subkey's short key ID
    assert derived == [fpr("nistp384"), fpr("rsa1024"), fpr("ed25519")]
    assert _row(db_url, "v6-ed25519")[0][0] == UNSERVED and not app.views_owed.settled
    # The last one owed, by its subkey's long key ID: then nothing is owed.
    assert get("0x" + _subkey_id("v6-ed25519")) == 200 and app.views_owed.settled
    assert derived[-1] == fpr("v6-ed25519")
    # Each was derived as the pipeline derives it in an upload's transaction.
    app.views_owed.run(app.serve_views, app.follow_views)  # (the background job's round)
    assert content(db_url) == pipeline_content(tmp_path, b"".join(fixture(n) for n in names))


def _recording_derivations(monkeypatch):
    derived, reverify = [], views.reverify
    monkeypatch.setattr(views, "reverify", lambda store, policy, fingerprints, **options: (
        derived.extend(fingerprints), reverify(store, policy, fingerprints, **options))[1])
    return derived


def test_a_search_by_words_derives_every_new_key(store, monkeypatch):
    app = KeyServer(store, ServerSettings())
    for name in ("rsa1024", "nistp384"):
        _post(app, name)
    derived = _recording_derivations(monkeypatch)
    assert _get(app, "/pks/lookup?op=index&options=mr&search=nobody").status == 404
    assert sorted(derived) == sorted([fpr("rsa1024"), fpr("nistp384")])
    assert app.views_owed.settled


def test_a_key_page_derives_the_new_keys_it_finds_and_their_new_signers(store, db_url,
                                                                         monkeypatch):
    """A key page names the signers of the key's certifications from their
    own served views: a signer just uploaded is named too."""
    app = KeyServer(store, ServerSettings())
    for name in ("nistp256", "certified", "ed25519"):
        _post(app, name)
    derived = _recording_derivations(monkeypatch)
    page = _get(app, "/pks/lookup?op=vindex&search=0x" + fpr("certified"))
    assert page.status == 200 and b"nistp256 fixture &lt;nistp256@example.org&gt;" in page.body
    assert sorted(derived) == sorted([fpr("nistp256"), fpr("certified")])
    assert _row(db_url, "ed25519")[0][0] == UNSERVED and not app.views_owed.settled
    # The page of a key served already: its signer just uploaded, and nothing else.
    _post(app, "rsa2048")
    assert _get(app, "/pks/lookup?op=vindex&search=0x" + fpr("certified")).status == 200
    assert derived[2:] == [fpr("rsa2048")]
    assert _row(db_url, "ed25519")[0][0] == UNSERVED


def test_views_owed_counts_across_processes():
    owed, other = ViewsOwed.shared_by(2)
    done = []
    owed.settle(lambda: done.append("nothing owed") or True)
    assert done == [] and owed.settled
    child = multiprocessing.get_context("fork").Process(target=other.owe)
    child.start()
    child.join()
    assert not owed.settled  # the other process's upload counts here
    owed.settle(lambda: done.append("settled") or True)
    assert done == ["settled"] and owed.settled
    # The background job's round: the rest of the queue, whatever is owed; when
    # uploads are owed, their settling first.
    owed.run(lambda: done.append("settled again") or True,
             lambda: done.append("the rest") or True)
    assert done == ["settled", "the rest"]
    child = multiprocessing.get_context("fork").Process(target=other.owe)
    child.start()
    child.join()
    owed.run(lambda: done.append("settled again") or True,
             lambda: done.append("the rest") or True)
    assert done == ["settled", "the rest", "settled again", "the rest"] and owed.settled
    owed.owe()
    owed.run(lambda: done.append("failed") and False, lambda: done.append("the rest"))
    assert done[-1] == "failed" and not owed.settled  # the database is away: no rest


def test_an_upload_owed_while_settling_stays_owed():
    """What is uploaded while a settling runs may be after its read of the
    queue: it is settled by the next one, not by this."""
    owed = ViewsOwed()
    owed.owe()
    owed.settle(lambda: owed.owe() or True)
    assert not owed.settled
    owed.settle(lambda: True)
    assert owed.settled


def _upload_and_lookup(cksd, name):
    status, _, body = cksd.add(fixture(name), options="mr")
    assert status == 200 and json.loads(body)["added"] == [fpr(name)]
    status, _, body = cksd.lookup(op="get", options="mr", search="0x" + fpr(name))
    assert status == 200, "%s not found right after its upload" % name


@pytest.mark.parametrize("processes", [1, 2])
def test_cksd_serves_what_it_was_sent_at_once(db_url, tmp_path, processes):
    """Through cksd: every key is found by the lookup right after its upload's
    answer (each on a new connection: with two processes, the lookup may
    reach the other one); and without a lookup, the background job started by
    the upload derives the served view within moments, not at its next round."""
    config = tmp_path / "cks.conf"
    config.write_text("[server]\nprocesses = %d\n[ratelimit]\nexempt = 127.0.0.0/8\n"
                      % processes)
    with Cksd(db_url, config=str(config)) as cksd:
        for name in ("rsa1024", "nistp384", "brainpoolp256", "ed25519"):
            _upload_and_lookup(cksd, name)
        for name in ("nistp521", "alice-t1", "dsa-elg"):
            assert cksd.add(fixture(name))[0] == 200
            # (The job's own round is every 2 s: three keys served well
            # within a quarter of that each did not wait for it.)
            deadline = time.monotonic() + 0.5
            while _row(db_url, name)[0][0] == UNSERVED:
                assert time.monotonic() < deadline, "the served view did not follow the upload"
                time.sleep(0.01)


def test_a_lookup_in_the_loops_thread_never_settles(store):
    """The loop saw nothing owed and answers a lookup itself; an upload answered
    by a worker in between does not make that lookup wait for the database."""
    app = KeyServer(store, ServerSettings())
    _post(app, "rsa1024")
    lookup = "/pks/lookup?op=get&options=mr&search=0x" + fpr("rsa1024")
    response = app.handle(Request("GET", lookup, {}, b"", "127.0.0.1", in_loop=True))
    assert response.status == 404 and not app.views_owed.settled
    assert _get(app, lookup).status == 200 and app.views_owed.settled


def test_a_lookup_that_must_settle_first_is_answered_by_a_worker(store):
    """Settling writes to the database and may wait for a lock: the loop's
    thread, which serves every connection, never does it."""
    app = KeyServer(store, ServerSettings())
    threads = []
    handle = app.handle

    def recording(request):
        threads.append(threading.current_thread().name)
        return handle(request)
    app.handle = recording
    with serving_here(app) as (port, _):
        def lookup(name):
            url = "http://127.0.0.1:%d/pks/lookup?op=get&options=mr&search=0x%s" % (
                port, fpr(name))
            try:
                with urllib.request.urlopen(url, timeout=30) as answer:
                    return answer.status
            except urllib.error.HTTPError as exc:
                return exc.code
        assert lookup("rsa1024") == 404 and threads == ["the-loop"]  # a quick lookup
        _post(app, "rsa1024")  # (called here: its views are owed)
        threads.clear()
        assert lookup("rsa1024") == 200
        assert threads[0].startswith("cksd-worker") and app.views_owed.settled
        threads.clear()
        assert lookup("rsa1024") == 200 and threads == ["the-loop"]


def _helping(owed, work):
    """An idle helper of `owed` running `work` (which records when it ran),
    as cksd runs it."""
    helper = Periodic("views-helper", 0.0, lambda: views_owed.help_while_idle(owed, work))
    helper.start()
    return helper


def test_an_idle_process_derives_the_views_another_process_owes():
    """Another process answers an upload: this one's helper derives the
    views at once, without waiting for the uploads to pause."""
    owed, other = ViewsOwed.shared_by(2)
    ran = []
    helper = _helping(owed, lambda: ran.append(time.monotonic()) or True)
    try:
        child = multiprocessing.get_context("fork").Process(target=other.owe)
        child.start()
        child.join()
        deadline = time.monotonic() + 5
        while not ran:
            assert time.monotonic() < deadline, "the helper did not derive the views"
            time.sleep(0.01)
        assert owed.settled
    finally:
        helper.stop()


def test_the_process_taking_uploads_leaves_them_to_the_pause():
    """Uploads answered here every 10 ms for a third of a second: this
    process's helper derives nothing until they pause for QUIET_SECONDS."""
    owed = ViewsOwed()
    ran = []
    helper = _helping(owed, lambda: ran.append(time.monotonic()) or True)
    try:
        for _ in range(30):
            owed.owe()
            last = time.monotonic()
            time.sleep(0.01)
        deadline = time.monotonic() + 5
        while not ran:
            assert time.monotonic() < deadline, "the helper did not derive the views"
            time.sleep(0.01)
        assert ran[0] - last >= views_owed.QUIET_SECONDS and owed.settled
    finally:
        helper.stop()


def test_a_helper_killed_while_it_waits_holds_up_no_upload():
    """The idle helper of another process is killed while it waits for
    uploads (kill -9, the OOM killer): an upload answered here is counted
    at once.  Until 2026-12-07 the helpers waited on a multiprocessing
    Event, whose set() waits for every waiter: the upload waited for good,
    and with it the stop of cksd."""
    owed, other = ViewsOwed.shared_by(2)
    child = multiprocessing.get_context("fork").Process(target=other.wait_for_owed,
                                                        args=(60,))
    child.start()
    time.sleep(0.3)  # (waiting by now)
    child.kill()
    child.join()
    upload = threading.Thread(target=owed.owe, daemon=True)
    upload.start()
    upload.join(5)
    assert not upload.is_alive() and not owed.settled


def test_one_helper_at_a_time(monkeypatch):
    """The helpers' turn goes to one process at a time, and comes back after
    the lease if its holder never hands it back (it died)."""
    owed, other = ViewsOwed.shared_by(2)
    assert owed.take_turn()
    context = multiprocessing.get_context("fork")
    child = context.Process(target=lambda: exit(0 if other.take_turn() else 1))
    child.start()
    child.join()
    assert child.exitcode == 1 and not owed.take_turn()
    owed.end_turn()
    assert owed.take_turn()
    owed.end_turn()
    monkeypatch.setattr(views_owed, "HELPER_LEASE_SECONDS", 0.05)
    assert owed.take_turn()
    time.sleep(0.1)
    assert owed.take_turn()


@pytest.mark.parametrize("backend", BACKENDS)
def test_cksd_serves_keys_while_one_connection_goes_on_uploading(tmp_path, backend):
    """A client sends new keys one after the other over one keep-alive
    connection (one serving process takes them all, never pausing): the
    other process serves each within moments, while the uploads go on (the
    background job alone would wait for their pause, or a second).  On
    SQLite too, whose writers take turns (sqlite.WriteTurns)."""
    config = tmp_path / "cks.conf"
    config.write_text("[server]\nprocesses = 2\n[ratelimit]\nexempt = 127.0.0.0/8\n")
    streams = []
    for n in range(3):
        (tmp_path / str(n)).mkdir()
        streams.append(_upload_stream(str(config), new_db_url(backend, tmp_path / str(n))))
    # A check tells only while the background job could not have served the
    # key: no pause of QUIET_SECONDS between answers so far, and less than
    # AT_MOST_SECONDS since the first.  (A machine too slow to answer an
    # upload within QUIET_SECONDS makes a stream tell nothing; one of three
    # must tell.)
    telling = [[served for seconds, longest_pause, served in stream
                if longest_pause < views_owed.QUIET_SECONDS
                and seconds < views_owed.AT_MOST_SECONDS] for stream in streams]
    assert any(telling), "too slow to tell: %s" % streams
    assert any(any(checks) for checks in telling), \
        "the first key was not served while the uploads went on: %s" % streams


def _upload_stream(config: str, url: str):
    """Upload twelve keys over one connection to cksd on the fresh database
    `url` (dropped after), and after each answer check whether the first is
    served: (seconds since the first answer, the longest pause between
    answers so far, served?) of each check."""
    names = ["rsa1024", "nistp384", "brainpoolp256", "ed25519", "nistp521", "alice-t1",
             "dsa-elg", "rsa2048", "nistp256", "certified", "photo", "multi-uid"]
    checks = []
    try:
        with Cksd(url, config=config) as cksd:
            connection = http.client.HTTPConnection("127.0.0.1", cksd.port, timeout=30)
            started = last = None
            longest_pause = 0.0
            for name in names:
                connection.request("POST", "/pks/add", fixture(name),
                                   {"Content-Type": "application/pgp-keys"})
                answer = connection.getresponse()
                assert answer.status == 200, answer.read()
                answer.read()
                now = time.monotonic()
                started = started or now
                longest_pause = max(longest_pause, now - (last or now))
                last = now
                checks.append((now - started, longest_pause,
                               _row(url, names[0])[0][0] != UNSERVED))
            connection.close()
    finally:
        if url.startswith("postgresql"):
            drop_pg_database(url)
    return checks


@pytest.mark.parametrize("fails", ["says so", "raises"])
def test_a_helper_whose_work_fails_goes_on_without_spinning(fails):
    """Work that fails (the database gone: follow_views says so; or a bug)
    is left to the background job; the helper neither dies nor tries again
    at once."""
    owed, other = ViewsOwed.shared_by(2)
    calls = []

    def failing():
        calls.append(time.monotonic())
        if fails == "raises":
            raise RuntimeError("a bug")
        return False
    helper = _helping(owed, failing)
    try:
        child = multiprocessing.get_context("fork").Process(target=other.owe)
        child.start()
        child.join()
        time.sleep(0.3)
        assert len(calls) == 1 and helper._thread.is_alive()
        assert owed.take_turn()  # (its turn was handed back)
    finally:
        helper.stop()


def _settling_in_thread(owed):
    """A settling started in another thread, held until `release` is set;
    `running` is set once it holds the settling."""
    running, release = threading.Event(), threading.Event()

    def work():
        running.set()
        return release.wait(30)
    thread = threading.Thread(target=owed.settle, args=(work,), daemon=True)
    thread.start()
    assert running.wait(10)
    return thread, release


def test_a_lookup_answers_without_waiting_out_a_long_settling():
    """A lookup waits LOOKUP_WAIT_SECONDS at most for a settling another
    thread of its process is running, or for its own, which goes on in a
    thread of its own; then it answers with what is served."""
    owed = ViewsOwed()
    owed.owe()
    thread, release = _settling_in_thread(owed)
    ran = []
    owed.settle(lambda: ran.append(1) or True, wait=0.05)
    assert ran == [] and thread.is_alive() and not owed.settled
    release.set()
    thread.join(10)
    assert owed.settled
    owed.owe()
    owed.settle(lambda: ran.append(1) or True, wait=5)  # none running: it settles
    assert ran == [1] and owed.settled
    owed.owe()
    running, release = threading.Event(), threading.Event()
    owed.settle(lambda: running.set() or release.wait(30), wait=0.05)  # its own, long
    assert running.is_set() and not owed.settled
    release.set()
    owed.settle(lambda: ran.append(2) or True, wait=5)  # (after that one)
    assert owed.settled and ran == [1]


def test_a_lookup_waits_for_the_idle_helper_instead_of_deriving_again():
    """While an idle helper (of any process) has the turn, a lookup waits for
    it to settle the uploads answered before the lookup began, and derives
    nothing itself; or answers after its wait with what is served."""
    owed = ViewsOwed()
    owed.owe()
    assert owed.take_turn()  # (the helper of another process)
    helper = threading.Timer(0.2, lambda: owed.settle(lambda: True))
    helper.start()
    ran = []
    owed.settle(lambda: ran.append(1) or True, wait=30)
    assert ran == [] and owed.settled
    owed.owe()
    owed.settle(lambda: ran.append(1) or True, wait=0.05)  # the helper is not done
    assert ran == [] and not owed.settled
    owed.end_turn()
    helper.join()


def test_a_key_of_many_made_up_self_signatures_holds_no_search_up(store, db_url,
                                                                   monkeypatch):
    """Searches by words after the upload of a key with a thousand made-up
    DSA self-signatures (each a check) are answered before its view exists,
    after LOOKUP_WAIT_SECONDS: the first, which starts the settling, too."""
    monkeypatch.setattr(app_module, "LOOKUP_WAIT_SECONDS", 0.02)
    app = KeyServer(store, ServerSettings())
    _post(app, "rsa1024")
    # (dsa-elg's primary key, 2,048/256: a DSA check each, the default limit's worth)
    primary = read_keys(fixture("dsa-elg")).keys[0].public_key
    fingerprint = primary.fingerprint.hex().upper()
    data = key_of_made_up_self_signatures(primary, 1000)
    response = app.handle(Request("POST", "/pks/add", {"content-type": "application/pgp-keys"},
                                  data, "127.0.0.1"))
    assert response.status == 200, response.body
    # The first search starts the settling (every check), and answers before it ends.
    assert _get(app, "/pks/lookup?op=index&options=mr&search=made").status == 404
    assert app.views_owed._settling.locked()
    response = _get(app, "/pks/lookup?op=index&options=mr&search=0x" + fpr("rsa1024"))
    assert response.status == 200  # (served before: a lookup by key ID)
    response = _get(app, "/pks/lookup?op=index&options=mr&search=nobody")
    assert response.status == 404 and app.views_owed._settling.locked()
    assert run_sql(db_url, "SELECT served_crc24 FROM cks_keys WHERE fingerprint = ?",
                   (fingerprint,)) == [(UNSERVED,)]
    assert app.views_owed._settling.acquire(timeout=120)  # the settling's end
    app.views_owed._settling.release()
    assert app.views_owed.settled
    assert run_sql(db_url, "SELECT served_crc24 FROM cks_keys WHERE fingerprint = ?",
                   (fingerprint,)) != [(UNSERVED,)]
