"""What every CKS tool shares: --db/--config/--verbose, logging, user errors."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import re
import select
import signal
import sys
import time
from typing import Callable, List, Optional

from ..config import ConfigError, Settings, load_settings
from ..pipeline import Limits
from ..notices import NoticeError, normalize_fingerprint
from ..rejection import NodeIdentity
from ..served import ServePolicy


class UserError(Exception):
    """A mistake the user can fix: reported in one line, no traceback."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")


def whole_number(least: int, most: int) -> Callable[[str], int]:
    """An argparse type: a whole number from `least` to `most`, in ASCII
    digits (int() takes '٣', other Unicode digits and '1_000' too), where
    a number past `most` would fail only later (past what the database's
    integers hold, once some keys were written)."""
    def parse(text: str) -> int:
        if not _WHOLE_NUMBER.fullmatch(text) or not least <= int(text) <= most:
            raise argparse.ArgumentTypeError("must be a whole number from %d to %d, not %r"
                                             % (least, most, text))
        return int(text)
    return parse


def base_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    _common_options(parser)
    return parser


def _common_options(parser: argparse.ArgumentParser, suppressed: bool = False) -> None:
    """--db, --config, --verbose; `suppressed`: set only when given (a
    subcommand's copies, which must not overwrite the main parser's)."""
    unset = {"default": argparse.SUPPRESS} if suppressed else {}
    parser.add_argument("--db", metavar="URL", **unset,
                        help="database: postgresql://[user@host[:port]]/dbname or "
                             "sqlite:///path.db (default: $CKS_DB, the config file, "
                             "sqlite:///cks.db)")
    parser.add_argument("--config", metavar="FILE", **unset,
                        help="configuration file (default: $CKS_CONFIG, ./cks.conf, "
                             "/etc/cks.conf)")
    parser.add_argument("--verbose", "-v", action="store_true", **unset, help="more detail")


class CommandParser(argparse.ArgumentParser):
    """A subcommand's parser (add_subparsers' parser_class): the common
    options go after the command's name too (`cks_admin.py stats --db URL`
    as well as `cks_admin.py --db URL stats`); given in neither place, they
    keep the main parser's defaults."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _common_options(self, suppressed=True)


def settings_from(args: argparse.Namespace) -> Settings:
    return load_settings(config_file=args.config, db_url=args.db)


def pipeline_limits(settings: Settings) -> Limits:
    """The key limits of [limits] and the served-view policy of [policy], for every
    tool that stores keys."""
    default = Limits()
    try:
        serve = ServePolicy(
            settings.get("policy", "certifications", default.serve.certifications),
            settings.get_int("policy", "max_certifications", default.serve.max_certifications,
                             least=0),
            settings.get_int("policy", "max_certification_checks",
                             default.serve.max_certification_checks, least=0))
    except ValueError as exc:
        raise ConfigError("[policy] %s" % exc) from None
    return Limits(
        max_key_bytes=settings.get_int("limits", "max_key_bytes", default.max_key_bytes,
                                       least=1),
        max_packets_per_key=settings.get_int("limits", "max_packets_per_key",
                                             default.max_packets_per_key, least=1),
        max_signatures_per_key=settings.get_int("limits", "max_signatures_per_key",
                                                default.max_signatures_per_key, least=1),
        max_self_signatures_per_key=settings.get_int(
            "limits", "max_self_signatures_per_key", default.max_self_signatures_per_key,
            least=1),
        max_packet_bytes=settings.get_int("limits", "max_packet_bytes",
                                          default.max_packet_bytes, least=1),
        serve=serve)


def node_identity(settings: Settings) -> NodeIdentity:
    """This node's name and its operator's rejection key ([rejection] key)."""
    key = settings.get("rejection", "key", "")
    try:
        key = normalize_fingerprint(key) if key else None
    except NoticeError as exc:
        raise ConfigError("[rejection] key: %s" % exc) from None
    return NodeIdentity(settings.node_name(), key)


def minute(epoch: Optional[int]) -> str:
    """A time as the tools' tables show it: to the minute, in UTC ("-": never)."""
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(epoch)) if epoch else "-"


def error_line(message: str) -> None:
    """`message` on standard error as the tools say an error ("PROG: error: ...")."""
    print("%s: error: %s" % (_prog(), message), file=sys.stderr)


def run(main: Callable[[List[str]], int], argv: Optional[List[str]] = None) -> int:
    """Run a tool's main, turning UserError into one line on stderr, and an
    output that cannot be written into one line too (a reader that went
    away into a quiet end, as SIGPIPE's)."""
    argv = sys.argv[1:] if argv is None else argv
    verbose = "--verbose" in argv or "-v" in argv
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(name)s: %(message)s", stream=sys.stderr)
    try:
        status = main(argv)
        sys.stdout.flush()
        return status
    except UserError as exc:
        error_line(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        if not _reader_gone():
            raise  # (a socket's: a peer that closed the connection)
        _discard_output()
        return 128 + signal.SIGPIPE
    except OSError as exc:
        if exc.filename is not None or exc.errno not in OUTPUT_ERRORS:
            raise  # (a file's, or not a write's: a fork that failed, say)
        _discard_output()
        error_line("cannot write standard output: %s" % (exc.strerror or exc))
        return 1


# What a write to standard output fails with: a full disk or quota, a file
# too large, an I/O error.
OUTPUT_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})


def _reader_gone() -> bool:
    """Whether the reader of standard output went away (`| head`): its pipe
    reports an error."""
    poll = select.poll()
    poll.register(sys.stdout.fileno(), select.POLLOUT)
    return any(events & select.POLLERR for _fd, events in poll.poll(0))


def _discard_output() -> None:
    """What is left in standard output's buffer goes nowhere at exit."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _prog() -> str:
    return os.path.basename(sys.argv[0]) or "cks"
