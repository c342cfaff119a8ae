"""contrib/cks.conf.sample and the code agree: every setting the code reads is
in the sample, with the code's default; the sample holds nothing the code does
not read; and cksd starts on the sample as written and with every setting's
line uncommented. A setting added without a line in the sample fails here."""

import os
from collections import defaultdict

import pytest

from cks.config import load_settings
from cks.sample_config import SETTING_LINE, sample_entries, sample_text
from support import ROOT
from support.config_reads import COMPUTED, setting_reads
from support.server import Cksd


def uncommented() -> str:
    """The sample with the "# " in front of every setting taken away."""
    return "\n".join(line[2:] if SETTING_LINE.match(line) else line
                     for line in sample_text().splitlines()) + "\n"


READS = setting_reads()


def test_the_walk_finds_every_style_of_read():
    """Not an empty check: reads with literal defaults, through cksd's
    _networks helper, from dataclass defaults, computed, and the parser's."""
    found = {(r.section, r.option): r.default for r in READS}
    assert found[("server", "port")] == 11371
    assert found[("metrics", "allow")] == "127.0.0.0/8, ::1"  # _networks(..., "metrics")
    assert found[("ratelimit", "exempt")] == ""  # _networks' own default
    assert found[("limits", "max_key_bytes")] == 8 << 20  # Limits().max_key_bytes
    assert found[("server", "processes")] is COMPUTED  # one per core
    assert found[("database", "url")] == "sqlite:///cks.db"  # parser.get(...) or DEFAULT_DB
    assert found[("rejection", "gpg_key")] == ""  # settings_from(args).get(...)
    assert len(found) > 60


def test_every_setting_the_code_reads_is_in_the_sample():
    entries = sample_entries()
    missing = ["[%s] %s (%s)" % (r.section, r.option, r.where) for r in READS
               if (r.section, r.option) not in entries]
    assert not missing, "not in contrib/cks.conf.sample: " + ", ".join(missing)


def test_the_sample_holds_only_settings_the_code_reads():
    read = {(r.section, r.option) for r in READS}
    stale = ["[%s] %s (line %d)" % (key + (entry.line,))
             for key, entry in sample_entries().items() if key not in read]
    assert not stale, "read by no code: " + ", ".join(stale)


def test_every_number_is_read_with_its_range():
    """A value past it (workers = 0, idle_timeout = nan) is refused in one line."""
    unbounded = ["[%s] %s (%s)" % (r.section, r.option, r.where) for r in READS
                 if r.kind in ("get_int", "get_float") and not r.bounded]
    assert not unbounded, "no least=, most= or more_than=: " + ", ".join(unbounded)


def test_every_setting_is_described():
    bare = ["[%s] %s" % key for key, entry in sample_entries().items() if not entry.description]
    assert not bare


def test_the_sample_gives_the_defaults_of_the_code(tmp_path):
    """Each default, read back from the uncommented sample the way the code
    reads it (so 60 and 60.0, no and False compare equal)."""
    path = tmp_path / "cks.conf"
    path.write_text(uncommented())
    settings = load_settings(str(path))
    entries = sample_entries()
    defaults = defaultdict(set)  # one option may be read with different defaults
    for read in READS:
        defaults[(read.section, read.option, read.kind)].add(read.default)
    wrong = []
    for (section, option, kind), values in sorted(defaults.items(), key=repr):
        if COMPUTED in values:
            if "Default:" not in entries[(section, option)].description:
                wrong.append("[%s] %s: its default is computed: say what it is, after "
                             "\"Default:\"" % (section, option))
            continue
        written = getattr(settings, kind)(section, option, None)
        if written not in {"" if v is None else v for v in values}:
            wrong.append("[%s] %s = %r, the code's default: %s"
                         % (section, option, written, " or ".join(map(repr, values))))
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("form", ["as written", "uncommented"])
def test_cksd_starts_on_the_sample(db_url, tmp_path, form):
    path = tmp_path / "cks.conf"
    path.write_text(sample_text() if form == "as written" else uncommented())
    with Cksd(db_url, config=str(path)) as server:
        status, _, body = server.request("GET", "/health")
        assert status == 200 and body.startswith(b"ok"), body
        assert server.lookup(op="get", search="nobody@example.org")[0] == 404
    assert server.proc.returncode == 0, server.output()


def test_the_readme_example_reads_as_its_values_say(tmp_path):
    """The README's configuration example ends lines with "; notes": those are
    comments, not part of the values."""
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    section = readme[readme.index("## Configuration"):]
    start = section.index("```ini\n") + len("```ini\n")
    example = section[start:section.index("\n```", start)]
    path = tmp_path / "cks.conf"
    path.write_text(example)
    settings = load_settings(str(path))
    assert settings.get_int("server", "port", 0) == 11371
    assert settings.get("server", "hostname", "") == "keys.example.org"
    assert settings.get("ratelimit", "trusted_proxies", "") == "127.0.0.0/8, ::1"
    assert settings.get("database", "read_url", "x") == ""
