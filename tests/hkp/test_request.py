"""HKP request parsing and machine-readable output, without a server."""

import pytest

from cks.hkp import mr
from cks.hkp.request import HKPError, classify, parse_lookup
from cks.store.base import KeyRow, UserIDRow, words_of


def _kind(text, exact=False):
    query = classify(text, exact, words_of)
    return query.kind, query.value


@pytest.mark.parametrize("text,kind,value", [
    ("0x5ef6b51a", "short_keyid", "5EF6B51A"),
    ("0x9C1DEEEB5EF6B51A", "keyid", "9C1DEEEB5EF6B51A"),
    ("0xAD625CE7F94E6F847AF08DB09C1DEEEB5EF6B51A", "fingerprint",
     "AD625CE7F94E6F847AF08DB09C1DEEEB5EF6B51A"),
    ("AD62 5CE7 F94E 6F84 7AF0  8DB0 9C1D EEEB 5EF6 B51A", "fingerprint",
     "AD625CE7F94E6F847AF08DB09C1DEEEB5EF6B51A"),
    ("0x" + "ab" * 32, "fingerprint", "AB" * 32),
    ("0x" + "cd" * 16, "fingerprint", "CD" * 16),
    ("alice@Example.org", "email", "alice@example.org"),
    ("<alice@example.org>", "email", "alice@example.org"),
    ("Alice Example", "words", "Alice Example"),
])
def test_classify(text, kind, value):
    assert _kind(text) == (kind, value)


def test_words_and_exact():
    query = classify("Jürgen  MÜLLER", False, words_of)
    assert query.words == ("jürgen", "müller")
    assert classify("Alice Example", True, words_of).kind == "exact"


@pytest.mark.parametrize("query,status", [
    ("search=x", 400),                         # no op
    ("op=frobnicate&search=x", 501),           # unknown op
    ("op=get", 400),                           # no search
    ("op=get&search=", 400),
    ("op=get&search=0xZZZZ", 400),             # not hex
    ("op=get&search=0x123456789012", 501),     # 12 hex digits: no such id
    ("op=hget&search=abc", 400),               # hget needs 32 hex
    ("op=index&search=%21%21%21", 400),        # no words at all
])
def test_bad_lookups(query, status):
    with pytest.raises(HKPError) as caught:
        parse_lookup(query, words_of)
    assert caught.value.status == status


def test_lookup_variables_in_any_order_unknown_ignored():
    lookup = parse_lookup("fingerprint=on&search=0x5EF6B51A&x-foo=1&options=mr,nm&op=index",
                          words_of)
    assert (lookup.op, lookup.machine_readable, lookup.fingerprint) == ("index", True, True)
    assert lookup.options == frozenset({"mr", "nm"})
    assert parse_lookup("op=stats", words_of).search is None


def test_escape():
    assert mr.escape("a:b%c") == "a%3Ab%25c"
    assert mr.escape("Jürgen") == "J%C3%BCrgen"
    assert mr.escape("tab\there\x7f") == "tab%09here%7F"
    assert mr.escape("plain <x@y.org> (c)") == "plain <x@y.org> (c)"


def test_index_format():
    row = KeyRow("AB" * 20, 4, "AB" * 8, 1, 2048, 1000, 2000, False, "00" * 16, 10, 0, 0,
                 [UserIDRow("A:B", "b@x", False, 1000, None, False),
                  UserIDRow("old", None, False, 900, 950, True),
                  UserIDRow("[photo]", None, True, 1000, None, False)])
    v3 = KeyRow("CD" * 16, 3, "CD" * 8, 1, 1024, 5, None, True, "11" * 16, 10, 0, 0, [])
    assert mr.index([row, v3], now=1500).splitlines() == [
        "info:1:2",
        "pub:%s:1:2048:1000:2000:" % ("AB" * 20),
        "uid:A%3AB:1000::",
        "uid:old:900:950:re",
        "pub:%s:1:1024:5::r" % ("CD" * 8),
    ]
    assert mr.index([row], now=3000).splitlines()[1].endswith(":e")
