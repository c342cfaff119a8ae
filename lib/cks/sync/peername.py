"""Peer names as cks_sync_manage.py takes them: host[:port] or an e-mail address."""

from __future__ import annotations

import ipaddress
import re
from typing import Optional, Tuple

DEFAULT_HKP_PORT = 11371
# (fullmatch: `$` matches before a final newline too, and a newline in a
# mail peer's name would end the header it goes in)
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}")
_MAPPED_PEER = re.compile(r"\[::ffff:([0-9.]+)\](:[0-9]+)")  # (as ipv6_spelling writes it)
_PORT = re.compile(r"[0-9]{1,5}")  # (ASCII: str.isdigit() and int() take '٣' and '²')


class PeerNameError(ValueError):
    """A peer name that is not a valid host[:port] or e-mail address."""


def valid_hostname(host: str) -> bool:
    if len(host) > 253:
        return False
    labels = without_root_dot(host).split(".")
    return all(_LABEL.fullmatch(label) for label in labels) and not labels[-1].isdigit()


def without_root_dot(name: str) -> str:
    """A domain name without its final dot, the root's (the same name); one
    dot only: 'a.example..' keeps an empty label, and is no host name."""
    return name[:-1] if name.endswith(".") else name


def parse_hkp_peer(text: str) -> Tuple[str, int]:
    """(host, port) of 'host', 'host:port', '[v6addr]' or '[v6addr]:port'."""
    text = text.strip().lower()
    if "://" in text:
        raise PeerNameError("%r: give host[:port], without a URL scheme: "
                            "keys.example.org:11371" % text)
    port_text: Optional[str] = None
    if text.count(":") > 1 and not text.startswith("["):
        raise PeerNameError("%r: an IPv6 address goes in brackets: [::1]:11371" % text)
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise PeerNameError("%r: an IPv6 address goes in brackets: [::1]:11371" % text)
        port_text = rest[1:] if rest else None
        try:
            host = ipv6_spelling(ipaddress.IPv6Address(host))
        except ValueError:
            raise PeerNameError("%r is not an IPv6 address" % host) from None
    else:
        host, sep, port_text = text.partition(":")
        port_text = port_text if sep else None
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            if not valid_hostname(host):
                raise PeerNameError("%r is not a valid host name" % host) from None
            host = without_root_dot(host)
    port = DEFAULT_HKP_PORT
    if port_text is not None:
        if not _PORT.fullmatch(port_text) or not 0 < int(port_text) < 65536:
            raise PeerNameError("port %r must be a number from 1 to 65535" % port_text)
        port = int(port_text)
    return host, port


def ipv6_spelling(address: ipaddress.IPv6Address) -> str:
    """One spelling per address, whatever the Python: compressed, and an
    IPv4-mapped one as RFC 5952 writes it, ::ffff:192.0.2.7 (Python 3.13's
    `compressed`; 3.12 and older give ::ffff:c000:207)."""
    if address.ipv4_mapped is not None:
        return "::ffff:%s" % address.ipv4_mapped
    return address.compressed


def hkp_peer_name(host: str, port: int) -> str:
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)


def parse_mail_peer(text: str) -> str:
    """A normalized e-mail address (the domain lower-cased, without the
    root's final dot: the same mailbox)."""
    local, sep, domain = text.strip().rpartition("@")
    domain = domain.lower()
    if not sep or not _LOCAL_PART.fullmatch(local) or ".." in local \
            or not valid_hostname(domain) or "." not in without_root_dot(domain):
        raise PeerNameError("%r is not a valid e-mail address" % text)
    return "%s@%s" % (local, without_root_dot(domain))


def spellings(name: str) -> Tuple[str, ...]:
    """A normalized peer name and the other spellings of that peer an older
    CKS may have stored (until 2026-12-05): a mail domain with its final dot,
    an IPv4-mapped IPv6 address in hex groups (as Python 3.12 and older
    compressed it)."""
    if "@" in name:
        return name, name + "."
    mapped = _MAPPED_PEER.fullmatch(name)
    if mapped:
        high, low = divmod(int(ipaddress.IPv4Address(mapped.group(1))), 1 << 16)
        return name, "[::ffff:%x:%x]%s" % (high, low, mapped.group(2))
    return (name,)


def parse_peer(text: str, kind: Optional[str] = None) -> Tuple[str, str]:
    """(kind, normalized name): an address with '@' is a mail peer unless told otherwise."""
    if kind is None:
        kind = "mail" if "@" in text else "hkp"
    if kind == "mail":
        return kind, parse_mail_peer(text)
    host, port = parse_hkp_peer(text)
    return kind, hkp_peer_name(host, port)
