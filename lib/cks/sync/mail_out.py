"""Outgoing sync mail in the format SKS sends (SKS 1.1.6 mailsync.ml): one key
per mail, `Subject: incremental`, the armored key as an application/pgp-keys
body, and `X-KeyServer-Sent:` lines naming every server the key passed."""

from __future__ import annotations

from email.message import Message
from email.utils import formatdate, make_msgid
from typing import Sequence

from ..openpgp.armor import encode
from .hkp_push import FAILED_ALONE, OK, RETRY, Verdict
from .mailconf import NO_ADDRESS
from .mta import HandOffError
from .runner import Item, Pusher


def compose(keydata: bytes, to: Sequence[str], own: str, sent_by: Sequence[str] = (),
            also_sent_to: Sequence[str] = ()) -> Message:
    """A sync mail carrying one key (binary), from `own` to `to`.  `sent_by`
    is the X-KeyServer-Sent list of a mail being forwarded; `own` is added,
    then `also_sent_to` (servers this node sends the key to itself), but for
    those in `to`."""
    message = Message()
    message["To"] = ", ".join(to)
    message["From"] = own
    message["Reply-To"] = own
    message["Errors-To"] = own
    message["Subject"] = "incremental"
    message["Precedence"] = "list"
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid("cks", own.rpartition("@")[2])
    message["MIME-Version"] = "1.0"
    message["Content-Type"] = "application/pgp-keys"
    recipients = {address.lower() for address in to}
    for address in dict.fromkeys(list(sent_by) + [own] + list(also_sent_to)):
        if address.lower() not in recipients:
            message["X-KeyServer-Sent"] = address
    message.set_payload(encode(keydata))
    return message


class MailPusher(Pusher):
    """Sends each owed key to one mail peer, one mail per key.  A key counts as
    delivered once the MTA took its mail (sendmail exit 0, SMTP 250).

    Its X-KeyServer-Sent lines name this node and its other mail peers
    (`mail_peers`, the enabled ones): they get the key from this node, so
    the peer does not forward it to them (pks's and CKS's loop breaker), as
    pks names its sync sites and SKS's one mail to all its peers names them
    all.  Naming this node alone, each mail peer of a mesh of n forwarded
    every key to the n - 2 others: (n - 1)^2 mails a key, not n - 1.  Naming
    only the peers still owed the key left them out of the mail
    to the last peer served in a run, which forwarded it to them again."""

    keys_per_request = 1

    def __init__(self, peer: str, own: str, transport, mail_peers: Sequence[str] = ()) -> None:
        self.peer = peer
        self.own = own
        self.transport = transport
        self.mail_peers = list(mail_peers)

    def push(self, items: Sequence[Item]) -> Verdict:
        if not self.own:
            return Verdict(RETRY, NO_ADDRESS)
        for fingerprint, keydata in items:
            try:
                self.transport.send(compose(keydata, [self.peer], self.own,
                                            also_sent_to=self.mail_peers))
            except HandOffError as exc:
                # A mail the MTA refuses for good (one over its size limit: a
                # flooded key; SMTP 5xx, a sendmail status other than 75) is
                # weighed as an HKP peer's 500 is (runner.py).
                return Verdict(FAILED_ALONE if exc.refused else RETRY, str(exc))
        return Verdict(OK)
