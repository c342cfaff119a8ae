"""contrib/systemd: systemd accepts the units (systemd-analyze verify), and
they say what the operator's guide promises: who runs what, restarts, reload
by SIGHUP, the sandbox, the timers."""

import os
import subprocess
from typing import Dict

from support import ROOT
from support.contrib import CONTRIB, command, require, unit_settings

UNITS = sorted(os.listdir(os.path.join(CONTRIB, "systemd")))
SANDBOX = {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
           "PrivateTmp": "yes", "PrivateDevices": "yes", "ProtectKernelTunables": "yes",
           "ProtectKernelModules": "yes", "ProtectControlGroups": "yes",
           "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "LockPersonality": "yes",
           "MemoryDenyWriteExecute": "yes", "RestrictRealtime": "yes",
           "SystemCallFilter": "@system-service", "CapabilityBoundingSet": ""}


def service(name: str) -> Dict[str, str]:
    return {key: values[-1] for key, values in unit_settings(name)["Service"].items()}


def test_systemd_accepts_every_unit():
    analyze = require("systemd-analyze", "systemd")
    paths = [os.path.join(CONTRIB, "systemd", name) for name in UNITS]
    result = subprocess.run([analyze, "verify", "--man=no"] + paths, capture_output=True,
                            text=True, timeout=60)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_the_units_are_there():
    assert UNITS == ["cks-sync.service", "cks-sync.timer", "cksd-health.service",
                     "cksd-health.timer", "cksd.service"]


def test_cksd_runs_as_cks_restarts_on_failure_and_reloads_with_sighup():
    cksd = service("cksd.service")
    assert command(cksd["ExecStart"]) == ["/usr/bin/python3", "/opt/cks/cksd.py",
                                          "--config", "/etc/cks.conf"]
    assert command(cksd["ExecReload"]) == ["/bin/kill", "-HUP", "$MAINPID"]
    assert (cksd["User"], cksd["Restart"]) == ("cks", "on-failure")
    assert cksd["ReadWritePaths"].split() == ["/var/lib/cks", "/var/log/cks"]
    assert unit_settings("cksd.service")["Install"] == {"WantedBy": ["multi-user.target"]}


def test_cksd_and_cks_sync_run_in_the_sandbox():
    for name in ("cksd.service", "cks-sync.service"):
        settings = service(name)
        assert {key: settings.get(key) for key in SANDBOX} == SANDBOX, name
        assert "AmbientCapabilities" not in settings, name


def test_cks_sync_runs_quietly_every_five_minutes():
    sync = service("cks-sync.service")
    assert command(sync["ExecStart"]) == ["/usr/bin/python3", "/opt/cks/cks_sync.py",
                                          "--config", "/etc/cks.conf", "--quiet"]
    assert (sync["Type"], sync["User"]) == ("oneshot", "cks")
    assert sync["SuccessExitStatus"] == "75"  # another run holds the lock: no failure
    timer = unit_settings("cks-sync.timer")
    assert timer["Timer"]["OnUnitActiveSec"] == ["5min"]
    assert timer["Install"] == {"WantedBy": ["timers.target"]}


def test_the_health_check_runs_every_minute_while_cksd_runs():
    health = service("cksd-health.service")
    assert command(health["ExecCondition"]) == ["/bin/systemctl", "is-active", "--quiet",
                                                "cksd.service"]
    assert health["Type"] == "oneshot"
    timer = unit_settings("cksd-health.timer")
    assert timer["Timer"]["OnUnitActiveSec"] == ["1min"]
    assert timer["Install"] == {"WantedBy": ["timers.target"]}


def test_every_tool_a_unit_runs_is_in_cks():
    tools = {word[len("/opt/cks/"):] for name in UNITS
             for key, values in unit_settings(name).get("Service", {}).items()
             if key.startswith("Exec") for word in command(values[-1])
             if word.startswith("/opt/cks/")}
    assert tools == {"cksd.py", "cks_sync.py"}
    assert all(os.path.isfile(os.path.join(ROOT, tool)) for tool in tools)
