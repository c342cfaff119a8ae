"""contrib/systemd/cksd-health.service's check, run as systemd runs it (with
a stand-in systemctl that notes what it is asked): quiet while cksd answers,
a failure without a restart when cksd answers with an error (its database is
down: a restart would not help), a restart when cksd does not answer."""

import http.server
import socket
import subprocess
import threading

import pytest

from support.contrib import command, require, unit_settings
from support.pgcluster import free_port
from support.server import Cksd


@pytest.fixture
def check(tmp_path):
    """check(port) runs the unit's check against 127.0.0.1:port: (exit
    status, what systemctl was asked, the output)."""
    require("curl", "curl")
    calls = tmp_path / "systemctl-calls"
    systemctl = tmp_path / "systemctl"
    systemctl.write_text('#!/bin/sh\necho "$@" >> %s\n' % calls)
    systemctl.chmod(0o755)

    def run(port):
        unit = unit_settings("cksd-health.service", {
            "http://127.0.0.1:11371/": "http://127.0.0.1:%d/" % port,
            "/bin/systemctl": str(systemctl), "--max-time 20": "--max-time 2"})
        result = subprocess.run(command(unit["Service"]["ExecStart"][-1]),
                                capture_output=True, text=True, timeout=60)
        asked = calls.read_text().splitlines() if calls.exists() else []
        return result.returncode, asked, result.stdout + result.stderr
    return run


def test_all_is_well_while_cksd_answers(db_url, check):
    with Cksd(db_url) as server:
        assert check(server.port) == (0, [], "")


class _Unavailable(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_an_error_answer_fails_the_check_without_a_restart(check):
    server = http.server.HTTPServer(("127.0.0.1", 0), _Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        status, asked, output = check(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
    assert (status, asked) == (1, [])
    assert "503" in output


def test_a_cksd_that_is_not_there_is_restarted(check):
    status, asked, output = check(free_port())
    assert (status, asked) == (1, ["--no-block try-restart cksd.service"])
    assert "cksd does not answer (curl exit status 7): restarting it" in output


def test_a_hung_cksd_is_restarted(check):
    with socket.socket() as hung:  # takes connections, never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        status, asked, output = check(hung.getsockname()[1])
    assert (status, asked) == (1, ["--no-block try-restart cksd.service"])
    assert "curl exit status 28" in output
