"""Searches for user IDs that are not ASCII, through cksd over HTTP on SQLite
and PostgreSQL: by words, by address and with exact=on, the ways of writing
the same letters (composed or decomposed, in either case) find the same keys."""

import urllib.parse

import pytest

from cks.openpgp.armor import encode
from support.forge import self_signed_key
from support.nodes import settled
from support.server import Cksd

UIDS = {
    "hans": "Hans M\u00fcller <hans@example.org>",  # (composed: NFC)
    "grete": "Grete Mu\u0308ller <grete@example.org>",  # (decomposed: NFD)
    "klaus": "Klaus Wei\u00df <weiss@example.de>",
    "joerg": "J\u00f6rg <mu\u0308ller+news@example.net>",  # (an address decomposed)
    "anna": "Anna <m\u00fcller@example.com>",  # (and composed)
    "ismail": "\u0130smail \u00c7elik <celik@example.com.tr>",
    "ayse": "Ay\u015fe Y\u0131lmaz <ayse@example.com.tr>",
}
KEYS = {name: self_signed_key(bytes((0x40 + n,)) * 32, [uid.encode()])
        for n, (name, uid) in enumerate(sorted(UIDS.items()))}


@pytest.fixture(scope="module")
def server(module_db_url):
    with Cksd(module_db_url) as cksd:
        for _, data in KEYS.values():
            status, _, body = cksd.add(encode(data))
            assert status == 200, body
        settled(cksd)
        yield cksd


def _found(server, search, **extra):
    """The fingerprints an index of `search` lists (none: 404)."""
    query = urllib.parse.urlencode(dict(op="index", options="mr", search=search, **extra))
    status, _, body = server.request("GET", "/pks/lookup?" + query)
    assert status in (200, 404), (search, status, body)
    return [line.split(":")[1] for line in body.decode().splitlines()
            if line.startswith("pub:")]


@pytest.mark.parametrize("name, search", [
    ("hans", "Hans Mu\u0308ller <hans@example.org>"),
    ("grete", "Grete M\u00fcller <grete@example.org>"),
    ("klaus", "KLAUS WEISS <WEISS@EXAMPLE.DE>"),
    ("klaus", "klaus weiss <weiss@example.de>"),
])
def test_exact_matches_the_whole_user_id_folded_as_the_words_are(server, name, search):
    """Until 2026-12-06 exact=on compared lower()ed text: the words found
    these keys and the exact filter then dropped them (404)."""
    assert _found(server, search) == [KEYS[name][0]]
    assert _found(server, search, exact="on") == [KEYS[name][0]]


def test_exact_still_wants_the_whole_user_id(server):
    assert _found(server, "Klaus Weiss", exact="on") == []
    assert _found(server, "Hans M\u00fcller <hans@example.org> x", exact="on") == []


@pytest.mark.parametrize("name, search", [
    ("joerg", "m\u00fcller+news@example.net"),
    ("joerg", "<M\u00dcLLER+news@example.net>"),
    ("anna", "mu\u0308ller@example.com"),
    ("anna", "MU\u0308LLER@EXAMPLE.COM"),
])
def test_an_address_is_found_whichever_normal_form_either_side_has(server, name, search):
    """Until 2026-12-06 an address was only lower-cased, stored and searched:
    one typed composed missed the same address stored decomposed, and the
    reverse (404, and gpg --locate-keys found nothing)."""
    assert _found(server, search) == [KEYS[name][0]]
    assert _found(server, search, exact="on") == [KEYS[name][0]]


def test_an_exact_search_for_a_plus_address_is_folded_alike(server):
    """dirmngr sends --locate-keys m\u00fcller+news@example.net as
    `m\u00fcller news@example.net` with exact=on (README)."""
    assert _found(server, "m\u00fcller news@example.net", exact="on") == [KEYS["joerg"][0]]


@pytest.mark.parametrize("name, search", [
    ("ismail", "\u0130SMA\u0130L"),
    ("ismail", "ismail \u00e7elik"),
    ("ayse", "YILMAZ"),
    ("ayse", "yilmaz ay\u015fe"),
    ("ayse", "Y\u0131lmaz"),
])
def test_turkish_dotted_and_dotless_i_fold_to_i(server, name, search):
    """Case folding makes \u0130 i + U+0307 and leaves \u0131 as it is: until
    2026-12-06 \u0130SMA\u0130L missed \u0130smail, and YILMAZ Y\u0131lmaz."""
    assert _found(server, search) == [KEYS[name][0]]


def test_turkish_user_ids_match_exactly_in_either_case(server):
    for search in ("\u0130SMA\u0130L \u00c7EL\u0130K <CELIK@EXAMPLE.COM.TR>",
                   "ismail \u00e7elik <celik@example.com.tr>"):
        assert _found(server, search, exact="on") == [KEYS["ismail"][0]]
    assert _found(server, "AY\u015eE YILMAZ <AYSE@EXAMPLE.COM.TR>", exact="on") == \
        [KEYS["ayse"][0]]
