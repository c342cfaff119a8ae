"""The OpenPGP layer's own error types.

Everything that reads untrusted bytes raises only these (never IndexError,
struct.error, UnicodeError, ...), so callers can turn any of them into a
clear message for the user.
"""


class PGPError(ValueError):
    """Malformed or unacceptable OpenPGP data."""


class ArmorError(PGPError):
    """An ASCII-armor block that cannot be decoded."""


class PacketError(PGPError):
    """A packet whose framing or body does not follow RFC 9580."""
