"""Photo IDs at their own URL: `GET /pks/photo?fingerprint=FPR&n=N`.

A photo ID is an image subpacket (type 1) of a user attribute packet (tag
17, RFC 9580 5.12.1).  Photo N (1, 2, ...) of a key is the Nth image of its
served view, user attributes in the order the key page shows them, so an
image whose self-signature does not verify is never shown.  Only JPEG images
are served (the header says JPEG and the data starts like one), up to
MAX_PHOTO_BYTES; the answer carries a Content-Security-Policy that lets the
browser do nothing with it but show it, and a Cross-Origin-Resource-Policy
that lets only this server's pages show it.  A key page gives each photo's
size from the JPEG's frame header, so that it can load lazily.
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
HEADERS = [("Content-Security-Policy", CONTENT_SECURITY_POLICY),
           ("Cross-Origin-Resource-Policy", "same-origin")]
"""Of a photo's answer: the browser does nothing with it but show it (CSP),
and only on this site's pages (CORP: until 2026-12-07 any site could show
the photos, each view a request that reads and parses the whole key)."""
SHOWN_AT_MOST = (240, 320)
"""Width and height a key page shows a photo in at most (html.STYLE)."""
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # the start of frame markers
_NO_LENGTH = frozenset(range(0xD0, 0xD8)) | {0x01}  # RSTn and TEM: no segment
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


def jpeg_size(data: bytes) -> Optional[Tuple[int, int]]:
    """(width, height) of a JPEG from its start of frame, or None when no
    frame header comes before the scan: a walk over the segment headers,
    without decoding a pixel."""
    at = 2  # after SOI
    while at + 4 <= len(data) and data[at] == 0xFF:
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in _NO_LENGTH:
            at += 2
            continue
        if marker in _SOF and at + 9 <= len(data):
            height, width = int.from_bytes(data[at + 5:at + 7], "big"), \
                int.from_bytes(data[at + 7:at + 9], "big")
            return (width, height) if width and height else None
        if marker in (0xD9, 0xDA):  # EOI, SOS: no frame header before the scan
            return None
        at += 2 + int.from_bytes(data[at + 2:at + 4], "big")
    return None


def shown_size(image: Image) -> Optional[Tuple[int, int]]:
    """The size a key page shows the photo in (its own, scaled down to fit
    SHOWN_AT_MOST): given in the <img>, the page keeps the photo's place
    before it loads, and lazy loading fetches only the photos in view."""
    size = jpeg_size(image.data)
    if size is None:
        return None
    width, height = size
    scale = min(1.0, SHOWN_AT_MOST[0] / width, SHOWN_AT_MOST[1] / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


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
