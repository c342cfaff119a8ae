"""A bound, on the client's side, for the answer to a statement.

A database server that is up but does not answer (its processes stopped, a
paused VM, storage that hangs) still has its kernel acknowledge every
packet: neither TCP keepalives nor tcp_user_timeout fire, and its
statement_timeout is its own, which a stopped server never applies.  A
statement waits for it without end, and a lookup, run in a serving
process's event loop, holds every other request of that process.  The
Watchdog knows when each statement sent is due (its statement_timeout and
a margin: a live server has cancelled it by then) and, past that, cuts its
connection, so that the call waiting for the answer fails at once.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Callable, Dict, Tuple

from ..repeated import OncePerKey

log = logging.getLogger("cks.store")


class Watchdog:
    """The statements waiting for an answer, each with its deadline; one
    thread per process cuts (`cut(conn)`) the connection of any past it.
    The thread starts with the first statement watched, in each process: a
    fork copies no thread (cksd forks its serving processes)."""

    def __init__(self, margin: float, cut: Callable[[Any], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.margin = margin
        self.cut = cut
        self.clock = clock
        self._forget_all()
        os.register_at_fork(after_in_child=self._forget_all)

    def _forget_all(self) -> None:
        """A new process's state: a lock another thread held at the fork
        would stay held, and the statements watched are the parent's."""
        self._guard = threading.Lock()
        self._due: Dict[Any, Tuple[float, float, str]] = {}  # conn -> (deadline, sent, server)
        self._checking = False  # the thread runs
        self._said = OncePerKey()  # (server: the cut was logged)

    def watch(self, conn: Any, seconds: float, server: str) -> None:
        """A statement is sent on `conn` to `server` (a name for the log),
        which cancels it after `seconds` (its statement_timeout): cut the
        connection unless the answer comes within those and the margin."""
        now = self.clock()
        with self._guard:
            self._due[conn] = (now + seconds + self.margin, now, server)
            if not self._checking:
                threading.Thread(target=self._check, name="cks-statement-watchdog",
                                 daemon=True).start()
                self._checking = True

    def answered(self, conn: Any) -> None:
        """The statement on `conn` is over: answered, or failed."""
        with self._guard:
            self._due.pop(conn, None)

    def _check(self) -> None:
        while True:
            time.sleep(self.cut_overdue())

    def cut_overdue(self) -> float:
        """Cut the connections of the statements past their deadline; the
        seconds until the next look: the soonest deadline, or the margin,
        as a statement watched after now is due that much later at least."""
        now = self.clock()
        cut = []
        with self._guard:
            # (under the lock: a statement answered meanwhile and its
            # connection's next one must not be cut for it)
            for conn, (deadline, sent, server) in list(self._due.items()):
                if deadline <= now:
                    del self._due[conn]
                    self.cut(conn)
                    cut.append((server, now - sent))
            soonest = min([due[0] for due in self._due.values()] + [now + self.margin])
            said = [(server, waited) for server, waited in cut if self._said.allows(server)]
        for server, waited in said:
            log.warning("database %s did not answer a statement within %.1f s: its "
                        "connection is cut, and the request fails as in an outage (the "
                        "server is up and does not answer: stopped, frozen? This warning "
                        "is said once in 10 minutes)", server, waited)
        return max(0.0, soonest - now)
