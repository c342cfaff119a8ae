"""The requests a database failure answers 503, logged as outages
(RepeatedFailure: each one's start, every 10 minutes while it lasts, its
end): of the database, which any read or write that gets through ends, and
of its writes alone (a full disk, a read-only database file, a lock that
held an upload past its timeout), which only a write that gets through
ends.  With one outage for both, each lookup ended a failure of writes and
the next failed upload began another: two lines a request, and "database
available again" while no upload could be stored."""

from __future__ import annotations

import logging

from ..repeated import RepeatedFailure
from ..store.errors import StoreUnavailable


class DatabaseOutage:
    def __init__(self, log: logging.Logger) -> None:
        self.database = RepeatedFailure(log, "database unavailable",
                                        "database available again")
        self.writes = RepeatedFailure(log, "database writes fail", "database writes work again")

    def failed(self, exc: StoreUnavailable) -> None:
        """A request was answered 503 for `exc`."""
        (self.writes if exc.writing else self.database).failed(exc)

    def succeeded(self, wrote: bool) -> None:
        """A read, or with `wrote` a write, got through (Store.on_success)."""
        self.database.succeeded()
        if wrote:
            self.writes.succeeded()
