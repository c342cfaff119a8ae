"""Where cksd's logs go ([log]), and reopening their files on SIGHUP.

Two logs: the application log (root logger: start-up, peers, recon, errors)
and the access log (the "cks.access" logger, a line per request).  The
application log goes to `[log] file`, to syslog with `[log] syslog = yes`,
or to standard error; the access log to its own file (`[log] access`, or
`[server] access_log` as earlier versions named it) or along with the
application log.  logrotate renames the files and sends SIGHUP:
reopen_log_files() then starts new ones at the configured paths.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from logging.handlers import SysLogHandler
from typing import List, Optional

from .config import ConfigError, Settings

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}
APPLICATION_FORMAT = "%(name)s: %(message)s"  # as on standard error (cli/common.py)
TIMESTAMP = "%(asctime)s "  # in front of every line of a file

log = logging.getLogger("cks.log")

_files: List[logging.FileHandler] = []  # what reopen_log_files() reopens
_on_stderr = True  # whether the application log goes to standard error (configure_logging)


@dataclass
class LogSettings:
    file: str = ""  # the application log; "": standard error (unless syslog)
    access: str = ""  # the access log; "": with the application log
    syslog: bool = False
    syslog_facility: str = "daemon"
    syslog_socket: str = "/dev/log"
    level: int = logging.INFO


def log_settings(settings: Settings, verbose: bool = False) -> LogSettings:
    """[log], checked (ConfigError); --verbose means level debug."""
    level_name = settings.get("log", "level", "info").strip().lower()
    if level_name not in LEVELS:
        raise ConfigError("[log] level must be one of %s" % ", ".join(LEVELS))
    facility = settings.get("log", "syslog_facility", "daemon").strip().lower()
    if facility not in SysLogHandler.facility_names:
        raise ConfigError("[log] syslog_facility %s is not a syslog facility (daemon, "
                          "local0 to local7, ...)" % facility)
    return LogSettings(
        file=settings.get("log", "file", ""),
        access=settings.get("log", "access", "") or settings.get("server", "access_log", ""),
        syslog=settings.get_bool("log", "syslog", False),
        syslog_facility=facility,
        syslog_socket=settings.get("log", "syslog_socket", "/dev/log"),
        level=logging.DEBUG if verbose else LEVELS[level_name])


class StampFormatter(logging.Formatter):
    """A Formatter that makes the date and time of a line once a second
    (strftime took half of an access-log line's formatting)."""

    _made = (None, "")  # (second, its text), replaced whole: threads share it

    def formatTime(self, record: logging.LogRecord, datefmt: Optional[str] = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        made_for, text = self._made
        if made_for != second:
            text = time.strftime(self.default_time_format, self.converter(second))
            self._made = (second, text)
        return self.default_msec_format % (text, record.msecs)


def _file_handler(path: str, line_format: str) -> logging.FileHandler:
    try:
        handler = logging.FileHandler(path, encoding="utf-8")
    except OSError as exc:
        raise ConfigError("cannot open log file %s: %s" % (path, exc.strerror or exc)) from None
    handler.setFormatter(StampFormatter(TIMESTAMP + line_format))
    _files.append(handler)
    return handler


def stderr_log() -> logging.Logger:
    """A logger of its own (in no hierarchy) that writes to standard error
    (the journal under systemd), never to a log file that cannot be written
    or reopened."""
    logger = logging.Logger("cks.log")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(APPLICATION_FORMAT))
    logger.addHandler(handler)
    return logger


def _stderr_handler() -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(APPLICATION_FORMAT))
    return handler


def _syslog_handler(settings: LogSettings) -> logging.Handler:
    """To the local syslog daemon (OSError when nothing listens on its socket)."""
    handler = SysLogHandler(settings.syslog_socket,
                            SysLogHandler.facility_names[settings.syslog_facility])
    try:
        handler.socket.getpeername()  # (Python 3.11 leaves it closed, without a word)
    except OSError:
        handler.close()
        raise
    handler.ident = "cksd: "
    handler.setFormatter(logging.Formatter(APPLICATION_FORMAT))
    return handler


def configure_logging(settings: LogSettings) -> None:
    """Send the logs where `settings` say (ConfigError: a file cannot be
    opened).  Without a syslog daemon, the application log goes to its file
    or standard error, and its first line says so."""
    global _on_stderr
    handlers: List[logging.Handler] = []
    if settings.file:
        handlers.append(_file_handler(settings.file, APPLICATION_FORMAT))
    no_syslog = False
    if settings.syslog:
        try:
            handlers.append(_syslog_handler(settings))
        except OSError:
            no_syslog = True
    root = logging.getLogger()
    root.handlers = handlers or [_stderr_handler()]
    _on_stderr = not handlers
    root.setLevel(settings.level)
    if no_syslog:
        log.warning("no syslog at %s: logging to %s instead", settings.syslog_socket,
                    settings.file or "standard error")
    if settings.access:
        access = logging.getLogger("cks.access")
        access.handlers = [_file_handler(settings.access, "%(message)s")]
        access.setLevel(logging.INFO)  # whatever [log] level hides of the application log
        access.propagate = False


def reopen_log_files() -> None:
    """Close the log files and open them again at their paths: after
    logrotate renamed them, new lines go to new files.  Says which were
    reopened and which could not be: those on standard error too (the
    journal), as the application log may be one of them, its file moved
    away (until 2026-12-06 they were said only there)."""
    reopened = []
    for handler in _files:
        try:
            stream = open(handler.baseFilename, handler.mode, encoding=handler.encoding)
        except OSError as exc:
            for logger in [log] if _on_stderr else [log, stderr_log()]:
                logger.error("cannot reopen %s (%s): still writing to the file it was",
                             handler.baseFilename, exc.strerror or exc)
            continue
        old = handler.setStream(stream)
        if old is not None:
            old.close()
        reopened.append(handler.baseFilename)
    if reopened:
        log.info("log files reopened: %s", ", ".join(reopened))
