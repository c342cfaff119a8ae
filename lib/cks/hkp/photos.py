"""Photo IDs at their own URL: `GET /pks/photo?fingerprint=FPR&n=N`.

A photo ID is an image subpacket (type 1) of a user attribute packet (tag
17, RFC 9580 5.12.1).  Photo N (1, 2, ...) of a key is the Nth image of its
served view, user attributes in the order the key page shows them, so an
image whose self-signature does not verify is never shown.  Only JPEG images
are served (the header says JPEG and the data starts like one), up to
MAX_PHOTO_BYTES; the answer carries a Content-Security-Policy that lets the
browser do nothing with it but show it.
"""

from __future__ import annotations

import re
from typing import List, Optional, Tuple

from ..openpgp.keys import Component, Key, parse_keyring
from ..openpgp.userid import IMAGE_FORMAT_JPEG, Image
from .request import Form, HKPError

PATH = "/pks/photo"
MAX_PHOTO_BYTES = 1 << 20
CONTENT_SECURITY_POLICY = "default-src 'none'; sandbox"
_JPEG_START = b"\xff\xd8\xff"  # SOI, then the next marker
_FINGERPRINT = re.compile(r"^(?:[0-9A-F]{32}|[0-9A-F]{40}|[0-9A-F]{64})$")
_NUMBER = re.compile(r"^[1-9][0-9]{0,5}$")


def photo_url(fingerprint: str, number: int) -> str:
    return "%s?fingerprint=%s&n=%d" % (PATH, fingerprint, number)


def photos_of(key: Key) -> List[Tuple[Component, Image]]:
    """Every image of the key's user attributes, with its attribute: photo N
    is entry N - 1."""
    return [(component, image) for component in key.attributes
            for image in component.value.images]


def refusal(image: Image) -> Optional[HKPError]:
    """Why this image is not served, or None when it is."""
    if image.format != IMAGE_FORMAT_JPEG or not image.data.startswith(_JPEG_START):
        return HKPError(415, "not a JPEG image: only JPEG photo IDs are served")
    if len(image.data) > MAX_PHOTO_BYTES:
        return HKPError(403, "%d bytes: photo IDs over %d bytes are not served"
                        % (len(image.data), MAX_PHOTO_BYTES))
    return None


def parse_query(query: Form) -> Tuple[str, int]:
    """(fingerprint, photo number) of a photo request; HKPError(400) when malformed."""
    fingerprint = (query.get("fingerprint") or "").strip().replace(" ", "").upper()
    if fingerprint.startswith("0X"):
        fingerprint = fingerprint[2:]
    if not _FINGERPRINT.match(fingerprint):
        raise HKPError(400, "fingerprint= needs the key's fingerprint: 40 hex digits (64 "
                            "for a v6 key, 32 for a v3 key)")
    numbers = query.all("n")
    if len(numbers) != 1 or not _NUMBER.match(numbers[0]):
        raise HKPError(400, "n= needs one photo number: 1 for the key's first photo ID, "
                            "2 for the second, ...")
    return fingerprint, int(numbers[0])


def jpeg(served: bytes, fingerprint: str, number: int) -> bytes:
    """Photo `number` of the served view `served`, or HKPError (404 when the key
    has no such photo, else the refusal)."""
    keys = parse_keyring(served).keys
    found = photos_of(keys[0]) if keys else []
    if number > len(found):
        raise HKPError(404, "key %s has no photo ID %d (it has %d)"
                       % (fingerprint, number, len(found)))
    image = found[number - 1][1]
    refused = refusal(image)
    if refused is not None:
        raise HKPError(refused.status, "photo ID %d of key %s: %s"
                       % (number, fingerprint, refused.message))
    return image.data
