"""Sync mails as pks, SKS and mail clients write them, for the mail tests.

Every builder returns the raw bytes an MTA would pipe to cks_mail_sync.py,
including the headers the MTA adds on delivery (mbox From line, Return-Path,
Received, Delivered-To).
"""

from __future__ import annotations

import base64
import os
import quopri
import stat
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from typing import List, Sequence

from cks.openpgp.armor import encode, scan
from cks.openpgp.keys import read_keys
from cks.openpgp.packet import Packet
from cks.openpgp.signature import CERT_GENERIC, SUB_NOTATION, Subpacket

from .forge import Signer

US = "pgp-keys@keys.cks.example"
SKS = "pgp-public-keys@sks.example.net"
PKS = "pgp-public-keys@pks.example.org"


def delivered(headers_and_body: str, envelope: str, to: str = US) -> bytes:
    """What the local MTA hands to the .forward pipe (LF line ends)."""
    return ("From %s  Sat Nov 28 10:00:00 2026\n"
            "Return-Path: <%s>\n"
            "Delivered-To: %s\n"
            "Received: from mx.example.net (mx.example.net [192.0.2.25])\n"
            "\tby keys.cks.example (Postfix) with ESMTP id 4F1A2B3C\n"
            "\tfor <%s>; Sat, 28 Nov 2026 10:00:00 +0000 (UTC)\n" % (envelope, envelope, to, to)
            ).encode() + headers_and_body.encode()


def sks_armor(keytext: bytes) -> str:
    """Re-armor a key file the way SKS does (Version and Comment lines)."""
    data = b"".join(block.data for block in scan(keytext)[0])
    return encode(data, headers=[("Version", "SKS 1.1.6"),
                                 ("Comment", "Hostname: sks.example.net")])


def sks_mail(keytext: bytes, sender: str = SKS, to: Sequence[str] = (US,),
             sent_by: Sequence[str] = (SKS,), envelope: str = "debian-sks@sks.example.net",
             message_id: str = "<20261128100000.4242@sks.example.net>") -> bytes:
    """SKS's sendmail_keys: exactly its header lines, then one armor block."""
    head = ("To: %s\nFrom: %s\nReply-To: %s\nErrors-To: %s\nSubject: incremental\n"
            "Precedence: list\nContent-type: application/pgp-keys\n"
            % (", ".join(to), sender, sender, sender))
    head += "".join("X-KeyServer-Sent: %s\n" % a for a in sent_by)
    head += "Message-Id: %s\nDate: Sat, 28 Nov 2026 10:00:00 +0000 (UTC)\n\n" % message_id
    return delivered(head + sks_armor(keytext), envelope)


def pks_mail(keytext: bytes, sender: str = PKS, sent_by: Sequence[str] = (PKS,)) -> bytes:
    """pks 0.9.x: Subject INCREMENTAL, MIME headers, its own armor Version line."""
    data = b"".join(block.data for block in scan(keytext)[0])
    head = ("From: %s\nTo: %s\nSubject: INCREMENTAL\nPrecedence: list\nMIME-Version: 1.0\n"
            "Content-Type: application/pgp-keys\nMessage-Id: <pks.1.2@pks.example.org>\n"
            % (sender, US))
    head += "".join("X-KeyServer-Sent: %s\n" % a for a in sent_by) + "\n"
    return delivered(head + encode(data, headers=[("Version", "0.9.6")]), sender)


def eight_bit_mail(body: bytes, charset: str, sender: str = SKS) -> bytes:
    """One text/plain part of 8-bit `body` in `charset` (which may be unknown)."""
    head = ("From: %s\nTo: %s\nSubject: incremental\nMIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=%s\nContent-Transfer-Encoding: 8bit\n\n"
            % (sender, US, charset))
    return delivered(head, sender) + body


def quoted_printable_mail(keytext: bytes, sender: str = SKS) -> bytes:
    body = quopri.encodestring(keytext.replace(b"\n", b"\r\n")).decode("ascii")
    head = ("From: %s\nTo: %s\nSubject: incremental\nX-KeyServer-Sent: %s\nMIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=us-ascii\n"
            "Content-Transfer-Encoding: quoted-printable\n\n" % (sender, US, sender))
    return delivered(head + body, sender)


def base64_mail(keytext: bytes, sender: str = SKS) -> bytes:
    body = base64.encodebytes(keytext).decode("ascii")
    head = ("From: %s\nTo: %s\nSubject: incremental\nX-KeyServer-Sent: %s\nMIME-Version: 1.0\n"
            "Content-Type: application/pgp-keys\nContent-Transfer-Encoding: base64\n\n"
            % (sender, US, sender))
    return delivered(head + body, sender)


def multipart_mail(keytexts: Sequence[bytes], sender: str = SKS, binary: bool = False,
                   subject: str = "incremental", extra: Sequence[bytes] = (),
                   text: str = "Keys attached.\n") -> bytes:
    """multipart/mixed: a text part (`text`: UTF-8 and base64 when not ASCII),
    then each key as an application/pgp-keys attachment (armored, or binary
    with base64 transfer encoding), then `extra` application/octet-stream parts."""
    outer = MIMEMultipart("mixed")
    outer["From"] = sender
    outer["To"] = US
    outer["Subject"] = subject
    outer["X-KeyServer-Sent"] = sender
    outer.attach(MIMEText(text))
    for keytext in keytexts:
        if binary:
            data = b"".join(block.data for block in scan(keytext)[0])
            part = MIMEApplication(data, "pgp-keys")
        else:
            part = MIMEApplication(keytext, "pgp-keys", _encoder=_quoted_printable)
        part.add_header("Content-Disposition", "attachment", filename="key.asc")
        outer.attach(part)
    for blob in extra:
        outer.attach(MIMEApplication(blob))
    return delivered(outer.as_string(), sender)


def many_parts_mail(keytext: bytes, parts: int, sender: str = SKS) -> bytes:
    """multipart/mixed of `parts` MIME parts in all (itself counted): the
    armored key, then one-line text parts."""
    head = ("From: %s\nTo: %s\nSubject: incremental\nMIME-Version: 1.0\n"
            "Content-Type: multipart/mixed; boundary=B\n\n" % (sender, US))
    key = "--B\nContent-Type: application/pgp-keys\n\n%s\n" % keytext.decode("ascii")
    filler = "--B\nContent-Type: text/plain\n\nx\n" * (parts - 2)
    return delivered(head + key + filler + "--B--\n", sender)


def _quoted_printable(part) -> None:
    part.set_payload(quopri.encodestring(part.get_payload(decode=True)).decode("ascii"))
    part["Content-Transfer-Encoding"] = "quoted-printable"


def flooded_key(keytext: bytes, size: int) -> bytes:
    """The key with distinct copies of a certification by another key (not
    held: never checked) added to its first user ID until it is `size` bytes
    (binary): what a certificate flooding attack produces.  A copy is as
    long as the key's own first self-signature (a notation pads it)."""
    key = read_keys(keytext).keys[0]
    uid = key.user_ids[0]
    signer = Signer.new()
    model = signer.sign(CERT_GENERIC, key.public_key, uid.value).serialize()
    name = b"pad@example.org"
    value = b"x" * max(0, len(uid.sigs[0].packet.body) - len(model) - 10 - len(name))
    notation = Subpacket(SUB_NOTATION, b"\x80\0\0\0" + len(name).to_bytes(2, "big")
                         + len(value).to_bytes(2, "big") + name + value)
    model = signer.sign(CERT_GENERIC, key.public_key, uid.value, [notation]).serialize()
    parts = [key.primary.serialize(), uid.packet.serialize(), uid.sigs[0].packet.serialize()]
    total, count = 0, 0
    while total < size:
        packet = Packet(2, model[:-4] + count.to_bytes(4, "big")).serialize()
        parts.append(packet)
        total += len(packet)
        count += 1
    return b"".join(parts)


def crlf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def fake_sendmail(directory, fail: bool = False, max_bytes: int = 0) -> str:
    """A sendmail stand-in: writes each message to DIRECTORY/out/NNN.eml (or fails
    like an MTA that is down; or, for a message over `max_bytes`, exits 69 as
    Postfix's sendmail does over message_size_limit).  Returns the command
    line for [mail] sendmail."""
    out = os.path.join(str(directory), "out")
    os.makedirs(out, exist_ok=True)
    script = os.path.join(str(directory), "sendmail-fail" if fail else
                          "sendmail-%d" % max_bytes if max_bytes else "sendmail")
    with open(script, "w") as handle:
        if fail:
            handle.write("#!/bin/sh\ncat >/dev/null\n"
                         "echo 'sendmail: fatal: queue file write error' >&2\nexit 75\n")
        else:
            handle.write('#!/bin/sh\nn=$(ls "%s" | wc -l)\ncat > "%s/.part"\n' % (out, out))
            if max_bytes:
                handle.write('if [ "$(wc -c < "%s/.part")" -gt %d ]; then rm "%s/.part"\n'
                             "echo 'sendmail: fatal: root(0): message file too big' >&2\n"
                             "exit 69\nfi\n" % (out, max_bytes, out))
            handle.write('mv "%s/.part" "%s/$(printf %%04d $n).eml"\n' % (out, out))
    os.chmod(script, os.stat(script).st_mode | stat.S_IXUSR)
    return "%s -t -oi" % script


def sent_mails(directory) -> List[bytes]:
    out = os.path.join(str(directory), "out")
    if not os.path.isdir(out):
        return []
    return [open(os.path.join(out, name), "rb").read() for name in sorted(os.listdir(out))]
