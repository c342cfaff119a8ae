"""Driving cksd nodes and the sync tools the way an operator does."""

from __future__ import annotations

import json
import os
import signal

from cks.openpgp.keys import read_keys

from . import fixture
from .db import run_sql
from .procs import tool


def reread_peers(node, timeout=30):
    """SIGHUP, as `systemctl reload cksd` sends, and wait until each serving
    process has read who may start recon rounds again (cksd does it by
    itself every minute): after a change to its recon peers."""
    start = os.path.getsize(node.log.name)
    node.proc.send_signal(signal.SIGHUP)
    processes = max(1, len(node.children()))
    node.wait_until(lambda: node.output(start).count("recon peers: ") >= processes, timeout)


def fpr(name):
    """The fingerprint of a fixture key."""
    return read_keys(fixture(name)).keys[0].fingerprint.hex().upper()


def manage(node, *args):
    return tool("cks_sync_manage.py", ["--db", node.db_url] + list(args))


def sync(node, *args, config=None):
    extra = ["--config", config] if config else []
    return tool("cks_sync.py", ["--db", node.db_url] + extra + list(args))


def peer_name(node):
    return "127.0.0.1:%d" % node.port


def has(node, name):
    """Does `node` serve the fixture key `name`?"""
    return node.lookup(op="get", options="mr", search="0x" + fpr(name))[0] == 200


def table(node, sql, params=()):
    return run_sql(node.db_url, sql, params)


def peers_json(node):
    return {p["peer"]: p for p in json.loads(manage(node, "list", "--json").stdout)}


def settled(node, seconds=30):
    """Wait until cksd has derived again every served view its uploads queued
    (cks_view_work is empty): its background job does that within seconds."""
    import time
    deadline = time.monotonic() + seconds
    while table(node, "SELECT count(*) FROM cks_view_work")[0][0]:
        assert time.monotonic() < deadline, "served views not derived again in %d s" % seconds
        time.sleep(0.1)
