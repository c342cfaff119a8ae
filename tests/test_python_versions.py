"""The run-time code must run on Python 3.9 and every newer Python (README):
vermin checks the syntax and APIs it uses; the tools start under a real 3.9
when one is installed; and cksd serves, reloads and stops cleanly under every
other Python 3.9 or newer installed here (pyenv's, python3.N on the PATH).
A Python only tested by reading the code hid one: on 3.13.0 every serving
process died at start ("thread already started", CPython gh-134381).  An
older Python (pyenv's 2.7 to 3.8 here) gets one line saying what is needed."""

import glob
import os
import shutil
import signal
import subprocess
import sys
from typing import Dict, Tuple

import pytest

from cks.openpgp.keys import read_keys
from support import ROOT, fixture, in_ci
from support.server import LOOPBACK_EXEMPT, Cksd

RUNTIME = [os.path.join(ROOT, "lib")] + sorted(glob.glob(os.path.join(ROOT, "*.py")))


def _other_pythons() -> Dict[Tuple[int, int], str]:
    """Version ((3, 9)) -> interpreter, for each Python found here other than
    the one running the tests: pyenv's, and python3.N or python2 on the PATH."""
    candidates = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/*/bin/python")))
    candidates += [shutil.which("python3.%d" % minor) for minor in range(0, 30)]
    candidates.append(shutil.which("python2"))
    found: Dict[Tuple[int, int], str] = {}
    for path in filter(None, candidates):
        out = subprocess.run([path, "-c", "import sys; print('%d %d' % sys.version_info[:2])"],
                             capture_output=True, text=True)
        if out.returncode == 0:
            version = tuple(int(part) for part in out.stdout.split())
            if version != sys.version_info[:2]:
                found.setdefault(version, path)
    return found


OTHERS = _other_pythons()
PYTHONS = {"%d.%d" % v: path for v, path in OTHERS.items() if v >= (3, 9)}
TOO_OLD = {"%d.%d" % v: path for v, path in OTHERS.items() if v < (3, 9)}
TOOLS = ("cksd.py", "cks_admin.py", "cks_sync.py", "cks_sync_manage.py", "cks_mail_sync.py")


def test_vermin_finds_nothing_newer_than_39():
    vermin = shutil.which("vermin")
    if vermin is None:
        if in_ci():
            pytest.fail("vermin is missing: pip install -r requirements-test.txt")
        pytest.skip("vermin is not installed")
    out = subprocess.run([vermin, "-t=3.9-", "--no-tips", "--violations"] + RUNTIME,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.skipif("3.9" not in PYTHONS, reason="no Python 3.9 interpreter on this machine")
def test_tools_start_under_python_39(tmp_path):
    python = PYTHONS["3.9"]
    for tool in TOOLS:
        out = subprocess.run([python, os.path.join(ROOT, tool), "-h"], capture_output=True,
                             text=True)
        assert out.returncode == 0 and "usage:" in out.stdout, out.stderr
    out = subprocess.run([python, os.path.join(ROOT, "cks_admin.py"), "show", "-"],
                         input=fixture("rsa2048"), capture_output=True)
    assert out.returncode == 0 and b"pub   rsa2048" in out.stdout


@pytest.mark.parametrize("version", sorted(PYTHONS) or [
    pytest.param("", marks=pytest.mark.skip(reason="no other Python 3.9+ on this machine"))])
def test_cksd_serves_under(version, tmp_path):
    """Two serving processes forked (as on any machine of two cores or more):
    an upload, its served view, a lookup, a SIGHUP, a clean stop."""
    config = tmp_path / "cks.conf"
    config.write_text(LOOPBACK_EXEMPT + "[server]\nprocesses = 2\n")
    key = fixture("rsa2048")
    fingerprint = read_keys(key).keys[0].fingerprint.hex().upper()
    server = Cksd("sqlite:///%s" % (tmp_path / "cks.db"), config=str(config),
                  python=PYTHONS[version])
    with server:
        assert len(server.children()) == 2, server.output()
        status, _, body = server.add(key)
        assert status == 200, server.output()
        status, _, body = server.lookup(op="get", options="mr", search="0x" + fingerprint)
        assert status == 200 and b"BEGIN PGP PUBLIC KEY BLOCK" in body, server.output()
        os.kill(server.proc.pid, signal.SIGHUP)
        server.wait_until(lambda: server.output().count("SIGHUP: reloading") == 3)
        status, _, _ = server.lookup(op="index", options="mr", search="0x" + fingerprint)
        assert status == 200, server.output()
        assert server.stop() == 0, server.output()
        assert "Traceback" not in server.output() and "failed" not in server.output(), \
            server.output()


@pytest.mark.parametrize("version", sorted(TOO_OLD) or [
    pytest.param("", marks=pytest.mark.skip(reason="no Python older than 3.9 on this machine"))])
def test_an_older_python_is_told_in_one_line(version):
    """An operator who copied CKS onto an old host runs a tool with its Python:
    one line says what is needed, not a traceback (a SyntaxError on 3.6 and
    2.7, an ImportError on 3.7, an AttributeError once serving on 3.8)."""
    for tool in TOOLS:
        out = subprocess.run([TOO_OLD[version], os.path.join(ROOT, tool), "--help"],
                             capture_output=True, text=True)
        assert out.returncode == 1 and out.stdout == "", (tool, out.stdout, out.stderr)
        assert out.stderr == "CKS needs Python 3.9 or newer; this is Python %s (%s)\n" % (
            version, TOO_OLD[version]), (tool, out.stderr)
