"""The requests a database failure answers 503, logged as one outage
(RepeatedFailure: its start, every 10 minutes while it lasts, its end).

A failure of writes alone (a full disk, a read-only database file) lets
every lookup through: it ends only when a write gets through.  Each read
had ended it, and the next failed upload started it again: two lines a
request, and "database available again" while no upload could be stored."""

from __future__ import annotations

import logging

from ..repeated import RepeatedFailure
from ..store.errors import StoreUnavailable


class DatabaseOutage:
    def __init__(self, log: logging.Logger) -> None:
        self.lines = RepeatedFailure(log, "database unavailable", "database available again")
        self.writes_fail = False

    def failed(self, exc: StoreUnavailable) -> None:
        """A request was answered 503 for `exc`."""
        if exc.writing:
            self.writes_fail = True
        self.lines.failed(exc)

    def succeeded(self, wrote: bool) -> None:
        """A read, or with `wrote` a write, got through (Store.on_success)."""
        if self.writes_fail and not wrote:
            return
        self.writes_fail = False
        self.lines.succeeded()
