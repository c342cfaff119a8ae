"""The run-time code must run on Python 3.9 (DESIGN.md): vermin checks the syntax
and APIs it uses, and the tools start under a real 3.9 when one is installed."""

import glob
import os
import shutil
import subprocess

import pytest

from support import ROOT, in_ci

RUNTIME = [os.path.join(ROOT, "lib")] + sorted(glob.glob(os.path.join(ROOT, "*.py")))


def test_vermin_finds_nothing_newer_than_39():
    vermin = shutil.which("vermin")
    if vermin is None:
        if in_ci():
            pytest.fail("vermin is missing: pip install -r requirements-test.txt")
        pytest.skip("vermin is not installed")
    out = subprocess.run([vermin, "-t=3.9-", "--no-tips", "--violations"] + RUNTIME,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def _python39():
    for candidate in ("python3.9", os.path.expanduser("~/.pyenv/versions/3.9.18/bin/python3")):
        path = shutil.which(candidate) or (candidate if os.path.exists(candidate) else None)
        if path and subprocess.run([path, "-c", "import sys; assert sys.version_info[:2] == "
                                    "(3, 9)"], capture_output=True).returncode == 0:
            return path
    return None


@pytest.mark.skipif(_python39() is None, reason="no Python 3.9 interpreter on this machine")
def test_tools_start_under_python_39(tmp_path):
    python = _python39()
    for tool in ("cksd.py", "cks_admin.py", "cks_sync.py", "cks_sync_manage.py"):
        out = subprocess.run([python, os.path.join(ROOT, tool), "-h"], capture_output=True,
                             text=True)
        assert out.returncode == 0 and "usage:" in out.stdout, out.stderr
    out = subprocess.run([python, os.path.join(ROOT, "cks_admin.py"), "show", "-"],
                         input=open(os.path.join(ROOT, "tests", "fixtures", "keys",
                                                 "rsa2048.asc"), "rb").read(),
                         capture_output=True)
    assert out.returncode == 0 and b"pub   rsa2048" in out.stdout
