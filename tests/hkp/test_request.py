"""HKP request parsing and machine-readable output, without a server."""

import base64
import html
import re
from http import HTTPStatus
from urllib.parse import unquote_to_bytes, urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cks.hkp import mr
from cks.hkp.admin import AdminSettings, hash_password
from cks.hkp.app import KeyServer, Request, ServerSettings
from cks.hkp.cksd_metrics import STATUSES
from cks.hkp.http1 import TLS_ON_PLAIN_PORT, HTTPError, format_response, parse_head
from cks.hkp.request import (QUERY_ONCE, HKPError, classify, parse_form, parse_lookup,
                             split_target)
from cks.hkp.server import is_quick
from cks.store.rows import KeyRow, UserIDRow, all_words_of


def _kind(text, exact=False):
    query = classify(text, exact, all_words_of)
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
    # 0x and no hex after it: an address or words (until 2026-12-06: 400)
    ("0xcafe@example.org", "email", "0xcafe@example.org"),
    ("0xAlice Hacker", "words", "0xAlice Hacker"),
    ("0xZZZZ", "words", "0xZZZZ"),
])
def test_classify(text, kind, value):
    assert _kind(text) == (kind, value)


ODYSSEAS = "\u03bf\u03b4\u03c5\u03c3\u03c3\u03b5\u03b1\u03c3"


@pytest.mark.parametrize("text, words", [
    ("Stra\u00dfe WEI\u00df", ["strasse", "weiss"]),          # case folding, not lower()
    ("WEISS", ["weiss"]),
    ("Jose\u0301 Mu\u0308ller", ["jos\u00e9", "m\u00fcller"]),  # NFD: as NFC
    ("Jos\u00e9", ["jos\u00e9"]),
    ("\u0930\u093e\u092e \u0936\u0930\u094d\u092e\u093e",     # vowel signs stay in
     ["\u0930\u093e\u092e", "\u0936\u0930\u094d\u092e\u093e"]),
    ("\u039f\u0394\u03a5\u03a3\u03a3\u0395\u0391\u03a3", [ODYSSEAS]),    # capitals
    ("\u03bf\u03b4\u03c5\u03c3\u03c3\u03b5\u03b1\u03c2", [ODYSSEAS]),    # final sigma
    ("O'Brien Jean-Luc snake_case R2D2", ["o", "brien", "jean", "luc", "snake", "case", "r2d2"]),
    ("\u0301alone", ["alone"]),                                # a mark starts no word
])
def test_words(text, words):
    """Until 2026-12-06 combining marks ended a word and case was lower()ed:
    `WEISS` missed `Wei\u00df`, a decomposed `Jose\u0301` missed `Jos\u00e9`, and a
    Devanagari name was found by its consonants alone."""
    assert all_words_of(text) == words


def test_words_and_exact():
    query = classify("Jürgen  MÜLLER", False, all_words_of)
    assert query.words == ("jürgen", "müller")
    assert classify("Alice Example", True, all_words_of).kind == "exact"


@pytest.mark.parametrize("text, address", [
    ("user tag@example.org", "user+tag@example.org"),  # what GnuPG 2.2 sends for user+tag@
    ("  User Tag@Example.org ", "user+tag@example.org"),
    ("a b c@example.org", "a+b+c@example.org"),
    ("Plus Tag <user+tag@example.org>", None),  # a whole user ID: the '+' spaces make <>
    ("user tag@example.org@x", None),  # two '@'
    ("user\ttag@example.org", None),  # a tab is no '+' GnuPG turned into a space
    ("Alice Example", None),
])
def test_an_exact_search_with_spaces_may_be_an_address_with_plus(text, address):
    """GnuPG 2.2's dirmngr sends user+tag@example.org as `user tag@example.org`
    with exact=on (the '+' made a space); the search is also taken as the
    address that '+' for each space makes, when that is one plain address."""
    query = classify(text, True, all_words_of)
    assert (query.kind, query.value, query.plus_address) == ("exact", text.strip(), address)
    assert classify(text, False, all_words_of).plus_address is None


@pytest.mark.parametrize("query,status", [
    ("search=x", 400),                         # no op
    ("op=frobnicate&search=x", 501),           # unknown op
    ("op=get", 400),                           # no search
    ("op=get&search=", 400),
    ("op=get&search=0x123456789012", 501),     # 12 hex digits: no such id
    ("op=hget&search=abc", 400),               # hget needs 32 hex
    ("op=index&search=%21%21%21", 400),        # no words at all
])
def test_bad_lookups(query, status):
    with pytest.raises(HKPError) as caught:
        parse_lookup(parse_form(query, QUERY_ONCE), all_words_of)
    assert caught.value.status == status


def test_lookup_variables_in_any_order_unknown_ignored():
    lookup = parse_lookup(parse_form(
        "fingerprint=on&search=0x5EF6B51A&x-foo=1&x-foo=2&options=mr,nm&op=index", QUERY_ONCE),
        all_words_of)
    assert (lookup.op, lookup.machine_readable, lookup.fingerprint) == ("index", True, True)
    assert lookup.options == frozenset({"mr", "nm"})
    assert parse_lookup(parse_form("op=stats"), all_words_of).search is None


def test_escape():
    assert mr.escape(b"a:b%c") == "a%3Ab%25c"
    assert mr.escape("Jürgen".encode()) == "J%C3%BCrgen"
    assert mr.escape(b"J\xfcrgen \x00") == "J%FCrgen %00"
    assert mr.escape(b"tab\there\x7f") == "tab%09here%7F"
    assert mr.escape(b"plain <x@y.org> (c)") == "plain <x@y.org> (c)"


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


def test_index_lists_the_bytes_of_a_user_id_whose_text_was_replaced():
    """The user ID packets read (mr.index's `values`, by position) are listed
    when their text is the stored one; otherwise (the served view changed
    since the rows were read) the stored text is."""
    row = KeyRow("AB" * 20, 4, "AB" * 8, 22, 255, 1000, None, False, "00" * 16, 10, 0, 0,
                 [UserIDRow("[photo]", None, True, 1000, None, False),
                  UserIDRow("J\ufffdrgen \ufffd", None, False, 1000, None, False),
                  UserIDRow("Other \ufffd", None, False, 1000, None, False)])
    assert mr.may_differ_from_text(row)
    lines = mr.index([row], 1500, {row.fingerprint: [b"\x01", b"J\xfcrgen \x00", b"New"]})
    assert lines.splitlines()[2:] == ["uid:J%FCrgen %00:1000::",
                                      "uid:Other %EF%BF%BD:1000::"]


# --- query strings and form bodies ------------------------------------------------------

def test_form_fields_decoding_and_repeats():
    form = parse_form("op=get&search=J%C3%BCrgen+M%c3%bcller&flag&keytext=a%2Bb&keytext=c",
                      QUERY_ONCE)
    assert form.get("search") == "Jürgen Müller"  # + is a space, %2B a plus
    assert form.get("flag") == ""
    assert form.all("keytext") == ("a+b", "c")  # keytext may repeat
    assert form.get("missing") is None and form.all("missing") == ()
    assert parse_form(b"search=J\xc3\xbcrgen").get("search") == "Jürgen"  # raw UTF-8 bytes
    assert parse_form("options=MR,+nm&x=1").options == frozenset({"mr", "nm"})


_FIELD_PIECES = ["%", "=", "\r", "\n", "_", "+", " ", "a", "F", "0", "g", "%0A", "%0d",
                 "%3D", "%3d", "%25", "%2B", "%2f", "%C3%BC", "%c3%A9", "\u00fc", "%41%"]


@given(st.lists(st.sampled_from(_FIELD_PIECES), max_size=12).map("".join))
@settings(max_examples=1000, deadline=None)
def test_values_decode_as_urllib_decodes_them(value):
    # parse_form decodes an escape-heavy value (an armored key) without
    # urllib's loop; what it makes of any value is still what urllib makes.
    raw = value.encode("utf-8")
    try:
        expected = unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        expected = None
    if re.search(rb"%(?![0-9A-Fa-f]{2})", raw) or expected is None or "\0" in expected:
        with pytest.raises(HKPError):
            parse_form(b"keytext=" + raw)
    else:
        assert parse_form(b"keytext=" + raw).get("keytext") == expected


def test_an_armored_key_decodes_as_urllib_decodes_it():
    armored = ("-----BEGIN PGP PUBLIC KEY BLOCK-----\r\n\r\nmQINBF+/a=b+c\n=AbCd\n"
               "-----END PGP PUBLIC KEY BLOCK-----\n")
    for body in (urlencode({"keytext": armored}), urlencode({"keytext": armored}).lower()):
        assert parse_form(body).get("keytext") == unquote_to_bytes(
            body.partition("=")[2].replace("+", " ")).decode()
    assert parse_form(urlencode({"keytext": armored})).get("keytext") == armored


def test_empty_segments_are_skipped():
    assert parse_form("&op=get&&search=x&").values == {"op": ("get",), "search": ("x",)}
    assert parse_form("").values == {} and parse_form("&&").values == {}


def test_the_limit_on_fields():
    assert len(parse_form("&".join("f%d=1" % i for i in range(100))).values) == 100
    _assert_400("&".join("f=1" for _ in range(101)), "more than 100 parameters")


def _assert_400(data, reason, once=QUERY_ONCE):
    with pytest.raises(HKPError) as caught:
        parse_form(data, once)
    assert caught.value.status == 400
    assert caught.value.message == "malformed request: " + reason


@pytest.mark.parametrize("query,reason", [
    ("op=get;search=x", "use & between parameters, not ;"),
    ("op=get&search=a%3Bb;", "use & between parameters, not ;"),
    ("op=get&search=%zz", "bad percent-escape '%zz' in parameter 'search': "
                          "% must be followed by two hex digits"),
    ("op=get&search=ab%4", "bad percent-escape '%4' in parameter 'search': "
                           "% must be followed by two hex digits"),
    ("op=get&search=%", "bad percent-escape '%' in parameter 'search': "
                        "% must be followed by two hex digits"),
    ("o%g=get", "bad percent-escape '%g' in a parameter name: "
                "% must be followed by two hex digits"),
    ("op=get&search=%00%ff", "parameter 'search' is not UTF-8"),
    ("op=get&search=%c3", "parameter 'search' is not UTF-8"),
    (b"op=get&search=\xff", "parameter 'search' is not UTF-8"),
    ("%ff=1", "a parameter name is not UTF-8"),
    ("op=get&search=a%00b", "NUL character in parameter 'search'"),
    (b"op=get&search=a\x00b", "NUL character in parameter 'search'"),
    ("a%00=1", "NUL character in a parameter name"),
    ("=x", "a parameter without a name"),
    ("op=get&=", "a parameter without a name"),
])
def test_malformed_fields(query, reason):
    _assert_400(query, reason)


@pytest.mark.parametrize("name", sorted(QUERY_ONCE))
def test_lookup_variables_given_twice(name):
    _assert_400("op=get&search=x&%s=1&%s=2" % (name, name), "parameter %r given twice" % name)


def test_given_twice_applies_to_the_names_read_once_only():
    assert parse_form("keytext=a&keytext=b&x=1&x=2", frozenset({"options"})).all("x") == \
        ("1", "2")
    _assert_400("keytext=a&options=mr&options=mr", "parameter 'options' given twice",
                frozenset({"options"}))


@pytest.mark.parametrize("target,path,query", [
    ("/pks/lookup?op=get&search=x", "/pks/lookup", "op=get&search=x"),
    ("/pks/lookup", "/pks/lookup", ""),
    ("/pks/lookup?a?b", "/pks/lookup", "a?b"),
    ("http://keys.example.org:11371/pks/lookup?op=x", "/pks/lookup", "op=x"),
    ("http://keys.example.org?op=x", "/", "op=x"),
    ("//[x/pks/lookup?op=x", "//[x/pks/lookup", "op=x"),  # urlsplit raised here
    ("*", "*", ""),
])
def test_split_target(target, path, query):
    assert split_target(target) == (path, query)


# --- the application: parse once, answer 400 -------------------------------------------

def _handle(target, method="GET", body=b"", headers=None):
    return _handle_request(Request(method, target, headers or {}, body, "192.0.2.1"))


def _handle_request(request):
    # store=None: none of these requests may reach the database.
    return KeyServer(None, ServerSettings()).handle(request)


@pytest.mark.parametrize("target,reason", [
    ("/pks/lookup?op=get&search=%00%ff", "parameter 'search' is not UTF-8"),
    ("/pks/lookup?op=index&options=mr&search=%ff", "parameter 'search' is not UTF-8"),
    ("/pks/lookup?op=%ff&search=x", "parameter 'op' is not UTF-8"),
    ("/pks/lookup?op=get&search=x&x-unknown=%e0%80", "parameter 'x-unknown' is not UTF-8"),
    ("/pks/lookup?op=get;search=x", "use & between parameters, not ;"),
    ("/pks/lookup?op=get&search=x&search=y", "parameter 'search' given twice"),
    ("/pks/lookup?op=get&search=x&options=mr&options=mr", "parameter 'options' given twice"),
    ("/pks/hashquery?x=%ff", "parameter 'x' is not UTF-8"),
    ("/?=1", "a parameter without a name"),
])
@pytest.mark.parametrize("accept", ["", "text/html"])
def test_a_malformed_query_is_400_with_the_reason(target, reason, accept):
    response = _handle(target, headers={"accept": accept})
    assert response.status == 400
    assert "malformed request: " + reason in html.unescape(response.body.decode())


def test_a_malformed_query_is_400_for_every_method_and_path():
    for method in ("GET", "HEAD", "POST", "OPTIONS"):
        for path in ("/pks/lookup", "/pks/add", "/pks/x-cks-rejection", "/nowhere"):
            response = _handle(path + "?a=%zz", method)
            assert response.status == 400, (method, path)
            assert b"bad percent-escape '%zz'" in response.body


@pytest.mark.parametrize("path", ["/pks/%ff", "/pks/lookup%00", "/pks/%zz", "/%c3"])
def test_odd_paths_are_404(path):
    response = _handle(path)
    assert response.status == 404 and response.body == b"no such page: %s\n" % path.encode()


@pytest.mark.parametrize("path,body,reason", [
    ("/pks/add", b"keytext=%ff", "parameter 'keytext' is not UTF-8"),
    ("/pks/add", b"keytext=\x99\x01", "parameter 'keytext' is not UTF-8"),
    ("/pks/add", b"keytext=a%00", "NUL character in parameter 'keytext'"),
    ("/pks/add", b"keytext=a;options=mr", "use & between parameters, not ;"),
    ("/pks/add", b"keytext=%2", "bad percent-escape '%2' in parameter 'keytext': "
                                "% must be followed by two hex digits"),
    ("/pks/add", b"keytext=a&options=mr&options=mr", "parameter 'options' given twice"),
    ("/pks/add", b"=abc", "a parameter without a name"),
    ("/pks/x-cks-rejection", b"notice=a&notice=b", "parameter 'notice' given twice"),
    ("/pks/x-cks-rejection", b"signature=%ff", "parameter 'signature' is not UTF-8"),
    ("/pks/x-cks-rejection", b"notice=a;signature=b", "use & between parameters, not ;"),
])
def test_malformed_forms_are_400(path, body, reason):
    response = _handle(path, "POST", body, {"content-type": "application/x-www-form-urlencoded"})
    assert (response.status, response.body) == (400, ("malformed request: %s\n"
                                                      % reason).encode())


@pytest.mark.parametrize("field", ["token", "action", "fingerprint", "reason"])
def test_admin_form_fields_given_twice_are_400(field):
    settings = ServerSettings(admin=AdminSettings(hash_password("pw", iterations=1000)))
    request = Request("POST", "/pks/admin", {
        "content-type": "application/x-www-form-urlencoded",
        "authorization": "Basic " + base64.b64encode(b"admin:pw").decode()},
        ("%s=a&%s=b" % (field, field)).encode())
    response = KeyServer(None, settings).handle(request)
    assert (response.status, response.body) == (400, ("malformed request: parameter %r "
                                                      "given twice\n" % field).encode())


def _count_parses(monkeypatch):
    import cks.hkp.request
    calls = []
    real = cks.hkp.request.parse_form
    monkeypatch.setattr(cks.hkp.request, "parse_form", lambda *a: calls.append(a) or real(*a))
    cks.hkp.request._kept_query.cache_clear()
    return calls


def test_the_query_is_parsed_once(monkeypatch):
    calls = _count_parses(monkeypatch)
    request = Request("GET", "/pks/lookup?op=get&search=%00%ff")
    assert _handle_request(request).status == 400
    assert len(calls) == 1 and is_quick(request)


def test_a_repeated_short_query_is_parsed_once(monkeypatch):
    calls = _count_parses(monkeypatch)
    for _ in range(3):
        request = Request("GET", "/pks/lookup?op=index&options=mr&search=0x9C1DEEEB5EF6B51A")
        assert request.query.get("search") == "0x9C1DEEEB5EF6B51A"
        bad = Request("GET", "/pks/lookup?op=get&op=index")
        assert bad.malformed.status == 400
        assert bad.malformed.message == "malformed request: parameter 'op' given twice"
    assert len(calls) == 2
    assert Request("GET", "/pks/lookup?op=get&op=index").malformed is not bad.malformed
    long_query = "/pks/lookup?op=index&search=" + "a" * 300  # past KEPT_QUERY_LENGTH
    for _ in range(2):
        assert Request("GET", long_query).query.get("search") == "a" * 300
    assert len(calls) == 4


def test_is_quick_reads_the_parsed_query():
    assert is_quick(Request("GET", "/pks/lookup?op=index&search=alice"))
    assert is_quick(Request("GET", "/pks/lookup?op=index&search=alice%40example.org"))
    assert is_quick(Request("GET", "/pks/lookup?op=index&search=0x12345678"))
    # several words, or exact=on: a word looked up for each key of another
    assert not is_quick(Request("GET", "/pks/lookup?op=index&search=alice+smith"))
    assert not is_quick(Request("GET", "/pks/lookup?op=index&search=alice.smith"))
    assert not is_quick(Request("GET", "/pks/lookup?op=index&search=alice&exact=on"))
    # 0x and words: a search by words (a nickname), not a key ID
    assert is_quick(Request("GET", "/pks/lookup?op=index&search=0x1234+5678+9ABC+DEF0"))
    assert not is_quick(Request("GET", "/pks/lookup?op=index&search=0xalice+smith"))
    assert not is_quick(Request("GET", "/pks/lookup?op=get&search=0xalice"))
    assert is_quick(Request("GET", "/pks/lookup?search=0x12345678&op=get"))
    assert not is_quick(Request("GET", "/pks/lookup?op=get&search=alice"))
    assert not is_quick(Request("GET", "/pks/lookup?op=stats"))
    assert not is_quick(Request("POST", "/pks/add"))


# --- HTTP request heads (http1.py) -----------------------------------------------------

@pytest.mark.parametrize("head,status,reason", [
    (b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n", 400, "malformed header line"),
    (b"GET / HTTP/1.1\r\n: empty name\r\n\r\n", 400, "malformed header line"),
    (b"GET / HTTP/1.1\r\nBad\x00Name: x\r\n\r\n", 400, "malformed header line"),
    (b"GET / HTTP/1.1\r\nN\xe4me: x\r\n\r\n", 400, "malformed header line"),
    (b"GET / HTTP/1.1\r\n folded: x\r\n\r\n", 400, "malformed header line"),
    (b"GET / HTTP/1.1\r\nX-CKS-Sync: a\x00b\r\n\r\n", 400, "control character in header "
                                                             "X-CKS-Sync"),
    (b"GET / HTTP/1.1\r\nUser-Agent: a\rb\r\n\r\n", 400, "control character in header "
                                                           "User-Agent"),
    (b"GET /pks/lookup?op=get&search=\x00 HTTP/1.1\r\n\r\n", 400,
     "control character in the request target"),
    (b"GET /pks/\x7f HTTP/1.1\r\n\r\n", 400, "control character in the request target"),
    (b"G\xc9T / HTTP/1.1\r\n\r\n", 400, "malformed method"),
    (b"get / HTTP/1.1\r\n\r\n", 400, "malformed method"),
])
def test_malformed_heads(head, status, reason):
    with pytest.raises(HTTPError) as caught:
        parse_head(bytearray(head))
    assert (caught.value.status, caught.value.message) == (status, reason)


@pytest.mark.parametrize("start", [b"\x16", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
                                   b"\x16\x03\x01 garbage\r\n\r\n"])
def test_a_tls_handshake_is_refused_at_its_first_byte(start):
    """Not "incomplete, read on": the client waits for the server's handshake."""
    with pytest.raises(HTTPError) as caught:
        parse_head(bytearray(start))
    assert (caught.value.status, caught.value.message) == (400, TLS_ON_PLAIN_PORT)
    assert "plain HTTP port" in TLS_ON_PLAIN_PORT and "hkps://" in TLS_ON_PLAIN_PORT


def _status_line(status):
    return format_response(status, [], b"", keep_alive=False).split(b"\r\n")[0].decode()


def test_every_status_has_its_reason_phrase():
    """Every standard status, so none cksd sends says "Unknown" (401 did until
    2026-12-05); those cksd sends (the metrics' statuses) are standard ones."""
    for status in HTTPStatus:
        assert _status_line(status.value).startswith("HTTP/1.1 %d " % status.value)
        assert not _status_line(status.value).endswith(" Unknown")
    assert {int(s) for s in STATUSES if s != "other"} <= {s.value for s in HTTPStatus}
    assert _status_line(401) == "HTTP/1.1 401 Unauthorized"
    assert _status_line(413) == "HTTP/1.1 413 Content Too Large"  # RFC 9110's names
    assert _status_line(422) == "HTTP/1.1 422 Unprocessable Content"


@pytest.mark.parametrize("value", ["\xb2", "-1", "1e3", "0x10", "1 2", "5, 5", "", "9" * 19,
                                   "9" * 5000])
def test_bad_content_length(value):
    head, _ = parse_head(bytearray(b"POST /pks/add HTTP/1.1\r\nContent-Length: %s\r\n\r\n"
                                   % value.encode("latin-1")))
    with pytest.raises(HTTPError) as caught:
        head.content_length()
    assert (caught.value.status, caught.value.message) == (400, "bad Content-Length")


def test_good_heads_still_parse():
    data = (b"POST /pks/add HTTP/1.1\r\nContent-Length:\t 42 \r\n"
            b"User-Agent: caf\xe9\tbar\r\n\r\n")
    head, used = parse_head(bytearray(data + b"body"))
    assert (head.content_length(), head.headers["user-agent"]) == (42, "caf\xe9\tbar")
    assert used == len(data)
    head, _ = parse_head(bytearray(b"GET /pks/lookup?search=J\xc3\xbcrgen HTTP/1.0\n\n"))
    assert head.target == "/pks/lookup?search=J\xc3\xbcrgen"
