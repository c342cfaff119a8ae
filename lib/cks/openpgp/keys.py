"""Transferable public keys: grouping packets into keys, canonical form, merge, SKS hash.

A key is its primary key packet, the signatures directly on it, its user IDs
and user attributes with their signatures, and its subkeys with theirs.  The
canonical form CKS stores and serves has every packet once (de-duplicated by
tag and body, as SKS's yminsky.dedup does) in a deterministic order, so merge
is a set union: idempotent, commutative and associative down to the byte.

A signature, user attribute or subkey packet that cannot be read (an unknown
version, a truncated MPI) is kept as sent, with the component it belongs to
(`unread`, `unread_components`): SKS and Hockeypuck keep every packet of a key
and hash them all, so a key stored without it would have another SKS hash
than theirs, and they would fetch it from us again at every round.  Nothing
unread is ever served: the served view (served.py) is made of what was read.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Tuple

from . import packet as pk
from .errors import PGPError, PacketError
from .keypacket import PublicKey
from .packet import Packet
from .signature import DIRECT_KEY, KEY_REVOCATION, Signature
from .userid import UserAttribute, UserID

MESSAGE_TAGS = frozenset({pk.TAG_PKESK, pk.TAG_SKESK, pk.TAG_ONE_PASS_SIG, pk.TAG_COMPRESSED,
                          pk.TAG_SED, pk.TAG_LITERAL, pk.TAG_SEIPD, pk.TAG_MDC, pk.TAG_AEAD})
# Packets a keyserver drops without comment: markers, padding, local trust.
IGNORED_TAGS = frozenset({pk.TAG_MARKER, pk.TAG_PADDING, pk.TAG_TRUST})
_KEY_SIG_TYPES = frozenset({DIRECT_KEY, KEY_REVOCATION})  # over the primary key alone


@dataclass
class SignaturePacket:
    """A signature packet with its parsed form."""

    packet: Packet
    sig: Signature

    @property
    def sort_key(self) -> Tuple[int, bytes]:
        return (self.sig.created or 0, self.packet.body)


@dataclass
class Component:
    """A user ID, user attribute or subkey, and the signatures on it."""

    packet: Packet
    value: object  # UserID, UserAttribute or PublicKey; None in Key.unread_components
    sigs: List[SignaturePacket] = field(default_factory=list)
    unread: List[Packet] = field(default_factory=list)  # signatures on it that cannot be read


@dataclass
class Key:
    """One transferable public key."""

    primary: Packet
    public_key: PublicKey
    direct_sigs: List[SignaturePacket] = field(default_factory=list)
    identities: List[Component] = field(default_factory=list)  # user IDs and attributes
    subkeys: List[Component] = field(default_factory=list)
    skipped: int = 0  # packets read past parse_keyring's `max_packets`, and not kept
    unread: List[Packet] = field(default_factory=list)  # direct signatures that cannot be read
    unread_components: List[Component] = field(default_factory=list)
    """User attributes and subkeys that cannot be read, their signatures all in `unread`."""

    @property
    def fingerprint(self) -> bytes:
        return self.public_key.fingerprint

    @property
    def keyid(self) -> bytes:
        return self.public_key.keyid

    @property
    def user_ids(self) -> List[Component]:
        return [c for c in self.identities if c.packet.tag == pk.TAG_USER_ID]

    @property
    def attributes(self) -> List[Component]:
        return [c for c in self.identities if c.packet.tag == pk.TAG_USER_ATTRIBUTE]

    @property
    def key_sigs(self) -> List[SignaturePacket]:
        """The signatures over the primary key alone (direct-key, 0x1F, and
        key revocations, 0x20): `direct_sigs`, then those placed after a user
        ID or subkey, which GnuPG and Sequoia take as the key's too (`sq key
        generate` writes its revocation certificate apart: appended to the
        key, it follows the last subkey).  The network view keeps each where
        it came, as SKS does; the served view and the key's description
        take them all (until 2026-12-06 a revocation so placed was never
        served)."""
        placed_late = [e for c in self.identities + self.subkeys for e in c.sigs
                       if e.sig.sig_type in _KEY_SIG_TYPES]
        return self.direct_sigs + placed_late

    def packets(self) -> List[Packet]:
        """Every packet of the key, in order (those that cannot be read
        after those read, each with its component)."""
        out = [self.primary]
        out.extend(s.packet for s in self.direct_sigs)
        out.extend(self.unread)
        unread_identities = [c for c in self.unread_components
                             if c.packet.tag == pk.TAG_USER_ATTRIBUTE]
        unread_subkeys = [c for c in self.unread_components
                          if c.packet.tag != pk.TAG_USER_ATTRIBUTE]
        for component in self.identities + unread_identities + self.subkeys + unread_subkeys:
            out.append(component.packet)
            out.extend(s.packet for s in component.sigs)
            out.extend(component.unread)
        return out

    def serialize(self) -> bytes:
        """The key as binary OpenPGP data."""
        return b"".join(p.serialize() for p in self.packets())

    def is_self_issued(self, sig: Signature) -> bool:
        """Structurally issued by this key: its fingerprint or key ID is named."""
        fingerprint = sig.issuer_fingerprint
        if fingerprint is not None:
            return fingerprint == self.fingerprint
        return sig.issuer_keyid == self.keyid


@dataclass
class Problem:
    """Something wrong with the input, said in one line."""

    message: str
    fingerprint: Optional[bytes] = None
    fatal: bool = True  # False: a packet was dropped, the key itself is fine

    def __str__(self) -> str:
        if self.fingerprint:
            return "key %s: %s" % (self.fingerprint.hex().upper(), self.message)
        return self.message


@dataclass
class ReadResult:
    keys: List[Key] = field(default_factory=list)
    problems: List[Problem] = field(default_factory=list)


class _KeyBuilder:
    """Groups a packet stream into keys (RFC 9580 section 10.1), one key at a time."""

    def __init__(self, result: ReadResult, max_packets: Optional[int] = None) -> None:
        self.result = result
        self.max_packets = max_packets
        self.kept = 0  # packets of the current key
        self.key: Optional[Key] = None
        self.broken = False  # the current key was refused: skip to the next primary
        self.current: Optional[Component] = None
        self.stray_signatures = 0

    def problem(self, message: str, fatal: bool) -> None:
        fingerprint = self.key.fingerprint if self.key is not None else None
        self.result.problems.append(Problem(message, fingerprint, fatal))
        if fatal:
            self.key = None
            self.broken = True

    def feed(self, packet: Packet) -> None:
        tag = packet.tag
        if tag in IGNORED_TAGS or tag >= 40:
            return  # non-critical unknown tags (40-63) are dropped, RFC 9580 4.3
        if tag == pk.TAG_PUBLIC_KEY:
            self.finish()
            self.broken = False
            try:
                public_key = PublicKey.parse(packet.body)
            except PacketError as exc:
                self.broken = True
                self.result.problems.append(Problem("unusable primary key: %s" % exc))
                return
            self.key = Key(packet.canonical(), public_key)
            self.kept = 1
            self.current = None
            return
        if tag == pk.TAG_SECRET_KEY:
            self.finish()
            self.broken = True
            self.result.problems.append(Problem(
                "secret key material refused: send only your public key"))
            return
        if self.broken:
            return
        if self.key is None:
            if tag in MESSAGE_TAGS:
                self.broken = True
                self.result.problems.append(Problem(
                    "this is an OpenPGP message, not a public key"))
            elif tag == pk.TAG_SIGNATURE:
                self.stray_signatures += 1
            else:
                self.broken = True
                self.result.problems.append(Problem(
                    "packet tag %d before the first public key packet" % tag))
            return
        if self.max_packets is not None and self.kept >= self.max_packets:
            self.key.skipped += 1  # (over the limit: counted, not parsed or kept)
            return
        self.kept += 1
        if tag == pk.TAG_SIGNATURE:
            self._signature(packet)
        elif tag == pk.TAG_USER_ID:
            self.current = Component(packet.canonical(), UserID.parse(packet.body))
            self.key.identities.append(self.current)
        elif tag == pk.TAG_USER_ATTRIBUTE:
            self._component(packet, UserAttribute, self.key.identities, "user attribute")
        elif tag == pk.TAG_PUBLIC_SUBKEY:
            self._component(packet, PublicKey, self.key.subkeys, "subkey")
        elif tag == pk.TAG_SECRET_SUBKEY:
            self.problem("secret key material refused: send only your public key", True)
        elif tag in MESSAGE_TAGS:
            self.problem("OpenPGP message data inside a key", True)
        else:
            self.problem("unknown critical packet tag %d: the key is malformed" % tag, True)

    def _component(self, packet: Packet, kind, into: List[Component], what: str) -> None:
        assert self.key is not None
        try:
            value = kind.parse(packet.body)
        except PacketError as exc:
            self.problem("a %s that cannot be read, kept for the keyserver peers and not "
                         "served with its signatures: %s" % (what, exc), False)
            self.current = Component(packet.canonical(), None)
            self.key.unread_components.append(self.current)
            return
        self.current = Component(packet.canonical(), value)
        into.append(self.current)

    def _signature(self, packet: Packet) -> None:
        assert self.key is not None
        target = self.current
        unread = self.key.unread if target is None else target.unread
        if target is not None and target.value is None:
            unread.append(packet.canonical())  # (on a component that cannot be read)
            return
        try:
            sig = Signature.parse(packet.body)
        except PacketError as exc:
            self.problem("a signature that cannot be read, kept for the keyserver peers and "
                         "not served: %s" % exc, False)
            unread.append(packet.canonical())
            return
        entry = SignaturePacket(packet.canonical(), sig)
        if target is None:
            self.key.direct_sigs.append(entry)
        else:
            target.sigs.append(entry)

    def finish(self) -> None:
        if self.key is not None and not self.broken:
            self.result.keys.append(canonicalize(self.key))
        self.key = None
        self.current = None

    def fail(self, message: str) -> None:
        """The framing broke: the key being read is lost."""
        if self.key is not None:
            self.problem("%s; the key is incomplete and was skipped" % message, True)
        else:
            self.result.problems.append(Problem(message))
        self.broken = True


def parse_keyring(data: bytes, result: Optional[ReadResult] = None,
                  max_packets: Optional[int] = None) -> ReadResult:
    """Keys from binary OpenPGP data (a keyring, an export, a key file).  With
    `max_packets`, a key keeps that many packets at most and counts the rest
    (Key.skipped): a flood of signatures is refused over its limit without
    each being parsed and held first."""
    result = result if result is not None else ReadResult()
    builder = _KeyBuilder(result, max_packets)
    pos, end = 0, len(data)
    try:
        while pos < end:
            packet, pos = pk.read_packet(data, pos, framing=False)  # stored canonical
            builder.feed(packet)
    except PacketError as exc:
        if _tag_at(data, pos) in (pk.TAG_PUBLIC_KEY, pk.TAG_SECRET_KEY):
            builder.finish()  # the key read so far is whole: the broken packet starts the next
            builder.fail("%s; the key starting there is incomplete and was skipped" % exc)
        else:
            builder.fail(str(exc))
    builder.finish()
    if builder.stray_signatures and not result.keys:
        result.problems.append(Problem(
            "only signatures, no public key: signatures are sent with the key they belong "
            "to (a revocation certificate: gpg --import it, then gpg --send-keys)"))
    return result


def _tag_at(data: bytes, pos: int) -> Optional[int]:
    """The tag of the packet whose header starts at `pos`, if it has one."""
    ctb = data[pos] if pos < len(data) else 0
    return pk.tag_of(ctb) if ctb & 0x80 else None


_REFUSED_ARMOR = {
    "PRIVATE KEY BLOCK": "secret key material refused: send only your public key",
    "SECRET KEY BLOCK": "secret key material refused: send only your public key",
    "MESSAGE": "this is an OpenPGP message, not a public key",
    "SIGNATURE": "this is a detached signature, not a public key",
    "SIGNED MESSAGE": "this is a signed message, not a public key",
}


UTF8_BOM = b"\xef\xbb\xbf"


def is_binary(head: bytes) -> bool:
    """Whether data whose first non-blank bytes are `head` (3 at least, if it
    has them) is binary OpenPGP data, not text: bit 7 of the first byte set,
    but for a UTF-8 byte-order mark, which editors put at a text file's start
    (no packet starts with 0xEF: tag 47 is unassigned)."""
    return bool(head) and head[0] & 0x80 != 0 and not head.startswith(UTF8_BOM)


def read_keys(data: bytes, max_packets: Optional[int] = None) -> ReadResult:
    """Keys from armored text (any number of blocks, text around them) or binary
    data, told apart by the first non-blank bytes (is_binary; see
    parse_keyring for `max_packets`)."""
    stripped = data.lstrip()
    if not stripped:
        return ReadResult(problems=[Problem("no key data (empty input)")])
    if is_binary(stripped[:3]):
        return parse_keyring(data, max_packets=max_packets)
    return read_armored(data, max_packets)


def read_armored(text: bytes, max_packets: Optional[int] = None) -> ReadResult:
    """Keys from every PUBLIC KEY BLOCK in `text`, the text around the blocks
    ignored whatever its first byte is: a mail's text may start with a
    byte-order mark or a non-ASCII letter, which read_keys takes for binary."""
    from . import armor  # local import keeps the packet layer independent of armor

    result = ReadResult()
    blocks, errors = armor.scan(text)
    result.problems.extend(Problem(str(e)) for e in errors)
    if not blocks and not errors:
        result.problems.append(Problem("no OpenPGP data found: expected an armored "
                                       "PUBLIC KEY BLOCK or binary key data"))
    for block in blocks:
        if block.kind == armor.PUBLIC_KEY_BLOCK:
            parse_keyring(block.data, result, max_packets)
        else:
            result.problems.append(Problem(armor_refusal(block.kind)))
    return result


def armor_refusal(kind: str) -> str:
    """Why an armor block of `kind`, not a PUBLIC KEY BLOCK, gives no key."""
    return _REFUSED_ARMOR.get(kind) or "unsupported armor block 'PGP %s'" % kind


# --- canonical form and merge --------------------------------------------------

def _sorted_sigs(sigs: Iterable[SignaturePacket]) -> List[SignaturePacket]:
    unique: Dict[bytes, SignaturePacket] = {}
    for entry in sigs:
        unique.setdefault(entry.packet.body, entry)
    return sorted(unique.values(), key=lambda s: s.sort_key)


def _sorted_packets(packets: Iterable[Packet]) -> List[Packet]:
    """Packets of one tag (the unread signatures of one component), each once."""
    return sorted({p.body: p for p in packets}.values(), key=lambda p: p.body)


def _merged_components(components: Iterable[Component]) -> List[Component]:
    """Components de-duplicated by (tag, body), their signatures united."""
    merged: Dict[Tuple[int, bytes], Component] = {}
    for component in components:
        slot = (component.packet.tag, component.packet.body)
        existing = merged.get(slot)
        if existing is None:
            merged[slot] = Component(component.packet, component.value, list(component.sigs),
                                     list(component.unread))
        else:
            existing.sigs.extend(component.sigs)
            existing.unread.extend(component.unread)
    out = list(merged.values())
    for component in out:
        component.sigs = _sorted_sigs(component.sigs)
        component.unread = _sorted_packets(component.unread)
    return out


def _identity_order(key: Key, component: Component) -> Tuple[int, int, bytes]:
    """User IDs first, then attributes; each in the order their owner made them."""
    self_times = [s.sig.created or 0 for s in component.sigs if key.is_self_issued(s.sig)]
    return (component.packet.tag, min(self_times) if self_times else 1 << 63,
            component.packet.body)


def canonicalize(key: Key) -> Key:
    """The key in canonical form: each packet once, in a deterministic order."""
    out = Key(key.primary, key.public_key, _sorted_sigs(key.direct_sigs), skipped=key.skipped,
              unread=_sorted_packets(key.unread))
    out.identities = sorted(_merged_components(key.identities),
                            key=lambda c: _identity_order(out, c))
    out.subkeys = sorted(_merged_components(key.subkeys),
                         key=lambda c: (c.value.created, c.packet.body))
    out.unread_components = sorted(_merged_components(key.unread_components),
                                   key=lambda c: (c.packet.tag, c.packet.body))
    return out


def merge(first: Key, second: Key) -> Key:
    """The union of two copies of the same key (same primary key packet)."""
    if first.primary.body != second.primary.body:
        raise PGPError("cannot merge different keys %s and %s"
                       % (first.fingerprint.hex().upper(), second.fingerprint.hex().upper()))
    return canonicalize(Key(first.primary, first.public_key,
                            first.direct_sigs + second.direct_sigs,
                            first.identities + second.identities,
                            first.subkeys + second.subkeys, first.skipped + second.skipped,
                            first.unread + second.unread,
                            first.unread_components + second.unread_components))


def merge_all(keys: Iterable[Key]) -> List[Key]:
    """Keys with the same primary key merged; first-seen order kept."""
    by_primary: Dict[bytes, Key] = {}
    for key in keys:
        existing = by_primary.get(key.primary.body)
        by_primary[key.primary.body] = key if existing is None else merge(existing, key)
    return list(by_primary.values())


def sks_hash(key: Key) -> bytes:
    """SKS's key hash of a key (see packets_hash)."""
    return packets_hash(key.packets())


def packets_hash(packets: Iterable[Packet]) -> bytes:
    """SKS's key hash: MD5 over the packets sorted by (tag, body), each written as
    int32 tag, int32 length, body (SKS 1.1.6 keyHash.ml)."""
    digest = hashlib.md5()
    for packet in sorted(packets, key=lambda p: (p.tag, p.body)):
        digest.update(packet.tag.to_bytes(4, "big"))
        digest.update(len(packet.body).to_bytes(4, "big"))
        digest.update(packet.body)
    return digest.digest()
