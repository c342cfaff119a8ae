"""cksd as a daemon: start-up, configuration, readiness, concurrency, shutdown."""

import http.client
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

import pytest

from support import ROOT, fixture
from support.db import allow_connections, drop_pg_database, new_db_url, terminate_backends
from support.disk import fill, tmpfs
from support.server import READY, Cksd


def _start(args, cwd, env=None):
    full_env = dict(os.environ, **(env or {}))
    for name in ("CKS_DB", "CKS_CONFIG"):
        if env is None or name not in env:
            full_env.pop(name, None)
    return subprocess.Popen([sys.executable, os.path.join(ROOT, "cksd.py")] + args,
                            cwd=cwd, stderr=subprocess.PIPE, env=full_env)


def _ready_port(proc):
    line = proc.stderr.readline().decode()
    match = READY.search(line)
    assert match, line + proc.stderr.read().decode()
    return int(match.group(2))


def _stop(proc, sig=signal.SIGTERM):
    proc.send_signal(sig)
    return proc.wait(20)


def test_default_is_sqlite_file_in_the_current_directory(tmp_path):
    proc = _start(["--port", "0"], cwd=tmp_path)
    port = _ready_port(proc)
    assert (tmp_path / "cks.db").exists()
    with socket.create_connection(("127.0.0.1", port)):
        pass
    assert _stop(proc) == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_stop_cleanly(tmp_path, sig):
    proc = _start(["--port", "0"], cwd=tmp_path)
    _ready_port(proc)
    assert _stop(proc, sig) == 0


def _signalled_while_the_database_opens(tmp_path, signum, swallowed):
    """cksd (one serving process) whose first opening of its database sends
    it `signum`, and swallows the interruption when `swallowed`: (status,
    standard error)."""
    opening = "\n".join([
        "import os, runpy, signal, sys, time",
        "sys.path.insert(0, %r)" % os.path.join(ROOT, "lib"),
        "import cks.cli.cksd as cksd",
        "opened = cksd.open_store",
        "def open_store(*args, **kwargs):",
        "    cksd.open_store = opened  # (the first opening only)",
        "    try:",
        "        os.kill(os.getpid(), %d)" % signum,
        "        time.sleep(0.5)",
        "    except KeyboardInterrupt:",
        "        if not %r:" % swallowed,
        "            raise",
        "    return opened(*args, **kwargs)",
        "cksd.open_store = open_store",
        "sys.argv = [%r, '--port', '0', '--db', 'sqlite:///k.db', '--config', 'one.conf']"
        % os.path.join(ROOT, "cksd.py"),
        "runpy.run_path(sys.argv[0], run_name='__main__')"])
    (tmp_path / "one.conf").write_text("[server]\nprocesses = 1\n")
    proc = subprocess.Popen([sys.executable, "-c", opening], cwd=str(tmp_path),
                            stderr=subprocess.PIPE)
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    return proc.returncode, err.decode()


def test_a_stop_swallowed_while_the_database_opens_still_stops_cksd(tmp_path):
    """A Ctrl-C while psycopg2 was being imported (on the way to the database)
    raised KeyboardInterrupt inside that import, which swallowed it, and
    cksd served on (until 2026-12-06).  Here the database's opening sends
    itself SIGINT and swallows the interruption: cksd stops all the same."""
    status, err = _signalled_while_the_database_opens(tmp_path, signal.SIGINT, True)
    assert status == 0 and err.rstrip().endswith("stopped"), err


def test_a_stop_while_cksd_starts_ends_it_at_once(tmp_path):
    """SIGINT interrupts what cksd is waiting for and ends it with status 0
    (until 2026-12-06: a traceback or status 130); SIGTERM keeps its default
    action until cksd serves, which ends it at once even inside a database
    call that blocks (a handler would run only once the call returned)."""
    status, err = _signalled_while_the_database_opens(tmp_path, signal.SIGINT, False)
    assert (status, err) == (0, "cksd: stopped before it served\n")
    status, err = _signalled_while_the_database_opens(tmp_path, signal.SIGTERM, False)
    assert (status, err) == (-signal.SIGTERM, "")


def test_the_background_jobs_stop_together():
    """Each job's stop waits for its round under way (up to 5 s): until
    2026-12-06 they were stopped one after another, and a stop took 10 s
    and more.  Here each job's stop waits until every job is stopping."""
    from cks.cli import cksd
    all_stopping = threading.Barrier(3, timeout=10)
    stopped = []

    class Job:
        def stop(self):
            all_stopping.wait()  # (BrokenBarrierError, were they stopped in turn)
            stopped.append(self)

    jobs = [Job() for _ in range(3)]
    cksd._stop_together(jobs)
    assert sorted(map(id, stopped)) == sorted(map(id, jobs))


def test_database_from_environment_then_config_then_flag(tmp_path):
    config = tmp_path / "cks.conf"
    config.write_text("[database]\nurl = sqlite:///from-config.db\n")
    proc = _start(["--port", "0"], cwd=tmp_path)  # ./cks.conf is read
    _ready_port(proc)
    _stop(proc)
    assert (tmp_path / "from-config.db").exists()
    proc = _start(["--port", "0"], cwd=tmp_path, env={"CKS_DB": "sqlite:///from-env.db"})
    _ready_port(proc)
    _stop(proc)
    assert (tmp_path / "from-env.db").exists()
    proc = _start(["--port", "0", "--db", "sqlite:///from-flag.db"], cwd=tmp_path,
                  env={"CKS_DB": "sqlite:///from-env.db"})
    _ready_port(proc)
    _stop(proc)
    assert (tmp_path / "from-flag.db").exists()


@pytest.mark.parametrize("args,message", [
    (["--db", "mysql://x/y"], "unsupported database URL"),
    (["--db", "sqlite:///no/such/dir/x.db"], "cannot open database"),
    (["--db", "postgresql://postgres@127.0.0.1:1/none"], "cannot open database"),
    (["--config", "/no/such.conf"], "does not exist"),
    (["--port", "70000"], "between 0 and 65535"),
])
def test_startup_errors_are_one_clear_line(tmp_path, args, message):
    proc = _start(["--port", "0"] + args, cwd=tmp_path)
    err = proc.stderr.read().decode()
    assert proc.wait(20) != 0
    assert message in err and "Traceback" not in err and err.count("\n") == 1, err


def test_port_in_use(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        proc = _start(["--port", str(taken.getsockname()[1])], cwd=tmp_path)
        err = proc.stderr.read().decode()
        assert proc.wait(20) == 1 and "cannot listen on" in err


def test_slow_client_does_not_hold_up_others(tmp_path):
    with Cksd("sqlite:///%s" % (tmp_path / "k.db")) as server:
        slow = socket.create_connection(("127.0.0.1", server.port))
        slow.sendall(b"GET /pks/lookup?op=stats HTTP/1.1\r\nHost: x\r\n")  # never finishes
        started = time.monotonic()
        results = []
        threads = [threading.Thread(target=lambda: results.append(
            server.lookup(op="stats", options="mr")[0])) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [200] * 20 and time.monotonic() - started < 10
        slow.close()


def test_request_in_flight_finishes_after_sigterm(tmp_path):
    with Cksd("sqlite:///%s" % (tmp_path / "k.db")) as server:
        body = urllib.parse.urlencode({"keytext": fixture("rsa2048")}).encode()
        conn = socket.create_connection(("127.0.0.1", server.port), timeout=20)
        conn.sendall(b"POST /pks/add HTTP/1.1\r\nHost: x\r\nContent-Type: "
                     b"application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n"
                     % len(body) + body[:100])
        idle = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
        idle.request("GET", "/pks/lookup?op=stats")
        assert idle.getresponse().read()  # answered; now an idle keep-alive connection
        time.sleep(0.3)
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert server.proc.poll() is None  # still finishing the upload
        conn.sendall(body[100:])
        answer = conn.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200") and b"Connection: close" in answer
        assert server.proc.wait(20) == 0
        assert idle.sock.recv(100) == b""  # the idle connection was closed, not left hanging
        conn.close()
        idle.close()


def test_several_processes_share_the_port(tmp_path):
    config = tmp_path / "cks.conf"
    config.write_text("[server]\nprocesses = 3\n")
    with Cksd("sqlite:///%s" % (tmp_path / "k.db"), config=str(config)) as server:
        assert server.add(fixture("rsa2048"))[0] == 200
        results = []
        threads = [threading.Thread(target=lambda: results.append(
            server.lookup(op="index", options="mr", search="rsa2048")[0])) for _ in range(30)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [200] * 30
        children = subprocess.run(["pgrep", "-P", str(server.proc.pid)], capture_output=True,
                                  text=True).stdout.split()
        assert len(children) == 3
    assert server.proc.returncode == 0


@pytest.mark.parametrize("sig,status", [(signal.SIGKILL, -9), (signal.SIGTERM, 0),
                                        (signal.SIGINT, 0)])
def test_a_killed_serving_process_stops_cksd(tmp_path, sig, status):
    """The kernel's OOM killer, say, or a SIGTERM sent to one serving process
    alone: cksd stops the other serving processes and ends with status 1
    (systemd's Restart=on-failure starts it again).  A serving process that
    a SIGTERM or SIGINT stopped ends with status 0, and cksd took that as
    fine: it served on with fewer processes, without a word, and with none
    left said "stopped" and ended with status 0."""
    config = _config(tmp_path, "[server]\nprocesses = 3\n")
    with Cksd("sqlite:///%s" % (tmp_path / "k.db"), config=config) as server:
        killed, *others = server.children()
        os.kill(int(killed), sig)
        assert server.proc.wait(20) == 1
        assert "serving process %s ended with status %d: stopping cksd" % (killed, status) \
            in server.output(), server.output()
        assert server.output().count("stopping cksd") == 1
        assert not any(os.path.exists("/proc/%s" % other) for other in others)


def test_a_process_killed_while_another_answers_an_upload_stops_cksd(tmp_path):
    """kill -9 on the idle serving process while the other answers an upload
    of a new key (its commit held back here by SQLite's write lock): the
    upload is answered and cksd stops, status 1.  Until 2026-12-07 the
    upload waited for good on the multiprocessing Event the killed
    process's idle helper had been waiting on, and with it cksd's stop: the
    port closed, the main process alive, nothing for systemd to restart."""
    import sqlite3
    config = _config(tmp_path, "[server]\nprocesses = 2\n")
    with Cksd("sqlite:///%s" % (tmp_path / "k.db"), config=config) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        conn.request("GET", "/pks/lookup?op=stats&options=mr")
        conn.getresponse().read()
        uploading = _holder_of(conn.sock, server.children())
        idle, = set(server.children()) - {uploading}
        time.sleep(0.5)  # (its helper waiting for uploads by now)
        lock = sqlite3.connect(str(tmp_path / "k.db"), isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")
        body = urllib.parse.urlencode({"keytext": fixture("rsa2048")})
        conn.request("POST", "/pks/add", body,
                     {"Content-Type": "application/x-www-form-urlencoded"})
        time.sleep(0.5)  # (the upload waits for the lock)
        os.kill(int(idle), signal.SIGKILL)
        server.wait_for_output("serving process %s ended" % idle)
        lock.execute("ROLLBACK")
        lock.close()
        assert conn.getresponse().status == 200
        assert server.proc.wait(20) == 1, server.output()
        conn.close()


def test_a_process_killed_while_waiting_to_start_stops_cksd(tmp_path):
    """A serving process killed while it waits for the others to be able to
    serve (it waits for cksd's word to start its background jobs): once
    the last one can, cksd stops, status 1.  Until 2026-12-07 that word was
    a multiprocessing Event, whose set() waited for good for the killed
    process: cksd neither served nor stopped, not even on SIGTERM."""
    config = _config(tmp_path, "[server]\nprocesses = 2\n")
    for _ in range(3):  # (until the second process is stopped before it can serve)
        proc = _start(["--db", "sqlite:///%s" % (tmp_path / "k.db"), "--port", "0",
                       "--config", config], cwd=tmp_path)
        try:
            children = _children_as_forked(proc.pid, 2)
            os.kill(int(children[1]), signal.SIGSTOP)
            time.sleep(1.5)  # (the first can serve and waits by now)
            if select.select([proc.stderr], [], [], 0)[0]:  # "listening": too late
                os.kill(int(children[1]), signal.SIGCONT)
                assert _stop(proc) == 0
                continue
            os.kill(int(children[0]), signal.SIGKILL)
            time.sleep(0.3)
            os.kill(int(children[1]), signal.SIGCONT)
            assert proc.wait(20) == 1
            assert "serving process %s ended with status -9" % children[0] in \
                proc.stderr.read().decode()
            return
        finally:
            if proc.poll() is None:
                proc.kill()
                for pid in _children_of(proc.pid):
                    os.kill(int(pid), signal.SIGKILL)
    raise AssertionError("the second serving process could serve before it was stopped")


def _children_of(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as handle:
            return handle.read().split()
    except OSError:
        return []


def _children_as_forked(pid, count):
    """The first `count` child processes of `pid`, as soon as there are."""
    deadline = time.monotonic() + 20
    while len(_children_of(pid)) < count:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    return _children_of(pid)[:count]


def _holder_of(client, pids):
    """Which of the processes `pids` holds the server's end of the TCP
    connection whose client end is the socket `client`."""
    local = "%08X:%04X" % (0x0100007F, client.getsockname()[1])
    with open("/proc/net/tcp") as table:
        inode = next(line.split()[9] for line in table if line.split()[2] == local)
    for pid in pids:
        if any(_link(os.path.join("/proc", pid, "fd", fd)) == "socket:[%s]" % inode
               for fd in os.listdir(os.path.join("/proc", pid, "fd"))):
            return pid
    raise AssertionError("no serving process holds the connection")


def _link(path):
    try:
        return os.readlink(path)
    except OSError:  # (closed since it was listed)
        return ""


def test_serving_processes_stop_when_the_main_process_is_killed(tmp_path):
    """kill -9 on cksd's main process (by hand, or the OOM killer): its
    serving processes, which nobody is left to stop, stop themselves rather
    than serve on holding the port (they did: a new cksd could not bind)."""
    config = _config(tmp_path, "[server]\nprocesses = 2\n")
    with Cksd("sqlite:///%s" % (tmp_path / "k.db"), config=config) as server:
        children = server.children()
        os.kill(server.proc.pid, signal.SIGKILL)
        try:
            server.wait_until(lambda: not any(map(_running, children)), timeout=15)
        finally:
            for pid in children:  # (the code before left them serving)
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        assert server.output().count("main process %d is gone: stopping"
                                     % server.proc.pid) == 2, server.output()


def _running(pid):
    """Is process `pid` there and not a zombie (whose command line is empty)?
    (Read once: the process may end between a look and a read.)"""
    try:
        with open("/proc/%s/cmdline" % pid) as handle:
            return bool(handle.read())
    except OSError:
        return False


def _config(tmp_path, text):
    from support.server import LOOPBACK_EXEMPT
    config = tmp_path / "cks.conf"
    config.write_text(text + LOOPBACK_EXEMPT)
    return str(config)


def test_connection_cap_answers_503_at_once(tmp_path):
    config = _config(tmp_path, "[server]\nprocesses = 1\nmax_connections = 2\n")  # per process
    with Cksd("sqlite:///%s" % (tmp_path / "k.db"), config=config) as server:
        held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(2)]
        for sock in held:  # each holds a worker with a request that never finishes
            sock.sendall(b"GET /pks/lookup?op=stats HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.3)
        started = time.monotonic()
        status, headers, body = server.lookup(op="stats", options="mr")
        assert status == 503 and headers["retry-after"] == "10" and b"busy" in body
        assert time.monotonic() - started < 3
        for sock in held:
            sock.close()
        time.sleep(0.3)
        assert server.lookup(op="stats", options="mr")[0] == 200


def test_at_the_connection_cap_the_longest_idle_connection_makes_room(tmp_path):
    """Until 2026-12-05 connections that sent nothing (or idle keep-alive
    ones) held the cap for `idle_timeout` and every other client got 503."""
    config = _config(tmp_path, "[server]\nprocesses = 1\nmax_connections = 2\n")
    with Cksd("sqlite:///%s" % (tmp_path / "k.db"), config=config) as server:
        first = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        time.sleep(0.2)
        second = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        time.sleep(0.2)
        assert server.lookup(op="stats", options="mr")[0] == 200
        assert first.recv(100) == b""  # closed to make room: it had waited longest
        second.sendall(b"GET /pks/lookup?op=stats&options=mr HTTP/1.1\r\nHost: x\r\n"
                       b"Connection: close\r\n\r\n")
        assert second.recv(100).startswith(b"HTTP/1.1 200 ")
        first.close()
        second.close()


def test_a_database_outage_is_logged_once_and_not_told_to_clients(tmp_path):
    """/health answers 503 and the reason goes to the log (until 2026-12-05
    the answer named the database server's host, port, database and user to
    anyone); the served views' job, which fails at each of its rounds (every
    2 s in each serving process), logs the outage once, not at every round."""
    url = new_db_url("postgresql", tmp_path)
    config = tmp_path / "cks.conf"
    config.write_text("[server]\nprocesses = 2\n")
    with Cksd(url, config=str(config)) as server:
        assert server.request("GET", "/health")[::2] == (200, b"ok\n")
        drop_pg_database(url)
        status, headers, body = server.request("GET", "/health")
        assert (status, body, headers["retry-after"]) == (503, b"database unavailable\n", "30")
        server.wait_for_output(r"health check: .*database .* does not exist")
        server.wait_for_output(r"served views not derived yet")
        time.sleep(5)
        assert server.output().count("served views not derived yet") <= 2  # one a process


def test_requests_failed_by_an_outage_are_logged_as_one_with_its_end(tmp_path):
    """Each request the database's outage answers 503 was a WARNING line of
    its own until 2026-12-05 (1,390 lines in 4 s); now each serving process
    logs the first, then one every 10 minutes with how many failed since,
    and the outage's end."""
    url = new_db_url("postgresql", tmp_path)
    config = tmp_path / "cks.conf"
    config.write_text("[server]\nprocesses = 2\n[ratelimit]\nexempt = 127.0.0.0/8\n")
    try:
        _outage_logged(url, str(config))
    finally:
        drop_pg_database(url)


def test_a_full_disk_is_one_outage_of_writes_while_lookups_go_on(tmp_path):
    """Uploads fail on a full disk while every lookup answers: until
    2026-12-06 each lookup ended the outage in the log ("database available
    again") and the next upload began another, two lines a request (found
    by a review). It is an outage of writes now, which ends when an upload
    is stored again.  (The first uploads after the disk fills may still be
    stored, in the room SQLite's log keeps from before: the test counts the
    uploads refused.)"""
    config = tmp_path / "cks.conf"
    config.write_text("[server]\nprocesses = 1\n[ratelimit]\nexempt = 127.0.0.0/8\n")
    with tmpfs(tmp_path / "disk", "4m") as disk:
        with Cksd("sqlite:///%s" % (disk / "cks.db"), config=str(config)) as server:
            assert server.add(fixture("rsa2048"))[0] == 200
            while server.lookup(op="index", options="mr", search="fixture")[0] != 200:
                time.sleep(0.05)  # (its served view follows the answer)
            fill(disk / "filler")
            refused = 0
            for name in ("nistp256", "ed25519", "rsa4096", "dsa-elg", "brainpoolp512",
                         "nistp384", "rsa1024", "secp256k1", "nistp521", "brainpoolp256"):
                status = server.add(fixture(name))[0]
                assert status in (200, 503)
                refused += status == 503
                assert server.lookup(op="index", options="mr", search="fixture")[0] == 200
                assert server.lookup(op="get", options="mr",
                                     search="0x" + "A" * 16)[0] == 404
            assert refused >= 3
            server.wait_for_output("database writes fail: .*full")
            time.sleep(1)  # (the served views' job and the checkpoints go on)
            log = server.output()
            assert log.count("database writes fail") < refused, log
            assert "database unavailable" not in log
            os.unlink(disk / "filler")
            assert server.add(fixture("multi-uid"))[0] == 200  # (a key not tried above)
            server.wait_for_output("database writes work again")


def _outage_logged(url, config):
    with Cksd(url, config=config) as server:
        assert server.lookup(op="get", options="mr", search="0x0123456789ABCDEF")[0] == 404
        allow_connections(url, False)
        try:
            terminate_backends(url)
            statuses = [server.lookup(op="get", options="mr", search="0x%016X" % n)[0]
                        for n in range(200)]
            assert statuses == [503] * 200
        finally:
            allow_connections(url, True)
        assert server.lookup(op="get", options="mr", search="0x0123456789ABCDEF")[0] == 404
        failed = server.output().count("database unavailable: ")
        assert 1 <= failed <= 2, server.output()  # one a process at most
        deadline = time.monotonic() + 10  # (the other's next served views round, 2 s)
        while server.output().count("database available again") < failed:
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.1)


def test_slow_request_heads_are_cut_off(tmp_path):
    config = _config(tmp_path, "[server]\nhead_timeout = 1\nidle_timeout = 2\n")
    with Cksd("sqlite:///%s" % (tmp_path / "k.db"), config=config) as server:
        slow = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        started = time.monotonic()
        for byte in b"GET /pks/lookup?op=stats HTTP/1.1\r\n":  # a byte at a time
            try:
                slow.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.1)
        answer = slow.recv(1000)
        assert answer.startswith(b"HTTP/1.1 408") and time.monotonic() - started < 5
        idle = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        started = time.monotonic()
        assert idle.recv(100) == b""  # an idle connection is closed after idle_timeout
        assert 1.5 < time.monotonic() - started < 5


@pytest.fixture
def own_signal_handlers():
    """run_processes installs handlers for SIGTERM, SIGINT and SIGHUP: this
    test process gets its own back afterwards."""
    kept = {signum: signal.getsignal(signum)
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    yield
    for signum, handler in kept.items():
        signal.signal(signum, handler)


def _first_free_slot(directory) -> int:
    """A number no other process took (0, 1, ...): the first file slotN this
    process made."""
    for number in range(100):
        try:
            os.close(os.open(directory / ("slot%d" % number), os.O_CREAT | os.O_EXCL))
            return number
        except FileExistsError:
            continue
    raise AssertionError("no free slot")


def _run_processes(monkeypatch, serve, count, ready=lambda: None) -> int:
    """cksd.run_processes forking `count` processes that run `serve` (a stand-in
    for cksd's), in this test process; its status."""
    from cks.cli import cksd
    from cks.hangup import Hangup
    monkeypatch.setattr(cksd, "serve", serve)
    hangup = Hangup()
    try:
        return cksd.run_processes(None, [], 0, count, cksd._StopSignal(), hangup, ready=ready)
    finally:
        hangup.stop()


@pytest.mark.parametrize("failing", [0, 1, 3])
def test_ready_once_every_serving_process_serves(tmp_path, monkeypatch, own_signal_handlers,
                                                 failing):
    """The "listening" line comes after every forked process can serve (or
    failed to start), never while one is still opening its database, and not
    at all when none can; and before any of them goes on to start its
    background jobs, whose log lines would come first."""
    from cks.cli.common import UserError

    def slow_start(_settings, _listeners, _port, stop, *_args, ready, **_kwargs):
        time.sleep(0.3)  # opening the database, say
        if _first_free_slot(tmp_path) < failing:
            raise UserError("cannot open the database")
        with open(tmp_path / "serving", "a") as handle:
            handle.write("x")
        ready()
        with open(tmp_path / "went_on", "a") as handle:
            handle.write("x")
        _serve_until_told_to_stop(stop)
        return 0

    said: list = []

    def say_ready():
        said.append(((tmp_path / "serving").read_text(), (tmp_path / "went_on").exists()))
        os.kill(os.getpid(), signal.SIGTERM)  # (a serving process that ends unasked fails)

    status = _run_processes(monkeypatch, slow_start, 3, ready=say_ready)
    if failing < 3:
        assert said == [("x" * (3 - failing), False)]  # (none went on before)
        assert (tmp_path / "went_on").read_text() == "x" * (3 - failing)
    else:
        assert said == []
    assert status == (1 if failing else 0)


def test_a_serving_process_that_fails_says_why(tmp_path, monkeypatch, own_signal_handlers):
    """An unexpected error in a serving process is logged with its traceback
    before the process ends (it ended silently: the operator saw only
    "cksd: stopped"), and cksd's status says it failed."""
    import logging

    def failing_start(*_args, ready, **_kwargs):
        raise RuntimeError("thread already started")

    handler = logging.FileHandler(str(tmp_path / "cksd.log"))
    logging.getLogger("cksd").addHandler(handler)
    try:
        assert _run_processes(monkeypatch, failing_start, 2) == 1
    finally:
        logging.getLogger("cksd").removeHandler(handler)
        handler.close()
    log = (tmp_path / "cksd.log").read_text()
    assert log.count("failed") == 2, log
    assert log.count("Traceback") == 2 and "RuntimeError: thread already started" in log, log


def test_a_serving_process_that_fails_stops_cksd(tmp_path, monkeypatch, own_signal_handlers):
    """One serving process failing while the others serve stops them all, and
    cksd ends with status 1, so that systemd starts it again, rather than
    serving on with fewer processes (it did: the others served on)."""
    def one_fails(_settings, _listeners, _port, stop, *_args, ready, **_kwargs):
        ready()
        if _first_free_slot(tmp_path) == 0:
            time.sleep(0.2)
            raise RuntimeError("a bug")
        _serve_until_told_to_stop(stop)
        with open(tmp_path / "told_to_stop", "a") as handle:
            handle.write("y" if stop.requested else "n")
        return 0

    assert _run_processes(monkeypatch, one_fails, 3) == 1
    assert (tmp_path / "told_to_stop").read_text() == "yy"


def _serve_until_told_to_stop(stop, timeout=10):
    deadline = time.monotonic() + timeout
    while not stop.requested and time.monotonic() < deadline:
        time.sleep(0.01)


def test_a_stop_reaches_the_serving_processes_while_they_start(tmp_path, monkeypatch,
                                                                own_signal_handlers):
    """SIGTERM while the serving processes open their databases is passed on
    at once (systemd stopping a cksd whose database is slow to answer), not
    once they can serve."""
    def slow_start(_settings, _listeners, _port, stop, *_args, ready, **_kwargs):
        time.sleep(0.5)  # opening the database, say
        with open(tmp_path / "told_to_stop", "a") as handle:
            handle.write("y" if stop.requested else "n")
        ready()
        return 0

    threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGTERM)).start()
    assert _run_processes(monkeypatch, slow_start, 2) == 0
    assert (tmp_path / "told_to_stop").read_text() == "yy"
