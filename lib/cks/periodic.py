"""A job that a daemon thread runs now and then every few seconds, until stopped."""

from __future__ import annotations

import logging
import random
import threading
from typing import Callable

log = logging.getLogger("cks")


class Periodic:
    """Runs `job` at start(), then again `interval` seconds after each round
    ends (give or take `jitter`, a fraction of it, so that peers on the same
    schedule drift apart); an exception is logged and the next round comes
    as planned."""

    def __init__(self, name: str, interval: float, job: Callable[[], None],
                 jitter: float = 0.0) -> None:
        self.name = name
        self.interval = interval
        self.job = job
        self.jitter = jitter
        self._stopping = threading.Event()
        self._woken = threading.Event()  # stop() or run_now(): the wait is over
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ends the thread; a round in progress is not waited for past `timeout`
        (the thread is a daemon: it does not hold up exit)."""
        self._stopping.set()
        self._woken.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.job()
            except Exception:  # noqa: BLE001 - a background job must not die
                log.exception("%s failed; trying again in %g s", self.name, self.interval)
            self._woken.wait(self.interval * random.uniform(1 - self.jitter, 1 + self.jitter))
            self._woken.clear()

    def run_now(self) -> None:
        """Run the job again at once (after the round in progress, if one
        is), then on the usual schedule."""
        self._woken.set()
