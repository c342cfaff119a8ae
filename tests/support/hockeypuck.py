"""A private Hockeypuck node for interop tests, or skip.

Hockeypuck is not packaged: build it from its source and point
CKS_HOCKEYPUCK at the `hockeypuck` binary (`hockeypuck-load` is looked for
beside it).  Without it the tests skip, under CI too: CI cannot build it.

The node has its own PostgreSQL database (dropped at stop), a TOML
configuration written to its workdir, and HKP, recon and metrics ports on
one address.  Hockeypuck dials its partners without binding a source
address, so on loopback its rounds arrive from 127.0.0.1 whatever address
it serves on: run it on 127.0.0.1 and cksd on another loopback address, so
that cksd knows it by the address its rounds come from.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from typing import Dict, List, Optional, Sequence, Set, Tuple

import pytest

from cks.sync.recon.wire import Config, MessageReader

from .db import create_pg_database, drop_pg_database, require_postgres
from .sks import free_ports

ENV = "CKS_HOCKEYPUCK"
ADDRESS = "127.0.0.1"
Partner = Tuple[str, int, int]  # host, HKP port, recon port


def hockeypuck_binary() -> str:
    """The `hockeypuck` binary CKS_HOCKEYPUCK names; skip the test without it."""
    path = os.environ.get(ENV, "")
    if not path or not os.access(path, os.X_OK) or \
            not os.access(_beside(path, "hockeypuck-load"), os.X_OK):
        pytest.skip("Hockeypuck is not available: build it from its source and set %s="
                    "/path/to/hockeypuck (hockeypuck-load beside it)" % ENV)
    require_postgres()
    return path


def _beside(binary: str, name: str) -> str:
    return os.path.join(os.path.dirname(binary), name)


def _toml_string(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid TOML basic string


class HockeypuckNode:
    """`hockeypuck` on ADDRESS; a context manager.  `partners` are its recon
    partners as (host, HKP port, recon port); `keyring_files` are loaded
    with hockeypuck-load before it starts."""

    def __init__(self, binary: str, workdir, partners: Sequence[Partner] = (),
                 keyring_files: Sequence[str] = (), gossip_interval: int = 60,
                 address: str = ADDRESS) -> None:
        self.binary = binary
        self.workdir = os.fspath(workdir)
        self.address = address
        self.partners = list(partners)
        self.keyring_files = [os.fspath(f) for f in keyring_files]
        self.gossip_interval = gossip_interval
        self.hkp_port, self.recon_port, self.metrics_port = free_ports(address, 3)
        self.db_url = ""
        self.proc: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return "http://%s:%d" % (self.address, self.hkp_port)

    @property
    def config_path(self) -> str:
        return os.path.join(self.workdir, "hockeypuck.conf")

    @property
    def log_path(self) -> str:
        return os.path.join(self.workdir, "hockeypuck.log")

    def __enter__(self) -> "HockeypuckNode":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, timeout: float = 60) -> None:
        os.makedirs(self.workdir, exist_ok=True)
        self.db_url = create_pg_database()
        try:
            self._write_config()
            if self.keyring_files:
                self._load()
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen([self.binary, "-config", self.config_path],
                                             stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT, start_new_session=True)
            self._wait_ready(time.monotonic() + timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 15) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.db_url:
            drop_pg_database(self.db_url)
            self.db_url = ""

    def _write_config(self) -> None:
        here = "%s:%d" % (self.address, self.hkp_port)
        lines = [
            "[hockeypuck]",
            'loglevel = "INFO"',
            "[hockeypuck.hkp]",
            "bind = %s" % _toml_string(here),
            "[hockeypuck.metrics]",
            "metricsAddr = %s" % _toml_string("%s:%d" % (self.address, self.metrics_port)),
            "[hockeypuck.openpgp.db]",
            'driver = "postgres-jsonb"',
            "dsn = %s" % _toml_string(self.db_url + "?sslmode=disable"),
            "reindexOnStartup = false",
            "[hockeypuck.conflux.recon]",
            # httpAddr is the HKP port announced in the handshake: keep it the served one
            "httpAddr = %s" % _toml_string(here),
            "reconAddr = %s" % _toml_string("%s:%d" % (self.address, self.recon_port)),
            "gossipIntervalSecs = %d" % self.gossip_interval,
            "[hockeypuck.conflux.recon.leveldb]",
            "path = %s" % _toml_string(os.path.join(self.workdir, "ptree")),
        ]
        for number, (host, hkp, recon) in enumerate(self.partners):
            lines += ["[hockeypuck.conflux.recon.partner.p%d]" % number,
                      "httpAddr = %s" % _toml_string("%s:%d" % (host, hkp)),
                      "reconAddr = %s" % _toml_string("%s:%d" % (host, recon))]
        with open(self.config_path, "w") as handle:
            handle.write("\n".join(lines) + "\n")

    def _load(self) -> None:
        with open(self.log_path, "ab") as log:
            done = subprocess.run([_beside(self.binary, "hockeypuck-load"), "-config",
                                   self.config_path] + self.keyring_files,
                                  stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                  timeout=600)
        if done.returncode != 0:
            raise RuntimeError("hockeypuck-load failed:\n" + self.log_tail())

    def _wait_ready(self, deadline: float) -> None:
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError("hockeypuck exited with status %s:\n%s"
                                   % (self.proc.returncode, self.log_tail()))
            try:
                self.stats()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("hockeypuck did not answer on %s:\n%s"
                                       % (self.url, self.log_tail())) from None
            time.sleep(0.1)

    # -- what it holds --------------------------------------------------------

    def _get(self, path: str, timeout: float = 30) -> Tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def stats(self) -> dict:
        status, body = self._get("/pks/lookup?op=stats&options=mr", timeout=2)
        if status != 200:
            raise OSError("op=stats answered HTTP %d" % status)
        return json.loads(body)

    def key_count(self) -> int:
        """The keys in its prefix tree: what its rounds compare."""
        return int(self.stats()["total"])

    def wait_for_key_count(self, count: int, timeout: float = 120) -> int:
        deadline = time.monotonic() + timeout
        while True:
            now = self.key_count()
            if now >= count:
                return now
            assert time.monotonic() < deadline, "Hockeypuck holds %d keys, wanted %d:\n%s" % (
                now, count, self.log_tail())
            time.sleep(0.5)

    def get_key(self, fingerprint: str) -> Optional[str]:
        """The armored key, or None when it answers 404."""
        status, body = self._get("/pks/lookup?op=get&options=mr&search=0x" + fingerprint)
        if status == 404:
            return None
        assert status == 200, "op=get answered HTTP %d: %r" % (status, body[:300])
        return body.decode()

    def hashes(self) -> Dict[str, str]:
        """Fingerprint -> SKS hash (upper-case hex) of every key it stores,
        from its database (it keeps fingerprints reversed)."""
        import psycopg2
        conn = psycopg2.connect(self.db_url)
        try:
            cursor = conn.cursor()
            cursor.execute("SELECT rfingerprint, md5 FROM keys")
            return {r[0][::-1].upper(): r[1].upper() for r in cursor.fetchall()}
        finally:
            conn.close()

    def filters(self) -> str:
        """The filter list it announces in the recon handshake (it sends its
        Config at once; read that and hang up)."""
        with socket.create_connection((self.address, self.recon_port), timeout=10) as sock:
            reader = MessageReader()
            while True:
                data = sock.recv(65536)
                assert data, "Hockeypuck closed the recon connection before its Config"
                messages = reader.feed(data)
                if messages:
                    assert isinstance(messages[0], Config), messages[0]
                    return messages[0].filters or ""

    def refused(self) -> Set[str]:
        """Fingerprints of the keys its log says it refused to store."""
        return {m.upper() for line in self.log_lines("could not upsert key")
                for m in re.findall(r"could not upsert key ([0-9a-fA-F]{40})", line)}

    def log(self) -> str:
        with open(self.log_path, errors="replace") as handle:
            return handle.read()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def log_lines(self, *texts: str) -> List[str]:
        """The lines of its log that hold all of `texts`."""
        return [line for line in self.log().splitlines() if all(t in line for t in texts)]

    def wait_for_log(self, *texts: str, timeout: float = 60) -> List[str]:
        deadline = time.monotonic() + timeout
        while True:
            lines = self.log_lines(*texts)
            if lines:
                return lines
            assert time.monotonic() < deadline, "%r not in Hockeypuck's log:\n%s" % (
                texts, self.log_tail())
            time.sleep(0.2)
