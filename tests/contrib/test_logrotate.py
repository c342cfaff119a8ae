"""contrib/logrotate/cks run by real logrotate on the logs of a running cksd
(two serving processes): the files are renamed and made anew, and cksd, told
by the postrotate command (SIGHUP), writes its next lines to the new ones."""

import grp
import os
import pwd
import stat
import subprocess

from support.contrib import installed, require
from support.server import Cksd

RELOAD = "if systemctl is-active --quiet cksd.service; then systemctl reload cksd.service; fi"


def text(path):
    return path.read_text() if path.exists() else ""


def test_logrotate_rotates_and_cksd_goes_on_in_the_new_files(db_url, tmp_path):
    logrotate = require("logrotate", "logrotate")
    logs = tmp_path / "log"
    logs.mkdir()
    app, access = logs / "cksd.log", logs / "access.log"
    config = tmp_path / "cks.conf"
    config.write_text("[server]\nprocesses = 2\n[log]\nfile = %s\naccess = %s\n" % (app, access))
    with Cksd(db_url, config=str(config)) as server:
        server.lookup(op="index", options="mr", search="beforerotation")
        server.wait_until(lambda: "search=beforerotation" in text(access))
        me = "%s %s" % (pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name)
        rotation = tmp_path / "logrotate.conf"
        rotation.write_text(installed("logrotate/cks", {
            "/var/log/cks/": "%s/" % logs, "/var/log/cks-mail/": "%s/mail/" % tmp_path,
            "cks adm": me, RELOAD: "kill -HUP %d" % server.proc.pid}))
        result = subprocess.run([logrotate, "--force", "--state", str(tmp_path / "state"),
                                 str(rotation)], capture_output=True, text=True, timeout=60)
        assert (result.returncode, result.stderr) == (0, "")
        assert "search=beforerotation" in text(logs / "access.log.1")
        assert text(logs / "cksd.log.1")  # what cksd logged at start
        assert stat.S_IMODE(os.stat(access).st_mode) == 0o640
        server.wait_until(lambda: "log files reopened" in text(app))
        server.lookup(op="index", options="mr", search="afterrotation")
        server.wait_until(lambda: "search=afterrotation" in text(access))
        assert "afterrotation" not in text(logs / "access.log.1")
        assert server.proc.poll() is None
    assert server.proc.returncode == 0
