"""Log records written by a background thread, many at a time.

cksd writes an access-log line per request, thousands a second.  Handing each
record to a handler on its own costs a wake-up, a lock and a write() each.
BatchingHandler keeps what comes in a list, and a thread of its own wakes
once a moment after the first item, takes the whole list and writes it.

A plain stream or file handler's lines are formatted where they are logged
(a few microseconds), so the writing thread only joins them and makes one
write(): it holds Python's interpreter lock for a moment.  Before, it
formatted a batch of a few hundred records itself, and the serving loop,
whose thread needs that lock after every wait, stalled for the whole batch
(cached lookups at 8 clients: the slowest hundredth of the answers were the
ones caught behind it).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import IO, List, Optional, Union

from .logsetup import stderr_log
from .repeated import RepeatedFailure

LINGER_SECONDS = 0.01  # how late a line may be written; at most 100 wake-ups a second


class BatchingHandler(logging.Handler):
    """Hands what is logged to `target` from a background thread, in batches.

    Lines for a plain StreamHandler or FileHandler (no filters) are made
    here, with its formatter; for any other handler (syslog, one with
    filters) the record is kept, its message made final (the arguments
    merged in: a list logged and changed afterwards is logged as it was), and
    the thread hands it to the handler.  start() before use; close() writes
    what is left and stops the thread (the target stays open).  Lines that
    cannot be written (a full disk) are dropped, and said on standard error
    as repeated.py says a failure: the first, then every 10 minutes while
    it lasts, then its end (a traceback per batch was 20 lines each).
    """

    def __init__(self, target: logging.Handler) -> None:
        super().__init__(target.level)
        self.target = target
        self.writes_lines = type(target) in (logging.StreamHandler, logging.FileHandler) \
            and not target.filters
        self._pending: List[Union[str, logging.LogRecord]] = []
        self._pending_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        where = getattr(target, "baseFilename", "") \
            or getattr(getattr(target, "stream", None), "name", "the log")  # (syslog: none)
        self._failure = RepeatedFailure(stderr_log(), "cannot write to %s" % where,
                                        "writing to %s again" % where)

    def start(self) -> None:
        self._thread.start()

    def handle(self, record: logging.LogRecord) -> bool:
        """As Handler.handle, without its lock: emit() takes only the list's."""
        if not self.filter(record):
            return False
        self.emit(record)
        return True

    def add(self, name: str, levelno: int, message: str) -> None:
        """A line logged without a LogRecord (QuickLog), formatted as emit()
        formats a record of it."""
        self._append(self._line(_Line(name, levelno, message)))  # type: ignore[arg-type]

    def emit(self, record: logging.LogRecord) -> None:
        item: Union[str, logging.LogRecord]
        try:
            if self.writes_lines:
                item = self._line(record)
            else:
                record.msg = record.getMessage()
                record.args = None
                item = record
        except Exception:  # noqa: BLE001 - as Handler.emit: report, never raise
            self.handleError(record)
            return
        self._append(item)

    def _line(self, record: logging.LogRecord) -> str:
        return self.target.format(record) + self.target.terminator

    def _append(self, item: Union[str, logging.LogRecord]) -> None:
        with self._pending_lock:
            self._pending.append(item)
            first = len(self._pending) == 1
        if first:
            self._wake.set()

    def close(self) -> None:
        if self._thread.is_alive():
            self._stopping = True
            self._wake.set()
            self._thread.join()
        super().close()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait()
            if not self._stopping:
                time.sleep(LINGER_SECONDS)
            self._wake.clear()  # before the list is taken: an item added after wakes us again
            self._write(self._take())
        self._write(self._take())

    def _take(self) -> List[Union[str, logging.LogRecord]]:
        with self._pending_lock:
            items, self._pending = self._pending, []
        return items

    def _write(self, items: List[Union[str, logging.LogRecord]]) -> None:
        if not items:
            return
        if not self.writes_lines:
            for record in items:
                self.target.handle(record)
            return
        target = self.target
        target.acquire()
        try:
            _write_through(target.stream, "".join(items))
        except _Unwritten as exc:
            self._failure.failed(exc)
        else:
            self._failure.succeeded()
        finally:
            target.release()


class _Unwritten(Exception):
    def __init__(self, error: Exception, lines: int) -> None:
        super().__init__("%s; log lines lost: %d" % (error, lines))


def _write_through(stream: IO[str], text: str) -> None:
    """Write `text` to `stream`; for a file, with os.write past the stream's
    buffer (flushed first).  When a write fails (a full disk) what is left
    is dropped (_Unwritten says how many lines, a torn one included), where
    the buffer kept it for its next write: once there was room again, a
    torn line and the lines said to be lost came before the new ones."""
    data = memoryview(b"")
    try:
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):  # no file under it (io.StringIO)
            stream.write(text)
            stream.flush()
            return
        stream.flush()
        data = memoryview(text.encode(stream.encoding, stream.errors or "strict"))
        while data:
            data = data[os.write(fd, data):]
    except Exception as exc:  # noqa: BLE001 - as Handler.emit: report, never raise
        raise _Unwritten(exc, bytes(data).count(b"\n") if data else text.count("\n")) \
            from None


class _Line:
    """What a formatter reads of a LogRecord, for a line given as text."""

    exc_info = exc_text = stack_info = None

    def __init__(self, name: str, levelno: int, message: str) -> None:
        self.name = name
        self.levelno = levelno
        self.levelname = logging.getLevelName(levelno)
        self.msg = message
        self.created = time.time()
        self.msecs = int((self.created - int(self.created)) * 1000)  # as LogRecord has it

    def getMessage(self) -> str:
        return self.msg


class QuickLog:
    """A logger's info(), without the LogRecord, the handler lock and the
    walk through the logging machinery (together about 5 us a line, most of
    what an access-log line cost) when all the handlers it reaches are
    BatchingHandlers writing lines (as in cksd); else the logger's own."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def info(self, msg: str, *args: object) -> None:
        logger = self.logger
        if not logger.isEnabledFor(logging.INFO):
            return
        handlers = _line_handlers(logger)
        if handlers is None:
            logger.info(msg, *args)
            return
        message = msg % args if args else msg
        for handler in handlers:
            if logging.INFO >= handler.level:
                handler.add(logger.name, logging.INFO, message)


def _line_handlers(logger: logging.Logger) -> Optional[List[BatchingHandler]]:
    """The handlers a record of `logger` reaches, if all are line-writing
    BatchingHandlers without filters and no logger on the way filters."""
    found: List[BatchingHandler] = []
    current: Optional[logging.Logger] = logger
    while current is not None:
        if current.filters:
            return None
        for handler in current.handlers:
            if not isinstance(handler, BatchingHandler) or not handler.writes_lines \
                    or handler.filters:
                return None
            found.append(handler)
        current = current.parent if current.propagate else None
    return found
