"""Signature verdicts side by side: `gpg --check-sigs` and cks.openpgp.verify.

Both sides describe each signature by a `SigId`: (primary fingerprint,
component, signature type, creation time, issuer key ID), the component
being ("key",), ("sub", subkey fingerprint) or ("id", RIPEMD-160 of the user
ID or attribute body: GnuPG's uid hash).  Verdicts use GnuPG's letters:
'!' good, '-' bad, '%' error or unsupported, '?' no issuer key.

GnuPG reads the keyring as it is (`--no-default-keyring --keyring FILE`):
an import would drop parts without a valid self-signature and with them the
very verdicts to compare.
"""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Dict, Iterable, List, Optional, Tuple

from cks.crypto.hashes import new_hash
from cks.openpgp import packet as pk
from cks.openpgp.keypacket import PublicKey
from cks.openpgp.keys import Component, Key, SignaturePacket
from cks.openpgp.signature import Signature
from cks.openpgp.verify import UNSUPPORTED, verify
from support.gpg import GnuPG

SigId = Tuple[str, tuple, int, int, str]
Verdicts = Dict[SigId, List[str]]


def self_signatures_only(data: bytes) -> bytes:
    """Binary keyring `data` without the signatures not issued by their primary
    key (by key ID, as GnuPG tells self-signatures), in the original order."""
    out = []
    primary: Optional[PublicKey] = None
    for packet in pk.iter_packets(data):
        if packet.tag == pk.TAG_PUBLIC_KEY:
            primary = PublicKey.parse(packet.body)
        elif packet.tag == pk.TAG_SIGNATURE and primary is not None \
                and Signature.parse(packet.body).issuer_keyid != primary.keyid:
            continue
        out.append(packet.serialize())
    return b"".join(out)


def keyring_path(gpg: GnuPG, data: bytes) -> str:
    """`data` written as a keyring file in gpg's home."""
    path = os.path.join(gpg.home, "keyring.gpg")
    with open(path, "wb") as handle:
        handle.write(data)
    return path


def check_sigs_args(path: str) -> List[str]:
    return ["--no-default-keyring", "--keyring", path, "--with-colons", "--check-sigs"]


def gpg_verdicts(gpg: GnuPG, data: bytes) -> Verdicts:
    """What `gpg --check-sigs` says of every signature in binary keyring `data`."""
    out = gpg.run(check_sigs_args(keyring_path(gpg, data)), timeout=300).stdout
    verdicts: Verdicts = defaultdict(list)
    fingerprint, component, pending = "", ("key",), ""
    for line in out.decode("utf-8", "replace").splitlines():
        f = line.split(":")
        if f[0] in ("pub", "sub"):
            pending = f[0]
        elif f[0] == "fpr" and pending:
            if pending == "pub":
                fingerprint, component = f[9], ("key",)
            else:
                component = ("sub", f[9])
            pending = ""
        elif f[0] in ("uid", "uat"):
            component = ("id", f[7])
        elif f[0] in ("sig", "rev"):
            verdicts[(fingerprint, component, int(f[10][:2], 16), int(f[5]), f[4])].append(f[1])
    return dict(verdicts)


def component_id(key: Key, component: Optional[Component]) -> tuple:
    if component is None:
        return ("key",)
    if isinstance(component.value, PublicKey):
        return ("sub", component.value.fingerprint.hex().upper())
    digest = new_hash(3)
    digest.update(component.packet.body)
    return ("id", digest.hexdigest().upper())


def signatures(key: Key) -> Iterable[Tuple[Optional[Component], SignaturePacket]]:
    """Every (component, signature packet) of `key`; component None for direct ones."""
    for entry in key.direct_sigs:
        yield None, entry
    for component in key.identities + key.subkeys:
        for entry in component.sigs:
            yield component, entry


def cks_verdicts(keys: Iterable[Key], issuers: Dict[bytes, PublicKey]) -> Verdicts:
    """Our verdict on every signature whose issuer key ID is in `issuers`."""
    verdicts: Verdicts = defaultdict(list)
    for key in keys:
        fingerprint = key.fingerprint.hex().upper()
        for component, entry in signatures(key):
            sig = entry.sig
            keyid = sig.issuer_keyid or b""
            issuer = issuers.get(keyid)
            if issuer is None:
                letter = "?"
            else:
                verdict = verify(key, component, sig, issuer)
                letter = "!" if verdict.valid else "%" if verdict.status == UNSUPPORTED else "-"
            verdicts[(fingerprint, component_id(key, component), sig.sig_type, sig.created or 0,
                      keyid.hex().upper())].append(letter)
    return dict(verdicts)


def disagreements(ours: Verdicts, theirs: Verdicts) -> Dict[SigId, Tuple[list, list]]:
    """Signatures on which the two sides differ (compared as sorted lists)."""
    out = {}
    for sig_id in set(ours) | set(theirs):
        mine, gpgs = sorted(ours.get(sig_id, [])), sorted(theirs.get(sig_id, []))
        if mine != gpgs:
            out[sig_id] = (mine, gpgs)
    return out
