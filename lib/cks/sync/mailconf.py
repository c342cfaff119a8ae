"""The [mail] section of the configuration: our sync address, how mail leaves
(a sendmail command or SMTP), and the rules for incoming sync mail."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import List

from ..config import ConfigError, Settings
from .peername import PeerNameError, parse_mail_peer

DEFAULT_SENDMAIL = "/usr/sbin/sendmail -t -oi"

NO_ADDRESS = "no [mail] address in the configuration: mail peers need this server's sync address"
"""Why nothing is sent to a mail peer (cks_sync.py) or forwarded (cks_mail_sync.py)."""


@dataclass
class MailSettings:
    address: str = ""  # this server's sync address (From: and X-KeyServer-Sent:)
    sendmail: List[str] = field(default_factory=lambda: shlex.split(DEFAULT_SENDMAIL))
    smtp_host: str = ""  # set: send by SMTP instead of the sendmail command
    smtp_port: int = 25
    send_timeout: float = 60.0  # one hand-off to the MTA
    timeout: float = 300.0  # one incoming mail, all told; then exit 75
    accept_add: bool = False  # Subject: ADD from users
    max_mail_bytes: int = 25 << 20
    log_file: str = ""


def mail_settings(settings: Settings) -> MailSettings:
    """Read [mail]; ConfigError for a bad value."""
    address = settings.get("mail", "address", "").strip()
    if address:
        try:
            address = parse_mail_peer(address)
        except PeerNameError as exc:
            raise ConfigError("%s: [mail] address: %s" % (settings.config_file, exc)) from None
    try:
        sendmail = shlex.split(settings.get("mail", "sendmail", DEFAULT_SENDMAIL))
    except ValueError as exc:
        raise ConfigError("%s: [mail] sendmail: %s" % (settings.config_file, exc)) from None
    if not sendmail:
        raise ConfigError("%s: [mail] sendmail is empty" % settings.config_file)
    default = MailSettings()
    return MailSettings(
        address=address,
        sendmail=sendmail,
        smtp_host=settings.get("mail", "smtp_host", "").strip(),
        smtp_port=settings.get_int("mail", "smtp_port", default.smtp_port, least=1,
                                   most=65535),
        send_timeout=settings.get_float("mail", "send_timeout", default.send_timeout,
                                        more_than=0),
        timeout=settings.get_float("mail", "timeout", default.timeout, more_than=0),
        accept_add=settings.get_bool("mail", "accept_add", default.accept_add),
        max_mail_bytes=settings.get_int("mail", "max_mail_bytes", default.max_mail_bytes,
                                        least=1),
        log_file=settings.get("mail", "log_file", "").strip())
