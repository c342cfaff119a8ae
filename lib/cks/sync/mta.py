"""Handing a composed mail to the MTA: a sendmail command, or SMTP (smtplib).

A hand-off either succeeds (the MTA took the message and now owns it) or
raises HandOffError; the caller keeps the key owed and tries again later.
"""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
from email.message import Message
from typing import Dict, Sequence, Tuple, Union

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
        """The command runs in a process group of its own, killed whole when
        it times out: until 2026-12-06 only the command was, and what it had
        started (a shell script's own commands) stayed behind."""
        try:
            with subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, start_new_session=True) as process:
                try:
                    stdout, stderr = process.communicate(message.as_bytes(),
                                                         timeout=self.timeout)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    raise HandOffError("%s timed out after %g s" % (
                        self.command[0], self.timeout)) from None
        except OSError as exc:
            raise HandOffError("cannot run %s: %s" % (self.command[0], exc.strerror)) from None
        if process.returncode != 0:
            said = (stderr or stdout).decode("utf-8", "replace").strip()
            raise HandOffError("%s %s%s" % (
                self.command[0], _ended(process.returncode),
                ": " + said.splitlines()[-1] if said else ""),
                refused=process.returncode > 0 and process.returncode != os.EX_TEMPFAIL)


def _ended(returncode: int) -> str:
    """How a command ended, said for a person: "exited with status 69", or
    "was killed by signal 9 (SIGKILL)" for subprocess's returncode -9."""
    if returncode >= 0:
        return "exited with status %d" % returncode
    try:
        name = " (%s)" % signal.Signals(-returncode).name
    except ValueError:
        name = ""
    return "was killed by signal %d%s" % (-returncode, name)


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
            raise HandOffError("%s: %s" % (where, _said(exc)), refused) from None
        if refused:
            raise HandOffError("%s refused %s" % (where, _refusals(refused)))


def _said(exc: Exception) -> str:
    """An smtplib error as the server said it ("552 5.3.4 Message size exceeds
    fixed limit"), not as the exception's tuple or dict."""
    if isinstance(exc, smtplib.SMTPResponseException):
        return _reply(exc.smtp_code, exc.smtp_error)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "refused " + _refusals(exc.recipients)
    return " ".join(str(exc).split()) or exc.__class__.__name__


def _refusals(recipients: Dict[str, Tuple[int, bytes]]) -> str:
    """Each refused recipient with the server's reply."""
    return ", ".join("%s (%s)" % (address, _reply(*reply))
                     for address, reply in sorted(recipients.items()))


def _reply(code: int, text: Union[bytes, str]) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return " ".join(("%d %s" % (code, text)).split())


def transport_for(conf: MailSettings) -> Union[Sendmail, SMTP]:
    if conf.smtp_host:
        return SMTP(conf.smtp_host, conf.smtp_port, conf.send_timeout)
    return Sendmail(conf.sendmail, conf.send_timeout)
