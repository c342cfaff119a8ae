"""cks_sync.py as contrib/ schedules it, from cks-sync.service and from the
cron line (with a configuration that names the database, as /etc/cks.conf
does): it pushes what is queued and prints nothing when every peer was
served, so cron mails nothing and the journal stays quiet; a peer that is
down makes the run fail and say so."""

import os
import subprocess

import pytest

from support import FIXTURES
from support.db import with_schema
from support.contrib import INSTALL_PATHS, command, installed, unit_settings
from support.nodes import has, peer_name
from support.procs import tool
from support.server import Cksd


def scheduled_command(schedule, config, directory):
    """(argument list, working directory) of the run as `schedule` starts it."""
    paths = dict(INSTALL_PATHS, **{"/etc/cks.conf": str(config)})
    if schedule == "systemd":
        unit = unit_settings("cks-sync.service", dict(paths, **{"/var/lib/cks": str(directory)}))
        return command(unit["Service"]["ExecStart"][-1]), unit["Service"]["WorkingDirectory"][-1]
    text = installed("cron/cks-sync", dict(paths, **{"/var/lib/cks": str(directory)}))
    (line,) = [line for line in text.splitlines() if line and not line.startswith("#")]
    fields = line.split(None, 6)
    assert fields[:6] == ["*/5", "*", "*", "*", "*", "cks"]  # every 5 minutes, as cks
    return ["/bin/sh", "-c", fields[6]], "/"


def run(schedule, config, directory):
    argv, cwd = scheduled_command(schedule, config, directory)
    env = {k: v for k, v in os.environ.items() if k not in ("CKS_DB", "CKS_CONFIG")}
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def load(db_url, name):
    result = tool("cks_admin.py", ["--db", db_url, "load", "--jobs", "1",
                                   os.path.join(FIXTURES, name)])
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("schedule", ["systemd", "cron"])
def test_a_scheduled_run_pushes_quietly_and_fails_loudly(new_db, tmp_path, schedule):
    home = with_schema(new_db("home"))
    config = tmp_path / "cks.conf"
    config.write_text("[database]\nurl = %s\n" % home)
    with Cksd(new_db("peer")) as peer:
        added = tool("cks_sync_manage.py", ["--db", home, "add", peer_name(peer)])
        assert added.returncode == 0, added.stderr
        load(home, "rsa2048.asc")
        result = run(schedule, config, tmp_path)
        assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
        assert has(peer, "rsa2048")
    load(home, "nistp256.asc")
    result = run(schedule, config, tmp_path)
    assert result.returncode == 1
    assert "%s: FAILED: " % peer_name(peer) in result.stderr
    assert result.stdout == ""
