"""cksd's logs ([log]: files, syslog, level) and SIGHUP: log files reopened after
logrotate renamed them, the peer list read again at once, and never a stop."""

import configparser
import os
import shutil
import signal
import socket
import tempfile
import threading
import time

import pytest

from cks.periodic import Periodic
from cks.pipeline import Limits
from cks.store import open_store
from cks.store.peers import PeerStore
from cks.sync.recon.service import ReconService
from support.procs import tool
from support.server import Cksd, start_failure


def _config(tmp_path, sections):
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_dict(sections)
    path = tmp_path / "cks.conf"
    with open(path, "w") as handle:
        parser.write(handle)
    return str(path)


def _wait_for(path, text, timeout=10):
    """The file's text once it holds `text` (cksd writes its log lines in batches)."""
    deadline = time.monotonic() + timeout
    while True:
        content = path.read_text() if path.exists() else ""
        if text in content:
            return content
        assert time.monotonic() < deadline, "%r not in %s:\n%s" % (text, path, content)
        time.sleep(0.05)


@pytest.mark.parametrize("section,option", [("log", "access"), ("server", "access_log")])
def test_after_logrotate_renamed_the_files_sighup_starts_new_ones(tmp_path, section, option):
    app, access = tmp_path / "cksd.log", tmp_path / "access.log"
    sections = {"server": {"processes": "1"}, "log": {"file": str(app)}}
    sections[section][option] = str(access)
    with Cksd("sqlite:///%s" % (tmp_path / "k.db"), config=_config(tmp_path, sections)) \
            as server:
        server.lookup(op="index", options="mr", search="beforerotation")
        _wait_for(access, "search=beforerotation")
        _wait_for(app, "cks.hkp: peer addresses exempt from rate limits")
        os.rename(app, str(app) + ".1")  # what logrotate does, in its default create mode
        os.rename(access, str(access) + ".1")
        server.proc.send_signal(signal.SIGHUP)
        _wait_for(app, "cks.log: log files reopened")
        server.lookup(op="index", options="mr", search="afterrotation")
        _wait_for(access, "search=afterrotation")
        assert server.proc.poll() is None
        assert server.stop() == 0
        assert "cks.access" not in server.output()  # nothing but the ready line on stderr
    old_access, new_access = (tmp_path / "access.log.1").read_text(), access.read_text()
    assert "search=beforerotation" in old_access and "afterrotation" not in old_access
    assert "search=afterrotation" in new_access and "beforerotation" not in new_access
    old_app, new_app = (tmp_path / "cksd.log.1").read_text(), app.read_text()
    assert "peer addresses exempt" in old_app and "log files reopened" not in old_app
    assert "cksd: SIGHUP: reloading" in old_app + new_app  # written just before or after
    assert "cksd: stopped" in new_app and "peer addresses" not in new_app
    assert all(line[:4].isdigit() for line in (old_access + new_app).splitlines())  # dated


@pytest.mark.parametrize("moved", ["access", "both"])
def test_sighup_says_which_log_files_it_could_not_reopen_and_no_more(tmp_path, moved):
    """A log directory moved away: the files there cannot be reopened, and
    cksd says so, in the application log and on standard error (the journal:
    until 2026-12-06 only in the file moved away, where nobody looks);
    "log files reopened" names the ones that were, and is not said at all
    when none was (it was said after the failures all the same)."""
    (tmp_path / "app").mkdir()
    (tmp_path / "access").mkdir()
    app_dir = tmp_path / ("access" if moved == "both" else "app")
    app, access = app_dir / "cksd.log", tmp_path / "access" / "access.log"
    config = _config(tmp_path, {"server": {"processes": "1"},
                                "log": {"file": str(app), "access": str(access)}})
    with Cksd("sqlite:///%s" % (tmp_path / "k.db"), config=config) as server:
        _wait_for(app, "peer addresses exempt")
        os.rename(tmp_path / "access", tmp_path / "moved")
        server.proc.send_signal(signal.SIGHUP)
        written = tmp_path / ("moved" if moved == "both" else "app") / "cksd.log"
        _wait_for(written, "cannot reopen %s (No such file or directory): still writing to "
                  "the file it was" % access)
        assert server.stop() == 0
        for path in (app, access):
            failed = "cks.log: cannot reopen %s (No such file or directory): still writing " \
                     "to the file it was" % path
            assert server.output().splitlines().count(failed) \
                == (path == access or moved == "both"), server.output()
    lines = [line.split(" ", 2)[2] for line in written.read_text().splitlines()]
    assert lines.count("cks.log: cannot reopen %s (No such file or directory): still "
                       "writing to the file it was" % app) == (moved == "both")
    reopened = [line for line in lines if "reopened" in line]
    assert reopened == ([] if moved == "both" else ["cks.log: log files reopened: %s" % app])


def test_sighup_never_stops_cksd_with_several_processes(tmp_path):
    config = _config(tmp_path, {"server": {"processes": "2"}})
    with Cksd("sqlite:///%s" % (tmp_path / "k.db"), config=config) as server:
        server.wait_until(lambda: len(server.children()) == 2)
        children = server.children()
        for round_ in range(1, 4):
            server.proc.send_signal(signal.SIGHUP)
            server.wait_until(  # the two serving processes and the parent
                lambda: server.output().count("cksd: SIGHUP: reloading") == 3 * round_)
        assert server.children() == children
        assert server.lookup(op="stats", options="mr")[0] == 200
    assert server.proc.returncode == 0


def test_a_burst_of_sighups_neither_stops_nor_wedges_cksd(tmp_path):
    """SIGHUPs in quick succession (logrotate and a certificate renewal at
    once, or `pkill -HUP` reaching the serving processes as well as the
    parent, which passes it on): a signal that came while the handler of the
    one before held a lock deadlocked the process's loop, which then
    answered nothing and did not stop."""
    config = _config(tmp_path, {"server": {"processes": "2"}})
    with Cksd("sqlite:///%s" % (tmp_path / "k.db"), config=config) as server:
        server.wait_until(lambda: len(server.children()) == 2)
        pids = [server.proc.pid] + [int(p) for p in server.children()]
        for _ in range(3000):
            for pid in pids:
                os.kill(pid, signal.SIGHUP)
        for _ in range(20):  # each process's loop answers (a new connection each)
            assert server.lookup(op="stats", options="mr")[0] == 200
        server.wait_until(lambda: "cksd: SIGHUP: reloading" in server.output())
        started = time.monotonic()
        assert server.stop(timeout=20) == 0
        assert time.monotonic() - started < 20


def _ignores_sighup(pid):
    """Whether the process ignores SIGHUP (its SigIgn mask, in /proc)."""
    with open("/proc/%d/status" % pid) as status:
        mask = next(line for line in status if line.startswith("SigIgn:")).split()[1]
    return bool(int(mask, 16) & 1 << (signal.SIGHUP - 1))


@pytest.mark.parametrize("processes", ["1", "2"])
def test_sighups_during_start_up_neither_stop_cksd_nor_keep_it_from_serving(tmp_path,
                                                                            processes):
    """cksd.py ignores SIGHUP from its first line until its handler is set
    (`systemctl reload` just after a start, from logrotate or certbot): until
    2026-12-06 one in the first 0.3 s (its imports) ended it with status 129
    and not a line, and systemd's Restart=on-failure does not restart it."""
    config = _config(tmp_path, {"server": {"processes": processes}})
    server = Cksd("sqlite:///%s" % (tmp_path / "k.db"), config=config)
    starting = threading.Thread(target=server.start)
    inherited = signal.signal(signal.SIGHUP, signal.SIG_DFL)  # (a test run under nohup)
    try:
        starting.start()
        while server.proc is None:
            time.sleep(0.001)
    finally:
        signal.signal(signal.SIGHUP, inherited)
    sent = 0
    while starting.is_alive():
        if "listening on" in server.output():
            break
        if server.proc.poll() is None and (sent or _ignores_sighup(server.proc.pid)):
            server.proc.send_signal(signal.SIGHUP)  # at once, then a burst
            sent += 1
        time.sleep(0.002)
    try:
        assert sent > 0, "SIGHUP not ignored before cksd said it listens:\n" + server.output()
        starting.join(30)
        assert server.proc.poll() is None, server.output()
        server.proc.send_signal(signal.SIGHUP)
        server.wait_for_output("cksd: SIGHUP: reloading")
        assert server.request("GET", "/health")[0] == 200
        assert server.stop() == 0
    finally:
        server.close()


@pytest.mark.parametrize("processes", ["1", "2"])
def test_sighups_while_cksd_stops_leave_its_status_0(tmp_path, processes):
    """SIGHUPs after SIGTERM, up to cksd's very end: until 2026-12-06 one that
    came after main() returned, when Python's exit had put SIGHUP's default
    action back, ended it with status 129 instead of 0."""
    config = _config(tmp_path, {"server": {"processes": processes}})
    with Cksd("sqlite:///%s" % (tmp_path / "k.db"), config=config) as server:
        assert server.lookup(op="stats", options="mr")[0] == 200
        server.proc.send_signal(signal.SIGTERM)
        while server.proc.poll() is None:
            server.proc.send_signal(signal.SIGHUP)  # (until it is reaped: poll())
            time.sleep(0.0005)
        assert server.proc.returncode == 0, server.output()
        assert "cksd: stopped" in server.output()


def test_sighup_reads_the_config_file_and_names_each_setting_that_needs_a_restart(tmp_path):
    """Until 2026-12-06 a SIGHUP after an edit said nothing of it: the edit
    was ignored without a word.  Now each changed setting is one line (from
    one process of two); a name that is no setting, one line, ignored as at
    start (the rest of the file is taken); a file that cannot be taken, one
    line, and cksd serves on with the settings it runs with."""
    config = tmp_path / "cks.conf"
    start = "[server]\nprocesses = 2\n[ratelimit]\nexempt = 127.0.0.0/8\n"
    config.write_text(start)
    with Cksd("sqlite:///%s" % (tmp_path / "k.db"), config=str(config)) as server:
        def hangup(text, expected):
            if text is None:
                os.remove(config)
            else:
                config.write_text(text)
            begins = len(server.output())
            server.proc.send_signal(signal.SIGHUP)
            server.wait_until(lambda: server.output().count("SIGHUP: reloading") >= 3 * round_)
            server.wait_until(lambda: expected in server.output()[begins:])
            time.sleep(0.3)
            said = [line for line in server.output()[begins:].splitlines()
                    if "cks.conf" in line]
            assert server.lookup(op="stats", options="mr")[0] == 200
            return said

        round_ = 1
        said = hangup(start.replace("processes = 2", "processes = 3\nidle_timeout = 5")
                      + "lookups_per_second = 1\n", "when it restarts")
        assert said == ["cksd: SIGHUP: [%s] %s changed in %s: cksd takes it when it restarts"
                        % (section, option, config) for section, option in
                        [("ratelimit", "lookups_per_second"), ("server", "idle_timeout"),
                         ("server", "processes")]], server.output()
        # (until 2026-12-06 a name that is no setting made the file not taken; once
        # deleted, it was said "changed" as a setting that needs a restart)
        round_ = 2
        said = hangup(start.replace("processes = 2", "processes = 3")
                      + "lookups_per_secnd = 1\n", "when it restarts")
        assert said == [
            "cksd: SIGHUP: %s: [ratelimit] lookups_per_secnd is not a setting CKS reads: "
            "ignored" % config,
            "cksd: SIGHUP: [server] processes changed in %s: cksd takes it when it restarts"
            % config], server.output()
        for round_, (text, reason) in enumerate([
                ("[server]\nprocesses 2\n", "line 2: neither a [section] nor a setting"),
                (start.replace("2", "two"), "[server] processes must be a whole number"),
                (None, "does not exist")], 3):
            said = hangup(text, reason)
            assert len(said) == 1 and said[0].startswith(
                "cksd: SIGHUP: the configuration file is not taken, cksd runs with the "
                "settings it has: "), said
        assert server.proc.poll() is None
    assert server.proc.returncode == 0


def test_sighup_reads_the_peer_list_again_at_once(db_url, tmp_path):
    config = _config(tmp_path, {"server": {"processes": "1"},  # one process: one set of buckets
                                "ratelimit": {"lookups_per_second": "1", "lookup_burst": "2"}})
    with Cksd(db_url, config=config) as server:
        server.wait_for_output(r"peer addresses exempt from rate limits: none\n")

        def statuses(count):
            return [server.request("GET", "/pks/lookup?op=stats&options=mr",
                                   headers={"X-Forwarded-For": "192.0.2.50"})[0]
                    for _ in range(count)]

        assert 429 in statuses(5)
        added = tool("cks_sync_manage.py", ["--db", db_url, "add", "192.0.2.50:11371",
                                            "--no-catch-up"])  # no traffic is ever sent to it
        assert added.returncode == 0, added.stderr
        server.proc.send_signal(signal.SIGHUP)  # instead of waiting peer_refresh (300 s)
        server.wait_for_output(r"peer addresses exempt from rate limits: 192\.0\.2\.50\n",
                               timeout=5)
        assert statuses(20) == [200] * 20


def test_the_peer_addresses_are_logged_once_whatever_the_processes(tmp_path):
    """Every serving process finds the same addresses: the first alone says
    them (each of them did, `processes` lines at each change)."""
    db_url = "sqlite:///%s" % (tmp_path / "k.db")
    config = _config(tmp_path, {"server": {"processes": "3"}})
    with Cksd(db_url, config=config) as server:
        server.wait_for_output(r"peer addresses exempt from rate limits: none\n")
        added = tool("cks_sync_manage.py", ["--db", db_url, "add", "192.0.2.50:11371",
                                            "--no-catch-up"])
        assert added.returncode == 0, added.stderr
        server.proc.send_signal(signal.SIGHUP)
        server.wait_for_output(r"peer addresses exempt from rate limits: 192\.0\.2\.50\n")
        time.sleep(1)  # (the other processes' rounds)
        assert server.stop() == 0
        for addresses in ("none", "192.0.2.50"):
            assert server.output().count("peer addresses exempt from rate limits: %s\n"
                                         % addresses) == 1, server.output()


def test_sighup_makes_the_recon_port_refuse_a_disabled_peer_at_once(db_url):
    store = open_store(db_url)
    listener = socket.create_server(("127.0.0.1", 0))
    service = ReconService(store, listener, 11371, Limits(), interval=0)  # no gossip
    try:
        peers = PeerStore(store)
        peers.add("192.0.2.7:11371", "recon", 0, None, False)
        service.start()
        _eventually(lambda: service.members.find("192.0.2.7") is not None)
        peers.update("192.0.2.7:11371", enabled=False)
        time.sleep(0.2)
        assert service.members.find("192.0.2.7") is not None  # as read a moment ago
        service.reread_peers()  # what cksd does on SIGHUP
        _eventually(lambda: service.members.find("192.0.2.7") is None)
    finally:
        service.stop()
        listener.close()
        store.close()


def _eventually(condition, timeout=10):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.05)


@pytest.mark.parametrize("level", ["info", "warning"])
def test_log_level(tmp_path, level):
    missing = tmp_path / "no-syslog-here"
    config = _config(tmp_path, {"server": {"processes": "1"},
                                "log": {"level": level, "syslog": "yes",
                                        "syslog_socket": str(missing)}})
    with Cksd("sqlite:///%s" % (tmp_path / "k.db"), config=config) as server:
        server.lookup(op="index", options="mr", search="levelmarker")
        server.wait_for_output("cks.log: no syslog at %s: logging to standard error instead"
                               % missing)
        assert server.stop() == 0
        shown = server.output()
        for info in ("cks.access: 127.0.0.1", "cks.hkp: peer addresses exempt",
                     "cksd: stopped"):
            assert (info in shown) == (level == "info"), shown


def test_syslog(tmp_path):
    directory = tempfile.mkdtemp(prefix="cks-log-")  # short: a socket path has 108 bytes
    try:
        path = os.path.join(directory, "log")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as syslog:
            syslog.bind(path)
            syslog.settimeout(10)
            config = _config(tmp_path, {"server": {"processes": "1"},
                                        "log": {"syslog": "yes", "syslog_socket": path,
                                                "syslog_facility": "local3"}})
            with Cksd("sqlite:///%s" % (tmp_path / "k.db"), config=config) as server:
                server.lookup(op="index", options="mr", search="syslogmarker")
                messages = []
                while not (any(b"syslogmarker" in m for m in messages)
                           and any(b"peer addresses" in m for m in messages)):
                    messages.append(syslog.recv(4096))
                assert "cks.access" not in server.output()
        # <facility local3 (19) * 8 + severity info (6)>
        assert b'<158>cksd: cks.hkp: peer addresses exempt from rate limits: none\x00' \
            in messages
        assert any(m.startswith(b'<158>cksd: cks.access: 127.0.0.1 "GET /pks/lookup?op=index'
                                b'&options=mr&search=syslogmarker HTTP/1.1" 404')
                   for m in messages), messages
    finally:
        shutil.rmtree(directory)


@pytest.mark.parametrize("config,message", [
    ("[log]\nlevel = loud\n", "[log] level must be one of debug, info, warning, error"),
    ("[log]\nfile = {dir}/no/such/cksd.log\n",
     "cannot open log file {dir}/no/such/cksd.log: No such file or directory"),
    ("[server]\naccess_log = {dir}/no/such/access.log\n",
     "cannot open log file {dir}/no/such/access.log: No such file or directory"),
    ("[log]\nsyslog = perhaps\n", "[log] syslog must be yes or no"),
    ("[log]\nsyslog = yes\nsyslog_facility = kitchen\n",
     "[log] syslog_facility kitchen is not a syslog facility"),
])
def test_bad_log_settings_are_one_clear_line(tmp_path, config, message):
    code, err = start_failure(tmp_path, config.format(dir=tmp_path))
    assert code == 1 and message.format(dir=tmp_path) in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_periodic_run_now_runs_the_job_at_once_then_on_schedule():
    runs = []
    ran = threading.Event()

    def job():
        runs.append(time.monotonic())
        ran.set()

    periodic = Periodic("test", 300, job)
    periodic.start()
    try:
        assert ran.wait(5)
        ran.clear()
        periodic.run_now()
        assert ran.wait(5) and len(runs) == 2
        time.sleep(0.2)
        assert len(runs) == 2  # then waits its interval again
    finally:
        periodic.stop()
    assert not periodic._thread.is_alive()
