"""`cks_admin.py dump`: every stored key (the network's view) into binary
keyring files DIR/cks-dump-NNNN.pgp, as SKS's `dump` writes them: what
`sks build` and `cks_admin.py load` read.  Each file is written under a
temporary name and renamed when complete, so a dump that was interrupted
never leaves a truncated file behind under a final name."""

from __future__ import annotations

import os
from typing import BinaryIO, Optional, Tuple

from ..store import Store

FILE_NAME = "cks-dump-%04d.pgp"


def dump(store: Store, directory: str, keys_per_file: int) -> Tuple[int, int]:
    """Write the files; returns (keys, files)."""
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
    return count, files


def _finish(handle: Optional[BinaryIO]) -> None:
    if handle is not None:
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        os.replace(handle.name, handle.name[:-len(".part")])
