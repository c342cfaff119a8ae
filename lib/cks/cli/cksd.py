"""cksd.py: the HKP keyserver daemon."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import select
import signal
import socket
import sys
import threading
import time
from typing import Any, Callable, Iterator, List, NamedTuple, Optional, Sequence, Set, Tuple

from ..batchlog import BatchingHandler
from ..config import ConfigError, Settings, load_settings, unknown_names
from ..hangup import Hangup
from ..hkp.admin import AdminSettings
from ..hkp.app import KeyServer, ServerSettings
from ..hkp.answer_cache import AnswerCache
from ..hkp.cksd_metrics import DEFAULT_METRICS_ALLOW, CksdMetrics
from ..hkp.peer_addresses import PeerRefresher, enabled_peer_names
from ..hkp.ratelimit import DEFAULT_TRUSTED_PROXIES, Rate, parse_networks
from ..hkp.server import HKPServer, ServerLimits, listen
from ..hkp.tls import TLS_SETTINGS, Certificates, tls_paths
from ..hkp.upload_cost import CHECKS_PER_TOKEN
from ..hkp.views_owed import ViewsOwed, help_while_idle
from ..logsetup import LogSettings, configure_logging, log_settings, reopen_log_files
from ..malloc import RELEASE_EVERY, cap_arenas, release_free_memory
from ..older_views import OlderViews
from ..periodic import Periodic
from ..sample_config import known_settings
from ..store import StoreError, open_store
from ..store.changes import LocalChanges
from ..store.checkpoints import CHECKPOINT_EVERY, BackgroundCheckpoints
from ..store.ptree_view import TreeCache
from ..store.replica import ReplicaReads
from ..sync.mailconf import mail_settings
from ..sync.push import RapidPush, sync_limits
from ..sync.recon.service import ReconService
from .common import UserError, base_parser, node_identity, pipeline_limits, settings_from

log = logging.getLogger("cksd")

# Seconds between two looks at the queue of served views to derive: the work of
# uploads (which leave it to this job and start it at once; this is for what
# they could not finish), and work that another program did not finish (it
# crashed after its commit).
FOLLOW_SIGNERS_EVERY = 2.0
# Seconds between two looks at whether the served views were derived under older
# rules (older_views.py), while another process derives them, or after an error.
OLDER_VIEWS_EVERY = 30.0
READY_WAIT = 30.0
"""How long a serving process that can serve waits at most for the others
(run_processes) before it starts its background jobs all the same."""
PARENT_CHECK_EVERY = 1.0
"""How often a forked serving process looks whether cksd's main process is
still there (run_processes: one that was killed leaves no one to stop it)."""

SWITCH_INTERVAL = 0.001
"""Python's thread switch interval in a serving process (its default is
5 ms): while the served-views job checks signatures in the background, a
thread that answers an upload or a lookup waits for the interpreter that
long at each switch.  531 uploads in sequence while the job ran: 90th
percentile 17-19 ms with 5 ms, 10-12 ms with 1 ms, and more answered a
second.  With nothing else running, a thread is never asked to switch."""


def build_parser():
    parser = base_parser("cksd.py", "CKS HKP keyserver daemon.")
    parser.add_argument("--bind", metavar="ADDR", help="address to listen on (default "
                        "127.0.0.1, or [server] bind in the config)")
    parser.add_argument("--port", type=int, metavar="N", help="HKP port (default 11371, or "
                        "[server] port in the config; 0 picks a free port)")
    parser.add_argument("--tls-port", type=int, metavar="N",
                        help="serve hkps on this port too (also [server] tls_port; needs "
                             "[server] tls_cert and tls_key; 0 picks a free port)")
    parser.add_argument("--recon-port", type=int, metavar="N",
                        help="serve SKS reconciliation on this port (also [recon] port; "
                             "off unless set; 0 picks a free port)")
    parser.add_argument("--db-read", metavar="URL",
                        help="a streaming replica of --db for lookups (also [database] "
                             "read_url); uploads and everything else use --db")
    return parser


def _port(given: Optional[int], option: str, settings: Settings, section: str, key: str,
          default: int) -> Tuple[int, str]:
    """A port from its command-line option when given, else from the
    configuration: 0 to 65535 (0 picks a free port), or -1 (none) where
    that is the default; and what set it, for messages."""
    least = min(default, 0)
    if given is None:
        return (settings.get_int(section, key, default, least=least, most=65535),
                "[%s] %s" % (section, key))
    if not least <= given <= 65535:
        raise UserError("%s must be between %d and 65535" % (option, least))
    return given, option


def _distinct_ports(ports: List[Tuple[int, str]]) -> None:
    """Refuse one port given for two listeners (0, a free port, and -1, none,
    may repeat): the second would fail as "Address already in use"."""
    seen = {}
    for port, source in ports:
        if port > 0 and port in seen:
            raise UserError("%s and %s are both %d: each needs a port of its own"
                            % (seen[port], source, port))
        seen[port] = source


def _networks(settings: Settings, option: str, default: str = "",
              section: str = "ratelimit") -> list:
    try:
        return parse_networks(settings.get(section, option, default))
    except ValueError as exc:
        raise ConfigError("[%s] %s: %s" % (section, option, exc)) from None


def server_settings(settings: Settings, port: int,
                    recon_port: Optional[int] = None) -> ServerSettings:
    return ServerSettings(
        lookup_rate=Rate(settings.get_float("ratelimit", "lookups_per_second", 20.0, least=0),
                         settings.get_float("ratelimit", "lookup_burst", 2000.0, least=1)),
        upload_rate=Rate(settings.get_float("ratelimit", "uploads_per_minute", 60.0, least=0) / 60,
                         settings.get_float("ratelimit", "upload_burst", 20.0, least=1)),
        upload_checks_per_token=settings.get_int("ratelimit", "upload_checks_per_token",
                                                 CHECKS_PER_TOKEN, least=0),
        trusted_proxies=_networks(settings, "trusted_proxies", DEFAULT_TRUSTED_PROXIES),
        identity=node_identity(settings),
        admin=AdminSettings(settings.get("admin", "password_hash", ""),
                            settings.get("admin", "user", "") or "admin"),
        rate_exempt=_networks(settings, "exempt"),
        metrics_allow=_networks(settings, "allow", DEFAULT_METRICS_ALLOW, "metrics"),
        hostname=settings.hostname(),
        contact=settings.get("server", "contact", "").strip(),
        port=port,
        recon_port=recon_port,
        public_address=public_address(settings),
        max_upload_bytes=max_upload_bytes(settings),
        max_results=settings.get_int("limits", "max_results", 100, least=1),
        limits=pipeline_limits(settings))


_KEYSERVER_ADDRESS = re.compile(r"^hkps?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$")


def public_address(settings: Settings) -> str:
    """[server] public_address: the keyserver address the front page gives
    GnuPG users (behind a proxy, the proxy's) instead of hkp://hostname:port."""
    address = settings.get("server", "public_address", "").strip()
    if address and not _KEYSERVER_ADDRESS.match(address):
        raise ConfigError("[server] public_address must be a keyserver address such as "
                          "hkps://keys.example.org or hkp://keys.example.org:11371, not %r"
                          % address)
    return address


def peer_refresh(settings: Settings) -> float:
    """Seconds between two resolutions of the peers' addresses."""
    return settings.get_float("ratelimit", "peer_refresh", 300.0, more_than=0)


def push_interval(settings: Settings) -> float:
    """[sync] push_interval: seconds between cksd's own push passes; 0 (the
    default) leaves pushing to cks_sync.py from cron."""
    return settings.get_float("sync", "push_interval", 0.0, least=0)


def max_upload_bytes(settings: Settings) -> int:
    return settings.get_int("limits", "max_upload_bytes", 5 << 20, least=1)


def server_limits(settings: Settings) -> ServerLimits:
    defaults = ServerLimits()
    largest_upload_mb = max_upload_bytes(settings) / (1 << 20)
    return ServerLimits(
        max_connections=settings.get_int("server", "max_connections",
                                         defaults.max_connections, least=1),
        max_connections_per_address=settings.get_int(
            "server", "max_connections_per_address", defaults.max_connections_per_address,
            least=1),
        # (at least one upload of max_upload_bytes, which less would refuse
        # whatever else arrives; by default as much, where that is more)
        upload_buffer_mb=settings.get_float(
            "server", "upload_buffer_mb", max(defaults.upload_buffer_mb, largest_upload_mb),
            least=largest_upload_mb),
        workers=settings.get_int("server", "workers", defaults.workers, least=1),
        idle_timeout=settings.get_float("server", "idle_timeout", defaults.idle_timeout,
                                        more_than=0),
        head_timeout=settings.get_float("server", "head_timeout", defaults.head_timeout,
                                        more_than=0),
        body_timeout=settings.get_float("server", "body_timeout", defaults.body_timeout,
                                        more_than=0),
        write_timeout=settings.get_float("server", "write_timeout", defaults.write_timeout,
                                         more_than=0),
        min_write_rate_kb=settings.get_float("server", "min_write_rate_kb",
                                             defaults.min_write_rate_kb, more_than=0))


def _lean_log_records() -> None:
    """A log record per request is made in the loop's thread: leave out what
    cksd's formats never show (the logging HOWTO's "Optimization": no caller
    frame lookup, no thread or process names)."""
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


@contextlib.contextmanager
def _logging_in_background() -> Iterator[None]:
    """Every request writes an access-log line, from the loop and from worker
    threads: each handler's lines are written by a thread of its own, many at
    a time, so no request waits on a handler's lock or on a slow standard
    error (batchlog.py)."""
    replaced = []
    for logger in (logging.getLogger(), logging.getLogger("cks.access")):
        if logger.handlers:
            replaced.append((logger, logger.handlers))
            logger.handlers = [BatchingHandler(handler) for handler in logger.handlers]
            for handler in logger.handlers:
                handler.start()
    try:
        yield
    finally:
        for logger, handlers in replaced:
            for handler in logger.handlers:
                handler.close()  # writes out what is still pending
            logger.handlers = handlers


class _StopSignal:
    """SIGTERM/SIGINT handling: a signal that arrives before the server exists
    stops it as soon as it does.  `starting` (from the first instant of
    main()): until set_up(), SIGTERM keeps its default action, which ends
    cksd at once even while a database call blocks (a Python handler runs
    only between two bytecodes, after the call), and SIGINT interrupts what
    cksd is doing (KeyboardInterrupt) and is remembered in case that
    interruption is swallowed: until 2026-12-06 SIGINT was handled only once
    the database was opened, and a Ctrl-C while psycopg2 was being imported
    for it was swallowed by that import: cksd served on."""

    def __init__(self, starting: bool = False) -> None:
        self.requested = False
        self.server = None
        self.interrupts = starting
        signal.signal(signal.SIGINT, self._handle)
        if not starting:
            signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, _signum, _frame) -> None:
        self.requested = True
        if self.server is not None:
            self.server.request_stop()
        elif self.interrupts:
            raise KeyboardInterrupt

    def set_up(self) -> None:
        """From now on a signal only asks the server to stop (the serving
        processes about to be forked must not be interrupted mid-start)."""
        self.interrupts = False
        signal.signal(signal.SIGTERM, self._handle)

    def attach(self, server: HKPServer) -> None:
        self.server = server
        if self.requested:
            server.request_stop()


class ConfigReread:
    """SIGHUP: the configuration file read again and checked as at start
    (`check`).  The certificate files it names are loaded (a bad pair is
    refused, the one in use kept: tls.py); every other setting that differs
    from the running one is a line saying cksd takes it when it restarts; a
    file that cannot be taken is one line, and cksd runs on as it is.  Until
    2026-12-06 an edit was ignored without a word, and the certificate was
    reloaded from its old paths."""

    def __init__(self, settings: Settings, check: Callable[[Settings], object],
                 certificates: Optional[Certificates]) -> None:
        self.settings = settings  # as cksd started with them
        self.check = check
        self.certificates = certificates

    def __call__(self, says: bool = True) -> None:
        """Reread; `says`: this process logs what it found (the first serving
        process does for all: each reloads its own certificate)."""
        new = self._reread(says)
        paths = tls_paths(new) if new is not None else None  # (checked: plan)
        if says and new is not None:
            live = TLS_SETTINGS if self.certificates is not None and paths else frozenset()
            for section, option in sorted(self._changed(new) - live):
                log.warning("SIGHUP: [%s] %s changed in %s: cksd takes it when it restarts",
                            section, option, new.config_file)
        if self.certificates is not None:
            self.certificates.reload(*(paths or ()))

    def _reread(self, says: bool) -> Optional[Settings]:
        """The file cksd started with, read and checked again; None when it
        started with none, or when this one cannot be taken (`says`: say why)."""
        if not self.settings.config_file:
            return None
        try:
            new = load_settings(self.settings.config_file)
            self.check(new)
        except (ConfigError, UserError) as exc:
            if says:
                log.warning("SIGHUP: the configuration file is not taken, cksd runs with the "
                            "settings it has: %s", exc)
            return None
        if says:  # (ignored, as at start; until 2026-12-06 one made the file not taken)
            for name in unknown_names(new.parser):
                log.warning("SIGHUP: %s: %s: ignored", new.config_file, name)
        return new

    def _changed(self, new: Settings) -> Set[Tuple[str, str]]:
        """The (section, option)s whose values differ from the running ones,
        leaving out names that are no setting (`_reread` says those)."""
        old = self.settings.parser
        known = known_settings()  # (empty without the sample: then every name)
        names = {(section, option) for parser in (old, new.parser)
                 for section in parser.sections() for option in parser[section]
                 if not known or (section, option) in known}
        return {(section, option) for section, option in names
                if old.get(section, option, fallback=None)
                != new.parser.get(section, option, fallback=None)}


def answer_cache_bytes(settings: Settings) -> int:
    """[server] answer_cache_mb: memory for lookup answers per serving
    process (16 MB; 0 turns the cache off)."""
    megabytes = settings.get_float("server", "answer_cache_mb", 16.0, least=0)
    return int(megabytes * (1 << 20))


def database_limits(settings: Settings) -> Tuple[int, float]:
    """[database] pool_size, the connections each serving process keeps at
    most, and [server] request_timeout, the seconds a statement may run."""
    return (settings.get_int("database", "pool_size", 16, least=1),
            settings.get_float("server", "request_timeout", 30.0, more_than=0))


def recon_interval(settings: Settings) -> float:
    """[recon] interval: seconds between the rounds cksd starts (60, as SKS)."""
    return settings.get_float("recon", "interval", 60.0, more_than=0)


Listeners = List[Tuple[socket.socket, Optional[Certificates]]]  # None: plain HTTP


def serve(settings: Settings, listeners: Listeners, port: int, stop: _StopSignal,
          hangup: Hangup, recon_listener: Optional[socket.socket] = None,
          changes: Optional[LocalChanges] = None,
          metrics: Optional[CksdMetrics] = None,
          views_owed: Optional[ViewsOwed] = None,
          ready: Callable[[], None] = lambda: None, parent: Optional[int] = None,
          first: bool = True, reread: Optional[ConfigReread] = None) -> int:
    """Run one serving process until SIGTERM/SIGINT.  `changes`: the key
    changes counter the serving processes of one cksd share; `metrics`: this
    process's part of the metrics they share; `views_owed`: the uploads'
    served views owed, which they share too (hkp/views_owed.py); `ready`:
    called once the process can serve, before its background jobs start (the
    "listening" line comes before any line they log); `parent`: the process
    ID of cksd's main process, when it forked this one: this one stops if
    that one is gone; `first`: whether this is the first serving process (or
    the only one), which alone logs what every one of them finds alike;
    `reread`: what a SIGHUP does with the configuration file."""
    sys.setswitchinterval(SWITCH_INTERVAL)
    cap_arenas()  # (malloc.py: what a process holds after a sync's peaks)
    pool_size, timeout = database_limits(settings)
    replica = None
    try:
        store = open_store(settings.db_url, pool_size, timeout)
        if changes is not None:
            store.local_changes = changes
        if settings.db_read_url:
            replica = ReplicaReads(open_store(settings.db_read_url, pool_size, timeout,
                                              reads_only=True), store)
            store.replicated = True
        recon_port = recon_listener.getsockname()[1] if recon_listener is not None else None
        app = KeyServer(store, server_settings(settings, port, recon_port), replica)
        # The front page's hkps:// address (the same as `port` when that speaks TLS only).
        app.settings.tls_port = next((sock.getsockname()[1] for sock, certificates
                                      in listeners if certificates is not None), None)
        if metrics is not None:
            app.metrics = metrics
        store.on_error = app.metrics.database_error
        cache_bytes = answer_cache_bytes(settings)
        # (A replica's answers may lag the change notifications, which come
        # from the primary: with one, every lookup reads the database.  Recon
        # reads the primary's tree.)
        answers_cached = bool(cache_bytes) and replica is None
        watch = store.watch_key_changes() \
            if answers_cached or recon_listener is not None else None
        if answers_cached:
            app.cache = AnswerCache(watch, cache_bytes)
        server = HKPServer(app, listeners, server_limits(settings))
        peers = PeerRefresher(lambda: enabled_peer_names(store), app.exempt_peers,
                              peer_refresh(settings), says_addresses=first)
        if views_owed is not None:
            app.views_owed = views_owed
        views = Periodic("served-views", FOLLOW_SIGNERS_EVERY,
                         lambda: app.views_owed.run(app.serve_views, app.follow_views))
        app.views_due = views.run_now
        older_views = OlderViews(store, app.settings.limits.serve)
        background = [peers, views, Periodic("older-views", OLDER_VIEWS_EVERY, older_views.run),
                      Periodic("release-memory", RELEASE_EVERY, release_free_memory),
                      Periodic("views-helper", 0.0, lambda: help_while_idle(
                          app.views_owed, app.serve_views))]
        on_hangup = [reopen_log_files, peers.refresh_now]
        if reread is not None:  # (and the certificate)
            on_hangup.append(lambda: reread(says=first))
        if recon_listener is not None:
            recon = ReconService(store, recon_listener, port, app.settings.limits,
                                 recon_interval(settings), recon_listener.getsockname()[0],
                                 app.metrics.recon_round, TreeCache(watch))
            background.append(recon)
            on_hangup.append(recon.reread_peers)
        if store.take_over_checkpoints():
            background.append(Periodic("checkpoint", CHECKPOINT_EVERY,
                                       BackgroundCheckpoints(store)))
        pushing_every = push_interval(settings)
        if pushing_every:
            background.append(Periodic("push", pushing_every,
                                       RapidPush(store, settings, sync_limits(settings),
                                                 pushing_every)))
        if parent is not None:
            background.append(Periodic("parent-watch", PARENT_CHECK_EVERY,
                                       _OrphanCheck(parent, server)))
    except (ConfigError, StoreError) as exc:
        raise UserError(str(exc), 1) from None
    stop.attach(server)
    ready()
    with _logging_in_background():
        for job in background:
            job.start()  # here, in the serving process: a fork does not copy threads
        hangup.start(on_hangup)
        try:
            server.serve_forever()
        finally:
            hangup.stop()
            server.finish_stop()
            _stop_together(background)
            if watch is not None:
                watch.close()
            store.close()
            if replica is not None:
                replica.close()
    return 0


JOBS_STOP_WITHIN = 6.0
"""Seconds a serving process waits for its background jobs to stop, all of
them at once (each waits up to 5 s for a round under way)."""


def _stop_together(jobs: Sequence[Any]) -> None:
    """Stop the background jobs together, each from a thread of its own, and
    wait for them JOBS_STOP_WITHIN seconds in all; a job still going then
    ends with the process (its threads are daemons, its work stays queued).
    Until 2026-12-06 they were stopped one after another, each waiting for
    its round: a stop took 10 s and more, and `kill; sleep 5; cksd.py`
    found its port in use."""
    stopping = [threading.Thread(target=job.stop, name="stop", daemon=True) for job in jobs]
    for thread in stopping:
        thread.start()
    deadline = time.monotonic() + JOBS_STOP_WITHIN
    for thread in stopping:
        thread.join(max(0.0, deadline - time.monotonic()))


def default_processes() -> int:
    """One serving process per core this process may run on: Python runs one
    thread at a time per process, and a lookup is mostly Python."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGTERM, SIGINT and SIGHUP back around a fork, in the parent and
    in the new child alike.  Python forgets, in a child, a signal that
    arrives between the fork and its own reset of the signal state, so a
    SIGTERM that cksd passes on to a serving process just forked would be
    lost and that process would serve on; held, it is delivered once the
    child is ready for it."""
    held = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
    signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, held)


def run_processes(settings: Settings, listeners: Listeners, port: int, count: int,
                  stop: _StopSignal, hangup: Hangup,
                  recon_listener: Optional[socket.socket] = None,
                  ready: Callable[[], None] = lambda: None,
                  reread: Optional[ConfigReread] = None) -> int:
    """Fork `count` serving processes sharing the listening sockets, and wait.

    Python runs one thread at a time per process; several processes use
    several cores.  SIGTERM/SIGINT/SIGHUP are passed on; every child finishes
    the requests it has in flight.  `ready` is called once every child can
    serve or has failed to start (if any can): a request sent after it does
    not wait for a process to open its database.  Until then the children
    wait to start their background jobs, whose log lines would come first.
    """
    # (Shared with no lock between the processes: shared_counts.py.)
    changes = LocalChanges.shared_by(count)  # each one's uploads clear every one's answers
    metrics = CksdMetrics.shared_by(count)  # a scrape sums every process's counts
    views_owed = ViewsOwed.shared_by(count)  # a lookup in any finds what any one took
    started, says_started = os.pipe()  # each child writes a byte when it can serve
    go, says_go = os.pipe()  # then waits for this to close, once `ready` was called
    children: List[int] = []
    parent = os.getpid()
    for index in range(count):
        with _signals_held():
            pid = os.fork()
        if pid == 0:
            code = 1
            os.close(started)
            os.close(says_go)
            try:
                # `stop` as inherited: its handler is this child's until serve()
                # attaches the server, so a signal forwarded early is not lost.
                code = serve(settings, listeners, port, stop, hangup, recon_listener,
                             changes[index], metrics[index], views_owed[index],
                             ready=lambda: _ready_in_child(says_started, go), parent=parent,
                             first=index == 0, reread=reread)
            except UserError as exc:
                print("cksd.py: error: %s" % exc, file=sys.stderr)
            except Exception:  # (os._exit skips Python's own report of it)
                log.exception("serving process %d failed", os.getpid())
            finally:
                os._exit(code)
        children.append(pid)
    os.close(says_started)
    os.close(go)
    for listener, _ in listeners:
        listener.close()
    if recon_listener is not None:
        recon_listener.close()

    stopping: List[int] = []  # the stop signals passed on

    def forward(signum, _frame):
        stopping.append(signum)
        for child in children:
            try:
                os.kill(child, signum)
            except ProcessLookupError:
                pass

    # (passed on from here: a child slow to start stops when told, not once
    # every child could serve)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    if stop.requested:  # a signal that came while the children were being made
        forward(signal.SIGTERM, None)
    hangup.pass_on_to(children)
    if _bytes_until_closed(started):  # (when every child said so, or exited)
        ready()
    os.close(says_go)
    hangup.start([reopen_log_files])  # this process's own last lines
    return _wait_for(children, stopping, lambda: forward(signal.SIGTERM, None))


def _wait_for(children: List[int], stopping: List[int], stop_all: Callable[[], None]) -> int:
    """Wait until every serving process has ended; 1 if one failed.  One
    that ends while no stop was asked for (`stopping` empty) has failed,
    whatever its status (an error it logged, a kill, a SIGTERM sent to it
    alone): it stops the others (`stop_all`), so that cksd ends and its
    supervisor starts it again (systemd's Restart=on-failure), instead of
    serving on with fewer processes where nobody looks."""
    status, left = 0, set(children)
    while left:
        try:
            pid, code = os.wait()
        except ChildProcessError:  # (reaped by someone else)
            return 1
        if pid not in left:
            continue  # not a serving process
        left.discard(pid)
        exit_code = os.waitstatus_to_exitcode(code)
        if not stopping:
            log.error("serving process %d ended with status %d: stopping cksd", pid,
                      exit_code)
            status = 1
            if left:
                stop_all()  # (which adds to `stopping`)
        elif exit_code != 0:
            status = 1
    return status


class _OrphanCheck:
    """A forked serving process's periodic look at its parent: when cksd's
    main process is gone (killed: it passes every stop on, so it ended
    without one), nobody is left to stop this one, which would go on
    serving with the port held, so it stops itself."""

    def __init__(self, parent: int, server: HKPServer) -> None:
        self.parent = parent
        self.server = server

    def __call__(self) -> None:
        if os.getppid() != self.parent and not self.server.stopping:
            log.warning("cksd's main process %d is gone: stopping", self.parent)
            self.server.request_stop()


def _ready_in_child(pipe: int, go: int) -> None:
    """A serving process can serve: say so with a byte on `pipe` (then closed),
    and wait for the pipe `go` to close, which cksd's main process does when
    it has said that it listens (at most READY_WAIT seconds).  Until
    2026-12-07 `go` was a multiprocessing Event, whose set() waits for every
    process waiting on it: one killed meanwhile held up cksd for good."""
    try:
        os.write(pipe, b"+")
    finally:
        os.close(pipe)
    try:
        select.select([go], [], [], READY_WAIT)
    finally:
        os.close(go)


def _bytes_until_closed(pipe: int) -> int:
    """Read `pipe` until every process that held it open closed it; how many
    bytes came."""
    count = 0
    with open(pipe, "rb", buffering=0) as handle:
        while True:
            data = handle.read(512)
            if not data:
                return count
            count += len(data)


def _listen(bind: str, port: int, purpose: str = "") -> socket.socket:
    try:
        return listen(bind, port)
    except OSError as exc:
        raise UserError("cannot listen on %s:%d%s: %s"
                        % (bind, port, purpose, exc.strerror), 1) from None


def _listening_line(listener: socket.socket, scheme: str) -> str:
    """The line that says cksd is ready (tests and scripts wait for it)."""
    host, port = listener.getsockname()[:2]
    return "cksd listening on %s://%s:%d" % (scheme, "[%s]" % host if ":" in host else host,
                                             port)


class Plan(NamedTuple):
    """What cksd serves with, from its command line and configuration."""
    bind: str
    port: int
    processes: int
    recon_port: int  # -1: none
    tls_port: int  # -1: none
    tls: Optional[Tuple[str, str]]  # the certificate and key files
    logs: LogSettings


def plan(settings: Settings, args: argparse.Namespace) -> Plan:
    """Every value cksd starts with, checked (ConfigError, UserError): at
    start, and when a SIGHUP reads the configuration file again."""
    # Empty: the default; every address only when said (0.0.0.0, ::).
    bind = args.bind or settings.get("server", "bind", "") or "127.0.0.1"
    port, port_from = _port(args.port, "--port", settings, "server", "port", 11371)
    processes = settings.get_int("server", "processes", default_processes(), least=1)
    server_settings(settings, port)
    server_limits(settings)
    database_limits(settings)
    peer_refresh(settings)
    if push_interval(settings):
        sync_limits(settings)
        mail_settings(settings)  # (what pushes to mail peers need)
    answer_cache_bytes(settings)
    recon_port, recon_from = _port(args.recon_port, "--recon-port", settings, "recon",
                                   "port", -1)
    if recon_port != -1:
        recon_interval(settings)
    tls_port, tls_from = _port(args.tls_port, "--tls-port", settings, "server",
                               "tls_port", -1)
    _distinct_ports([(port, port_from), (tls_port, tls_from), (recon_port, recon_from)])
    tls = tls_paths(settings)
    if tls_port != -1 and tls is None:
        raise UserError("%s needs [server] tls_cert and tls_key" % tls_from)
    return Plan(bind, port, processes, recon_port, tls_port, tls,
                log_settings(settings, args.verbose))


def main(argv: List[str]) -> int:
    hangup = Hangup()  # (cksd.py ignored SIGHUP until now: its default action ends cksd)
    stop = _StopSignal(starting=True)  # (before the database is opened)
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from(args)
        if args.db_read:
            settings.db_read_url = args.db_read
        started = plan(settings, args)  # checked before anything starts
        certificates = Certificates(*started.tls) if started.tls else None
        configure_logging(started.logs)
        if certificates is not None:
            certificates.warn_if_expiring()
        store = open_store(settings.db_url)
        store.check()  # creates the schema on an empty database, once
        store.close()
        if settings.db_read_url:
            # Only the URL is checked: a replica that is down may come up later,
            # lookups read the primary until it does.
            open_store(settings.db_read_url)
    except (ConfigError, StoreError) as exc:
        raise UserError(str(exc), 1) from None
    except KeyboardInterrupt:  # (SIGINT while cksd started: _StopSignal)
        log.info("stopped before it served")
        return 0
    stop.set_up()
    _lean_log_records()
    # Without tls_port, the port speaks TLS when there is a certificate.
    bind = started.bind
    listeners: Listeners = [(_listen(bind, started.port),
                             certificates if started.tls_port == -1 else None)]
    if started.tls_port != -1:
        listeners.append((_listen(bind, started.tls_port, " for hkps"), certificates))
    recon_listener = None
    if started.recon_port != -1:
        recon_listener = _listen(bind, started.recon_port, " for recon")
        print("cksd recon on %s:%d" % (bind, recon_listener.getsockname()[1]),
              file=sys.stderr, flush=True)
    lines = [_listening_line(listener, "http" if tls is None else "https")
             for listener, tls in listeners]

    def say_listening() -> None:
        print("\n".join(lines), file=sys.stderr, flush=True)

    port = listeners[0][0].getsockname()[1]
    reread = ConfigReread(settings, lambda new: plan(new, args), certificates)
    if started.processes == 1:
        code = serve(settings, listeners, port, stop, hangup, recon_listener,
                     ready=say_listening, reread=reread)
    else:
        code = run_processes(settings, listeners, port, started.processes, stop, hangup,
                             recon_listener, say_listening, reread)
    log.info("stopped")
    return code
