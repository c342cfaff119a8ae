"""The operator's guide compiles the installed folder (`python3 -m compileall`)
on install and on upgrade, because the `cks` user may not write it: run as
the guide says on a copy, every tool then imports every CKS module compiled,
none from its source."""

import os
import re
import shlex
import shutil
import subprocess
import sys

from support import ROOT

TOOLS = ["cksd.py", "cks_sync.py", "cks_admin.py", "cks_mail_sync.py", "cks_sync_manage.py"]
COMPILE = re.compile(r"^ {4}(python3 -m compileall .*?)(?:\s+#.*)?$", re.M)
COPY = re.compile(r"^ {4}.*?\b(cp -r \S+ /opt/cks)(?:\s+#.*)?$", re.M)


def guide_commands(pattern):
    """The README's command lines (indented blocks) that `pattern` finds."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as handle:
        return pattern.findall(handle.read())


def guide_compile_commands():
    return guide_commands(COMPILE)


def installed_copy(target):
    """The folder as `cp -r` installs it (what the tools need), no compiled files."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(os.path.join(ROOT, "lib"), os.path.join(target, "lib"), ignore=ignore)
    for name in TOOLS + ["schema.sql"]:
        shutil.copy(os.path.join(ROOT, name), target)


def test_install_and_upgrade_compile_the_folder():
    assert guide_compile_commands() == ["python3 -m compileall -q /opt/cks"] * 2


def test_install_and_upgrade_copy_the_same_folder():
    """The upgrade copies the new release's folder by the name the install
    gives it (until 2026-12-06 `cks`, named nowhere else)."""
    assert guide_commands(COPY) == ["cp -r CKS-FOLDER /opt/cks"] * 2


def test_every_tool_imports_cks_compiled_after_the_guides_command(tmp_path):
    target = str(tmp_path / "cks")
    installed_copy(target)
    [command] = set(guide_compile_commands())
    argv = [sys.executable if word == "python3" else word.replace("/opt/cks", target)
            for word in shlex.split(command)]
    subprocess.run(argv, check=True, timeout=120)
    # Nothing is written from here on, as for the cks user.
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    lib = os.path.join(target, "lib", "cks") + os.sep
    for tool in TOOLS:
        out = subprocess.run([sys.executable, "-v", os.path.join(target, tool), "--help"],
                             capture_output=True, text=True, env=env, timeout=60)
        assert out.returncode == 0, out.stderr[-2000:]
        compiled = [line for line in out.stderr.splitlines()
                    if line.startswith("# ") and " matches " + lib in line]
        from_source = [line for line in out.stderr.splitlines()
                       if line.startswith("# code object from " + lib)]
        assert len(compiled) > 20 and from_source == [], (tool, from_source)
