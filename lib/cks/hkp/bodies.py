"""Answer bodies too large to hold in memory.

A serving process answers several requests at once (its worker threads), and
each answer waits in memory until the client has taken it.  An answer of 100
keys can be megabytes (16 MiB of keys at most for a lookup, hundreds for a
hashquery): held whole, a few such answers took a serving process of the
Debian keyring from about 50 MB to 100-150 MB.  Such an answer is written to
a temporary file as it is made (Spool), and server.py sends it from there a
piece at a time (FileBody).
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from dataclasses import dataclass
from typing import BinaryIO, Iterable, Iterator, Optional, Union

from ..repeated import RepeatedFailure
from .request import HKPError

log = logging.getLogger("cks.hkp")

MEMORY_BYTES = 2 << 20
"""An answer up to this size stays in memory (and may be kept by the answer
cache); a larger one goes to a temporary file."""


@dataclass
class FileBody:
    """An answer's body in a file: the `size` bytes of `file`, from its start.
    server.py sends it in pieces after the head, and closes it once sent or
    when the connection closes."""

    file: BinaryIO
    size: int

    def __len__(self) -> int:
        return self.size

    def close(self) -> None:
        self.file.close()


Body = Union[bytes, FileBody]

_TEMPORARY_FILES = RepeatedFailure(
    log, "answers past the memory they may take get 503: their temporary files fail",
    "answers' temporary files work again")


@contextlib.contextmanager
def _on_disk() -> Iterator[None]:
    """Work on a temporary file: a failure of it (TMPDIR full) is this answer's
    503 and a line in the log now and then, not a 500 and a traceback."""
    try:
        yield
    except OSError as exc:
        _TEMPORARY_FILES.failed(exc)
        raise HKPError(503, "this server has no room for that answer now; try again later",
                       [("Retry-After", "60")]) from None


class Spool:
    """A body being written: in memory until it would pass `memory_bytes`,
    then in a temporary file.  (Not a SpooledTemporaryFile: moving to disk,
    that copies what it held together with the write that crossed its
    limit, which may be a key of 8 MiB.)  File-like: write, seek, tell."""

    def __init__(self, memory_bytes: Optional[int] = None) -> None:
        self.memory_bytes = MEMORY_BYTES if memory_bytes is None else memory_bytes
        self._file: BinaryIO = io.BytesIO()
        self._in_memory = True

    def write(self, data: bytes) -> int:
        if self._in_memory and self._file.tell() + len(data) > self.memory_bytes:
            self._to_disk()
        with _on_disk():
            return self._file.write(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        with _on_disk():  # (a file's buffered writes are flushed here)
            return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def body(self) -> Body:
        """What was written, as an answer's body; the spool is done with."""
        if self._in_memory:
            return self._file.getvalue()  # type: ignore[attr-defined]
        with _on_disk():  # (the last writes are flushed here)
            size = self._file.seek(0, io.SEEK_END)
            self._file.seek(0)
        _TEMPORARY_FILES.succeeded()
        return FileBody(self._file, size)

    def close(self) -> None:
        """Drop what was written (an answer that failed before body())."""
        with contextlib.suppress(OSError):  # (flushing to a full disk)
            self._file.close()

    def _to_disk(self) -> None:
        memory = self._file
        with _on_disk():
            disk: BinaryIO = tempfile.TemporaryFile()
        try:
            with _on_disk():
                disk.write(memory.getbuffer())  # type: ignore[attr-defined]
                disk.seek(memory.tell())
        except BaseException:
            with contextlib.suppress(OSError):
                disk.close()
            raise
        memory.close()
        self._file, self._in_memory = disk, False


def spooled(pieces: Iterable[bytes]) -> Body:
    """An answer's body written to a Spool a piece at a time, as they are made."""
    spool = Spool()
    try:
        for piece in pieces:
            spool.write(piece)
    except BaseException:
        spool.close()
        raise
    return spool.body()
