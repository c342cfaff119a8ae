"""Helpers the tests share: fixtures on disk, throw-away GnuPG homes, processes."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "keys")
DEBIAN_KEYRING = "/usr/share/keyrings/debian-keyring.gpg"


def fixture(name: str) -> bytes:
    """The bytes of tests/fixtures/keys/NAME (add .asc when no extension is given)."""
    if "." not in name:
        name += ".asc"
    with open(os.path.join(FIXTURES, name), "rb") as handle:
        return handle.read()


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")
