"""SIGHUP for cksd: reopen the log files (logrotate), read the peer list and
the TLS certificate again (certbot) -- without a restart, and never dying of
it (SIGHUP's default action would end the process).

The signal handler only passes the signal on to the serving processes and
writes a byte to a pipe; a thread of each process reads it and does the work.
A handler must take no lock: Python runs it in the main thread between two
bytecodes, and a SIGHUP that came while the handler of the one before held
a lock (threading.Event.set) deadlocked that thread, the process's loop.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Callable, List, Optional, Sequence

log = logging.getLogger("cksd")


class Hangup:
    """Made when cksd starts (cksd.py ignores SIGHUP until then, from its
    first line), so that a SIGHUP during start-up is not fatal either;
    start() the actions in each process, after forking."""

    def __init__(self) -> None:
        self.children: List[int] = []  # forked serving processes, which get it too
        self._came = False  # a SIGHUP came (before start(): done at start)
        self._stopping = False
        self._actions: Sequence[Callable[[], None]] = ()
        self._pipe = (-1, -1)  # this process's wake-up pipe, made by start()
        self._owner = 0  # the process whose pipe it is (a forked child has none yet)
        self._thread: Optional[threading.Thread] = None  # made by start()
        signal.signal(signal.SIGHUP, self._handle)

    def _handle(self, _signum, _frame) -> None:
        self._forward()
        self._came = True
        self._wake()

    def _wake(self) -> None:
        if self._owner == os.getpid():
            try:
                os.write(self._pipe[1], b"h")
            except OSError:  # full: a wake-up is waiting already
                pass

    def _forward(self) -> None:
        for child in self.children:
            try:
                os.kill(child, signal.SIGHUP)
            except ProcessLookupError:
                pass

    def pass_on_to(self, children: List[int]) -> None:
        """Forward SIGHUP to these processes from now on; one that came while
        they were being made goes to them now."""
        self.children = children
        if self._came:
            self._forward()

    def start(self, actions: Sequence[Callable[[], None]]) -> None:
        """Run `actions` in order on each SIGHUP (and at once for one that
        came before), in a thread of this process."""
        self._actions = actions
        self._pipe = os.pipe()
        os.set_blocking(self._pipe[1], False)
        self._owner = os.getpid()
        if self._came:
            self._wake()
        # Made here, in the process that runs it: Python 3.13.0 (and the 3.13s
        # before CPython's fix of gh-134381) refuses to start a thread made
        # before a fork in the forked child ("thread already started"), and
        # every serving process died.
        self._thread = threading.Thread(target=self._run, name="sighup", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self._wake()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(5)

    def _run(self) -> None:
        while True:
            os.read(self._pipe[0], 4096)  # (SIGHUPs that came meanwhile: one reload)
            if self._stopping:
                return
            log.info("SIGHUP: reloading")
            for action in self._actions:
                try:
                    action()
                except Exception:  # noqa: BLE001 - the next SIGHUP must still work
                    log.exception("SIGHUP: %s failed", getattr(action, "__qualname__", action))
