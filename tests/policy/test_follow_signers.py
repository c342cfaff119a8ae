"""cksd derives again the served views that a program left owed when it
stopped between storing a key and following its signers (a crash)."""

import time

from cks import pipeline
from cks.store import open_store
from support import fixture
from support.db import run_sql
from support.nodes import fpr, settled
from support.server import Cksd


def flags(node, name):
    body = node.lookup(op="index", options="mr", search="0x" + fpr(name))[2].decode()
    return [line for line in body.splitlines() if line.startswith("pub:")][0].split(":")[6]


def test_cksd_works_off_what_a_crash_left(db_url, monkeypatch):
    with Cksd(db_url) as node:
        assert node.add(fixture("desig-revoked"))[0] == 200
        settled(node)
        assert flags(node, "desig-revoker") == ""        # the revoker's key is not here yet
        # Another program stores the revoker's key and dies before following up.
        monkeypatch.setattr(pipeline, "follow_signers", lambda store, policy: 0)
        store = open_store(db_url)
        try:
            report = pipeline.submit(store, fixture("revoker"), pipeline.Source.admin())
        finally:
            store.close()
        assert [o.status for o in report.outcomes] == [pipeline.ADDED]
        assert run_sql(db_url, "SELECT count(*) FROM cks_view_work")[0][0] == 1
        deadline = time.monotonic() + 20
        while flags(node, "desig-revoker") != "r":
            assert time.monotonic() < deadline, "cksd did not derive the view again"
            time.sleep(0.2)
        assert run_sql(db_url, "SELECT count(*) FROM cks_view_work")[0][0] == 0
