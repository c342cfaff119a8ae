"""A small file system to fill: a tmpfs mounted for one test (mount needs
root: skipped without it, but never under CI, whose tests run as root)."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from pathlib import Path
from typing import Iterator

import pytest


@contextlib.contextmanager
def tmpfs(directory: Path, size: str) -> Iterator[Path]:
    directory.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs",
                              str(directory)], capture_output=True, text=True)
    if mounted.returncode != 0:
        assert os.environ.get("CI") != "true", mounted.stderr
        pytest.skip("cannot mount a tmpfs: %s" % mounted.stderr.strip())
    try:
        yield directory
    finally:
        subprocess.run(["umount", "--lazy", str(directory)], check=True)


def fill(path: Path) -> None:
    """Write `path` until its file system has no room left."""
    with open(path, "wb", buffering=0) as filler:
        try:
            while True:
                filler.write(bytes(4096))
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
