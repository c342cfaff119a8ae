"""Helpers the tests share: fixtures on disk, throw-away GnuPG homes, processes."""

import json
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


def write_keyring(path, keys):
    """`keys` (parsed keys) as one binary keyring file at `path` (a Path); its path."""
    path.write_bytes(b"".join(k.serialize() for k in keys))
    return path


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _load_expected() -> dict:
    with open(os.path.join(FIXTURES, "expected.json")) as handle:
        return json.load(handle)


# What tests/fixtures/make_fixtures.py recorded of every fixture file.
EXPECTED = _load_expected()
PUBLIC_FIXTURES = sorted(name for name in EXPECTED if not name.startswith("secret/"))
# gpg 2.2 reads v4 keys with the algorithms it knows; v3/v5/v6 and native
# Ed25519/Ed448 keys are checked against the script-built expectations only.
GPG_READABLE = [name for name in PUBLIC_FIXTURES
                if all(k["version"] == 4 and k["algo"] in (1, 16, 17, 18, 19, 22)
                       for k in EXPECTED[name])]
