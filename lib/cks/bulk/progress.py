"""The progress lines of a bulk load on a terminal: keys/s and the time left,
estimated from the bytes of input read (phase 1), then from the keys whose
served views are derived, with signatures checked a second (phase 2)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class _Line:
    """One line of `stream`, rewritten at most every `interval` seconds."""

    def __init__(self, stream: TextIO, interval: float) -> None:
        self.stream = stream
        self.interval = interval
        self.started = time.monotonic()
        self.shown = 0.0

    def _due(self, now: float, last: bool) -> bool:
        """Is it time to show the line again (always for the last update)?"""
        if not last and now - self.shown < self.interval:
            return False
        self.shown = now
        return True

    def _show(self, text: str) -> None:
        self.stream.write("\r" + text + "   ")
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


class ProgressLine(_Line):
    """Phase 1's line: keys read, keys/s, share of the input, time left."""

    def __init__(self, total_bytes: int, stream: TextIO = sys.stderr,
                 interval: float = 0.5) -> None:
        super().__init__(stream, interval)
        self.total_bytes = total_bytes
        self.first_offset = None  # bytes already loaded before this run (resumed)

    def update(self, keys: int, bytes_done: int, force: bool = False) -> None:
        now = time.monotonic()
        if self.first_offset is None:
            self.first_offset = bytes_done
        if not self._due(now, force):
            return
        elapsed = max(now - self.started, 1e-6)
        rate = (bytes_done - self.first_offset) / elapsed
        left = (self.total_bytes - bytes_done) / rate if rate > 0 else 0
        percent = 100.0 * bytes_done / self.total_bytes if self.total_bytes else 100.0
        self._show("%d keys, %.0f keys/s, %.1f%% of the input, about %s left"
                   % (keys, keys / elapsed, percent, _duration(left)))


class ViewsProgressLine(_Line):
    """Phase 2's line: served views derived of `total`, signatures/s, time left."""

    def __init__(self, total: int, stream: TextIO = sys.stderr, interval: float = 0.5) -> None:
        super().__init__(stream, interval)
        self.total = total

    def update(self, keys: int, signatures: int) -> None:
        now = time.monotonic()
        if not self._due(now, keys >= self.total):
            return
        elapsed = max(now - self.started, 1e-6)
        left = (self.total - keys) * elapsed / keys if keys else 0
        self._show("served views: %d of %d keys, %.0f signatures/s, about %s left"
                   % (keys, self.total, signatures / elapsed, _duration(left)))


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return "%dh%02dm" % (seconds // 3600, seconds % 3600 // 60)
    return "%dm%02ds" % (seconds // 60, seconds % 60)
