"""The files of contrib/ as a test installs them: the paths of a Debian host
replaced by the test's. Each replaced text must occur, so a file that changed
shape fails its test instead of testing nothing."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from typing import Dict, List, Optional

import pytest

from . import ROOT, in_ci

CONTRIB = os.path.join(ROOT, "contrib")
# Where the operator's guide puts things, and where they are here.
INSTALL_PATHS = {"/usr/bin/python3": sys.executable, "/opt/cks": ROOT}


def contrib_text(name: str) -> str:
    with open(os.path.join(CONTRIB, name), encoding="utf-8") as handle:
        return handle.read()


def installed(name: str, replacements: Dict[str, str]) -> str:
    """contrib/NAME with every key of `replacements` replaced by its value."""
    text = contrib_text(name)
    for old, new in replacements.items():
        assert old in text, "contrib/%s no longer says %r" % (name, old)
        text = text.replace(old, new)
    return text


def require(program: str, package: str) -> str:
    """The path of `program`; without it the test is skipped (fails under CI)."""
    path = shutil.which(program)
    if path is None:
        if in_ci():
            pytest.fail("CI must check the contrib files with %s: apt-get install %s"
                        % (program, package))
        pytest.skip("%s is not installed (apt-get install %s)" % (program, package))
    return path


def unit_settings(name: str, replacements: Optional[Dict[str, str]] = None
                  ) -> Dict[str, Dict[str, List[str]]]:
    """contrib/systemd/NAME (installed with `replacements`) read as systemd
    reads it: section -> key -> the values given (a key may repeat); a line
    ending in \\ goes on in the next."""
    sections: Dict[str, Dict[str, List[str]]] = {}
    current: Dict[str, List[str]] = {}
    text = installed("systemd/" + name, replacements or {})
    for line in re.sub(r"\\\n", " ", text).splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        header = re.match(r"\[(\w+)\]$", line)
        if header:
            current = sections.setdefault(header.group(1), {})
        else:
            key, _, value = line.partition("=")
            current.setdefault(key.strip(), []).append(value.strip())
    return sections


def command(value: str) -> List[str]:
    """An Exec*= line as the argument list systemd runs ($$ is a $)."""
    return shlex.split(value.replace("$$", "$"))
