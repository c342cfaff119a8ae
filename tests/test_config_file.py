"""Which configuration file a tool reads (cks/config.py): --config FILE, else
$CKS_CONFIG, else ./cks.conf, else /etc/cks.conf; a file named by --config
must exist, and a missing one named by $CKS_CONFIG is said in a warning."""

import logging
import os

import pytest

from cks.config import ConfigError, find_config_file, load_settings
from support.procs import tool


@pytest.fixture
def here(tmp_path, monkeypatch):
    """A working directory holding a cks.conf, and no $CKS_CONFIG."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CKS_CONFIG", raising=False)
    (tmp_path / "cks.conf").write_text("[server]\nport = 1111\n")
    return tmp_path


def test_the_order_is_the_option_then_the_environment_then_the_working_directory(
        here, monkeypatch):
    named = here / "named.conf"
    named.write_text("[server]\nport = 2222\n")
    environment = here / "env.conf"
    environment.write_text("[server]\nport = 3333\n")
    assert load_settings().get_int("server", "port", 0) == 1111
    monkeypatch.setenv("CKS_CONFIG", str(environment))
    assert load_settings().get_int("server", "port", 0) == 3333
    assert load_settings(str(named)).get_int("server", "port", 0) == 2222


def test_a_missing_file_named_by_the_option_is_an_error(here):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(str(here / "typo.conf"))


def test_a_missing_file_named_by_the_environment_is_said_and_none_is_read(
        here, monkeypatch, caplog):
    monkeypatch.setenv("CKS_CONFIG", str(here / "typo.conf"))
    with caplog.at_level(logging.WARNING, logger="cks.config"):
        assert find_config_file() is None
    assert "typo.conf, which does not exist" in caplog.text
    assert load_settings().get_int("server", "port", 0) == 0  # not ./cks.conf's 1111


def test_dev_null_in_the_environment_reads_no_settings_without_a_warning(
        here, monkeypatch, caplog):
    monkeypatch.setenv("CKS_CONFIG", os.devnull)
    with caplog.at_level(logging.WARNING, logger="cks.config"):
        settings = load_settings()
    assert settings.get_int("server", "port", 0) == 0 and caplog.text == ""


def test_a_tool_says_it_on_standard_error(here):
    run = tool("cks_admin.py", ["--db", "sqlite:///%s" % (here / "cks.db"), "stats"],
               env={"CKS_CONFIG": str(here / "typo.conf")}, cwd=str(here))
    assert run.returncode == 0, run.stderr
    assert b"$CKS_CONFIG names %s" % str(here / "typo.conf").encode() in run.stderr


@pytest.mark.parametrize("text, said", [
    ("garbage\n", "line 1: a setting before the first [section]"),
    ("[server]\nport = 1\nnonsense line\n", "line 3: neither a [section] nor a setting"),
    ("[server]\nport = 1\nport = 2\n", "[line  3]: option 'port' in section 'server' already"),
])
def test_a_file_configparser_cannot_read_is_one_line_naming_the_line(here, text, said):
    (here / "bad.conf").write_text(text)
    run = tool("cks_admin.py", ["--config", str(here / "bad.conf"), "stats"], cwd=str(here))
    lines = run.stderr.decode().splitlines()
    assert run.returncode == 1 and len(lines) == 1 and said in lines[0], lines


def test_dev_null_named_by_the_option_reads_no_settings(here):
    """`--config /dev/null`, an operator's way to say "no file", as
    $CKS_CONFIG takes it; until 2026-12-05 it "did not exist"."""
    run = tool("cks_admin.py", ["--config", os.devnull, "--db",
                                "sqlite:///%s" % (here / "cks.db"), "stats"], cwd=str(here))
    assert (run.returncode, run.stderr) == (0, b"")
    assert load_settings(os.devnull).get_int("server", "port", 0) == 0  # not ./cks.conf's


def test_a_directory_named_by_the_option_is_one_line(here):
    run = tool("cks_admin.py", ["--config", str(here), "stats"], cwd=str(here))
    lines = run.stderr.decode().splitlines()
    assert run.returncode == 1 and len(lines) == 1 and "Is a directory" in lines[0], lines


def test_a_file_that_is_not_utf8_is_one_line(here):
    (here / "latin.conf").write_bytes(b"[server]\nhostname = caf\xe9\n")
    run = tool("cks_admin.py", ["--config", str(here / "latin.conf"), "stats"], cwd=str(here))
    lines = run.stderr.decode().splitlines()
    assert run.returncode == 1 and len(lines) == 1, lines
    assert "cannot read configuration %s: line 2 is not UTF-8 text" % (here / "latin.conf") \
        in lines[0]


def test_a_byte_order_mark_is_no_part_of_the_first_line(here):
    (here / "bom.conf").write_bytes(b"\xef\xbb\xbf[server]\nport = 4444\n")
    assert load_settings(str(here / "bom.conf")).get_int("server", "port", 0) == 4444


def test_each_unknown_section_and_setting_is_a_warning(here):
    """A mistyped name (until 2026-12-05 ignored without a word), from the
    list of every setting: contrib/cks.conf.sample."""
    (here / "typos.conf").write_text("[serverr]\nport = 1\nbind = ::\n"
                                     "[server]\nprot = 2\nport = 3\n[limits]\nmax_result = 4\n")
    run = tool("cks_admin.py", ["--config", str(here / "typos.conf"), "--db",
                                "sqlite:///%s" % (here / "cks.db"), "stats"], cwd=str(here))
    assert run.returncode == 0, run.stderr
    path = str(here / "typos.conf")
    assert run.stderr.decode().splitlines() == [
        "cks.config: %s: [serverr] is not a section CKS reads: ignored" % path,
        "cks.config: %s: [server] prot is not a setting CKS reads: ignored" % path,
        "cks.config: %s: [limits] max_result is not a setting CKS reads: ignored" % path]


def test_an_empty_name_is_its_default(here, monkeypatch):
    (here / "empty.conf").write_text("[server]\nhostname =\n[sync]\nnode_name =\n")
    monkeypatch.setattr("socket.gethostname", lambda: "host.example.org")
    assert load_settings(str(here / "empty.conf")).node_name() == "host.example.org"


@pytest.mark.parametrize("conf, hostname, node", [
    ("", "vm", "vm"),
    ("[server]\nhostname = keys.example.org\n", "keys.example.org", "keys.example.org"),
    ("[sync]\nnode_name = node.example.org\n", "vm", "node.example.org")])
def test_the_node_name_is_the_hostname_unless_set(here, monkeypatch, conf, hostname, node):
    """[sync] node_name defaults to [server] hostname, whose default is the
    host's name (as SKS's both are).  Until 2026-12-06 the node name's was
    the host's fully qualified name, "localhost" where /etc/hosts names
    127.0.0.1 so first: op=stats gave hostname "vm" and nodename "localhost"."""
    from cks.cli.cksd import server_settings
    monkeypatch.setattr("socket.gethostname", lambda: "vm")
    monkeypatch.setattr("socket.getfqdn", lambda *name: "localhost")
    (here / "names.conf").write_text(conf)
    settings = load_settings(str(here / "names.conf"))
    served = server_settings(settings, 11371)
    assert (served.hostname, served.identity.node, settings.node_name()) == (hostname, node, node)


def test_a_default_section_is_a_warning_for_each_of_its_settings(here):
    """configparser's [DEFAULT] lends its settings to each section the file
    has, and to no other: `[DEFAULT] port` set [server] port here but not
    [recon] port, without a word until 2026-12-06."""
    (here / "default.conf").write_text("[DEFAULT]\nport = 9999\n[server]\nhostname = x\n")
    run = tool("cks_admin.py", ["--config", str(here / "default.conf"), "--db",
                                "sqlite:///%s" % (here / "cks.db"), "stats"], cwd=str(here))
    assert run.returncode == 0, run.stderr
    assert run.stderr.decode().splitlines() == [
        "cks.config: %s: [DEFAULT] port is taken as a setting of each section this file has "
        "([server]) and of none it lacks: give it in the section it is for"
        % (here / "default.conf")]
