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
import os
import socket
from dataclasses import dataclass, field
from typing import Optional

log = logging.getLogger("cks.config")

DEFAULT_DB = "sqlite:///cks.db"
DEFAULT_CONFIG_FILES = ("cks.conf", "/etc/cks.conf")


class ConfigError(Exception):
    """The configuration file is unreadable or holds a bad value."""


@dataclass
class Settings:
    db_url: str = DEFAULT_DB
    db_read_url: Optional[str] = None  # where cksd's lookups read (a replica)
    config_file: Optional[str] = None
    parser: configparser.ConfigParser = field(default_factory=configparser.ConfigParser)

    def get(self, section: str, option: str, default: str) -> str:
        return self.parser.get(section, option, fallback=default)

    def get_int(self, section: str, option: str, default: int) -> int:
        try:
            return self.parser.getint(section, option, fallback=default)
        except ValueError:
            raise ConfigError("%s: [%s] %s must be a whole number"
                              % (self.config_file, section, option)) from None

    def get_float(self, section: str, option: str, default: float) -> float:
        try:
            return self.parser.getfloat(section, option, fallback=default)
        except ValueError:
            raise ConfigError("%s: [%s] %s must be a number"
                              % (self.config_file, section, option)) from None

    def node_name(self) -> str:
        """The name this node gives itself to peers and in rejection notices."""
        return self.get("sync", "node_name", self.get("server", "hostname", socket.getfqdn()))

    def get_bool(self, section: str, option: str, default: bool) -> bool:
        try:
            return self.parser.getboolean(section, option, fallback=default)
        except ValueError:
            raise ConfigError("%s: [%s] %s must be yes or no"
                              % (self.config_file, section, option)) from None


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


def load_settings(config_file: Optional[str] = None, db_url: Optional[str] = None) -> Settings:
    path = find_config_file(config_file)
    # "key = value   ; note": a ';' after whitespace starts a comment, as in the README.
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";",))
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                parser.read_file(handle)
        except OSError as exc:
            raise ConfigError("cannot read configuration %s: %s" % (path, exc)) from None
        except configparser.Error as exc:
            raise ConfigError("cannot read configuration %s: %s" % (path, _one_line(exc))) \
                from None
    url = (db_url or os.environ.get("CKS_DB")
           or parser.get("database", "url", fallback=None) or DEFAULT_DB)
    read_url = parser.get("database", "read_url", fallback="") or None
    return Settings(db_url=url, db_read_url=read_url, config_file=path, parser=parser)
