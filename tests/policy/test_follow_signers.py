"""cksd derives again the served views that a program left owed when it
stopped between storing a key and following its signers (a crash); and
programs following them at once do not derive the same views twice."""

import collections
import subprocess
import sys
import time

from cks import pipeline
from cks.openpgp import signature as sg
from cks.openpgp.armor import encode
from cks.openpgp.packet import Packet
from cks.openpgp.userid import UserID
from cks.store import open_store
from support import ROOT, fixture
from support.db import run_sql, with_schema
from support.forge import Signer, keyring
from support.mailnode import Node
from support.mails import SKS, sks_mail
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


FOLLOWING_MAIL = r'''
import os, sys, time
sys.path.insert(0, os.path.join(sys.argv[1], "lib"))
from cks import views
from cks.cli import mail_sync
from cks.cli.common import run
logged, keys = sys.argv[2], int(sys.argv[3])
reverify, follow_signers = views.reverify, mail_sync.follow_signers

def logging_reverify(store, policy, fingerprints=None, queued=False):
    with open(logged, "a") as out:
        out.write("".join(f + "\n" for f in fingerprints))
    time.sleep(0.5)  # (long enough for the other mails to read the queue too)
    return reverify(store, policy, fingerprints, queued)

def once_every_mail_is_in(store, policy):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with store.read() as cursor:
            if cursor.scalar("SELECT count(*) FROM cks_keys") >= keys:
                break
        time.sleep(0.05)
    return follow_signers(store, policy)

views.reverify = logging_reverify
mail_sync.follow_signers = once_every_mail_is_in
sys.argv = ["cks_mail_sync.py"] + sys.argv[4:]
sys.exit(run(mail_sync.main))
'''


def test_mails_at_once_derive_each_queued_view_once(db_url, tmp_path):
    """Four mails, each bringing a signer of the same three stored keys, follow
    their signers at once (each waits until every mail's key is in): each view
    queued is derived again once, by one of them, and all are served.  Until
    2026-12-06 each mail derived every view queued, four times over in all."""
    signers = [Signer.new(seed=bytes([n]) * 32) for n in range(1, 5)]
    targets = [Signer.new(seed=bytes([n]) * 32) for n in range(10, 13)]
    node = Node(with_schema(db_url), tmp_path / "node")
    node.manage("add", SKS)
    store = open_store(node.db_url)
    try:
        for target in targets:
            uid = b"Target <target@example.org>"
            packets = [Packet(6, target.public.serialize()), Packet(13, uid),
                       Packet(2, target.sign(sg.CERT_POSITIVE, target.public,
                                             UserID(uid)).serialize())]
            packets += [Packet(2, signer.sign(sg.CERT_GENERIC, target.public, UserID(uid))
                               .serialize()) for signer in signers]
            pipeline.submit(store, keyring(packets), pipeline.Source.admin(), binary=True)
    finally:
        store.close()
    stored = [t.public.fingerprint.hex().upper() for t in targets]
    assert node.query("SELECT count(*) FROM cks_keys WHERE served = keydata") == [(0,)]
    logged = tmp_path / "rederived"
    mails = [subprocess.Popen(
        [sys.executable, "-c", FOLLOWING_MAIL, ROOT, str(logged), str(len(targets) + 4),
         "--db", node.db_url, "--config", str(node.config)],
        stdin=subprocess.PIPE, stderr=subprocess.PIPE) for _ in signers]
    for mail, signer in zip(mails, signers):
        signer_key = keyring([Packet(6, signer.public.serialize()), Packet(13, b"Signer"),
                              Packet(2, signer.sign(sg.CERT_POSITIVE, signer.public,
                                                    UserID(b"Signer")).serialize())])
        mail.stdin.write(sks_mail(encode(signer_key).encode()))
        mail.stdin.close()
    for mail in mails:
        assert mail.wait(timeout=90) == 0, mail.stderr.read()
    new = [s.public.fingerprint.hex().upper() for s in signers]
    assert collections.Counter(logged.read_text().split()) == {f: 1 for f in stored + new}
    assert node.query("SELECT count(*) FROM cks_view_work") == [(0,)]
    assert sorted(f for f, in node.query("SELECT fingerprint FROM cks_keys "
                                         "WHERE served = keydata")) == sorted(stored + new)
