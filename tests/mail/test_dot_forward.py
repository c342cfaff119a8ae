"""contrib/mail/dot-forward, run as the MTA runs the pipe of a .forward: the
command by /bin/sh, the mail on its standard input, the exit status deciding
delivered (0) or bounced (77). README.md shows the same line."""

import os
import subprocess

from support import ROOT, fixture
from support.contrib import INSTALL_PATHS, contrib_text, installed
from support.mailnode import fpr
from support.mails import SKS, sks_mail


def forward_command(node):
    text = installed("mail/dot-forward", dict(INSTALL_PATHS, **{
        "/etc/cks.conf": str(node.config), "postgresql://cks_mail@/cks": node.db_url}))
    (line,) = text.splitlines()
    assert line.startswith('"|') and line.endswith('"'), line
    return line[2:-1]


def deliver(node, mail):
    env = {k: v for k, v in os.environ.items() if k not in ("CKS_DB", "CKS_CONFIG")}
    return subprocess.run(["/bin/sh", "-c", forward_command(node)], input=mail, env=env,
                          capture_output=True, timeout=60)


def test_the_readme_shows_the_same_line():
    with open(os.path.join(ROOT, "README.md")) as handle:
        assert "\n    %s\n" % contrib_text("mail/dot-forward").strip() in handle.read()


def test_a_sync_mail_is_merged_and_a_strangers_bounces(node):
    node.manage("add", SKS)
    delivered = deliver(node, sks_mail(fixture("rsa2048")))
    assert delivered.returncode == 0, delivered.stderr
    assert node.keys() == {fpr("rsa2048"): "mail:" + SKS}
    stranger = deliver(node, sks_mail(fixture("nistp256"), sender="m@evil.example",
                                      sent_by=["m@evil.example"], envelope="m@evil.example"))
    assert stranger.returncode == 77
    assert node.keys() == {fpr("rsa2048"): "mail:" + SKS}
