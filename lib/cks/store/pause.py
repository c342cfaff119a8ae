"""A database server found failing is left alone until it answers again.

Its callers go elsewhere (ReplicaReads: to the primary) or fail at once
(Database: StoreUnavailable instead of a new connection) while the Pause
is `on`, instead of each waiting for the server, which, up but frozen or
dropping packets, took its connection timeout (10 s) of a serving
process's event loop each time; a thread of its own probes the server
meanwhile, and the pause ends as soon as the probe gets an answer.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from .errors import StoreError

log = logging.getLogger("cks.store")


class Pause:
    """`on` from start() until `probe` (raising StoreError while the server
    does not answer) succeeds, or close().  The probe runs at once, then
    every `retry_seconds` from each try's start: a probe that waited that
    long for a frozen server is followed by the next at once, so that the
    one waiting when the server resumes gets the answer.  `failing` and
    `answering` are the log lines of its start and its end."""

    def __init__(self, probe: Callable[[], Any], retry_seconds: float, failing: str,
                 answering: str, thread_name: str) -> None:
        self.probe = probe
        self.retry_seconds = retry_seconds
        self.failing = failing
        self.answering = answering
        self.thread_name = thread_name
        self.on = False
        self._lock = threading.Lock()
        self._closed = threading.Event()

    def start(self, reason: StoreError) -> None:
        """The server failed for `reason` (unless paused already: another
        caller's failure, already being seen to)."""
        with self._lock:
            if self.on or self._closed.is_set():
                return
            self.on = True
        log.warning("%s: %s", self.failing, reason)
        threading.Thread(target=self._probe, name=self.thread_name, daemon=True).start()

    def _probe(self) -> None:
        while True:
            tried = time.monotonic()
            try:
                self.probe()
            except StoreError:
                pass
            except Exception:  # noqa: BLE001 - a bug must not end the tries for good
                log.exception("%s, and its probe failed", self.failing)
            else:
                log.info("%s", self.answering)  # (first: it comes before what it allows)
                self.on = False
                return
            if self._closed.wait(max(0.0, tried + self.retry_seconds - time.monotonic())):
                return

    def close(self) -> None:
        """Stop the probe (the pause stays as it is)."""
        self._closed.set()
