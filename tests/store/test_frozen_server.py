"""A PostgreSQL server that is up and does not answer (its processes stopped
with SIGSTOP: its kernel still acknowledges every packet): a statement's
answer is waited for its statement_timeout (request_timeout) and
CUT_MARGIN at most, then its connection is cut and the request gets 503;
from then on until a probe gets an answer, a request that needs a new
connection gets 503 at once.  Until 2026-12-05 it waited until the server
answered, and a lookup held its serving process's every other request
meanwhile (and, after a cut, connect_timeout for each new connection)."""

import os
import socket
import threading
import time
import uuid

import pytest

from cks.store.postgres import CUT_MARGIN
from cks.store.watchdog import Watchdog
from support import fixture, in_ci
from support import pgcluster
from support.db import with_schema
from support.server import LOOPBACK_EXEMPT, Cksd

REQUEST_TIMEOUT = 2
ANSWERED_WITHIN = REQUEST_TIMEOUT + CUT_MARGIN + 2  # (a little for a loaded machine)
# A write's round trip sends a few statements together (BEGIN, its locks,
# ...), each with the timeout on the server: waited for that many times over.
WRITE_ANSWERED_WITHIN = 6 * REQUEST_TIMEOUT + CUT_MARGIN + 2
CUT_WARNING = "did not answer a statement within"
FAILING_FAST = "requests that need a new connection fail at once"
ANSWERS_AGAIN = "answers again"


@pytest.fixture(scope="module")
def server():
    why_not = pgcluster.missing()
    if why_not:
        if in_ci():
            pytest.fail("CI must run the frozen server tests: " + why_not)
        pytest.skip(why_not)
    with pgcluster.PgCluster(replicated=False) as made:
        yield made


@pytest.fixture
def cksd(server, tmp_path):
    """cksd, one serving process, request_timeout 2 s, on a new database of
    the private server, its pool holding a connection."""
    name = "cks_frozen_%s" % uuid.uuid4().hex[:10]
    server.create_database(name)
    config = tmp_path / "cks.conf"
    config.write_text("[server]\nprocesses = 1\nrequest_timeout = %d\n%s"
                      % (REQUEST_TIMEOUT, LOOPBACK_EXEMPT))
    with Cksd(server.primary.url(name), config=str(config)) as started:
        assert lookup(started) == 404
        yield started


def lookup(cksd):
    """A lookup of a key ID never asked for: no cached answer, the database's."""
    return cksd.lookup(op="get", options="mr", search="0x" + uuid.uuid4().hex[:16])[0]


def served_again(cksd, request=lookup, answered=404):
    """Lookups (or `request`) are answered within a moment of the server's
    resuming (once the probe has its answer: till then those that need a new
    connection get 503 at once)."""
    resumed = time.monotonic()
    while request(cksd) != answered:
        assert time.monotonic() - resumed < 3
        time.sleep(0.05)


def timed(request):
    started = time.monotonic()
    status = request()
    return status, time.monotonic() - started


def test_a_lookup_on_a_frozen_server_gets_503_and_its_process_serves_on(server, cksd):
    with server.primary.frozen():
        status, seconds = timed(lambda: lookup(cksd))
        assert status == 503 and REQUEST_TIMEOUT < seconds < ANSWERED_WITHIN, seconds
        # The serving process answers on: what needs no database at once,
        # /health within its own bound.
        status, seconds = timed(lambda: cksd.request("GET", "/", timeout=5)[0])
        assert status == 200 and seconds < 1
        status, seconds = timed(lambda: cksd.request("GET", "/health", timeout=15)[0])
        assert status == 503 and seconds < 8
    served_again(cksd)  # (on a new connection)
    # /health opens a connection of its own: 503 at once until the probe has
    # its answer, which may come a moment after a lookup's (a pooled
    # connection's); asserted at once, this failed now and then under load
    served_again(cksd, lambda node: node.request("GET", "/health")[0], 200)
    cksd.wait_for_output(CUT_WARNING)  # (the watchdog's thread logs it)
    assert cksd.output().count(CUT_WARNING) == 1, cksd.output()


def test_while_the_server_stays_frozen_lookups_fail_at_once_until_it_answers(server, cksd):
    """After the first cut, the store stops connecting to the server (each
    new connection waited for libpq's connect_timeout, 10 s, and held the
    serving process meanwhile, until 2026-12-05) while a probe of its own
    tries it; once the probe has an answer, lookups are served again."""
    with server.primary.frozen():
        assert lookup(cksd) == 503  # (its pooled connection cut)
        for _ in range(3):
            started = time.monotonic()
            status, headers, _ = cksd.lookup(op="get", options="mr",
                                             search="0x" + uuid.uuid4().hex[:16])
            assert status == 503 and headers.get("retry-after") == "30"
            assert time.monotonic() - started < 0.5
            status, seconds = timed(lambda: cksd.request("GET", "/", timeout=5)[0])
            assert status == 200 and seconds < 0.5
        # /health too: 503 at once, where it waited its own 5 s for the server
        status, seconds = timed(lambda: cksd.request("GET", "/health", timeout=15)[0])
        assert status == 503 and seconds < 0.5, seconds
    served_again(cksd)
    cksd.wait_for_output(ANSWERS_AGAIN)  # (its log line may reach us after the answer)
    output = cksd.output()
    assert output.count(FAILING_FAST) == 1 and output.count(ANSWERS_AGAIN) == 1, output


def test_after_a_connection_timed_out_the_store_fails_at_once(caplog):
    """(A server whose kernel takes the connection and that never answers
    it: a socket listening that nobody accepts on.)"""
    from cks.store import StoreUnavailable, open_store
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        store = open_store("postgresql://cks@127.0.0.1:%d/cks?connect_timeout=2"
                           % listener.getsockname()[1])
        try:
            with pytest.raises(StoreUnavailable, match="timeout expired"):
                store.check()
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match="no new connection until it does"):
                store.check()
            assert time.monotonic() - started < 0.5
        finally:
            store.close()
    assert sum(FAILING_FAST in r.getMessage() for r in caplog.records) == 1


def test_an_upload_to_a_frozen_server_gets_503(server, cksd):
    with server.primary.frozen():
        status, seconds = timed(lambda: cksd.add(fixture("rsa2048"))[0])
    assert status == 503 and seconds < WRITE_ANSWERED_WITHIN, seconds
    served_again(cksd)
    assert cksd.add(fixture("rsa2048"))[0] == 200


def test_a_connection_without_a_statement_timeout_is_never_cut(server):
    """(Bulk loads, cks_admin.py: their statements may run for long.)"""
    from cks.store import open_store
    name = "cks_frozen_%s" % uuid.uuid4().hex[:10]
    server.create_database(name)
    store = open_store(server.primary.url(name))
    try:
        store.check()
        answer = []
        with server.primary.frozen():
            reader = threading.Thread(target=lambda: answer.append(_select_one(store)))
            reader.start()
            reader.join(CUT_MARGIN + 2)
            assert reader.is_alive()  # still waiting
        reader.join(10)
        assert answer == [1]
    finally:
        store.close()


def _select_one(store):
    with store.read() as cursor:
        return cursor.scalar("SELECT 1")


# --- the watchdog alone ---------------------------------------------------------

MARGIN = 0.2


class Cuts(list):
    """The connections cut, with when."""

    def __call__(self, conn):
        self.append((conn, time.monotonic()))


def test_a_statement_not_answered_in_time_has_its_connection_cut(caplog):
    cuts = Cuts()
    watchdog = Watchdog(MARGIN, cuts)
    sent = time.monotonic()
    watchdog.watch("late", 0.1, "server-a")
    watchdog.watch("answered", 0.1, "server-a")
    watchdog.answered("answered")
    time.sleep(0.2)
    watchdog.watch("sent again", 0.1, "server-a")  # (a deadline later than the first's)
    _wait_for(lambda: len(cuts) == 2)
    (late, late_at), (again, again_at) = cuts
    assert (late, again) == ("late", "sent again")
    assert sent + 0.3 <= late_at < sent + 0.3 + 0.2
    assert sent + 0.5 <= again_at < sent + 0.5 + 0.2
    warnings = [r.getMessage() for r in caplog.records if CUT_WARNING in r.getMessage()]
    assert len(warnings) == 1 and "server-a" in warnings[0]  # (once per server)


def test_a_statement_watched_again_is_due_from_its_new_start():
    cuts = Cuts()
    watchdog = Watchdog(MARGIN, cuts)
    for _ in range(5):
        watchdog.watch("busy", 0.1, "server-a")
        time.sleep(0.1)
        watchdog.answered("busy")
    assert cuts == []


def test_a_forked_process_watches_with_a_thread_of_its_own():
    cuts = Cuts()
    watchdog = Watchdog(MARGIN, cuts)
    watchdog.watch("parent's", 60, "server-a")  # (the parent's thread runs)
    pid = os.fork()
    if pid == 0:
        try:
            watchdog.watch("child's", 0.1, "server-a")
            time.sleep(1)
            os._exit(0 if [conn for conn, _ in cuts] == ["child's"] else 1)
        finally:
            os._exit(2)
    assert os.waitpid(pid, 0)[1] == 0
    watchdog.answered("parent's")


def _wait_for(condition, timeout=5):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_statements_sent_together_each_have_the_timeout(db_url, monkeypatch):
    """A write's deferred statements go as one query, each under its own
    statement_timeout on the server: the batch is waited for that long each
    (until 2026-12-05 the watchdog gave the whole batch one timeout, and cut
    a live server's connection under a write waiting on several locks)."""
    from cks.store import open_store, postgres
    monkeypatch.setattr(postgres._WATCHDOG, "margin", 0.2)
    store = open_store(with_schema(db_url), statement_timeout=1)
    try:
        with store.write() as cursor:
            for _ in range(3):  # each within the timeout, together over it
                cursor.defer("SELECT pg_sleep(0.6)")
            assert cursor.scalar("SELECT 42") == 42
    finally:
        store.close()
