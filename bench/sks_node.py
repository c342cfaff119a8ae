"""Start and stop a private SKS keyserver node (Debian's ``sks`` 1.1.6).

Used by the benchmarks in ``bench/`` and by interop tests in ``tests/``;
import it as a plain module (put ``<repo>/bench`` on ``sys.path``).

SKS has its paths compiled in (``/etc/sks``, ``/var/lib/sks``,
``/var/run/sks``, ``/var/log/sks``) and ``-basedir`` does not move them.
To run a private node -- or several at once -- every ``sks`` process is
started in its own mount namespace (``unshare --mount --propagation
private``) in which directories of the node's *workdir* are bind-mounted
over those four paths.  Nothing is ever written to the real system paths;
the only change made outside the workdir is creating *empty* mount-point
directories (normally just ``/run/sks``) when they do not exist.

Layout of a workdir::

    workdir/etc/sksconf, etc/membership     -> /etc/sks
    workdir/lib/dump/*.pgp, lib/DB, PTree   -> /var/lib/sks
    workdir/run/{db,recon}_com_sock         -> /var/run/sks
    workdir/log/{db,recon,build,...}.log    -> /var/log/sks
    workdir/db.console, recon.console       stdout/stderr of the daemons

Example::

    from sks_node import SksNode, sks_available
    with SksNode("/tmp/n1", 11371, 11370,
                 keyring_files=["/usr/share/keyrings/debian-keyring.gpg"]) as n:
        status, headers, body = n.hkp_get("/pks/lookup?op=get&search=0x...")

Requires root (for ``unshare --mount`` and ``mount --bind``); see
:func:`sks_available`.  Standard library only.
"""

from __future__ import annotations

import atexit
import collections
import fcntl
import functools
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from typing import Iterable, List, Mapping, NamedTuple, Optional, Tuple, Union

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "lib"))
from cks.openpgp.armor import encode, looks_armored, scan  # noqa: E402
from cks.openpgp.keys import read_keys  # noqa: E402

__all__ = [
    "SksNode",
    "SksError",
    "HttpResponse",
    "KeyringKey",
    "sks_available",
    "read_keyring",
    "armor",
    "dearmor",
]

SKS_BINARY = "/usr/sbin/sks"

#: system path -> subdirectory of the node's workdir bound over it
BIND_MOUNTS = (
    ("etc", "/etc/sks"),
    ("lib", "/var/lib/sks"),
    ("run", "/run/sks"),  # /var/run is a symlink to /run on Debian
    ("log", "/var/log/sks"),
)

# Runs inside the fresh mount namespace: bind the node dirs, then exec sks.
# Arguments: $1 = workdir, $2... = command.  No shell quoting of paths needed.
_NS_SCRIPT = (
    'node=$1; shift; '
    'mount --bind "$node/etc" /etc/sks && '
    'mount --bind "$node/lib" /var/lib/sks && '
    'mount --bind "$node/run" /run/sks && '
    'mount --bind "$node/log" /var/log/sks && '
    'cd /var/lib/sks && exec "$@"'
)


class SksError(RuntimeError):
    """SKS failed to build or start, or did not answer in time."""


class HttpResponse(NamedTuple):
    status: int
    headers: "collections.OrderedDict[str, str]"  # lower-cased names
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


# ---------------------------------------------------------------------------
# Availability


@functools.lru_cache(maxsize=None)
def sks_available() -> bool:
    """True if ``/usr/sbin/sks`` exists and we may create mount namespaces.

    Checks: the sks binary, ``unshare`` and ``mount`` on PATH, effective
    uid 0, and that ``unshare --mount --propagation private true`` works
    (it does not in unprivileged containers).  The result is cached.
    """
    if not os.access(SKS_BINARY, os.X_OK):
        return False
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return False
    if os.geteuid() != 0:
        return False
    try:
        r = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "--", "true"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return r.returncode == 0


# ---------------------------------------------------------------------------
# Minimal OpenPGP keyring reading (enough to list keys, key IDs and user IDs)


class KeyringKey(NamedTuple):
    fingerprint: str  # upper-case hex (40 chars for v4)
    keyid: str  # upper-case hex, 16 chars
    version: int
    uids: List[str]
    data: bytes  # the whole transferable public key, binary


def dearmor(data: bytes) -> bytes:
    """Binary form of ASCII-armored OpenPGP data (all blocks concatenated).

    Data that is not armored is returned unchanged.
    """
    if not looks_armored(data):
        return data
    return b"".join(block.data for block in scan(data)[0])


def armor(data: bytes, block: str = "PGP PUBLIC KEY BLOCK") -> str:
    """ASCII-armor binary OpenPGP data (with the CRC24 line: SKS's /pks/add
    answers 500, ``Cryptokit.Error(9)`` in db.log, to armor without it)."""
    return encode(data, kind=block[len("PGP "):])


def read_keyring(path_or_data: Union[str, os.PathLike, bytes]) -> List[KeyringKey]:
    """List the keys of a keyring file (binary or armored) or of bytes, with
    CKS's own parser (no signature checking)."""
    if isinstance(path_or_data, (bytes, bytearray)):
        data = bytes(path_or_data)
    else:
        with open(path_or_data, "rb") as f:
            data = f.read()
    return [KeyringKey(key.fingerprint.hex().upper(), key.keyid.hex().upper(),
                       key.public_key.version, [c.value.text for c in key.user_ids],
                       key.serialize())
            for key in read_keys(data).keys]


# ---------------------------------------------------------------------------
# Process helpers


def _mnt_ns(pid: Union[int, str]) -> Optional[str]:
    try:
        return os.readlink("/proc/%s/ns/mnt" % pid)
    except OSError:
        return None


def _hexaddr4(address: str) -> str:
    parts = [int(p) for p in address.split(".")]
    return "%02X%02X%02X%02X" % tuple(reversed(parts))


def _listening(address: str, port: int) -> bool:
    """Is some TCP socket LISTENing on address:port (or the wildcard)?

    Reads /proc/net/tcp{,6}; does not connect (connecting to sks's recon
    port from a non-member would just make it log a rejection).
    """
    hexport = "%04X" % port
    any6 = "0" * 32
    if ":" in address:
        raw = socket.inet_pton(socket.AF_INET6, address)
        # /proc shows each 32-bit word in host (little-endian) order.
        exact = "".join(raw[i : i + 4][::-1].hex().upper() for i in range(0, 16, 4))
        wanted = {exact, any6}
        files = ["/proc/net/tcp6"]
    else:
        wanted = {_hexaddr4(address), "00000000", any6}
        files = ["/proc/net/tcp", "/proc/net/tcp6"]
    for fn in files:
        try:
            with open(fn) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    local, state = fields[1], fields[3]
                    if state != "0A":
                        continue
                    addr, _, p = local.rpartition(":")
                    if p == hexport and addr in wanted:
                        return True
        except OSError:
            continue
    return False


def _tail(path: str, lines: int = 30) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 16384))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return "(no %s)" % path
    return "\n".join(data.splitlines()[-lines:])


_LIVE_NODES: "set[SksNode]" = set()
_LIVE_LOCK = threading.Lock()


@atexit.register
def _stop_all_nodes() -> None:
    with _LIVE_LOCK:
        nodes = list(_LIVE_NODES)
    for node in nodes:
        try:
            node.stop()
        except Exception:  # pragma: no cover - best effort at exit
            pass


# ---------------------------------------------------------------------------
# The node


MembershipEntry = Union[str, Tuple[str, int]]


class SksNode:
    """A private SKS node (``sks db`` + ``sks recon``) under *workdir*.

    ``start()`` (re)creates ``etc lib run log`` under *workdir*, writes
    ``sksconf`` and ``membership``, builds the key DB from *keyring_files*
    (binary or armored OpenPGP keyrings; none = empty DB), starts
    ``sks db``, waits for HKP, starts ``sks recon`` and waits until its
    port listens.  ``stop()`` terminates both (SIGTERM, then SIGKILL after
    *stop_timeout*) and kills any other process still living in the node's
    mount namespaces.  Both are idempotent; a context manager and an
    ``atexit`` hook call ``stop()``.

    *address* is used for HKP, recon and as sks's ``hostname`` (sks
    decides a peer is itself by IP alone, so two nodes need different
    addresses, e.g. 127.0.0.2 and 127.0.0.3).  *membership* lists recon
    peers as ``(host, port)`` or ``"host port"``.
    *gossip_interval_min* is sks's ``gossip_interval`` in minutes (floats
    work, e.g. 0.2); None keeps sks's default.  *extra_config* adds
    ``key: value`` lines to ``sksconf`` (e.g. ``{"initial_stat": ""}``).

    With *reuse_db* true and an existing ``lib/DB`` in *workdir*, the DB
    is kept (restart after ``stop()``) and *keyring_files* are ignored.
    """

    def __init__(
        self,
        workdir: Union[str, os.PathLike],
        hkp_port: int,
        recon_port: int,
        address: str = "127.0.0.2",
        keyring_files: Iterable[Union[str, os.PathLike]] = (),
        membership: Iterable[MembershipEntry] = (),
        gossip_interval_min: Optional[float] = None,
        *,
        extra_config: Optional[Mapping[str, str]] = None,
        reuse_db: bool = False,
        start_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        build_timeout: float = 600.0,
    ) -> None:
        self.workdir = os.path.abspath(os.fspath(workdir))
        self.hkp_port = int(hkp_port)
        self.recon_port = int(recon_port)
        self.address = address
        self.keyring_files = [os.fspath(p) for p in keyring_files]
        self.membership = [self._member_line(m) for m in membership]
        self.gossip_interval_min = gossip_interval_min
        self.extra_config = dict(extra_config or {})
        self.reuse_db = reuse_db
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.build_timeout = build_timeout
        self.timings: "dict[str, float]" = {}
        self._db: Optional[subprocess.Popen] = None
        self._recon: Optional[subprocess.Popen] = None
        self._consoles: list = []
        self._lock = threading.RLock()
        self._lock_fd: Optional[int] = None

    # -- small properties -------------------------------------------------

    @staticmethod
    def _member_line(m: MembershipEntry) -> str:
        if isinstance(m, str):
            host, port = m.split()
        else:
            host, port = m
        return "%s %d" % (host, int(port))

    @property
    def url(self) -> str:
        host = "[%s]" % self.address if ":" in self.address else self.address
        return "http://%s:%d" % (host, self.hkp_port)

    @property
    def recon_peer(self) -> Tuple[str, int]:
        """``(address, recon_port)``, for other nodes' *membership*."""
        return (self.address, self.recon_port)

    @property
    def pids(self) -> "dict[str, int]":
        out = {}
        for name, p in (("db", self._db), ("recon", self._recon)):
            if p is not None and p.poll() is None:
                out[name] = p.pid
        return out

    @property
    def running(self) -> bool:
        return bool(self._db is not None and self._db.poll() is None)

    def path(self, *parts: str) -> str:
        return os.path.join(self.workdir, *parts)

    def log_tail(self, name: str = "db", lines: int = 30) -> str:
        """Tail of ``log/<name>.log`` (db, recon, build, clean, pbuild)."""
        return _tail(self.path("log", name + ".log"), lines)

    def _diagnostics(self, *names: str) -> str:
        parts = []
        for name in names:
            parts.append("--- log/%s.log ---\n%s" % (name, self.log_tail(name)))
            console = self.path(name + ".console")
            if os.path.exists(console):
                parts.append("--- %s.console ---\n%s" % (name, _tail(console, 15)))
        return "\n".join(parts)

    # -- context manager --------------------------------------------------

    def __enter__(self) -> "SksNode":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return "SksNode(%r, hkp=%s, recon=%d, running=%s)" % (
            self.workdir,
            self.url,
            self.recon_port,
            self.running,
        )

    # -- namespace plumbing -----------------------------------------------

    def _ns_argv(self, *argv: str) -> List[str]:
        return [
            "unshare", "--mount", "--propagation", "private", "--",
            "sh", "-c", _NS_SCRIPT, "sks-ns", self.workdir, *argv,
        ]

    def _run_sks(self, step: str, *args: str) -> None:
        t0 = time.monotonic()
        try:
            r = subprocess.run(
                self._ns_argv(SKS_BINARY, *args),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=self.build_timeout,
                start_new_session=True,
            )
        except subprocess.TimeoutExpired as e:
            raise SksError("sks %s timed out after %ss" % (step, e.timeout)) from None
        self.timings[step] = time.monotonic() - t0
        if r.returncode != 0:
            raise SksError(
                "sks %s failed (exit %d): %s\n%s"
                % (
                    " ".join(args),
                    r.returncode,
                    r.stdout.decode("utf-8", "replace").strip(),
                    self._diagnostics(step.split()[0]),
                )
            )

    def _spawn(self, name: str) -> subprocess.Popen:
        console = open(self.path(name + ".console"), "ab")
        self._consoles.append(console)
        # unshare and sh both exec, so the Popen pid *is* the sks process,
        # and start_new_session makes it leader of its own process group.
        return subprocess.Popen(
            self._ns_argv(SKS_BINARY, name),
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @staticmethod
    def _ensure_mount_points() -> None:
        # Empty directories only; nothing is written into them.
        for _, target in BIND_MOUNTS:
            if not os.path.isdir(target):
                os.makedirs(target, exist_ok=True)

    # -- setup ------------------------------------------------------------

    def _write_config(self) -> None:
        conf = [
            "hostname: %s" % self.address,
            "hkp_address: %s" % self.address,
            "hkp_port: %d" % self.hkp_port,
            "recon_address: %s" % self.address,
            "recon_port: %d" % self.recon_port,
            "debuglevel: 3",
        ]
        if self.gossip_interval_min is not None:
            conf.append("gossip_interval: %s" % self.gossip_interval_min)
        for k, v in self.extra_config.items():
            conf.append(("%s: %s" % (k, v)).rstrip())
        with open(self.path("etc", "sksconf"), "w") as f:
            f.write("\n".join(conf) + "\n")
        with open(self.path("etc", "membership"), "w") as f:
            f.write("".join(line + "\n" for line in self.membership))

    def _prepare_dirs(self) -> bool:
        """Create the node dirs; returns True if an existing DB is reused."""
        reuse = self.reuse_db and os.path.isdir(self.path("lib", "DB"))
        if not reuse:
            for sub in ("lib", "log", "run"):
                shutil.rmtree(self.path(sub), ignore_errors=True)
            for name in ("db.console", "recon.console"):
                try:
                    os.unlink(self.path(name))
                except FileNotFoundError:
                    pass
        for sub in ("etc", "lib", "run", "log", os.path.join("lib", "dump")):
            os.makedirs(self.path(sub), exist_ok=True)
        # Stale sockets from a killed run would make sks fail to bind.
        for name in os.listdir(self.path("run")):
            try:
                os.unlink(self.path("run", name))
            except OSError:
                pass
        return reuse

    def _build(self) -> None:
        dumps = []
        for i, src in enumerate(self.keyring_files):
            with open(src, "rb") as f:
                data = dearmor(f.read())
            base = re.sub(r"[^A-Za-z0-9_.-]", "_", os.path.basename(src))
            name = "%03d-%s.pgp" % (i, os.path.splitext(base)[0])
            with open(self.path("lib", "dump", name), "wb") as f:
                f.write(data)
            if data:
                dumps.append("/var/lib/sks/dump/" + name)
        # `sks build` wants the dump files as arguments (with none it just
        # creates an empty DB).  cleandb and pbuild die with Not_found on an
        # empty DB; sks recon creates an empty PTree itself.
        self._run_sks("build", "build", *dumps, "-n", "10", "-cache", "100")
        if dumps:
            self._run_sks("clean", "cleandb")
            self._run_sks("pbuild", "pbuild", "-cache", "20", "-ptree_cache", "70")

    # -- lifecycle --------------------------------------------------------

    def start(self) -> "SksNode":
        """Build the DB (unless reused) and start sks db and sks recon."""
        with self._lock:
            if self.running:
                return self
            if not sks_available():
                raise SksError(
                    "sks not usable here (need %s, root, unshare --mount)" % SKS_BINARY
                )
            t_start = time.monotonic()
            self.timings = {}
            os.makedirs(self.workdir, exist_ok=True)
            self._lock_workdir()
            try:
                self._start_locked(t_start)
            except BaseException:
                self.stop()
                raise
            return self

    def _lock_workdir(self) -> None:
        """One live SksNode per workdir (also across processes): flock."""
        if self._lock_fd is not None:
            return
        fd = os.open(self.path(".sksnode.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
            os.close(fd)
            raise SksError(
                "workdir %s is in use by another SksNode (pid %s)" % (self.workdir, holder)
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, ("%d\n" % os.getpid()).encode(), 0)
        self._lock_fd = fd

    def _unlock_workdir(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def _start_locked(self, t_start: float) -> None:
        self._kill_strays()
        for port, what in ((self.hkp_port, "HKP"), (self.recon_port, "recon")):
            if _listening(self.address, port):
                raise SksError(
                    "%s port %s:%d is already in use" % (what, self.address, port)
                )
        self._ensure_mount_points()
        reused = self._prepare_dirs()
        self._write_config()
        if not reused:
            self._build()
        with _LIVE_LOCK:
            _LIVE_NODES.add(self)
        t0 = time.monotonic()
        self._db = self._spawn("db")
        self._wait_hkp(t0 + self.start_timeout)
        self.timings["db_ready"] = time.monotonic() - t0
        # recon talks to db through run/db_com_sock at startup, so it
        # has to come second (started first it may die with
        # ECONNREFUSED).
        t1 = time.monotonic()
        self._recon = self._spawn("recon")
        self._wait_recon(t1 + self.start_timeout)
        self.timings["recon_ready"] = time.monotonic() - t1
        self.timings["start_total"] = time.monotonic() - t_start

    def _wait_hkp(self, deadline: float) -> None:
        last = "no attempt"
        while True:
            if self._db.poll() is not None:
                raise SksError(
                    "sks db exited with status %s during startup\n%s"
                    % (self._db.returncode, self._diagnostics("db"))
                )
            try:
                r = self.hkp_get("/pks/lookup?op=stats", timeout=2)
                if r.status == 200:
                    return
                last = "HTTP %d" % r.status
            except (OSError, http.client.HTTPException) as e:
                last = repr(e)
            if time.monotonic() > deadline:
                raise SksError(
                    "sks db did not answer on %s within %ss (last: %s)\n%s"
                    % (self.url, self.start_timeout, last, self._diagnostics("db"))
                )
            time.sleep(0.05)

    def _wait_recon(self, deadline: float) -> None:
        while not _listening(self.address, self.recon_port):
            if self._recon.poll() is not None:
                raise SksError(
                    "sks recon exited with status %s during startup\n%s"
                    % (self._recon.returncode, self._diagnostics("recon", "db"))
                )
            if time.monotonic() > deadline:
                raise SksError(
                    "sks recon not listening on %s:%d within %ss\n%s"
                    % (
                        self.address,
                        self.recon_port,
                        self.start_timeout,
                        self._diagnostics("recon"),
                    )
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop recon and db (SIGTERM, SIGKILL after stop_timeout). Idempotent."""
        with self._lock:
            procs = [p for p in (self._recon, self._db) if p is not None]
            for p in procs:
                self._signal_group(p, signal.SIGTERM)
            deadline = time.monotonic() + self.stop_timeout
            for p in procs:
                try:
                    p.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    self._signal_group(p, signal.SIGKILL)
                    p.wait()
                # Anything left in the group (children of sks, if any).
                self._signal_group(p, signal.SIGKILL)
            self._db = self._recon = None
            for c in self._consoles:
                c.close()
            self._consoles = []
            if self._lock_fd is not None:
                self._kill_strays()
            self._unlock_workdir()
            with _LIVE_LOCK:
                _LIVE_NODES.discard(self)

    @staticmethod
    def _signal_group(p: subprocess.Popen, sig: int) -> None:
        try:
            os.killpg(p.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def find_processes(self) -> List[int]:
        """PIDs of all processes that have this node's lib dir mounted.

        Looks at every process in a mount namespace other than ours and
        checks whether its ``/var/lib/sks`` is this node's ``lib``
        directory, so it finds our sks processes (and any child) even
        after the Popen handles are lost, and never other nodes' ones.
        """
        try:
            st = os.stat(self.path("lib"))
        except OSError:
            return []
        me = _mnt_ns("self")
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            ns = _mnt_ns(entry)
            if ns is None or ns == me:
                continue
            try:
                st2 = os.stat("/proc/%s/root/var/lib/sks" % entry)
            except OSError:
                continue
            if (st2.st_dev, st2.st_ino) == (st.st_dev, st.st_ino):
                found.append(int(entry))
        return found

    def _kill_strays(self, timeout: float = 5.0) -> None:
        pids = self.find_processes()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if os.path.exists("/proc/%d" % p) and not _zombie(p)]
            if pids:
                time.sleep(0.05)

    # -- HTTP helpers -----------------------------------------------------

    def hkp_request(
        self,
        method: str,
        path: str,
        body: Optional[bytes] = None,
        headers: Optional[Mapping[str, str]] = None,
        timeout: float = 30.0,
    ) -> HttpResponse:
        """One request on a fresh connection (sks closes every connection)."""
        conn = http.client.HTTPConnection(self.address, self.hkp_port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=dict(headers or {}))
            resp = conn.getresponse()
            data = resp.read()
            hdrs = collections.OrderedDict((k.lower(), v) for k, v in resp.getheaders())
            return HttpResponse(resp.status, hdrs, data)
        finally:
            conn.close()

    def hkp_get(self, path: str, timeout: float = 30.0) -> HttpResponse:
        """GET *path* (e.g. ``/pks/lookup?op=get&search=0x...``)."""
        return self.hkp_request("GET", path, timeout=timeout)

    def hkp_post(
        self, path: str, form: Mapping[str, str], timeout: float = 30.0
    ) -> HttpResponse:
        body = urllib.parse.urlencode(form).encode("ascii")
        return self.hkp_request(
            "POST",
            path,
            body=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            timeout=timeout,
        )

    def add_key(self, armored: str, check: bool = True, timeout: float = 30.0) -> HttpResponse:
        """POST an armored key (block) to ``/pks/add``.

        Raises SksError if *check* and sks does not answer 200.
        """
        r = self.hkp_post("/pks/add", {"keytext": armored}, timeout=timeout)
        if check and r.status != 200:
            raise SksError("/pks/add returned HTTP %d: %s" % (r.status, r.text[:500]))
        return r

    def get_key(self, keyid_or_fpr: str, timeout: float = 30.0) -> Optional[str]:
        """Armored key for a key ID / fingerprint (hex, with or without 0x),
        or None on 404."""
        kid = keyid_or_fpr[2:] if keyid_or_fpr.lower().startswith("0x") else keyid_or_fpr
        r = self.hkp_get(
            "/pks/lookup?op=get&options=mr&search=0x%s" % kid, timeout=timeout
        )
        if r.status == 404:
            return None
        if r.status != 200:
            raise SksError("op=get returned HTTP %d: %s" % (r.status, r.text[:500]))
        return r.text

    def refresh_stats(self) -> None:
        """Ask sks db to recompute its stats page (SIGUSR2).

        The stats page is otherwise computed only at start and hourly.
        """
        if self._db is not None and self._db.poll() is None:
            os.kill(self._db.pid, signal.SIGUSR2)

    def key_count(self, timeout: float = 30.0) -> int:
        """Number of keys on the stats page, after a refresh_stats().

        sks handles the signal before serving the next request, so this
        is current in practice; use wait_for_key_count() when waiting for
        keys to arrive (e.g. by recon).
        """
        self.refresh_stats()
        deadline = time.monotonic() + timeout
        while True:
            r = self.hkp_get("/pks/lookup?op=stats", timeout=timeout)
            m = re.search(r"Total number of keys:\s*(?:<[^>]*>\s*)*(\d+)", r.text)
            if m:
                return int(m.group(1))
            if time.monotonic() > deadline:
                raise SksError("no key count on stats page:\n" + r.text[:1000])
            time.sleep(0.1)

    def wait_for_key_count(self, n: int, timeout: float = 120.0, interval: float = 0.5) -> int:
        """Poll key_count() until it is >= *n*; raise SksError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            count = self.key_count()
            if count >= n:
                return count
            if time.monotonic() > deadline:
                raise SksError(
                    "%s has %d keys, wanted %d after %ss" % (self.url, count, n, timeout)
                )
            time.sleep(interval)


def _zombie(pid: int) -> bool:
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False
