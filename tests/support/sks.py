"""A private SKS node for interop tests (bench/sks_node.py), or skip (fail under CI)."""

from __future__ import annotations

import os
import socket
import sys

import pytest

from . import ROOT, in_ci

BENCH = os.path.join(ROOT, "bench")
if BENCH not in sys.path:
    sys.path.insert(0, BENCH)

from sks_node import SksNode, sks_available  # noqa: E402

ADDRESS = "127.0.0.2"  # not 127.0.0.1: sks tells peers apart by IP alone


def require_sks() -> None:
    if not sks_available():
        if in_ci():
            pytest.fail("CI must run the SKS interop tests: install sks (apt-get install sks)")
        pytest.skip("sks is not available (needs /usr/sbin/sks and root for unshare)")


def free_ports(address: str, count: int = 2):
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sockets.append(sock)
            sock.bind((address, 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def sks_node(workdir, keyring_files=(), membership=(), gossip_interval_min=None) -> SksNode:
    """An SKS node on ADDRESS, to start as a context manager; `membership`
    lists its recon peers ((host, recon port) pairs)."""
    require_sks()
    hkp, recon = free_ports(ADDRESS)
    return SksNode(workdir, hkp, recon, address=ADDRESS, keyring_files=list(keyring_files),
                   membership=membership, gossip_interval_min=gossip_interval_min)
