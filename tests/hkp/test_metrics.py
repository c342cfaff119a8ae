"""GET /metrics: the registry and its text format (parsed back with the
Prometheus client's parser), and a real cksd with two serving processes,
whose counts every scrape must show summed, whichever process answers it."""

import http.client
import os
import re
import socket
import subprocess
import sys
import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cks import __version__, pipeline
from cks.hkp.cksd_metrics import CksdMetrics, op_of
from cks.metrics import (CONTENT_TYPE, Family, SharedMetrics, combinations, format_family,
                         format_value, render)
from cks.store import StoreError, StoreUnavailable, open_store
from cks.store.peers import PeerStore
from cks.store.replica import ReplicaReads
from cks.sync.recon.fetch import FetchReport
from cks.sync.recon.rounds import RoundReport, round_lock
from support import fixture
from support.db import BACKENDS, run_sql
from support.nodes import fpr, manage, reread_peers
from support.server import LOOPBACK_EXEMPT, Cksd, raw_exchange, start_failure


def parse(text):
    """{(sample name, frozenset of labels): value}, as Prometheus reads the text."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0)


# --- the text format -----------------------------------------------------------------

def test_label_values_and_help_are_escaped():
    awkward = 'a "quoted" \\ back\nslash'
    text = format_family("x_total", "counter", "help with \\ and\nnewline",
                         [("", (("peer", awkward),), 3)])
    assert '\\"quoted\\" \\\\ back\\nslash' in text
    (family,) = text_string_to_metric_families(text)
    assert family.documentation == "help with \\ and\nnewline"
    assert family.samples[0].labels == {"peer": awkward} and family.samples[0].value == 3


def test_values_are_written_as_prometheus_reads_them():
    assert [format_value(v) for v in (0, 3.0, 0.25, 2.0 ** 60, float("inf"))] == \
        ["0", "3", "0.25", repr(2.0 ** 60), "+Inf"]
    assert format_value(float("nan")) == "NaN"


HITS = Family("t_hits_total", "counter", "Hits.", ("kind", "why"),
              (("a", ""), ("b", "x"), ("b", "y")))
SEEN = Family("t_seen_total", "counter", "Seen.", ("kind",), combinations(("a", "b")),
              sparse=True)
TIMES = Family("t_seconds", "histogram", "Times.", ("kind",), combinations(("a", "b")),
               (0.1, 1.0), sparse=True)


def test_render_declared_families_from_their_slots():
    slots = [0, 2, 0,  # HITS
             0, 5,  # SEEN: a never counted
             0, 0, 0, 0,  # TIMES a: never observed
             1, 2, 1, 4.5]  # TIMES b: 0.05, two of 0.5, 3.9
    samples = parse(render([HITS, SEEN, TIMES], slots))
    assert samples == {
        ("t_hits_total", frozenset({("kind", "a")})): 0,  # an empty value: no label
        ("t_hits_total", frozenset({("kind", "b"), ("why", "x")})): 2,
        ("t_hits_total", frozenset({("kind", "b"), ("why", "y")})): 0,
        ("t_seen_total", frozenset({("kind", "b")})): 5,
        ("t_seconds_bucket", frozenset({("kind", "b"), ("le", "0.1")})): 1,
        ("t_seconds_bucket", frozenset({("kind", "b"), ("le", "1")})): 3,
        ("t_seconds_bucket", frozenset({("kind", "b"), ("le", "+Inf")})): 4,
        ("t_seconds_sum", frozenset({("kind", "b")})): 4.5,
        ("t_seconds_count", frozenset({("kind", "b")})): 4}


def test_rows_of_forked_processes_and_their_threads_add_up():
    shared = SharedMetrics([SEEN, TIMES], processes=3)
    seen, times = shared.slot(SEEN, ("a",)), shared.slot(TIMES, ("b",))
    children = []
    for process in range(3):
        pid = os.fork()
        if pid == 0:  # a serving process: 4 threads counting at once in its row
            code = 1
            try:
                row = shared.row(process)

                def count():
                    for _ in range(2000):
                        row.add_and_observe(seen, times, TIMES.buckets, 0.5)
                threads = [threading.Thread(target=count) for _ in range(4)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                code = 0
            finally:
                os._exit(code)  # never back into pytest
        children.append(pid)
    for pid in children:
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    samples = parse(shared.render())
    assert value(samples, "t_seen_total", kind="a") == 24000
    assert value(samples, "t_seconds_bucket", kind="b", le="0.1") == 0
    assert value(samples, "t_seconds_bucket", kind="b", le="1") == 24000
    assert value(samples, "t_seconds_count", kind="b") == 24000
    assert value(samples, "t_seconds_sum", kind="b") == 12000
    with pytest.raises(IndexError):
        shared.row(3)


def test_operations_are_a_bounded_set():
    assert op_of("/pks/lookup", "GET") == "get"
    assert op_of("/pks/lookup", "vindex") == "vindex"
    assert op_of("/pks/lookup", "x-weird") == "other"
    assert op_of("/pks/lookup", None) == "other"
    assert op_of("/pks/add", None) == "add"
    assert op_of("/pks/hashquery", None) == "hashquery"
    assert op_of("/health", None) == "health" and op_of("/metrics", None) == "metrics"
    assert op_of("/", None) == "page" and op_of("/pks/x-cks-rejections", None) == "page"
    assert op_of("/pks/photo", None) == "photo"
    assert op_of("/wp-login.php", None) == "other"


def test_statuses_outside_the_known_set_count_as_other():
    metrics = CksdMetrics.alone()
    metrics.request("/pks/lookup", "index", 200, 0.002)
    metrics.request("/pks/lookup", "index", 302, 20.0)
    samples = parse(metrics.shared.render())
    assert value(samples, "cks_http_requests_total", op="index", status="200") == 1
    assert value(samples, "cks_http_requests_total", op="index", status="other") == 1
    assert value(samples, "cks_http_request_duration_seconds_bucket", op="index",
                 le="0.0025") == 1
    assert value(samples, "cks_http_request_duration_seconds_bucket", op="index",
                 le="10") == 1
    assert value(samples, "cks_http_request_duration_seconds_count", op="index") == 2


def test_recon_rounds_and_uploads_by_outcome():
    metrics = CksdMetrics.alone()
    metrics.recon_round(RoundReport("a", fetch=FetchReport("a", added=1)), dialed=True)
    metrics.recon_round(RoundReport("a", error="cannot connect"), dialed=True)
    metrics.recon_round(RoundReport("b", fetch=FetchReport("b", errors=["HTTP 500"])),
                        dialed=False)
    metrics.uploaded(pipeline.Report([
        pipeline.Outcome("A", pipeline.ADDED), pipeline.Outcome("B", pipeline.ADDED),
        pipeline.rejected("C", "spam"),
        pipeline.Outcome("D", pipeline.REFUSED, "too big", pipeline.OVER_LIMIT)]))
    samples = parse(metrics.shared.render())
    rounds = "cks_recon_rounds_total"
    assert value(samples, rounds, role="dialed", outcome="ok") == 1
    assert value(samples, rounds, role="dialed", outcome="failed") == 1
    assert value(samples, rounds, role="answered", outcome="fetch_failed") == 1
    assert value(samples, rounds, role="answered", outcome="ok") == 0
    assert value(samples, "cks_uploaded_keys_total", outcome="added") == 2
    assert value(samples, "cks_uploaded_keys_total", outcome="refused", reason="rejected") == 1
    assert value(samples, "cks_uploaded_keys_total", outcome="refused", reason="over-limit") == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_database_that_cannot_answer_is_counted_and_the_scrape_goes_on(backend, tmp_path):
    url = ("sqlite:///%s" % (tmp_path / "no" / "such" / "dir.db") if backend == "sqlite"
           else "postgresql://postgres@127.0.0.1:1/cks")  # nothing listens on port 1
    store = open_store(url)
    metrics = CksdMetrics.alone()
    store.on_error = metrics.database_error
    with pytest.raises(StoreUnavailable):
        store.check()
    samples = parse(metrics.render(store))
    assert value(samples, "cks_database_up") == 0
    assert ("cks_keys", frozenset()) not in samples
    assert value(samples, "cks_database_errors_total", kind="unavailable") == 2
    metrics.database_error(StoreError("schema"))
    assert value(parse(metrics.shared.render()), "cks_database_errors_total", kind="error") == 1


def test_a_read_replica_is_shown_apart_from_the_primary(tmp_path):
    path = tmp_path / "cks.db"
    primary = open_store("sqlite:///%s" % path)
    primary.check()
    assert ("cks_replica_up", frozenset()) not in parse(CksdMetrics.alone().render(primary))
    for replica_url, up in (("sqlite:///%s" % path, 1),
                            ("sqlite:///%s" % (tmp_path / "no" / "such.db"), 0)):
        replica = ReplicaReads(open_store(replica_url, reads_only=True), primary)
        samples = parse(CksdMetrics.alone().render(primary, replica))
        assert value(samples, "cks_replica_up") == up
        assert value(samples, "cks_database_up") == 1
        replica.close()


# --- a real cksd with two serving processes ---------------------------------------------

def children_of(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _server_side_inode(server_port, client_port):
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            local, remote = (int(a.split(":")[1], 16) for a in fields[1:3])
            if (local, remote) == (server_port, client_port):
                return fields[9]
    raise AssertionError("no server side for client port %d" % client_port)


def answering_process(server, conn):
    """Which serving process holds the server's end of the open connection `conn`."""
    inode = "socket:[%s]" % _server_side_inode(server.port, conn.sock.getsockname()[1])
    for child in children_of(server.proc.pid):
        directory = "/proc/%d/fd" % child
        for fd in os.listdir(directory):
            try:
                if os.readlink(os.path.join(directory, fd)) == inode:
                    return child
            except OSError:
                continue  # closed meanwhile
    raise AssertionError("no serving process holds %s" % inode)


def exchange(server, method, path):
    """One request on a new keep-alive connection: (status, headers, body, which
    process answered)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        body = response.read()
        return (response.status, {k.lower(): v for k, v in response.getheaders()}, body,
                answering_process(server, conn))
    finally:
        conn.close()


def scrape(server):
    status, headers, body, process = exchange(server, "GET", "/metrics")
    assert status == 200 and headers["content-type"] == CONTENT_TYPE
    return parse(body.decode()), process


@pytest.fixture(scope="module")
def server(module_db_url, tmp_path_factory):
    config = tmp_path_factory.mktemp("conf") / "cks.conf"
    config.write_text("[server]\nprocesses = 2\nrequest_timeout = 1\n"
                      "[limits]\nmax_key_bytes = 2000\n" + LOOPBACK_EXEMPT)
    with Cksd(module_db_url, config=str(config)) as cksd:
        deadline = time.monotonic() + 10
        while len(children_of(cksd.proc.pid)) < 2:  # forked after "listening"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        yield cksd


def delta(after, before, name, **labels):
    return value(after, name, **labels) - value(before, name, **labels)


def test_every_scrape_shows_the_sum_over_both_processes(server):
    assert server.add(fixture("rsa2048"))[0] == 200
    found = "/pks/lookup?op=get&options=mr&search=0x" + fpr("rsa2048")
    missing = "/pks/lookup?op=get&options=mr&search=0x0123456789ABCDEF"
    before, _ = scrape(server)
    answered_by, statuses = [], []
    while len(answered_by) < 20 or len(set(answered_by)) < 2:  # both processes answered
        assert len(answered_by) < 400, "one process took every connection"
        status, _, _, process = exchange(server, "GET", (found, missing)[len(answered_by) % 2])
        answered_by.append(process)
        statuses.append(status)
    assert exchange(server, "GET", "/no/such/page")[0] == 404
    requests = len(answered_by)
    assert statuses == [200, 404] * (requests // 2) + [200] * (requests % 2)
    scrapes_by = set()
    while len(scrapes_by) < 2:  # scrapes answered by each process
        assert len(scrapes_by) < 200
        after, process = scrape(server)
        scrapes_by.add(process)
        count = "cks_http_requests_total"
        assert delta(after, before, count, op="get", status="200") == statuses.count(200)
        assert delta(after, before, count, op="get", status="404") == statuses.count(404)
        assert delta(after, before, count, op="other", status="404") == 1
        assert delta(after, before, "cks_http_request_duration_seconds_count",
                     op="get") == requests
        buckets = sorted((float(dict(labels)["le"]), v) for (name, labels), v in after.items()
                         if name == "cks_http_request_duration_seconds_bucket"
                         and ("op", "get") in labels)
        counts = [v for _, v in buckets]
        assert counts == sorted(counts) and buckets[-1][0] == float("inf")
        assert counts[-1] == value(after, "cks_http_request_duration_seconds_count", op="get")
        assert value(after, "cks_serving_processes") == 2
        assert value(after, "cks_build_info", version=__version__) == 1
        assert 0 < time.time() - value(after, "cks_start_time_seconds") < 600
    assert scrapes_by == set(answered_by) == set(children_of(server.proc.pid))
    status, headers, body, _ = exchange(server, "HEAD", "/metrics")
    assert status == 200 and body == b"" and headers["content-type"] == CONTENT_TYPE


def test_an_upload_refused_before_its_body_is_counted_as_an_upload(server):
    before, _ = scrape(server)
    for request in (b"POST /pks/add HTTP/1.1\r\nHost: x\r\n\r\n",
                    b"POST /pks/add HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
                    b"HELLO\r\n\r\n"):
        raw_exchange(server.port, request)
    after, _ = scrape(server)
    count = "cks_http_requests_total"
    assert delta(after, before, count, op="add", status="411") == 1
    assert delta(after, before, count, op="add", status="400") == 1
    assert delta(after, before, count, op="other", status="400") == 1  # no path to tell


def test_uploads_are_counted_by_outcome(server):
    before, _ = scrape(server)
    run_sql(server.db_url, "INSERT INTO cks_rejected_keys (fingerprint, reason, rejected_at) "
            "VALUES (?, ?, ?)", (fpr("secp256k1"), "test", 1), write=True)
    assert server.add(fixture("alice-t1"))[0] == 200
    assert server.add(fixture("alice-t2"))[0] == 200
    assert server.add(fixture("alice-t2"))[0] == 200
    assert server.add(fixture("rsa4096"))[0] == 413  # over max_key_bytes
    assert server.add(fixture("secp256k1"))[0] == 403
    assert server.add(b"not a key")[0] == 422
    after, _ = scrape(server)
    keys = "cks_uploaded_keys_total"
    assert delta(after, before, keys, outcome="added") == 1
    assert delta(after, before, keys, outcome="updated") == 1
    assert delta(after, before, keys, outcome="unchanged") == 1
    assert delta(after, before, keys, outcome="refused", reason="over-limit") == 1
    assert delta(after, before, keys, outcome="refused", reason="rejected") == 1
    for status, count in (("200", 3), ("413", 1), ("403", 1), ("422", 1)):
        assert delta(after, before, "cks_http_requests_total", op="add", status=status) == count


def test_database_errors_are_counted(server):
    before, _ = scrape(server)
    if server.db_url.startswith("sqlite"):
        # another process holds SQLite's write lock: an upload cannot begin
        holder = subprocess.Popen([sys.executable, "-c", (
            "import sqlite3, sys, time\n"
            "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "c.execute('BEGIN IMMEDIATE')\nprint('locked', flush=True)\ntime.sleep(30)\n"),
            server.db_url[len("sqlite:///"):]], stdout=subprocess.PIPE)
        assert holder.stdout.readline() == b"locked\n"
        release = holder.kill
    else:
        import psycopg2
        holder = psycopg2.connect(server.db_url)
        holder.cursor().execute("LOCK TABLE cks_keys IN ACCESS EXCLUSIVE MODE")
        release = holder.close
    try:
        assert server.add(fixture("nistp256"))[0] == 503  # past request_timeout
    finally:
        release()
    after, _ = scrape(server)
    assert delta(after, before, "cks_database_errors_total", kind="unavailable") >= 1
    assert delta(after, before, "cks_http_requests_total", op="add", status="503") == 1


def test_database_figures_at_scrape_time(db_url, tmp_path):
    with Cksd(db_url) as server:  # a scrape reuses them for seconds: a fresh cksd
        for name in ("rsa2048", "ed25519"):
            assert server.add(fixture(name))[0] == 200
        assert manage(server, "add", "peer.example.org:11371").returncode == 0  # owed both
        assert manage(server, "add", "recon.example.org", "--type", "recon").returncode == 0
        samples, _ = scrape(server)
    assert value(samples, "cks_database_up") == 1
    assert value(samples, "cks_keys") == 2
    assert value(samples, "cks_sync_backlog_keys", peer="peer.example.org:11371",
                 kind="hkp") == 2
    assert not [labels for name, labels in samples if name == "cks_sync_backlog_keys"
                and ("peer", "recon.example.org") in labels]


def test_only_allowed_networks_may_scrape(db_url, tmp_path):
    config = tmp_path / "cks.conf"
    config.write_text("[metrics]\nallow = 10.0.0.0/8\n" + LOOPBACK_EXEMPT)
    with Cksd(db_url, config=str(config)) as server:
        status, _, body = server.request("GET", "/metrics")
        assert status == 403 and b"127.0.0.1 may not read the metrics" in body
        assert server.lookup(op="stats", options="mr")[0] == 200  # the server is fine


def test_a_bad_allow_setting_stops_cksd_with_the_reason(tmp_path):
    code, stderr = start_failure(tmp_path, "[metrics]\nallow = 10.0.0.0/33\n")
    assert code == 1
    assert re.search(r"error: \[metrics\] allow: .*10\.0\.0\.0/33", stderr), stderr


def test_recon_rounds_are_counted_by_role(db_url, tmp_path):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: a dial is refused
    config = tmp_path / "cks.conf"
    config.write_text("[recon]\ninterval = 0.2\n" + LOOPBACK_EXEMPT)
    try:
        with Cksd(db_url, args=["--recon-port", "0"], config=str(config)) as server:
            recon_port = int(server.wait_for_output(r"cksd recon on [\d.]+:(\d+)").group(1))
            assert manage(server, "add", "127.0.0.1:1", "--type", "recon", "--recon-port",
                          str(closed.getsockname()[1])).returncode == 0
            reread_peers(server)
            deadline = time.monotonic() + 20
            while True:
                samples, _ = scrape(server)
                dialed = value(samples, "cks_recon_rounds_total", role="dialed",
                               outcome="failed")
                answered = value(samples, "cks_recon_rounds_total", role="answered",
                                 outcome="failed")
                if dialed and answered:
                    break
                assert time.monotonic() < deadline, samples
                if not answered:  # a peer's round (again: one that came while
                    # cksd dialed that peer was refused as busy, and counted so)
                    socket.create_connection(("127.0.0.1", recon_port)).close()
                time.sleep(0.2)
    finally:
        closed.close()


def test_a_peers_round_refused_as_busy_is_counted(db_url, tmp_path):
    """A round a peer starts while one with it is under way here is refused as
    busy, and counted as answered and busy, not as a failure; the peer's row
    records nothing (until 2026-12-05 the refusal was logged and not counted)."""
    config = tmp_path / "cks.conf"
    config.write_text("[recon]\ninterval = 3600\n" + LOOPBACK_EXEMPT)
    with Cksd(db_url, args=["--recon-port", "0"], config=str(config)) as server:
        recon_port = int(server.wait_for_output(r"cksd recon on [\d.]+:(\d+)").group(1))
        assert manage(server, "add", "127.0.0.1:1", "--type", "recon").returncode == 0
        reread_peers(server)
        store = open_store(db_url)
        try:
            peer = PeerStore(store).get("127.0.0.1:1")
            with store.exclusive(round_lock(peer)) as ours:  # (as cks_sync.py's round)
                assert ours
                assert b"busy: a round with you is under way" in refusal_from(recon_port)
            samples, _ = scrape(server)
            answered = {outcome: value(samples, "cks_recon_rounds_total", role="answered",
                                       outcome=outcome)
                        for outcome in ("ok", "fetch_failed", "failed", "busy")}
            assert answered == {"ok": 0, "fetch_failed": 0, "failed": 0, "busy": 1}
            recorded = PeerStore(store).get("127.0.0.1:1")
            assert (recorded.last_attempt, recorded.last_error) == (None, None)
        finally:
            store.close()


def refusal_from(port):
    """What the recon port says to a round started on it, until it hangs up."""
    said = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                return said
            said += chunk
