"""`cks_admin.py dump`: every stored key (the network's view) into binary
keyring files DIR/cks-dump-NNNN.pgp, as SKS's `dump` writes them: what
`sks build` and `cks_admin.py load` read.  Keys SKS 1.1.6 cannot read (a
primary key or subkey packet of a version other than 2 to 4: v5 and v6
keys) go to DIR/cks-dump-newer-NNNN.keys instead, which an `sks build
DIR/*.pgp` leaves alone: one such key stopped the whole build, and SKS
refuses them over HKP anyway; `load DIR` reads both.  Every file is
written under a temporary name, and all are renamed once the last one is
complete, so a dump that was interrupted or ran out of space leaves the
earlier dump in DIR whole (renaming each file as it was done replaced the
earlier dump's first files, and as keys move from file to file, a key could
then be in neither the new files nor the old ones).  A complete dump then
removes the files of an earlier one that it did not write over, so that
loading the directory gives back this dump, not a key deleted since; a
dump of no keys removes none (NothingDumped): an empty database is more
likely the wrong one than the end of every key, and the earlier dump may be
the only copy left."""

from __future__ import annotations

import contextlib
import os
import re
from typing import BinaryIO, Callable, List, Optional, Tuple

from ..openpgp.packet import TAG_PUBLIC_KEY, TAG_PUBLIC_SUBKEY, iter_packets
from ..store import Store

FILE_NAME = "cks-dump-%04d.pgp"
NEWER_FILE_NAME = "cks-dump-newer-%04d.keys"  # keys SKS 1.1.6 cannot read
DUMP_LOCK = "cks_dump"  # held by the one dump of a database under way
DUMP_FILE = re.compile(r"cks-dump-(?:(\d{4,})\.pgp|newer-(\d{4,})\.keys)(\.part)?\Z")
SKS_KEY_VERSIONS = frozenset(b"\x02\x03\x04")


class DumpRunning(Exception):
    """Another dump of the database is under way: two into one directory
    took each other's files (one removed the other's unfinished one, or
    left a mix of both)."""


class DumpStopped(Exception):
    """The dump was told to stop (a signal): none of its files is left."""


class NothingDumped(Exception):
    """The database holds no keys, and DIR holds an earlier dump's `files`,
    which stay."""

    def __init__(self, files: int) -> None:
        super().__init__(files)
        self.files = files


def dump(store: Store, directory: str, keys_per_file: int,
         stop: Callable[[], bool] = lambda: False) -> Tuple[int, int, int, int]:
    """Write the files; returns (keys, files, keys SKS cannot read among
    them, files of an earlier dump removed).  DumpStopped once `stop()`
    says so (it is asked after each key)."""
    with store.exclusive(DUMP_LOCK) as locked:
        if not locked:
            raise DumpRunning()
        return _dump(store, directory, keys_per_file, stop)


def sks_reads(data: bytes) -> bool:
    """Whether SKS 1.1.6 can build a database holding this key: a key or
    subkey packet of another version than 2 to 4 stops its whole `sks
    build` ("Unexpected key packet version number")."""
    return all(packet.body[:1] and packet.body[0] in SKS_KEY_VERSIONS
               for packet in iter_packets(data)
               if packet.tag in (TAG_PUBLIC_KEY, TAG_PUBLIC_SUBKEY))


class _Files:
    """One series of dump files (FILE_NAME or NEWER_FILE_NAME), each of
    `keys_per_file` keys, written under a temporary name until `publish`."""

    def __init__(self, directory: str, name: str, keys_per_file: int) -> None:
        self.directory, self.name, self.keys_per_file = directory, name, keys_per_file
        self.keys = 0
        self.written: List[str] = []  # the temporary names, in order
        self.handle: Optional[BinaryIO] = None

    @property
    def files(self) -> int:
        return len(self.written)

    def write(self, data: bytes) -> None:
        if self.keys % self.keys_per_file == 0:
            self.finish()
            path = os.path.join(self.directory, self.name % self.files) + ".part"
            self.written.append(path)
            self.handle = open(path, "wb")
        assert self.handle is not None
        self.handle.write(data)
        self.keys += 1

    def finish(self) -> None:
        """The file being written is complete and on disk."""
        if self.handle is not None:
            self.handle.flush()
            os.fsync(self.handle.fileno())
            self.handle.close()
            self.handle = None

    def publish(self) -> None:
        for path in self.written:
            os.replace(path, path[:-len(".part")])

    def abandon(self) -> None:
        if self.handle is not None:
            with contextlib.suppress(OSError):  # (what it holds cannot be written: a full disk)
                self.handle.close()
            self.handle = None
        for path in self.written:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def _dump(store: Store, directory: str, keys_per_file: int,
          stop: Callable[[], bool]) -> Tuple[int, int, int, int]:
    os.makedirs(directory, exist_ok=True)
    readable = _Files(directory, FILE_NAME, keys_per_file)
    newer = _Files(directory, NEWER_FILE_NAME, keys_per_file)
    try:
        for _, data in store.iter_keydata():
            (readable if sks_reads(data) else newer).write(data)
            if stop():
                raise DumpStopped()
        readable.finish()
        newer.finish()
        readable.publish()
        newer.publish()
    except BaseException:
        readable.abandon()
        newer.abandon()
        raise
    earlier = _earlier(directory, readable.files, newer.files)
    if readable.keys + newer.keys == 0 and earlier:
        raise NothingDumped(len(earlier))
    for path in earlier:
        os.unlink(path)
    return (readable.keys + newer.keys, readable.files + newer.files, newer.keys,
            len(earlier))


def _earlier(directory: str, written: int, newer_written: int) -> List[str]:
    """The dump files numbered past those this dump wrote of their series
    (an earlier dump's), and any left unfinished."""
    out = []
    for name in os.listdir(directory):
        match = DUMP_FILE.match(name)
        if match and (match.group(3) or (int(match.group(1)) >= written if match.group(1)
                                         else int(match.group(2)) >= newer_written)):
            out.append(os.path.join(directory, name))
    return out
