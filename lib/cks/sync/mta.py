"""Handing a composed mail to the MTA: a sendmail command, or SMTP (smtplib).

A hand-off either succeeds (the MTA took the message and now owns it) or
raises HandOffError; the caller keeps the key owed and tries again later.
"""

from __future__ import annotations

import os
import smtplib
import subprocess
from email.message import Message
from typing import Sequence, Union

from .mailconf import MailSettings


class HandOffError(Exception):
    """The MTA did not take the message; `refused`: it answered that it never
    will (an SMTP 5xx to MAIL or DATA, such as 552, over its size limit; a
    sendmail exit status other than EX_TEMPFAIL), rather than not now."""

    def __init__(self, message: str, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


class Sendmail:
    """`sendmail -t -oi` style: the message on standard input, recipients from
    its headers, exit status 0 when the MTA queued it.  Its other statuses are
    sysexits.h's, where only EX_TEMPFAIL (75) says "try again later": Postfix's
    sendmail exits 69 (EX_UNAVAILABLE) for a message over message_size_limit
    ("message file too big"), Exim 1 ("message too big"); a signal or a
    timeout says nothing about the message."""

    def __init__(self, command: Sequence[str], timeout: float) -> None:
        self.command = list(command)
        self.timeout = timeout

    def send(self, message: Message) -> None:
        try:
            done = subprocess.run(self.command, input=message.as_bytes(), capture_output=True,
                                  timeout=self.timeout, check=False)
        except subprocess.TimeoutExpired:
            raise HandOffError("%s timed out after %g s" % (self.command[0], self.timeout)) \
                from None
        except OSError as exc:
            raise HandOffError("cannot run %s: %s" % (self.command[0], exc.strerror)) from None
        if done.returncode != 0:
            said = (done.stderr or done.stdout).decode("utf-8", "replace").strip()
            raise HandOffError("%s exited with status %d%s" % (
                self.command[0], done.returncode, ": " + said.splitlines()[-1] if said else ""),
                refused=done.returncode > 0 and done.returncode != os.EX_TEMPFAIL)


class SMTP:
    """An SMTP server (usually the local MTA) that must accept every recipient."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout

    def send(self, message: Message) -> None:
        where = "SMTP %s:%d" % (self.host, self.port)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                refused = smtp.send_message(message)
        except (smtplib.SMTPException, OSError) as exc:
            refused = isinstance(exc, (smtplib.SMTPSenderRefused, smtplib.SMTPDataError)) \
                and 500 <= exc.smtp_code < 600
            raise HandOffError("%s: %s" % (where, " ".join(str(exc).split())
                                           or exc.__class__.__name__), refused) from None
        if refused:
            raise HandOffError("%s refused %s" % (where, ", ".join(sorted(refused))))


def transport_for(conf: MailSettings) -> Union[Sendmail, SMTP]:
    if conf.smtp_host:
        return SMTP(conf.smtp_host, conf.smtp_port, conf.send_timeout)
    return Sendmail(conf.sendmail, conf.send_timeout)
