"""contrib/cks.conf.sample, the list of every setting the tools read: each
line "# option = default" under its [section], with the comment lines above it.
The tests check it against the code both ways (tests/test_sample_config.py);
load_settings warns of a section or option in a configuration file that it
does not list (a mistyped name, which would otherwise be ignored)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Dict, FrozenSet, List, Tuple

SAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir,
                      "contrib", "cks.conf.sample")
SETTING_LINE = re.compile(r"(# )?([a-z_]+) =( .*)?$")


@dataclass
class Entry:
    value: str
    description: str  # the comment lines above it (shared by a group of settings)
    line: int


def sample_text() -> str:
    with open(SAMPLE, encoding="utf-8") as handle:
        return handle.read()


def sample_entries() -> Dict[Tuple[str, str], Entry]:
    """(section, option) -> its line in the sample."""
    entries: Dict[Tuple[str, str], Entry] = {}
    section = ""
    description: List[str] = []
    for number, line in enumerate(sample_text().splitlines(), 1):
        header = re.match(r"\[(\w+)\]$", line)
        setting = SETTING_LINE.match(line)
        if header:
            section, description = header.group(1), []
        elif setting:
            key = (section, setting.group(2))
            assert section, "line %d: a setting before the first section" % number
            assert key not in entries, "line %d: [%s] %s again" % ((number,) + key)
            entries[key] = Entry((setting.group(3) or "").strip(), " ".join(description),
                                 number)
        elif line.startswith("# "):
            description.append(line[2:])
        elif not line.strip():
            description = []
    return entries


def known_settings() -> FrozenSet[Tuple[str, str]]:
    """Every (section, option) a tool reads; empty when the sample is not
    there (CKS copied without contrib/): then no name is checked."""
    try:
        return frozenset(sample_entries())
    except OSError:
        return frozenset()
