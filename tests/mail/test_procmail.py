"""The procmail recipe of README.md, as contrib/mail/procmailrc has it, run by
real procmail: the tool's exit status reaches the MTA (0, 75, 77) and no mail
is filed in the mailbox."""

import os
import re
import shutil
import subprocess

import pytest

from support import ROOT, fixture
from support.contrib import INSTALL_PATHS, contrib_text, installed
from support.mails import SKS, sks_mail


def readme_recipe():
    with open(os.path.join(ROOT, "README.md")) as handle:
        text = handle.read()
    match = re.search(r"\n    :0 w\n.*?\n    }\n", text, re.S)
    assert match, "the procmail recipe is gone from README.md"
    return "\n".join(line[4:] for line in match.group(0).splitlines()) + "\n"


def test_contrib_has_the_readme_recipe():
    assert readme_recipe() in contrib_text("mail/procmailrc")


@pytest.mark.skipif(shutil.which("procmail") is None, reason="procmail is not installed")
def test_the_procmail_recipe(node, tmp_path):
    node.manage("add", SKS)
    recipe = installed("mail/procmailrc", dict(INSTALL_PATHS, **{
        "/etc/cks.conf": str(node.config), "postgresql://cks_mail@/cks": node.db_url}))
    rcfile = tmp_path / "procmailrc"
    mailbox = tmp_path / "mbox"
    rcfile.write_text("SHELL=/bin/sh\nDEFAULT=%s\n%s" % (mailbox, recipe))

    def procmail(raw):
        return subprocess.run(["procmail", "-m", str(rcfile)], input=raw,
                              capture_output=True, timeout=60).returncode

    assert procmail(sks_mail(fixture("rsa2048"))) == 0
    assert list(node.keys()) != []
    assert procmail(sks_mail(fixture("nistp256"), sender="m@evil.example",
                             sent_by=["m@evil.example"], envelope="m@evil.example")) == 77
    node.write_config(max_mail_bytes="lots")  # a broken configuration: try again later
    assert procmail(sks_mail(fixture("nistp256"))) == 75
    assert not mailbox.exists()
