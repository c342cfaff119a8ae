"""Fixtures the interop tests with real SKS and Hockeypuck nodes share."""

import pytest

from cks.openpgp.keys import parse_keyring
from support import DEBIAN_KEYRING


@pytest.fixture(scope="module")
def debian_keys():
    """The keys of Debian's keyring, parsed once per test module."""
    with open(DEBIAN_KEYRING, "rb") as handle:
        return parse_keyring(handle.read()).keys
