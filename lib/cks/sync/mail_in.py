"""Incoming sync mail from pks, SKS and CKS servers, read with the email package.

Pure functions: the raw message in, what it says out (kind, senders, the
X-KeyServer-Sent list, the key material); who may feed us and whom to forward
to are decided here from the peer addresses the caller passes.  A Subject
with the word "incremental" is a sync mail (SKS's procmail rule; pks wants
it first); a Subject starting with "ADD" is a user's submission (pks).
"""

from __future__ import annotations

import email
import email.errors
import email.feedparser
import email.parser
import functools
import re
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.message import Message
from email.policy import compat32
from email.utils import getaddresses
from typing import Iterable, List, Optional, Sequence

from ..openpgp.armor import encode, looks_armored
from ..openpgp.keys import is_binary
from .peername import without_root_dot

INCREMENTAL, ADD = "incremental", "add"
KEY_TYPES = ("application/pgp-keys", "application/pgp")
# A mail's X-KeyServer-Sent addresses taken (the first ones): they are copied
# into every mail that forwards its keys.  A chain of pks and CKS servers names
# a few; SKS names itself alone.
MAX_SENT_BY = 50
MAX_ADDRESS = 254  # characters: the longest an SMTP path allows (RFC 5321)
# A mail's MIME parts read at most: a peer's sync mail has one to a few.
MAX_MIME_PARTS = 1000


class BrokenMail(ValueError):
    """The mail's body cannot be read (its MIME parts nest too deeply, or
    there are too many of them)."""


@dataclass
class IncomingMail:
    kind: Optional[str]  # INCREMENTAL, ADD, or None: not a keyserver mail
    subject: str = ""
    message_id: str = ""
    senders: List[str] = field(default_factory=list)  # From:, then the envelope sender
    sent_by: List[str] = field(default_factory=list)  # X-KeyServer-Sent:, in order
    recipients: List[str] = field(default_factory=list)  # To: and Cc:
    raw: bytes = b""  # the whole mail, whose body is read only when its keys are asked for

    def named(self) -> List[str]:
        """Every address the mail names: these servers have the keys already."""
        return self.senders + self.sent_by + self.recipients

    @functools.cached_property
    def keytext(self) -> bytes:
        """Every text and key part, decoded, binary keys armored: text.  The
        body is parsed only here, once the sender is known to be let in: a
        stranger's mail of many thousand parts cost 1.4 GB and 40 s before
        its refusal until 2026-12-06.  BrokenMail for a body the email
        package cannot walk, or one of over MAX_MIME_PARTS parts (the parse
        stops there: 600,000 parts in a mail with a forged peer From: took
        459 MB and 14 s until 2026-12-07)."""
        try:
            return key_material(_parsed(self.raw))
        except RecursionError:  # (the email package recurses per level of nesting)
            raise BrokenMail("its MIME parts nest too deeply to be read") from None


def parse_mail(raw: bytes, envelope_sender: str = "") -> IncomingMail:
    """Read a mail's headers (its body waits for IncomingMail.keytext).
    `envelope_sender` is what the MTA says (e.g. $SENDER); else the
    Return-Path header or the mbox "From " line is used when present."""
    message = email.parser.BytesHeaderParser().parsebytes(_head(raw))
    subject = _text(message.get("Subject", ""))
    envelope = (_addresses_in([envelope_sender]) or _addresses(message, "Return-Path")
                or _unix_from(message))[:1]
    return IncomingMail(
        kind=mail_kind(subject),
        subject=subject,
        message_id=_text(message.get("Message-ID", "")).strip(),
        senders=list(dict.fromkeys(_addresses(message, "From") + envelope)),
        sent_by=_addresses(message, "X-KeyServer-Sent", MAX_SENT_BY),
        recipients=_addresses(message, "To") + _addresses(message, "Cc"),
        raw=raw)


def _head(raw: bytes) -> bytes:
    """The mail up to its first empty line, where its headers end: the header
    parser splits the body into lines too, 316 MB for a body of 600,000
    parts until 2026-12-07, even for a stranger's mail refused from them."""
    end = re.search(rb"(?:\A|\n)\r?\n", raw)
    return raw[:end.end()] if end else raw


def _parsed(raw: bytes) -> Message:
    """The whole mail parsed, fed to the parser a slice at a time: the email
    package's parsebytes holds the mail as a StringIO as well, 4 bytes a
    character (92 MB for a mail of 23 MB).  BrokenMail after MAX_MIME_PARTS."""
    parser = email.feedparser.BytesFeedParser(
        policy=compat32.clone(message_factory=_PartCounter(MAX_MIME_PARTS)))
    for start in range(0, len(raw), 1 << 16):
        parser.feed(raw[start:start + (1 << 16)])
    return parser.close()


class _PartCounter:
    """The parser's message factory: a Message for each part, BrokenMail for
    the one after the first `limit`, which ends the parse before the rest of
    the mail is built."""

    def __init__(self, limit: int) -> None:
        self.limit, self.made = limit, 0

    def __call__(self, policy=compat32) -> Message:
        if self.made == self.limit:
            raise BrokenMail("it has over %d MIME parts" % self.limit)
        self.made += 1
        return Message(policy=policy)


def mail_kind(subject: str) -> Optional[str]:
    if re.search(r"\bincremental\b", subject, re.I):
        return INCREMENTAL
    if re.match(r"\s*add\b", subject, re.I):
        return ADD
    return None


def key_material(message: Message) -> bytes:
    """The text of every text/* and application/pgp-keys part (transfer
    encodings undone), binary key parts armored, joined: armor text, for
    keys.read_armored (its first byte says nothing: a text may start with a
    byte-order mark or a non-ASCII letter)."""
    pieces = []
    for part in message.walk():
        if part.is_multipart():
            continue
        kind = part.get_content_type()
        if not (kind.startswith("text/") or kind in KEY_TYPES):
            continue
        payload = part.get_payload(decode=True) or b""
        if kind in KEY_TYPES and _binary(payload):
            payload = encode(payload).encode("ascii")
        pieces.append(payload)
    return b"\n".join(pieces)


def _binary(payload: bytes) -> bool:
    """Binary OpenPGP data (keys.is_binary), and not text with an armor block
    (after a line starting with a non-ASCII letter, say)."""
    return is_binary(payload.lstrip()[:3]) and not looks_armored(payload)


def authorizing_peer(mail: IncomingMail, peers: Iterable[str]) -> Optional[str]:
    """The mail peer (as listed) that vouches for this mail: its sender, its
    envelope sender or one of its X-KeyServer-Sent addresses; None if none is."""
    by_address = {_mailbox(p): p for p in peers}
    for address in mail.senders + mail.sent_by:
        if _mailbox(address) in by_address:
            return by_address[_mailbox(address)]
    return None


def forward_targets(mail: IncomingMail, peers: Sequence[str], own: str) -> List[str]:
    """The mail peers that the mail does not name (nor ourselves): pks's loop
    breaker, so a key goes to each server once."""
    named = {_mailbox(address) for address in mail.named() + [own]}
    return [p for p in peers if _mailbox(p) not in named]


def _mailbox(address: str) -> str:
    """An address as mailboxes are told apart: without case, nor the domain's
    final dot (a mail peer an older CKS listed as keys@x.test.)."""
    return without_root_dot(address.lower())


def _text(value) -> str:
    """A header as text, RFC 2047 encoded words decoded when they can be."""
    try:
        return str(make_header(decode_header(str(value))))
    except (LookupError, UnicodeError, ValueError, email.errors.MessageError):
        return str(value)  # (a malformed encoded word, an unknown charset)


def _addresses(message: Message, name: str, limit: Optional[int] = None) -> List[str]:
    """The well-formed addresses in the `name` headers, the first `limit` of
    them: the headers after those are not read."""
    found: List[str] = []
    for value in message.get_all(name, []):
        if limit is not None and len(found) >= limit:
            break
        found += _addresses_in([str(value)])
    return found[:limit]


def _addresses_in(values: Sequence[str]) -> List[str]:
    """The addresses in header values, lower case, but for those no mailbox
    can have: without an @, or over MAX_ADDRESS characters."""
    return [a.lower() for _, a in getaddresses(values) if "@" in a and len(a) <= MAX_ADDRESS]


def _unix_from(message: Message) -> List[str]:
    """The sender on an mbox "From sender date" line (procmail keeps it)."""
    parts = (message.get_unixfrom() or "").split()
    return _addresses_in(parts[1:2])
