"""What cksd counts, and GET /metrics, which shows it in the Prometheus text
format (README "Metrics").

The counters live in shared memory (metrics.py): a scrape answered by any
serving process shows the sums over all of them.  What the database knows
(the keys stored, what each push peer is owed) is read at scrape time, at
most every DATABASE_EVERY seconds per process.  Only the networks of
`[metrics] allow` may scrape: the figures are for the operator.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, List, Optional, Tuple

from .. import __version__, pipeline
from ..metrics import CONTENT_TYPE, Family, SharedMetrics, combinations, format_family
from ..store import Store, StoreError, StoreUnavailable
from ..store.peers import PUSH_KINDS, PeerStore
from ..store.replica import ReplicaReads
from ..sync.recon import hashquery
from . import photos, rejections
from .ratelimit import in_networks
from .request import HKPError

if TYPE_CHECKING:  # pragma: no cover
    from ..sync.recon.rounds import RoundReport
    from .app import KeyServer, Request, Response

METRICS_PATH = "/metrics"
DEFAULT_METRICS_ALLOW = "127.0.0.0/8, ::1"
DATABASE_EVERY = 10.0  # seconds a process reuses what the database said at a scrape
ANSWER_SECONDS = 5.0
"""A database that does not answer /health or a scrape within this is down
(Store.check's `within`): a frozen server would hold them without end."""

LOOKUP_OPS = ("get", "hget", "index", "vindex", "stats")
OPS = LOOKUP_OPS + ("add", "hashquery", "health", "metrics", "page", "photo", "other")
_OP_OF_PATH = {"/pks/add": "add", hashquery.PATH: "hashquery", "/health": "health",
               photos.PATH: "photo",
               METRICS_PATH: "metrics", "/": "page", "/index.html": "page",
               rejections.NOTICE_PATH: "page", rejections.AUDIT_PATH: "page",
               rejections.ADMIN_PATH: "page"}
# Statuses cksd answers with; any other is counted as "other".
STATUSES = ("200", "204", "400", "401", "403", "404", "405", "408", "409", "411", "413", "415",
            "422", "429", "431", "500", "501", "503", "505", "other")
_STATUS_LABEL = {int(s): s for s in STATUSES[:-1]}
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                   1.0, 2.5, 5.0, 10.0)
DIALED, ANSWERED = "dialed", "answered"
ROUND_OK, FETCH_FAILED, ROUND_FAILED, ROUND_BUSY = "ok", "fetch_failed", "failed", "busy"

REQUESTS = Family(
    "cks_http_requests_total", "counter", "HTTP requests answered, by operation and status.",
    ("op", "status"), combinations(OPS, STATUSES), sparse=True)
LATENCY = Family(
    "cks_http_request_duration_seconds", "histogram",
    "Time from a request's first byte until its answer is ready, by operation.",
    ("op",), combinations(OPS), LATENCY_BUCKETS, sparse=True)
UPLOADED_KEYS = Family(
    "cks_uploaded_keys_total", "counter",
    "Keys uploaded with POST /pks/add, by outcome (refused: and why).",
    ("outcome", "reason"),
    ((pipeline.ADDED, ""), (pipeline.UPDATED, ""), (pipeline.UNCHANGED, ""),
     (pipeline.REFUSED, pipeline.REJECTED), (pipeline.REFUSED, pipeline.OVER_LIMIT),
     (pipeline.REFUSED, pipeline.CONFLICT)))
RECON_ROUNDS = Family(
    "cks_recon_rounds_total", "counter",
    "Recon rounds ended, by who started them (dialed: this node) and outcome.",
    ("role", "outcome"), combinations((DIALED, ANSWERED),
                                     (ROUND_OK, FETCH_FAILED, ROUND_FAILED, ROUND_BUSY)))
DATABASE_ERRORS = Family(
    "cks_database_errors_total", "counter",
    "Errors of the database (unavailable: worth retrying; error: any other).",
    ("kind",), combinations(("unavailable", "error")))
FAMILIES = (REQUESTS, LATENCY, UPLOADED_KEYS, RECON_ROUNDS, DATABASE_ERRORS)


def op_of(path: str, lookup_op: Optional[str]) -> str:
    """The operation a request is counted under (one of OPS)."""
    if path == "/pks/lookup":
        op = (lookup_op or "").lower()
        return op if op in LOOKUP_OPS else "other"
    return _OP_OF_PATH.get(path, "other")


def round_outcome(report: "RoundReport") -> str:
    if report.busy:
        return ROUND_BUSY
    if report.error:
        return ROUND_FAILED
    return ROUND_OK if report.ok else FETCH_FAILED


class CksdMetrics:
    """One serving process's metrics: it counts in its row of `shared`."""

    def __init__(self, shared: SharedMetrics, process: int = 0) -> None:
        self.shared = shared
        self._row = shared.row(process)
        self._requests = {values: shared.slot(REQUESTS, values)
                          for values in REQUESTS.label_values}
        self._latency = {op: shared.slot(LATENCY, (op,)) for op in OPS}
        self._database: Optional[Tuple[float, str]] = None  # (when read, what it said)

    @classmethod
    def shared_by(cls, processes: int) -> List["CksdMetrics"]:
        """The metrics of each of `processes` processes: make them before the fork."""
        shared = SharedMetrics(FAMILIES, processes)
        return [cls(shared, process) for process in range(processes)]

    @classmethod
    def alone(cls) -> "CksdMetrics":
        """For a server that is its cksd's only serving process."""
        return cls.shared_by(1)[0]

    # --- counting (any thread) ----------------------------------------------------

    def request(self, path: str, lookup_op: Optional[str], status: int,
                seconds: float) -> None:
        op = op_of(path, lookup_op)
        self._row.add_and_observe(self._requests[op, _STATUS_LABEL.get(status, "other")],
                                  self._latency[op], LATENCY_BUCKETS, seconds)

    def uploaded(self, report: pipeline.Report) -> None:
        for outcome in report.outcomes:
            self._count(UPLOADED_KEYS, (outcome.status, outcome.refusal))

    def recon_round(self, report: "RoundReport", dialed: bool) -> None:
        self._count(RECON_ROUNDS, (DIALED if dialed else ANSWERED, round_outcome(report)))

    def database_error(self, error: StoreError) -> None:
        self._count(DATABASE_ERRORS,
                    ("unavailable" if isinstance(error, StoreUnavailable) else "error",))

    def _count(self, family: Family, values: Tuple[str, ...]) -> None:
        self._row.add(self.shared.slot(family, values))

    # --- the page -----------------------------------------------------------------

    def render(self, store: Store, replica: Optional[ReplicaReads] = None) -> str:
        """The counters of every serving process, what the database (and the
        read replica, when cksd has one) says, and what this cksd is."""
        # (first: the database's errors count in this scrape)
        database = self._database_text(store, replica)
        return (self.shared.render() + database
                + format_family("cks_serving_processes", "gauge",
                                "Serving processes of this cksd ([server] processes).",
                                [("", (), self.shared.processes)])
                + format_family("cks_start_time_seconds", "gauge",
                                "When this cksd started, in seconds since the epoch.",
                                [("", (), self.shared.started)])
                + format_family("cks_build_info", "gauge", "The CKS version serving.",
                                [("", (("version", __version__),), 1)]))

    def _database_text(self, store: Store, replica: Optional[ReplicaReads]) -> str:
        now = time.monotonic()
        if self._database is None or now - self._database[0] >= DATABASE_EVERY:
            text = _read_database(store)
            if replica is not None:
                text += _replica_up(replica)
            self._database = (now, text)
        return self._database[1]


def _read_database(store: Store) -> str:
    try:
        store.check(within=ANSWER_SECONDS)
        keys = store.count_keys()
        owed = [p for p in PeerStore(store).list(enabled_only=True, counted=True)
                if p.kind in PUSH_KINDS]
    except StoreError:
        return _database_up(0)
    return (_database_up(1) + format_family("cks_keys", "gauge", "Keys stored.", [("", (), keys)])
            + format_family("cks_sync_backlog_keys", "gauge",
                            "Keys owed to each enabled push peer (HKP and mail).",
                            [("", (("peer", p.peer), ("kind", p.kind)), p.backlog)
                             for p in owed]))


def _database_up(up: int) -> str:
    return format_family("cks_database_up", "gauge",
                         "1 when the database answered the last reading of its figures, "
                         "else 0 (and they are left out).", [("", (), up)])


def _replica_up(replica: ReplicaReads) -> str:
    try:
        replica.replica.check(within=ANSWER_SECONDS)
        up = 1
    except StoreError:
        up = 0
    return format_family("cks_replica_up", "gauge",
                         "1 when the read replica answered the last reading, else 0 "
                         "(lookups then read the primary).", [("", (), up)])


def metrics_page(app: "KeyServer", request: "Request") -> "Response":
    """GET /metrics, for the networks of `[metrics] allow` only."""
    from .app import Response
    if not in_networks(request.client, app.settings.metrics_allow):
        raise HKPError(403, "%s may not read the metrics (see [metrics] allow)"
                       % request.client)
    return Response(200, app.metrics.render(app.store, app.replica).encode(),
                    CONTENT_TYPE)
