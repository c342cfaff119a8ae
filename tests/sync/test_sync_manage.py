"""cks_sync_manage.py: the peer list, its errors and its output."""

import json

import pytest

from support import fixture
from support.db import nothing_made, run_sql, with_schema
from support.procs import tool


@pytest.fixture
def db(db_url):
    """A database with the CKS tables (cks_sync_manage.py makes none)."""
    return with_schema(db_url)


def manage(db, *args):
    return tool("cks_sync_manage.py", ["--db", db] + list(args))


def test_add_list_set_remove(db):
    assert tool("cks_admin.py", ["--db", db, "load", "-"],
                input=fixture("rsa2048")).returncode == 0
    out = manage(db, "add", "keys.example.org")
    assert out.stdout.decode().strip() == ("added hkp peer keys.example.org:11371 (priority 100)"
                                           "; it will be sent the 1 key stored now first")
    out = manage(db, "add", "Peer.Example.NET:11372", "--priority", "5", "--email",
                 "Ops@Example.NET", "--no-catch-up")
    assert out.returncode == 0
    assert out.stdout.decode().strip() == "added hkp peer peer.example.net:11372 (priority 5)"
    assert manage(db, "add", "[::1]:2000").returncode == 0
    peers = json.loads(manage(db, "list", "--json").stdout)
    assert [p["peer"] for p in peers] == ["peer.example.net:11372", "keys.example.org:11371",
                                          "[::1]:2000"]
    assert peers[0]["contact_email"] == "Ops@example.net"
    assert (peers[0]["catch_up"], peers[0]["backlog"]) == (0, 0)  # --no-catch-up
    assert (peers[1]["catch_up"], peers[1]["backlog"]) == (1, 1)  # owed the stored key
    text = manage(db, "list").stdout.decode().splitlines()
    assert text[0].split() == ["PRIO", "PEER", "TYPE", "STATE", "BACKLOG", "LAST", "SUCCESS",
                               "LAST", "ROUND", "LAST", "ERROR"]
    assert text[1].split()[:5] == ["5", "peer.example.net:11372", "hkp", "enabled", "0"]
    assert text[2].split()[:6] == ["100", "keys.example.org:11371", "hkp", "enabled,",
                                   "catching", "up"]
    assert manage(db, "set", "[::1]:2000", "--priority", "2147483647").returncode == 0
    assert manage(db, "set", "[::1]:2000", "--priority", "-2147483648").returncode == 0
    assert manage(db, "set", "[::1]:2000", "--priority", "100").returncode == 0
    out = manage(db, "set", "keys.example.org", "--priority", "1", "--disable")
    assert out.returncode == 0 and "disabled" in out.stdout.decode()
    peers = json.loads(manage(db, "list", "--json").stdout)
    assert peers[0]["peer"] == "keys.example.org:11371" and peers[0]["enabled"] is False
    assert manage(db, "remove", "keys.example.org:11371").returncode == 0
    assert len(json.loads(manage(db, "list", "--json").stdout)) == 2


def test_mail_peer_is_recognised(db):
    out = manage(db, "add", "pgp-public-keys@keys.example.org")
    assert out.returncode == 0 and out.stdout.startswith(b"added mail peer")


@pytest.mark.parametrize("args,code,message", [
    (["add", "bad_host!"], 2, "not a valid host name"),
    (["add", "host.example:0"], 2, "port '0' must be a number from 1 to 65535"),
    (["add", "host.example:99999"], 2, "must be a number from 1 to 65535"),
    (["add", "host.example:http"], 2, "must be a number"),
    (["add", "h8.test:\u0663\u0663"], 2, "must be a number from 1 to 65535"),
    (["add", "h12.test:\u00b2"], 2, "must be a number from 1 to 65535"),
    (["add", "[::1]:\u00b2"], 2, "must be a number from 1 to 65535"),
    (["add", "-bad.example"], 2, ""),
    (["add", "[::g]:11371"], 2, "not an IPv6 address"),
    (["add", "hkp://h1.test"], 2, "'hkp://h1.test': give host[:port], without a URL scheme"),
    (["add", "hkps://h1.test"], 2, "without a URL scheme"),
    (["add", "http://h3.test:11371/"], 2, "without a URL scheme"),
    (["add", "::1"], 2, "'::1': an IPv6 address goes in brackets: [::1]:11371"),
    (["add", "2001:db8::7:11371"], 2, "an IPv6 address goes in brackets"),
    (["add", "not@an@address"], 2, "not a valid e-mail address"),
    (["add", "a.example.."], 2, "'a.example..' is not a valid host name"),
    (["add", "keys@a.example.."], 2, "not a valid e-mail address"),
    (["add", "ok.example", "--email", "nope"], 2, "--email"),
    (["add", "ok.example", "--recon-port", "11370"], 2, "for --type recon peers"),
    (["add", "ok.example", "--type", "recon", "--recon-port", "0"], 2,
     "--recon-port: must be a whole number from 1 to 65535, not '0'"),
    (["add", "ok.example", "--type", "recon", "--recon-port", "\u0663\u0663"], 2,
     "--recon-port: must be a whole number"),
    (["add", "big.example", "--priority", "\u0663"], 2, "--priority: must be a whole number"),
    (["add", "ok.example", "--type", "recon", "--filters", ","], 2, "--filters"),
    (["add", "ok.example", "--type", "recon", "--filters", "a b,c"], 2, "--filters"),
    (["add", "big.example", "--priority", "2147483648"], 2,
     "--priority: must be a whole number from -2147483648 to 2147483647, not '2147483648'"),
    (["add", "big.example", "--priority", "9223372036854775808"], 2, "--priority: must be"),
    (["add", "big.example", "--priority", "-2147483649"], 2, "--priority: must be"),
    (["add", "big.example", "--priority", "ten"], 2, "--priority: must be a whole number"),
    (["set", "unknown.example", "--priority", "99999999999999999999"], 2, "--priority"),
    (["add", "sks.example", "--type", "recon", "--catch-up"], 1,  # (as set refuses it)
     "sks.example:11371 is a recon peer: it is sent no keys, so there is nothing to catch up"),
    (["add", "m@x.test", "--catch-up", "--no-catch-up"], 2,
     "argument --no-catch-up: not allowed with argument --catch-up"),
    (["remove", "unknown.example"], 1, "no peer unknown.example:11371"),
    (["set", "unknown.example", "--disable"], 1, "no peer"),
    (["set", "unknown.example"], 2, "nothing to change"),
])
def test_errors_are_one_clear_line(db, args, code, message):
    out = manage(db, *args)
    assert out.returncode == code, out.stderr
    err = out.stderr.decode()
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("args,message", [
    (["add", "h1\n.test"], "not a valid host name"),
    (["add", "evil\n@x.test"], "not a valid e-mail address"),
    (["add", "evil@x.test\n.x"], "not a valid e-mail address"),
    (["add", "ok.example", "--rejection-key", "A" * 39 + "\n"], "not a fingerprint"),
    (["set", "evil\n@x.test", "--disable"], "not a valid e-mail address"),
])
def test_a_newline_in_a_name_is_refused(db, args, message):
    """`$` matched before a final newline: until 2026-12-05 `add $'evil\\n@x.test'`
    added a mail peer whose sync mails had a header line "@x.test"."""
    out = manage(db, *args)
    assert out.returncode == 2 and message in out.stderr.decode(), out.stderr
    assert json.loads(manage(db, "list", "--json").stdout) == []


@pytest.mark.parametrize("name, message", [
    ("", "'' is not a valid host name"),  # (until 2026-12-05: every peer)
    ("evil\n@x.test", "not a valid e-mail address"),
    ("x:\u00b2", "port '\u00b2' must be a number from 1 to 65535"),
])
def test_cks_sync_refuses_a_malformed_peer_option(db, name, message):
    assert manage(db, "add", "keys.example.org", "--no-catch-up").returncode == 0
    out = tool("cks_sync.py", ["--db", db, "--peer", name])
    assert out.returncode == 2 and out.stdout == b"", out.stdout
    err = out.stderr.decode()
    assert err.startswith("cks_sync.py: error: ") and err.endswith(message + "\n"), err
    assert err.count("\n") == 1


def test_recon_peers(db):
    out = manage(db, "add", "sks.example", "--type", "recon")
    assert out.returncode == 0 and out.stdout.decode().strip() == \
        "added recon peer sks.example:11371 (priority 100)"
    assert manage(db, "add", "hockeypuck.example:11373", "--type", "recon", "--recon-port",
                  "11372", "--filters", "yminsky.dedup, yminsky.merge,pks.x").returncode == 0
    peers = {p["peer"]: p for p in json.loads(manage(db, "list", "--json").stdout)}
    assert (peers["sks.example:11371"]["recon_port"], peers["sks.example:11371"]["filters"]) \
        == (11370, None)
    assert (peers["hockeypuck.example:11373"]["recon_port"],
            peers["hockeypuck.example:11373"]["filters"]) == (11372,
                                                              "yminsky.dedup,yminsky.merge,pks.x")
    assert peers["sks.example:11371"]["recon_rounds"] == 0
    refused = manage(db, "set", "sks.example", "--catch-up")
    assert refused.returncode == 1 and b"recon peer: it is sent no keys" in refused.stderr
    assert all(p["catch_up"] == 0 for p in json.loads(manage(db, "list", "--json").stdout))
    row = [line for line in manage(db, "list").stdout.decode().splitlines()
           if line.split()[1:2] == ["sks.example:11371"]][0]
    assert "none yet" in row


def test_hockeypuck_filter_names(db):
    # Hockeypuck's own names hold ':' and '+'
    names = "drop:UAT,schema:application/pgp-keys,versions:3+4+6+rfc9980,yminsky.dedup"
    assert manage(db, "add", "hp.example", "--type", "recon", "--filters",
                  names).returncode == 0
    (peer,) = json.loads(manage(db, "list", "--json").stdout)
    assert peer["filters"] == names


@pytest.mark.parametrize("first, again", [
    ("a.example", "A.EXAMPLE:11371"),
    ("a.example", "a.example."),
    ("[2001:db8::7]:11371", "[2001:DB8:0:0::7]"),
    ("Pgp-Keys@example.net", "pgp-keys@EXAMPLE.net"),  # (until 2026-12-05 both were taken)
    ("keys@x.test.", "keys@x.test"),  # (the same: until 2026-12-05 both were taken)
    ("keys@x.test", "keys@X.test."),
    ("[::ffff:127.0.0.1]", "[::ffff:7f00:1]:11371"),  # (until 2026-12-05 on Python 3.13)
])
def test_duplicates_are_refused(db, first, again):
    assert manage(db, "add", first).returncode == 0
    out = manage(db, "add", again)
    assert out.returncode == 1 and b"already in the list" in out.stderr
    assert len(json.loads(manage(db, "list", "--json").stdout)) == 1


def test_a_mail_peer_is_found_in_any_case(db):
    """As `add` tells them apart (until 2026-12-05 `set` and `remove` wanted
    the address spelled as listed)."""
    assert manage(db, "add", "Pgp-Keys@Example.net").returncode == 0
    assert manage(db, "set", "pgp-keys@example.net", "--disable").returncode == 0
    (peer,) = json.loads(manage(db, "list", "--json").stdout)
    assert (peer["peer"], peer["enabled"]) == ("Pgp-Keys@example.net", False)
    assert manage(db, "remove", "PGP-KEYS@EXAMPLE.NET").returncode == 0
    assert json.loads(manage(db, "list", "--json").stdout) == []


def test_a_mail_peer_is_listed_without_the_final_dot(db):
    assert manage(db, "add", "keys@X.test.").stdout.decode().startswith(
        "added mail peer keys@x.test (")
    assert [p["peer"] for p in json.loads(manage(db, "list", "--json").stdout)] == \
        ["keys@x.test"]
    assert manage(db, "add", "keys@test.").returncode == 2  # (a domain of one label)


def test_a_spelling_an_older_cks_stored_is_found(db):
    """A mail peer an older CKS listed with the domain's final dot: `add`
    refuses the address without it, `set`, `refusals` and `remove` find it by
    either spelling."""
    assert tool("cks_admin.py", ["--db", db, "load", "-"],
                input=fixture("rsa2048")).returncode == 0
    assert manage(db, "add", "keys@x.test", "--no-catch-up").returncode == 0
    run_sql(db, "UPDATE cks_other_servers SET peer = 'Keys@x.test.'", write=True)
    out = manage(db, "add", "keys@x.test.")
    assert out.returncode == 1 and b"already in the list as Keys@x.test." in out.stderr
    assert manage(db, "set", "keys@x.test", "--disable").returncode == 0
    assert manage(db, "set", "keys@x.test.", "--catch-up").returncode == 0
    assert manage(db, "refusals", "KEYS@x.test").returncode == 0
    (peer,) = json.loads(manage(db, "list", "--json").stdout)
    assert (peer["peer"], peer["enabled"], peer["catch_up"]) == ("Keys@x.test.", False, 1)
    assert manage(db, "remove", "keys@x.test").returncode == 0
    assert json.loads(manage(db, "list", "--json").stdout) == []


def test_an_ipv4_mapped_address_has_one_spelling_on_every_python(db):
    """RFC 5952's, as Python 3.13 compresses it (until 2026-12-05 Python 3.12
    and older stored [::ffff:7f00:1]:11371, and 3.13 took that as another
    peer); one that an older CKS stored in hex groups is found by either."""
    out = manage(db, "add", "[::FFFF:7f00:1]", "--no-catch-up")
    assert out.stdout.decode().startswith("added hkp peer [::ffff:127.0.0.1]:11371 ")
    run_sql(db, "UPDATE cks_other_servers SET peer = '[::ffff:7f00:1]:11371'", write=True)
    out = manage(db, "add", "[::ffff:127.0.0.1]:11371")
    assert out.returncode == 1 and b"already in the list as [::ffff:7f00:1]:11371" in out.stderr
    assert manage(db, "set", "[::ffff:127.0.0.1]", "--disable").returncode == 0
    (peer,) = json.loads(manage(db, "list", "--json").stdout)
    assert (peer["peer"], peer["enabled"]) == ("[::ffff:7f00:1]:11371", False)
    assert manage(db, "remove", "[::ffff:7f00:1]").returncode == 0
    assert json.loads(manage(db, "list", "--json").stdout) == []


def test_empty_list(db):
    assert b"no peers" in manage(db, "list").stdout


@pytest.mark.parametrize("name, args", [("cks_sync.py", []), ("cks_sync_manage.py", ["list"]),
                                        ("cks_sync_manage.py", ["add", "keys.example.org"])])
def test_a_database_cksd_did_not_make_is_refused(db_url, name, args):
    """A mistyped SQLite path, an empty PostgreSQL database: one line, no new
    database (until 2026-12-05 both tools made one and went on)."""
    out = tool(name, ["--db", db_url] + args)
    assert out.returncode == 1, out.stderr
    err = out.stderr.decode()
    assert err.count("\n") == 1 and ("no such file" in err or "holds no CKS tables" in err)
    assert nothing_made(db_url)
