"""User ID and user attribute packets (RFC 9580 5.11, 5.12)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Optional

from ..folding import fold_address
from .reader import iter_subpackets

_EMAIL_IN_ANGLES = re.compile(r"<([^<>\s]+@[^<>\s]+)>")
_BARE_EMAIL = re.compile(r"^\s*([^<>\s]+@[^<>\s]+)\s*$")
MAX_EMAIL_LENGTH = 254  # RFC 5321's longest path, less its angle brackets


@dataclass
class UserID:
    value: bytes

    @classmethod
    def parse(cls, body: bytes) -> "UserID":
        return cls(body)

    def serialize(self) -> bytes:
        return self.value

    @property
    def text(self) -> str:
        """The user ID as text: UTF-8 by RFC, with undecodable bytes and NULs
        replaced (U+FFFD: no text column of PostgreSQL's holds a NUL)."""
        return self.value.decode("utf-8", "replace").replace("\0", "\ufffd")

    @property
    def email(self) -> Optional[str]:
        return address_of(self.text)


def address_of(text: str) -> Optional[str]:
    """The e-mail address of a user ID's text, folded (fold_address): the
    one in <...>, or the whole user ID if it is a bare address; None for one
    longer than an address can be (and than an index entry of PostgreSQL's
    may be)."""
    match = _EMAIL_IN_ANGLES.search(text) or _BARE_EMAIL.match(text)
    return fold_address(match.group(1)) if match and len(match.group(1)) <= MAX_EMAIL_LENGTH \
        else None


IMAGE_SUBPACKET = 1
IMAGE_FORMAT_JPEG = 1


@dataclass
class AttributeSubpacket:
    type: int
    data: bytes


@dataclass
class Image:
    """An image (photo ID) in a user attribute."""

    format: int  # 1 = JPEG
    data: bytes

    @property
    def mime_type(self) -> str:
        return "image/jpeg" if self.format == IMAGE_FORMAT_JPEG else "application/octet-stream"


@dataclass
class UserAttribute:
    subpackets: List[AttributeSubpacket]
    raw: bytes

    @classmethod
    def parse(cls, body: bytes) -> "UserAttribute":
        subpackets = [AttributeSubpacket(kind, data)
                      for kind, data in iter_subpackets(body, "user attribute")]
        return cls(subpackets, body)

    def serialize(self) -> bytes:
        return self.raw

    @property
    def images(self) -> List[Image]:
        """The images it holds (the photo IDs GnuPG's addphoto makes)."""
        out = []
        for sub in self.subpackets:
            if sub.type != IMAGE_SUBPACKET or len(sub.data) < 2:
                continue
            header_length = int.from_bytes(sub.data[:2], "little")
            if header_length < 4 or header_length > len(sub.data):
                continue  # (no room for its version and format octets)
            out.append(Image(sub.data[3], sub.data[header_length:]))
        return out
