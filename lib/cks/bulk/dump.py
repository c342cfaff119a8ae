"""`cks_admin.py dump`: every stored key (the network's view) into binary
keyring files DIR/cks-dump-NNNN.pgp, as SKS's `dump` writes them: what
`sks build` and `cks_admin.py load` read.  Each file is written under a
temporary name and renamed when complete, so a dump that was interrupted
never leaves a truncated file behind under a final name.  A complete dump
then removes the files of an earlier one that it did not write over, so
that loading the directory gives back this dump, not a key deleted since;
a dump of no keys removes none (NothingDumped): an empty database is more
likely the wrong one than the end of every key, and the earlier dump may be
the only copy left."""

from __future__ import annotations

import os
import re
from typing import BinaryIO, List, Optional, Tuple

from ..store import Store

FILE_NAME = "cks-dump-%04d.pgp"
DUMP_LOCK = "cks_dump"  # held by the one dump of a database under way
DUMP_FILE = re.compile(r"cks-dump-(\d{4,})\.pgp(\.part)?\Z")


class DumpRunning(Exception):
    """Another dump of the database is under way: two into one directory
    took each other's files (one removed the other's unfinished one, or
    left a mix of both)."""


class NothingDumped(Exception):
    """The database holds no keys, and DIR holds an earlier dump's `files`,
    which stay."""

    def __init__(self, files: int) -> None:
        super().__init__(files)
        self.files = files


def dump(store: Store, directory: str, keys_per_file: int) -> Tuple[int, int, int]:
    """Write the files; returns (keys, files, files of an earlier dump removed)."""
    with store.exclusive(DUMP_LOCK) as locked:
        if not locked:
            raise DumpRunning()
        return _dump(store, directory, keys_per_file)


def _dump(store: Store, directory: str, keys_per_file: int) -> Tuple[int, int, int]:
    os.makedirs(directory, exist_ok=True)
    count, files = 0, 0
    handle: Optional[BinaryIO] = None
    try:
        for _, data in store.iter_keydata():
            if count % keys_per_file == 0:
                _finish(handle)
                handle = open(os.path.join(directory, FILE_NAME % files) + ".part", "wb")
                files += 1
            handle.write(data)
            count += 1
        _finish(handle)
    except BaseException:
        if handle is not None:
            handle.close()
            os.unlink(handle.name)
        raise
    earlier = _earlier(directory, files)
    if count == 0 and earlier:
        raise NothingDumped(len(earlier))
    for path in earlier:
        os.unlink(path)
    return count, files, len(earlier)


def _earlier(directory: str, written: int) -> List[str]:
    """The dump files numbered `written` or above (an earlier dump's), and
    any left unfinished."""
    out = []
    for name in os.listdir(directory):
        match = DUMP_FILE.match(name)
        if match and (match.group(2) or int(match.group(1)) >= written):
            out.append(os.path.join(directory, name))
    return out


def _finish(handle: Optional[BinaryIO]) -> None:
    if handle is not None:
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        os.replace(handle.name, handle.name[:-len(".part")])
