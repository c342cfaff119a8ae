"""Settings: the config file (INI, read with configparser) and the database URL.

Lookup order (README, Configuration): --config FILE, else $CKS_CONFIG, else ./cks.conf,
else /etc/cks.conf, each only if it exists; but a file named by --config that
does not exist is an error, and one named by $CKS_CONFIG means no file at all,
with a warning (a mistyped name is said, not taken for another file's
settings); the database comes from --db, else
$CKS_DB, else [database] url in the config, else sqlite:///cks.db.  cksd's
lookups may read from a streaming replica: --db-read, else [database] read_url
(none: lookups read the main database).
"""

from __future__ import annotations

import configparser
import logging
import math
import os
import socket
from dataclasses import dataclass, field
from typing import List, Optional, Set, Union

from .sample_config import known_settings

log = logging.getLogger("cks.config")

DEFAULT_DB = "sqlite:///cks.db"
DEFAULT_CONFIG_FILES = ("cks.conf", "/etc/cks.conf")


class ConfigError(Exception):
    """The configuration file is unreadable or holds a bad value."""


Number = Union[int, float]

MOST_FOR_A_NUMBER = 1_000_000_000
"""The largest value of a setting read as a number with a fraction (about 31
years in seconds): a timeout or interval past 9.2e9 s overflows the
platform's time_t where a thread waits, and killed that thread."""


@dataclass
class Settings:
    db_url: str = DEFAULT_DB
    db_read_url: Optional[str] = None  # where cksd's lookups read (a replica)
    config_file: Optional[str] = None
    parser: configparser.ConfigParser = field(default_factory=configparser.ConfigParser)

    def get(self, section: str, option: str, default: str) -> str:
        return self.parser.get(section, option, fallback=default)

    def get_int(self, section: str, option: str, default: int, *,
                least: Optional[int] = None, most: Optional[int] = None) -> int:
        """The setting as a whole number from `least` to `most` (each given
        where a value past it makes no sense)."""
        try:
            value = self.parser.getint(section, option, fallback=default)
        except ValueError:
            raise self._bad(section, option, "a whole number") from None
        return self._in_range(section, option, value, least, most)

    def get_float(self, section: str, option: str, default: float, *,
                  least: Optional[float] = None, more_than: Optional[float] = None) -> float:
        """The setting as a finite number (no nan, no inf), `least` or more,
        or more than `more_than`, and at most MOST_FOR_A_NUMBER."""
        try:
            value = self.parser.getfloat(section, option, fallback=default)
        except ValueError:
            raise self._bad(section, option, "a number") from None
        if not math.isfinite(value):
            raise self._bad(section, option, "a finite number")
        if more_than is not None and not value > more_than:
            raise self._bad(section, option, "more than %s" % more_than)
        if value > MOST_FOR_A_NUMBER:
            raise self._bad(section, option, "%d or less" % MOST_FOR_A_NUMBER)
        return self._in_range(section, option, value, least, None)

    def _in_range(self, section: str, option: str, value: Number,
                  least: Optional[Number], most: Optional[Number]) -> Number:
        if least is not None and value < least or most is not None and value > most:
            raise self._bad(section, option, "between %s and %s" % (least, most)
                            if least is not None and most is not None
                            else "%s or more" % least if least is not None
                            else "%s or less" % most)
        return value

    def _bad(self, section: str, option: str, what: str) -> "ConfigError":
        """The one line of a value outside what the setting takes."""
        return ConfigError("%s: [%s] %s must be %s" % (self.config_file, section, option, what))

    def hostname(self) -> str:
        """[server] hostname: the name the server gives itself in answers and
        on its statistics page; by default the host's name, as SKS's."""
        return self.get("server", "hostname", "") or socket.gethostname()

    def node_name(self) -> str:
        """The name this node gives itself to peers and in rejection notices:
        [sync] node_name, by default hostname() (an empty setting: the
        default, as for every name).  Until 2026-12-06 the default was the
        host's fully qualified name, which differed ("localhost" where
        /etc/hosts names 127.0.0.1 so first)."""
        return self.get("sync", "node_name", "") or self.hostname()

    def get_bool(self, section: str, option: str, default: bool) -> bool:
        try:
            return self.parser.getboolean(section, option, fallback=default)
        except ValueError:
            raise self._bad(section, option, "yes or no") from None


def find_config_file(explicit: Optional[str] = None) -> Optional[str]:
    if explicit:
        if not os.path.exists(explicit):  # (/dev/null: no settings, as below)
            raise ConfigError("configuration file %s does not exist" % explicit)
        return explicit
    from_env = os.environ.get("CKS_CONFIG")
    if from_env:
        if os.path.exists(from_env):  # (/dev/null: no settings, on purpose)
            return from_env
        log.warning("$CKS_CONFIG names %s, which does not exist: no configuration file "
                    "is read", from_env)
        return None
    for candidate in DEFAULT_CONFIG_FILES:
        if os.path.isfile(candidate):
            return candidate
    return None


def _one_line(exc: configparser.Error) -> str:
    """configparser's complaint in one line (its own quotes the file on more)."""
    if isinstance(exc, configparser.MissingSectionHeaderError):
        return "line %d: a setting before the first [section]" % exc.lineno
    if isinstance(exc, configparser.ParsingError):
        return "line %d: neither a [section] nor a setting (name = value)" % exc.errors[0][0]
    return str(exc).splitlines()[0]


_CHECKED: Set[str] = set()
"""The files whose names were checked: a tool that loads its settings more
than once warns once."""


def _warn_of_unknown_names(path: str, parser: configparser.ConfigParser) -> None:
    """A warning for each section and option that no tool reads (a mistyped
    name: its value would be ignored without a word)."""
    if path in _CHECKED:
        return
    _CHECKED.add(path)
    for option in parser.defaults():
        # (configparser's [DEFAULT]: its settings join each section the file has)
        log.warning("%s: [DEFAULT] %s is taken as a setting of each section this file has "
                    "(%s) and of none it lacks: give it in the section it is for", path,
                    option, ", ".join("[%s]" % s for s in parser.sections()) or "none")
    for name in unknown_names(parser):
        log.warning("%s: %s: ignored", path, name)


def unknown_names(parser: configparser.ConfigParser) -> List[str]:
    """Each section and option of `parser` that no tool reads, said as
    "[section] option is not a setting CKS reads" (none when the list of
    settings is not there: sample_config.py)."""
    known = known_settings()
    sections = {section for section, _ in known}
    names = []
    for section in parser.sections() if known else ():
        if section not in sections:
            names.append("[%s] is not a section CKS reads" % section)
            continue
        names += ["[%s] %s is not a setting CKS reads" % (section, option)
                  for option in parser[section]
                  if (section, option) not in known and option not in parser.defaults()]
    return names


def load_settings(config_file: Optional[str] = None, db_url: Optional[str] = None) -> Settings:
    path = find_config_file(config_file)
    # "key = value   ; note": a ';' after whitespace starts a comment, as in the README.
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";",))
    if path:
        try:
            with open(path, "rb") as handle:
                text = handle.read().decode("utf-8-sig")  # (a BOM, as Notepad writes, is fine)
            parser.read_string(text, path)
        except OSError as exc:
            raise ConfigError("cannot read configuration %s: %s" % (path, exc)) from None
        except UnicodeDecodeError as exc:
            raise ConfigError("cannot read configuration %s: line %d is not UTF-8 text"
                              % (path, exc.object.count(b"\n", 0, exc.start) + 1)) from None
        except configparser.Error as exc:
            raise ConfigError("cannot read configuration %s: %s" % (path, _one_line(exc))) \
                from None
        _warn_of_unknown_names(path, parser)
    url = (db_url or os.environ.get("CKS_DB")
           or parser.get("database", "url", fallback=None) or DEFAULT_DB)
    read_url = parser.get("database", "read_url", fallback="") or None
    return Settings(db_url=url, db_read_url=read_url, config_file=path, parser=parser)
