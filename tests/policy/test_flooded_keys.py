"""A key others have filled up to this server's limits still takes its
owner's revocation (pipeline.merge_stored): what they added and is not
served is let go.  Until 2026-12-06 the owner's `gpg --send-keys` of the
revocation got "Provided object is too large" (413) for good, after a
stranger's uploads of certifications or of user IDs nobody signed (found by
a review of abuse at scale)."""

from __future__ import annotations

import os

import pytest

from cks.openpgp import packet as pk
from cks.openpgp import signature as sg
from cks.openpgp.keys import parse_keyring
from cks.openpgp.userid import UserID
from support.db import run_sql
from support.forge import CREATED, Signer, keyring
from support.gpg import GnuPG
from support.server import LOOPBACK_EXEMPT, Cksd

MAX_SIGNATURES = 40
MAX_KEY_BYTES = 30_000


def _certifications(key):
    """Certifications by a stranger on the key's user ID, enough to bring
    it to MAX_SIGNATURES (the stranger's key is not held: none is served)."""
    stranger, user_id = Signer.new(), key.user_ids[0].packet
    certifications = [stranger.sign(sg.CERT_GENERIC, key.public_key, UserID(user_id.body),
                                    created=CREATED + n)
                      for n in range(MAX_SIGNATURES - 1)]
    return keyring([pk.Packet(pk.TAG_PUBLIC_KEY, key.public_key.serialize()), user_id]
                   + [pk.Packet(pk.TAG_SIGNATURE, c.serialize()) for c in certifications])


def _unsigned_user_ids(key):
    """The key's primary and user IDs nobody signed, bringing its packets to
    50 bytes under MAX_KEY_BYTES (a signature is more)."""
    primary = pk.Packet(pk.TAG_PUBLIC_KEY, key.public_key.serialize())
    junk = [pk.Packet(pk.TAG_USER_ID, b"junk %d " % n + b"x" * 5000) for n in range(4)]
    room = MAX_KEY_BYTES - 50 - sum(len(p.body) for p in key.packets() + junk)
    return keyring([primary] + junk + [pk.Packet(pk.TAG_USER_ID, b"j" * room)])


@pytest.mark.parametrize("flood", [_certifications, _unsigned_user_ids])
def test_a_key_filled_by_others_takes_its_owners_revocation(db_url, tmp_path, flood):
    config = tmp_path / "cks.conf"
    config.write_text(LOOPBACK_EXEMPT + "[limits]\nmax_signatures_per_key = %d\n"
                      "max_key_bytes = %d\n" % (MAX_SIGNATURES, MAX_KEY_BYTES))
    with Cksd(db_url, config=str(config)) as server, \
            GnuPG(keyserver="hkp://127.0.0.1:%d" % server.port) as owner:
        owner.run(["--passphrase", "", "--pinentry-mode", "loopback", "--quick-gen-key",
                   "Owner <owner@example.org>", "ed25519", "sign", "never"])
        (fingerprint,) = owner.fingerprints()
        owner.run(["--send-keys", fingerprint])
        (key,) = parse_keyring(owner.run(["--export", fingerprint]).stdout).keys

        status, _, answer = server.request("POST", "/pks/add", flood(key),
                                           {"Content-Type": "application/pgp-keys"})
        assert status == 200 and answer.startswith(b"updated"), answer
        [(flooded,)] = run_sql(db_url, "SELECT keydata FROM cks_keys")
        assert len(bytes(flooded)) > 10 * len(key.serialize())

        revocation = os.path.join(owner.home, "openpgp-revocs.d", fingerprint + ".rev")
        with open(revocation, "rb") as file:  # (gpg writes its armor line as ":-----BEGIN")
            owner.run(["--import"], input=file.read().replace(b":-----BEGIN", b"-----BEGIN"))
        sent = owner.run(["--send-keys", fingerprint], check=False)
        assert sent.returncode == 0, sent.stderr.decode()

        [(stored,)] = run_sql(db_url, "SELECT keydata FROM cks_keys")
        (kept,) = parse_keyring(bytes(stored)).keys
        assert [e.sig.sig_type for e in kept.direct_sigs] == [sg.KEY_REVOCATION]
        assert len(bytes(stored)) < 2 * len(key.serialize())  # (the flood let go)
        with GnuPG(keyserver="hkp://127.0.0.1:%d" % server.port) as someone:
            someone.run(["--recv-keys", fingerprint])
            (listed,) = someone.show(someone.run(["--export", fingerprint]).stdout)
            assert listed["validity"] == "r"
        assert "what others added to the copy held here and is not served was let go" in \
            server.output()
