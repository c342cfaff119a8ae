"""cks_admin.py show, run as a process."""

import json
import os
import subprocess
import sys

import pytest

from cks.openpgp.armor import encode, scan
from cks.openpgp.packet import TAG_USER_ID, Packet, read_packet
from support import ROOT, fixture
from support.db import run_sql, with_schema
from support.nodes import fpr
from support.procs import tool


def test_text_output_like_gpg_show_keys(tmp_path):
    out = tool("cks_admin.py", ["show", "-"], input=fixture("revoked-parts"))
    assert out.returncode == 0, out.stderr
    text = out.stdout.decode()
    lines = text.splitlines()
    assert lines[0].startswith("pub   ed25519 2024-01-01 [SC]")
    assert lines[1].strip() == json.loads(tool("cks_admin.py", ["show", "--json", "-"],
                                               input=fixture("revoked-parts")).stdout)[0][
        "fingerprint"]
    assert any(line.startswith("uid           [ revoked]") for line in lines)
    assert any(line.startswith("sub   ") and "[revoked]" in line for line in lines)
    assert "SKS hash: " in text
    assert out.stderr == b""


def test_file_argument_and_binary_input(tmp_path):
    path = tmp_path / "key.gpg"
    path.write_bytes(scan(fixture("rsa4096"))[0][0].data)
    out = tool("cks_admin.py", ["show", str(path)])
    assert out.returncode == 0 and b"pub   rsa4096 2024-01-01" in out.stdout


def test_json_fields():
    out = tool("cks_admin.py", ["show", "--json", "-"], input=fixture("expired"))
    (key,) = json.loads(out.stdout)
    assert key["expires"] == 1451606400 and key["revoked"] is False
    assert set(key) >= {"fingerprint", "keyid", "version", "algorithm", "bits", "created",
                        "expires", "revoked", "user_ids", "subkeys", "sks_hash"}
    assert key["user_ids"][0]["created"] is not None
    assert key["subkeys"][0]["expires"] == 1451606400


def test_expired_and_photo_markers():
    out = tool("cks_admin.py", ["show", "-"], input=fixture("expired") + fixture("photo"))
    text = out.stdout.decode()
    assert "[expired: 2016-01-01]" in text
    assert "uat                      [1 image]" in text


def test_same_key_twice_is_merged_first():
    out = tool("cks_admin.py", ["show", "--json", "-"],
               input=fixture("alice-t1") + fixture("alice-t2"))
    keys = json.loads(out.stdout)
    assert len(keys) == 1 and len(keys[0]["user_ids"]) == 2 and len(keys[0]["subkeys"]) == 2


def test_malformed_input_reports_each_problem_and_still_shows_valid_keys():
    good = fixture("rsa2048")
    damaged = bytearray(scan(fixture("nistp256"))[0][0].data)
    truncated = encode(bytes(damaged[:-20]))
    out = tool("cks_admin.py", ["show", "-"],
               input=good + truncated.encode() + fixture("secret/ed25519"))
    assert out.returncode == 1
    errors = out.stderr.decode().splitlines()
    assert len(errors) == 2, errors
    assert "incomplete" in errors[0] and "secret key material refused" in errors[1]
    assert out.stdout.decode().count("pub   ") == 1
    assert "Traceback" not in out.stderr.decode()


def test_v6_key_shows_its_64_hex_fingerprint():
    out = tool("cks_admin.py", ["show", "-"], input=fixture("rfc9580-v6-sample"))
    assert out.returncode == 0
    assert b"CB186C4F0609A697E4D52DFA6C722B0C1F1E27C18A56708F6525EC27BAD9ACC9" in out.stdout


def test_missing_file_is_one_line_exit_2():
    out = tool("cks_admin.py", ["show", "/nonexistent/file"])
    assert out.returncode == 2
    assert out.stderr.decode().count("\n") == 1 and b"cannot read" in out.stderr


OUTPUTS = [["show", "--json", "{keys}"], ["show", "{keys}"], ["stats", "--json"],
           ["notices", "--json"], ["rejected", "--json"], ["stats"]]


def _admin_writing_to(tmp_path, args, stdout):
    """cks_admin.py ARGS (on a database of its own) with this standard output."""
    keyring = tmp_path / "keys.asc"
    keyring.write_bytes(fixture("rsa2048") + fixture("nistp256") + fixture("alice-t1"))
    args = [a.format(keys=keyring) for a in args]
    database = with_schema("sqlite:///%s" % (tmp_path / "cks.db"))
    return subprocess.Popen([sys.executable, os.path.join(ROOT, "cks_admin.py"), "--db",
                             database] + args, stdout=stdout, stderr=subprocess.PIPE)


@pytest.mark.parametrize("args", OUTPUTS)
def test_a_reader_that_goes_away_ends_it_quietly(tmp_path, args):
    """`cks_admin.py show --json FILE | head`: no traceback when head stops reading."""
    read_end, write_end = os.pipe()
    process = _admin_writing_to(tmp_path, args, write_end)
    os.close(write_end)
    os.close(read_end)  # before it writes: its first write finds no reader
    stderr = process.communicate(timeout=60)[1]
    assert process.returncode == 141 and stderr == b"", stderr


@pytest.mark.parametrize("args", OUTPUTS)
def test_output_that_cannot_be_written_is_one_line(tmp_path, args):
    with open("/dev/full", "wb") as full:
        process = _admin_writing_to(tmp_path, args, full)
    stderr = process.communicate(timeout=60)[1]
    assert (process.returncode, stderr) == (
        1, b"cks_admin.py: error: cannot write standard output: No space left on device\n")


def corrupt_keyrings():
    """Binary keyrings of four fixture keys, broken: {case: (data, keys readable)}."""
    first, second, third, fourth = (scan(fixture(name))[0][0].data
                                    for name in ("rsa2048", "nistp256", "ed25519", "alice-t1"))
    whole = first + second + third + fourth
    cut = len(first) + read_packet(second)[1]  # after the second key's first packet
    return {
        "garbage in the middle": (whole[:cut] + b"\x00" * 64 + whole[cut:], 3),
        "a 4 GiB length first": (b"\xc6\xff\xff\xff\xff\xff" + whole, 4),
        "cut inside a key's first packet": (first + second + third[:10], 2),
    }


@pytest.mark.parametrize("case", sorted(corrupt_keyrings()))
def test_a_corrupt_keyring_shows_what_load_stores_and_reports(case, tmp_path):
    """show reads a file as load does, going on after a spot whose framing
    breaks (until 2026-12-05 it stopped there): the keys load stores, and
    load's line per problem."""
    data, readable = corrupt_keyrings()[case]
    path = tmp_path / "keys.gpg"
    path.write_bytes(data)
    shown = tool("cks_admin.py", ["show", "--json", str(path)])
    db = "sqlite:///%s" % (tmp_path / "cks.db")
    loaded = tool("cks_admin.py", ["--db", db, "load", "--no-sync", str(path)])
    assert shown.returncode == loaded.returncode == 1
    assert shown.stderr.decode().splitlines() == loaded.stderr.decode().splitlines()
    assert len(shown.stderr.decode().splitlines()) == 1, shown.stderr
    fingerprints = sorted(key["fingerprint"] for key in json.loads(shown.stdout))
    assert len(fingerprints) == readable
    assert fingerprints == sorted(f for f, in run_sql(db, "SELECT fingerprint FROM cks_keys"))


def test_a_file_that_cannot_seek_is_read(tmp_path):
    """`cks_admin.py show <(gpg --export ...)`: a pipe named as the file."""
    read_end, write_end = os.pipe()
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, "cks_admin.py"), "show",
                                "/dev/fd/%d" % read_end], pass_fds=(read_end,),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.close(read_end)
    with open(write_end, "wb") as pipe:
        pipe.write(fixture("rsa2048") + fixture("nistp256"))
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert stdout.decode().count("pub   ") == 2


def test_keys_over_a_limit_are_refused_as_load_refuses_them(tmp_path):
    """A key over a limit of the pipeline's (too many packets, too large a
    packet) is left out, with load's line saying why, exit 1: until
    2026-12-06 show listed it, exit 0, and a load refused it."""
    many, large, good = (scan(fixture(name))[0][0].data
                         for name in ("rsa2048", "nistp256", "ed25519"))
    many += b"".join(Packet(TAG_USER_ID, b"uid %d" % n).serialize() for n in range(30))
    large += Packet(TAG_USER_ID, b"x" * 6000).serialize()
    path = tmp_path / "keys.gpg"
    path.write_bytes(many + large + good)
    config = tmp_path / "cks.conf"
    config.write_text("[limits]\nmax_packets_per_key = 20\nmax_packet_bytes = 5000\n")
    shown = tool("cks_admin.py", ["--config", str(config), "show", "--json", str(path)])
    db = "sqlite:///%s" % (tmp_path / "cks.db")
    loaded = tool("cks_admin.py", ["--config", str(config), "--db", db, "load", "--no-sync",
                                   str(path)])
    assert shown.returncode == loaded.returncode == 1
    refusals = sorted(shown.stderr.decode().splitlines())
    assert refusals == sorted(loaded.stderr.decode().splitlines())
    assert refusals == sorted([
        "%s: key %s refused: has 35 packets, over this server's limit of 20" % (path,
                                                                                 fpr("rsa2048")),
        "%s: key %s refused: has a packet of 6000 bytes, over this server's limit of 5000"
        % (path, fpr("nistp256"))])
    assert [key["fingerprint"] for key in json.loads(shown.stdout)] == [fpr("ed25519")]
    assert run_sql(db, "SELECT fingerprint FROM cks_keys") == [(fpr("ed25519"),)]
