"""What the README says that must not go stale as the code and tests change."""

import os
import re

from support import ROOT


def section(title):
    """The text of the README's `## title` section, up to the next one."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as handle:
        text = handle.read()
    start = text.index("\n## %s\n" % title)
    return text[start:text.index("\n## ", start + 1)]


def test_the_two_commands_give_no_count_of_tests():
    """A count of the suite's tests is wrong with the next test added (until
    2026-12-06 "2,982 tests" stood there, with some 3,280 in the suite)."""
    counts = r"\b\d+(?:,\d{3})* (?:tests|passed|skipped)\b"
    assert re.findall(counts, section("The two commands")) == []
