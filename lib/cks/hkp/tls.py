"""hkps: the certificate and private key cksd serves TLS with ([server] tls_cert,
tls_key), as the SSLContext that new connections take.

reload() (on SIGHUP, after certbot renewed them, or from the paths the
configuration file names now) reads the files into a new context;
connections already open keep the one they started with.  A bad
pair at start-up is a ConfigError; a bad pair at reload is logged and the
old context stays.
"""

from __future__ import annotations

import logging
import ssl
import time
from typing import Optional, Tuple

from ..config import ConfigError, Settings

log = logging.getLogger("cks.tls")

EXPIRY_WARNING_DAYS = 14


class _EncryptedKey(Exception):
    """load_cert_chain asked for a passphrase (which cksd, a daemon, has none of)."""


def _no_passphrase() -> str:
    raise _EncryptedKey()


def _check_readable(option: str, path: str) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise ConfigError("[server] %s %s: cannot read it: %s"
                          % (option, path, exc.strerror or exc)) from None


def _check_certificate(path: str) -> None:
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=path)
    except ssl.SSLError:
        raise ConfigError("[server] tls_cert %s: no PEM certificate in it" % path) from None


def load_context(cert_path: str, key_path: str) -> ssl.SSLContext:
    """A server SSLContext for this certificate (chain) and key, PEM files
    (ConfigError saying what is wrong with them)."""
    _check_readable("tls_cert", cert_path)
    _check_readable("tls_key", key_path)
    _check_certificate(cert_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # Without renegotiation a read never has to write, nor a write to read
    # (server.py waits for readable sockets to read and writable ones to write).
    context.options |= ssl.OP_NO_RENEGOTIATION
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(cert_path, key_path, password=_no_passphrase)
    except _EncryptedKey:
        raise ConfigError("[server] tls_key %s is encrypted: cksd needs the key without "
                          "a passphrase" % key_path) from None
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise ConfigError("[server] tls_key %s is not the key of the certificate in "
                              "tls_cert %s" % (key_path, cert_path)) from None
        raise ConfigError("[server] tls_key %s: no PEM private key in it" % key_path) from None
    return context


class Certificates:
    """The context new TLS connections take (`context`), read again by reload()."""

    def __init__(self, cert_path: str, key_path: str) -> None:
        self.cert_path = cert_path
        self.key_path = key_path
        self.context = load_context(cert_path, key_path)

    def reload(self, cert_path: Optional[str] = None, key_path: Optional[str] = None) -> None:
        """Read the files again, or these (the configuration names others
        now); when they are bad, say so and keep serving with the old context."""
        cert_path, key_path = cert_path or self.cert_path, key_path or self.key_path
        try:
            self.context = load_context(cert_path, key_path)
        except ConfigError as exc:
            log.error("TLS certificate not reloaded, still serving the old one: %s", exc)
            return
        self.cert_path, self.key_path = cert_path, key_path
        log.info("TLS certificate reloaded from %s", self.cert_path)
        self.warn_if_expiring()

    def warn_if_expiring(self) -> None:
        """A warning when the certificate (the chain's first) has expired or
        expires within EXPIRY_WARNING_DAYS: cksd serves it all the same, and
        clients refuse it once it has."""
        try:  # (the standard library's one reader of a certificate file's dates)
            not_after = ssl._ssl._test_decode_cert(self.cert_path)["notAfter"]  # type: ignore
        except (AttributeError, KeyError, OSError):  # (ssl.SSLError is an OSError)
            return
        left = ssl.cert_time_to_seconds(not_after) - time.time()
        if left <= 0:
            log.warning("TLS certificate %s expired on %s", self.cert_path, not_after)
        elif left < EXPIRY_WARNING_DAYS * 86400:
            log.warning("TLS certificate %s expires within %d days, on %s", self.cert_path,
                        EXPIRY_WARNING_DAYS, not_after)


TLS_SETTINGS = frozenset({("server", "tls_cert"), ("server", "tls_key")})


def tls_paths(settings: Settings) -> Optional[Tuple[str, str]]:
    """[server] tls_cert and tls_key; None when neither is set."""
    cert = settings.get("server", "tls_cert", "")
    key = settings.get("server", "tls_key", "")
    if not cert and not key:
        return None
    if not cert or not key:
        raise ConfigError("[server] tls_cert and tls_key go together: set both or neither")
    return cert, key
