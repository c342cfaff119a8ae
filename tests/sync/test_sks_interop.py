"""CKS against a real SKS 1.1.6 node: cks_sync pushes to it, and CKS's key hash is SKS's."""

import pytest

from cks.openpgp.keys import parse_keyring, read_keys, sks_hash
from support import DEBIAN_KEYRING, fixture
from support.mails import flooded_key
from support.procs import tool
from support.server import Cksd
from support.sks import sks_node


@pytest.fixture(scope="module")
def debian_keys():
    with open(DEBIAN_KEYRING, "rb") as handle:
        return parse_keyring(handle.read()).keys


def test_sks_accepts_what_cks_sync_pushes(new_db, tmp_path, debian_keys):
    """A v6 key in the batch too: SKS 1.1.6 answers 200 ("Add failed") and
    drops it, taking the others."""
    keys = debian_keys[:25]
    keyring = tmp_path / "some.gpg"
    keyring.write_bytes(b"".join(k.serialize() for k in keys))
    with sks_node(tmp_path / "sks") as sks, Cksd(new_db("a")) as a:
        db = ["--db", a.db_url]
        assert tool("cks_admin.py", db + ["load", str(keyring)]).returncode == 0
        assert a.add(fixture("rsa2048"))[0] == 200
        assert a.add(fixture("rfc9580-v6-sample"))[0] == 200
        peer = "%s:%d" % (sks.url.split("//")[1].split(":")[0], sks.hkp_port)
        assert tool("cks_sync_manage.py", db + ["add", peer]).returncode == 0
        run = tool("cks_sync.py", db)
        assert run.returncode == 0, run.stderr
        assert run.stdout.decode().strip() == "%s: sent 27 keys" % peer
        for key in keys + read_keys(fixture("rsa2048")).keys:
            assert sks.get_key(key.fingerprint.hex().upper()) is not None
        assert sks.key_count() == 26
        again = tool("cks_sync.py", db + ["--quiet"])
        assert again.returncode == 0 and again.stdout == b""


def test_our_key_hash_is_the_one_sks_computes(tmp_path, debian_keys):
    keys = debian_keys[100:140] + [k for n in ("certified", "photo", "revoked-parts", "dsa-elg",
                                               "multi-uid") for k in read_keys(fixture(n)).keys]
    keyring = tmp_path / "some.gpg"
    keyring.write_bytes(b"".join(k.serialize() for k in keys))
    with sks_node(tmp_path / "sks", [keyring]) as sks:
        for key in keys:
            digest = sks_hash(key).hex().upper()
            answer = sks.hkp_get("/pks/lookup?op=hget&options=mr&search=" + digest)
            assert answer.status == 200, key.fingerprint.hex()
            (served,) = read_keys(answer.body).keys
            assert served.fingerprint == key.fingerprint


def test_a_key_over_sks_size_limit_is_refused_and_the_others_reach_it(new_db, tmp_path):
    """SKS 1.1.6 closes the connection, unanswered, on an upload over 5 MiB:
    a flooded key that big is refused for good; the keys sent with it are not
    held up behind it, run after run."""
    flooded = read_keys(flooded_key(fixture("rsa4096"), 6 << 20)).keys[0]
    small = [read_keys(fixture(name)).keys[0] for name in ("rsa2048", "nistp256")]
    keyring = tmp_path / "three.gpg"
    keyring.write_bytes(b"".join(k.serialize() for k in small + [flooded]))
    db = ["--db", new_db("a")]
    assert tool("cks_admin.py", db + ["load", str(keyring)]).returncode == 0
    with sks_node(tmp_path / "sks") as sks:
        peer = "%s:%d" % (sks.url.split("//")[1].split(":")[0], sks.hkp_port)
        assert tool("cks_sync_manage.py", db + ["add", peer]).returncode == 0
        run = tool("cks_sync.py", db)
        assert run.returncode == 0, run.stderr
        assert run.stdout.decode().splitlines() == [
            "%s: sent 2 keys" % peer,
            "%s: refused %s for good: connection closed by the peer, unanswered (twice, to "
            "this key alone, while the peer took other keys)"
            % (peer, flooded.fingerprint.hex().upper())]
        for key in small:
            assert sks.get_key(key.fingerprint.hex().upper()) is not None
        assert sks.key_count() == 2
