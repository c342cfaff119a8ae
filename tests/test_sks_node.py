"""bench/sks_node.py against the real Debian sks 1.1.6.

Skipped unless sks_node.sks_available() (root, /usr/sbin/sks, unshare);
with CI=true a missing sks (or gpg, or Debian keyring) fails instead.
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
if BENCH not in sys.path:
    sys.path.insert(0, BENCH)

import sks_node  # noqa: E402
from sks_node import SksNode, read_keyring, sks_available  # noqa: E402

DEBIAN_KEYRING = "/usr/share/keyrings/debian-keyring.gpg"
SYSTEM_PATHS = ("/etc/sks", "/var/lib/sks", "/var/log/sks")


def _require(condition: bool, what: str) -> None:
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail("%s (CI=true: not skipping)" % what)
    pytest.skip(what)


@pytest.fixture(scope="module", autouse=True)
def _needs_sks():
    _require(sks_available(), "sks not available (need /usr/sbin/sks, root, unshare)")
    _require(shutil.which("gpg") is not None, "gpg not installed")
    _require(os.path.exists(DEBIAN_KEYRING), "debian-keyring not installed")


@pytest.fixture(scope="module")
def debian_keys():
    return read_keyring(DEBIAN_KEYRING)


@pytest.fixture
def gpg_export(tmp_path):
    """gpg --export from the Debian keyring, in a throw-away GNUPGHOME."""
    home = tempfile.mkdtemp(prefix="cks-gpg-")
    os.chmod(home, 0o700)

    def export(fingerprints, armor=False):
        cmd = ["gpg", "--homedir", home, "--batch", "--no-tty", "--quiet",
               "--no-default-keyring", "--keyring", DEBIAN_KEYRING, "--export"]
        if armor:
            cmd.insert(-1, "--armor")
        r = subprocess.run(cmd + list(fingerprints), capture_output=True, timeout=60)
        assert r.returncode == 0 and r.stdout, r.stderr.decode(errors="replace")
        return r.stdout

    yield export
    subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], capture_output=True)
    shutil.rmtree(home, ignore_errors=True)


def free_ports(address, n=2):
    """*n* distinct TCP ports currently free on *address* (other tests may
    run SKS nodes at the same time, so never hard-code ports)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            socks.append(s)
            s.bind((address, 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def snapshot_system_paths():
    out = {}
    for p in SYSTEM_PATHS:
        try:
            out[p] = sorted(os.listdir(p))
        except OSError:
            out[p] = None
    return out


def gone(pid):
    """True if *pid* no longer exists (or is a zombie about to be reaped)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def assert_stopped(node, pids):
    assert not node.running
    assert node.pids == {}
    assert node.find_processes() == []
    assert all(gone(p) for p in pids), pids


def fingerprints_of(armored_text):
    return [k.fingerprint for k in read_keyring(armored_text.encode())]


def test_node_get_and_add(tmp_path, debian_keys, gpg_export):
    before = snapshot_system_paths()
    loaded, new = debian_keys[:3], debian_keys[3]
    keyring = tmp_path / "three.gpg"
    keyring.write_bytes(gpg_export([k.fingerprint for k in loaded]))

    hkp, recon = free_ports("127.0.0.2")
    node = SksNode(tmp_path / "node", hkp, recon, address="127.0.0.2",
                   keyring_files=[keyring])
    with node:
        assert node.url == "http://127.0.0.2:%d" % node.hkp_port
        pids = list(node.pids.values())
        assert len(pids) == 2
        assert sorted(node.find_processes()) == sorted(pids)

        # op=get by 64-bit key ID returns the armored key.
        for k in loaded:
            r = node.hkp_get("/pks/lookup?op=get&search=0x%s&options=mr" % k.keyid)
            assert r.status == 200, r.text[:300]
            assert r.headers["content-type"].startswith("application/pgp-keys")
            assert r.text.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
            assert fingerprints_of(r.text) == [k.fingerprint]

        # Absent key: 404.
        assert node.hkp_get("/pks/lookup?op=get&search=0x%s" % new.keyid).status == 404
        assert node.get_key(new.keyid) is None
        assert node.key_count() == 3

        # /pks/add accepts another Debian key, which can then be fetched.
        armored = gpg_export([new.fingerprint], armor=True).decode()
        r = node.add_key(armored)
        assert r.status == 200
        assert "added" in r.text.lower()
        got = node.get_key(new.fingerprint)
        assert got is not None and fingerprints_of(got) == [new.fingerprint]
        assert node.key_count() == 4

        # Our own armor() output is accepted too (idempotent re-add).
        assert node.add_key(sks_node.armor(new.data)).status == 200

    assert_stopped(node, pids)
    node.stop()  # idempotent
    assert os.path.exists(tmp_path / "node" / "log" / "db.log")
    assert snapshot_system_paths() == before


def test_two_nodes_at_once(tmp_path, debian_keys, gpg_export):
    """127.0.0.2 and 127.0.0.3 side by side, each the other's recon peer."""
    before = snapshot_system_paths()
    keyring = tmp_path / "two.gpg"
    keyring.write_bytes(gpg_export([k.fingerprint for k in debian_keys[10:12]]))
    ha, ra = free_ports("127.0.0.2")
    hb, rb = free_ports("127.0.0.3")

    a = SksNode(tmp_path / "a", ha, ra, address="127.0.0.2", keyring_files=[keyring],
                membership=[("127.0.0.3", rb)], gossip_interval_min=60)
    b = SksNode(tmp_path / "b", hb, rb, address="127.0.0.3",
                membership=["127.0.0.2 %d" % ra], gossip_interval_min=60)
    pids = []
    try:
        t0 = time.monotonic()
        a.start()
        b.start()
        startup = time.monotonic() - t0
        pids = list(a.pids.values()) + list(b.pids.values())
        assert len(set(pids)) == 4
        assert sorted(a.find_processes()) == sorted(a.pids.values())
        assert sorted(b.find_processes()) == sorted(b.pids.values())

        kid = debian_keys[10].keyid
        assert a.hkp_get("/pks/lookup?op=get&search=0x%s" % kid).status == 200
        assert b.hkp_get("/pks/lookup?op=get&search=0x%s" % kid).status == 404
        assert a.key_count() == 2
        assert b.key_count() == 0  # built empty

        # Each lists the other as gossip peer, and its own settings.
        sa = a.hkp_get("/pks/lookup?op=stats").text
        sb = b.hkp_get("/pks/lookup?op=stats").text
        assert "127.0.0.3 %d" % rb in sa and "127.0.0.2 %d" % ra in sb
        assert "Hostname:</td><td>127.0.0.2" in sa
        assert "Hostname:</td><td>127.0.0.3" in sb
        assert (tmp_path / "a" / "etc" / "membership").read_text() == "127.0.0.3 %d\n" % rb
        assert startup < 20, startup

        # The same workdir cannot be used by a second live node.
        with pytest.raises(sks_node.SksError, match="in use"):
            SksNode(tmp_path / "a", *free_ports("127.0.0.2")).start()
        assert a.running
    finally:
        b.stop()
        a.stop()
    assert_stopped(a, pids)
    assert_stopped(b, pids)
    assert snapshot_system_paths() == before
