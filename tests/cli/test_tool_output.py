"""Every tool's standard output that cannot be written: a reader that went
away (`| head`, `| true`) ends the tool quietly with status 141, as SIGPIPE
would; a full disk (`> /dev/full`) is one line and status 1.  Until
2026-12-05 only cks_admin.py did so; the others ended with a traceback.
(cksd.py and cks_mail_sync.py print nothing there but --help, which
argparse already writes quietly; they share the handling, common.run.)"""

import os
import subprocess
import sys

import pytest

from support import ROOT
from support.db import with_schema
from support.procs import tool

RUNS = [("cks_sync_manage.py", ["list"]), ("cks_sync_manage.py", ["list", "--json"]),
        ("cks_sync_manage.py", ["add", "keys.example.net", "--no-catch-up"]),
        ("cks_sync.py", ["--dry-run"]), ("cks_admin.py", ["stats"])]


@pytest.fixture
def database(tmp_path):
    """An SQLite database with a peer."""
    url = with_schema("sqlite:///%s" % (tmp_path / "cks.db"))
    assert tool("cks_sync_manage.py", ["--db", url, "add", "127.0.0.1:9"]).returncode == 0
    return url


def started(name, args, url, stdout):
    return subprocess.Popen([sys.executable, os.path.join(ROOT, name)] + args,
                            stdout=stdout, stderr=subprocess.PIPE,
                            env=dict(os.environ, CKS_DB=url, CKS_CONFIG="/dev/null"))


@pytest.mark.parametrize("name, args", RUNS)
def test_a_reader_that_went_away_ends_it_quietly(database, name, args):
    read_end, write_end = os.pipe()
    os.close(read_end)  # before it writes: its first write finds no reader
    process = started(name, args, database, write_end)
    os.close(write_end)
    stderr = process.communicate(timeout=60)[1]
    assert (process.returncode, stderr) == (141, b"")


@pytest.mark.parametrize("name, args", RUNS)
def test_output_that_cannot_be_written_is_one_line(database, name, args):
    with open("/dev/full", "wb") as full:
        process = started(name, args, database, full)
    stderr = process.communicate(timeout=60)[1]
    assert (process.returncode, stderr.decode()) == (
        1, "%s: error: cannot write standard output: No space left on device\n" % name)
