"""Rejection notices: the signed statement that a node rejected or un-rejected a
key.  Pure functions: the text format, parsing, and checking the signature.

The signed text (UTF-8, LF line ends, nothing else):

    CKS rejection notice 1
    action: reject
    fingerprint: 0123456789ABCDEF0123456789ABCDEF01234567
    reason: spam
    time: 1795950000
    node: keys.example.org
    serial: 9F0C4E1AB2D3C4E5F60718293A4B5C6D

`serial` (128 random bits) names the notice: the same text seen before is a
replay (rejection.receive).  The operator signs the text with a detached OpenPGP signature
(`gpg --armor --detach-sign`); receivers verify it with CKS's own verifier.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from typing import Optional, Sequence, Tuple

from .openpgp.armor import encode, scan, sole_block
from .openpgp.errors import PGPError
from .openpgp.keys import Key
from .openpgp.packet import TAG_SIGNATURE, iter_packets
from .openpgp.signature import Signature
from .openpgp.verify import Verdict, verify_document
from .openpgp import signature as sg

HEADER = "CKS rejection notice 1"
ACTIONS = ("reject", "unreject")
MAX_NOTICE_BYTES = 4096
# A detached signature packet: an RSA-16384 one with its usual subpackets is 2.1 KB;
# more is a stranger's padding, kept as long as the notice is
MAX_SIGNATURE_BYTES = 8192
_FIELDS = ("action", "fingerprint", "reason", "time", "node", "serial")
_HEX = re.compile(r"[0-9A-F]+")  # (fullmatch: `$` takes a final newline)
_TIME = re.compile(r"[0-9]{1,19}")  # ASCII digits only (str.isdigit takes '²' and '١')
MAX_TIME = 2 ** 63 - 1  # a notice's time fits a signed 64-bit integer (the databases' bigint)


class NoticeError(ValueError):
    """Text that is not a well-formed rejection notice, or a bad signature block."""


@dataclass(frozen=True)
class Notice:
    action: str
    fingerprint: str
    reason: str
    time: int
    node: str
    serial: str

    def render(self) -> str:
        return HEADER + "\n" + "".join("%s: %s\n" % (name, getattr(self, name))
                                       for name in _FIELDS)


def room_for_reason(notice: Notice) -> int:
    """The most bytes (UTF-8) of reason `notice` can hold within MAX_NOTICE_BYTES."""
    return MAX_NOTICE_BYTES - len(replace(notice, reason="").render().encode("utf-8"))


def new_serial() -> str:
    return os.urandom(16).hex().upper()


def normalize_fingerprint(text: str) -> str:
    """A fingerprint as people write it ('0x', spaces, lower case) -> upper-case hex."""
    bare = text.replace(" ", "").upper()
    if bare.startswith("0X"):
        bare = bare[2:]
    if len(bare) not in (32, 40, 64) or not _HEX.fullmatch(bare):
        raise NoticeError("%r is not a fingerprint (32, 40 or 64 hex digits)" % text)
    return bare


def parse(text: str) -> Notice:
    """The notice in `text` (exactly the signed form); NoticeError otherwise."""
    if len(text.encode("utf-8")) > MAX_NOTICE_BYTES:
        raise NoticeError("notice over %d bytes" % MAX_NOTICE_BYTES)
    lines = text.split("\n")
    if lines[-1] != "" or len(lines) != len(_FIELDS) + 2 or lines[0] != HEADER:
        raise NoticeError("not a CKS rejection notice (version 1)")
    values = {}
    for name, line in zip(_FIELDS, lines[1:-1]):
        prefix = name + ": "
        if not line.startswith(prefix) or "\r" in line:
            raise NoticeError("notice field %r expected" % name)
        values[name] = line[len(prefix):]
    if values["action"] not in ACTIONS:
        raise NoticeError("notice action must be reject or unreject")
    if normalize_fingerprint(values["fingerprint"]) != values["fingerprint"]:
        raise NoticeError("notice fingerprint must be upper-case hex")
    if not _TIME.fullmatch(values["time"]) or int(values["time"]) > MAX_TIME:
        raise NoticeError("notice time must be seconds since 1970 (ASCII digits, below 2^63)")
    if not values["node"] or len(values["serial"]) != 32 or not _HEX.fullmatch(values["serial"]):
        raise NoticeError("notice node or serial malformed")
    return Notice(values["action"], values["fingerprint"], values["reason"],
                  int(values["time"]), values["node"], values["serial"])


def parse_signature(armored: str) -> Signature:
    """The one signature packet in an armored detached signature (as stored:
    one from before 2026-12-06 may have text around its block)."""
    blocks, errors = scan(armored)
    if errors or len(blocks) != 1 or blocks[0].kind != "SIGNATURE":
        raise NoticeError("expected one armored PGP SIGNATURE block")
    return _signature_packet(blocks[0].data)


def received_signature(armored: str) -> Tuple[Signature, str]:
    """The signature packet of a detached signature as received, and the armor
    to keep: the packet armored again, without the block's headers.  Anything
    but one armored block around one signature packet of at most
    MAX_SIGNATURE_BYTES is refused (until 2026-12-06 the text was kept as
    given: megabytes around the block were stored, and kept)."""
    try:
        block = sole_block(armored)
    except PGPError:
        block = None
    if block is None or block.kind != "SIGNATURE":
        raise NoticeError("expected one armored PGP SIGNATURE block and nothing else")
    if len(block.data) > MAX_SIGNATURE_BYTES:
        raise NoticeError("signature packet over %d bytes" % MAX_SIGNATURE_BYTES)
    return _signature_packet(block.data), encode(block.data, "SIGNATURE")


def _signature_packet(data: bytes) -> Signature:
    try:
        packets = list(iter_packets(data))
        if len(packets) != 1 or packets[0].tag != TAG_SIGNATURE:
            raise NoticeError("expected exactly one signature packet")
        return Signature.parse(packets[0].body)
    except PGPError as exc:
        raise NoticeError("unreadable signature: %s" % exc) from None


def signing_keys(key: Key) -> Sequence[Tuple[bytes, object]]:
    """(fingerprint, public key) of the primary key and its signing-capable
    subkeys (those whose newest binding has the sign flag)."""
    out = [(key.fingerprint, key.public_key)]
    for component in key.subkeys:
        bindings = [e.sig for e in component.sigs if e.sig.sig_type == sg.SUBKEY_BINDING]
        if bindings and (max(bindings, key=lambda s: s.created or 0).key_flags or 0) & 0x02:
            out.append((component.value.fingerprint, component.value))
    return out


def check_signature(body: str, sig: Signature, key: Key) -> Optional[Verdict]:
    """The verdict on `sig` over `body` by `key` (its primary key or a signing
    subkey named as issuer), or None when `sig` names another key.

    Subkeys count only as `key`'s served view has them (with a valid binding):
    pass the served view."""
    named_fpr, named_id = sig.issuer_fingerprint, sig.issuer_keyid
    for fingerprint, public in signing_keys(key):
        if (named_fpr is not None and named_fpr == fingerprint) or \
                (named_fpr is None and named_id is not None and named_id == public.keyid):
            return verify_document(body.encode("utf-8"), sig, public)
    return None
