"""Run cksd.py as a real process and talk HTTP to it (or, for tests that
reach into it, its HTTP server in this process: serving_here)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from . import ROOT, fixture

READY = re.compile(r"cksd listening on https?://(\S+):(\d+)")  # the first listener
LOOPBACK_EXEMPT = "[ratelimit]\nexempt = 127.0.0.0/8, ::1\n"


class Cksd:
    """cksd.py on a free port; use as a context manager, or call close() when
    done with it (stop() leaves its log to read, and it may start again)."""

    def __init__(self, db_url: str, args: Optional[List[str]] = None,
                 config: Optional[str] = None, bind: str = "127.0.0.1",
                 env: Optional[Dict[str, str]] = None, python: str = sys.executable) -> None:
        self.db_url = db_url
        self.python = python  # the interpreter cksd runs under
        self.args = list(args or [])
        self.config = config
        self.bind = bind
        self.env = env or {}
        self.proc: Optional[subprocess.Popen] = None
        self.port = 0
        self.log = tempfile.NamedTemporaryFile(prefix="cksd-", suffix=".log", delete=False)
        self._own_config: Optional[str] = None

    @property
    def url(self) -> str:
        return "http://%s:%d" % (self.bind, self.port)

    def start(self, port: int = 0, timeout: float = 30) -> "Cksd":
        cmd = [self.python, os.path.join(ROOT, "cksd.py"), "--db", self.db_url,
               "--bind", self.bind, "--port", str(port)] + self.args
        if not self.config:
            # Tests upload many keys from loopback: exempt it from the rate limits,
            # which have tests of their own.
            config = tempfile.NamedTemporaryFile("w", prefix="cks-", suffix=".conf",
                                                 delete=False)
            config.write(LOOPBACK_EXEMPT)
            config.close()
            self.config = self._own_config = config.name
        cmd += ["--config", self.config]
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", **self.env)
        env.pop("CKS_CONFIG", None)
        # cksd writes its log straight to the file: no thread of this process
        # copies it (a benchmark's client runs here, and must not share the
        # interpreter with a copier woken by every access log line).
        self.log.flush()
        begins = os.path.getsize(self.log.name)  # (a restart: the log goes on)
        self.proc = subprocess.Popen(cmd, stderr=self.log, stdout=subprocess.DEVNULL,
                                     env=env, cwd=tempfile.gettempdir())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = READY.search(self.output(begins))
            if match:
                self.port = int(match.group(2))
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.01)
        self.proc.kill()
        self.proc.wait()
        raise RuntimeError("cksd did not start: %s" % self.output())

    def stop(self, timeout: float = 30) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def output(self, start: int = 0) -> str:
        """The log from byte `start` on."""
        self.log.flush()
        with open(self.log.name, "rb") as handle:
            handle.seek(start)
            return handle.read().decode(errors="replace")

    def wait_for_output(self, pattern: str, timeout: float = 10) -> "re.Match":
        """The first match of `pattern` in the log, waiting for it to be written."""
        deadline = time.monotonic() + timeout
        while True:
            match = re.search(pattern, self.output())
            if match or time.monotonic() > deadline:
                assert match, "%r not in the cksd log:\n%s" % (pattern, self.output())
                return match
            time.sleep(0.05)

    def wait_until(self, condition, timeout: float = 10) -> None:
        """Wait for `condition()` to hold; fail with the log when it does not."""
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, "cksd log:\n" + self.output()
            time.sleep(0.05)

    def children(self) -> List[str]:
        """The process IDs of the serving processes cksd forked ([server] processes)."""
        return subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True,
                              text=True).stdout.split()

    def __enter__(self) -> "Cksd":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop cksd and remove its log and the configuration made for it."""
        try:
            self.stop()
        finally:
            self.log.close()
            for path in (self.log.name, self._own_config):
                if path:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)

    # --- HTTP helpers -----------------------------------------------------------

    def request(self, method: str, path: str, body: Optional[bytes] = None,
                headers: Optional[Dict[str, str]] = None,
                timeout: float = 30) -> Tuple[int, Dict[str, str], bytes]:
        req = urllib.request.Request(self.url + path, data=body, method=method,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()

    def lookup(self, **params) -> Tuple[int, Dict[str, str], bytes]:
        return self.request("GET", "/pks/lookup?" + urllib.parse.urlencode(params))

    def add(self, keytext, **params) -> Tuple[int, Dict[str, str], bytes]:
        if isinstance(keytext, bytes):
            keytext = keytext.decode()
        fields = dict(params, keytext=keytext)
        return self.request("POST", "/pks/add", urllib.parse.urlencode(fields).encode(),
                            {"Content-Type": "application/x-www-form-urlencoded"})

    def add_fixtures(self, names: Sequence[str]) -> None:
        """Upload tests/fixtures/keys/NAME.asc for every name; each must be taken."""
        for name in names:
            status, _, body = self.add(fixture(name))
            assert status == 200, body


def raw_exchange(port: int, request: bytes, timeout: float = 20,
                 then_end: bool = False) -> bytes:
    """Send `request` as bytes on a new connection to 127.0.0.1:`port` and read
    the answer until the server closes the connection (or resets it, as after
    a 413 whose body it did not read).  `then_end` closes the sending side
    after the request, so that a server reading the rest of a refused body
    (for up to 5 s) stops at once."""
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        if then_end:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def start_failure(directory, config: str, args: Sequence[str] = ()) -> Tuple[int, str]:
    """cksd.py started in `directory` with this configuration text, which it
    must refuse at once: its exit code and standard error."""
    from .procs import tool
    path = os.path.join(str(directory), "refused.conf")
    with open(path, "w") as handle:
        handle.write(config)
    result = tool("cksd.py", ["--db", "sqlite:///refused.db", "--port", "0", "--config",
                              path] + list(args), cwd=str(directory), timeout=30)
    return result.returncode, result.stderr.decode(errors="replace")


@contextlib.contextmanager
def serving_here(app) -> Iterator[Tuple[int, threading.Thread]]:
    """cksd's HTTP server for `app` (a KeyServer) on a free port, its loop in a
    thread of this process named "the-loop": (the port, that thread)."""
    from cks.hkp.server import HKPServer, listen
    server = HKPServer(app, [(listen("127.0.0.1", 0), None)])
    port = next(iter(server.listeners)).getsockname()[1]
    loop = threading.Thread(target=server.serve_forever, name="the-loop", daemon=True)
    loop.start()
    try:
        yield port, loop
    finally:
        server.request_stop()
        loop.join(10)
        server.finish_stop()
