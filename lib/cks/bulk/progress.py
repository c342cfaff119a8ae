"""The progress lines of a bulk load on a terminal: keys/s and the time left,
estimated from the bytes of input read (phase 1), then from the keys whose
served views are derived, with signatures checked a second (phase 2)."""

from __future__ import annotations

import sys
import time
from typing import Callable, Optional, TextIO


class _Line:
    """One line of `stream`, rewritten at most every `interval` seconds; the
    last state given is shown when it is closed, even if it came sooner."""

    def __init__(self, stream: TextIO, interval: float) -> None:
        self.stream = stream
        self.interval = interval
        self.started = time.monotonic()
        self.shown = 0.0
        self.unshown: Optional[str] = None  # the last state, when it was not shown
        self.last = ""  # the last state
        self.closed = False

    def _update(self, text: str) -> None:
        self.last = text
        now = time.monotonic()
        if now - self.shown < self.interval:
            self.unshown = text
            return
        self.shown, self.unshown = now, None
        self._show(text)

    def _show(self, text: str) -> None:
        self.stream.write("\r" + text + "   ")
        self.stream.flush()

    def above(self, write: Callable[[], None]) -> None:
        """Have `write` write whole lines to the stream above this one: it
        is cleared first and shown again after."""
        if self.closed:
            write()
            return
        self.stream.write("\r\033[K")
        self.stream.flush()
        write()
        if self.last:
            self._show(self.last)
            self.unshown = None

    def _elapsed(self) -> float:
        return max(time.monotonic() - self.started, 1e-6)

    def close(self) -> None:
        """Show the last state and end the line (once: what follows on the
        terminal, a stopped load's last words or the shell's prompt, starts
        on a line of its own)."""
        if self.closed:
            return
        self.closed = True
        if self.unshown is not None:
            self._show(self.unshown)
        self.stream.write("\n")
        self.stream.flush()

    def __enter__(self) -> "_Line":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class ProgressLine(_Line):
    """Phase 1's line: keys read, keys/s, and when the input's size is known
    (None: standard input is read), its share read and the time left."""

    def __init__(self, total_bytes: Optional[int], bytes_before: int = 0,
                 stream: TextIO = sys.stderr, interval: float = 0.5) -> None:
        """`bytes_before`: of the input, what the loads interrupted before
        this one read (this one goes on after it)."""
        super().__init__(stream, interval)
        self.total_bytes = total_bytes
        self.bytes_before = bytes_before

    def update(self, keys: int, bytes_done: int) -> None:
        elapsed = self._elapsed()
        self._update("%d keys, %.0f keys/s%s" % (keys, keys / elapsed,
                                                 self._share(bytes_done, elapsed)))

    def finish(self, keys: int) -> None:
        """The last state, every key read: the whole input, whatever followed
        the last key (text after an armored file's last block), then close."""
        self.update(keys, self.total_bytes or 0)
        self.close()

    def _share(self, bytes_done: int, elapsed: float) -> str:
        if self.total_bytes is None:
            return ""
        rate = (bytes_done - self.bytes_before) / elapsed
        percent = 100.0 * bytes_done / self.total_bytes if self.total_bytes else 100.0
        return ", %.1f%% of the input%s" % (
            percent, _left((self.total_bytes - bytes_done) / rate if rate > 0 else None))


class ViewsProgressLine(_Line):
    """Phase 2's line: served views derived of `total`, signatures/s, time left."""

    def __init__(self, total: int, stream: TextIO = sys.stderr, interval: float = 0.5) -> None:
        super().__init__(stream, interval)
        self.total = total

    def update(self, keys: int, signatures: int) -> None:
        elapsed = self._elapsed()
        self._update("served views: %d of %d keys, %.0f signatures/s%s" % (
            keys, self.total, signatures / elapsed,
            _left((self.total - keys) * elapsed / keys if keys else None)))


def _left(seconds: Optional[float]) -> str:
    """The time left, when it can be estimated (None: not yet)."""
    return "" if seconds is None else ", about %s left" % _duration(seconds)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return "%dh%02dm" % (seconds // 3600, seconds % 3600 // 60)
    return "%dm%02ds" % (seconds // 60, seconds % 60)
