"""Property tests against a running cksd: random bytes in every parameter, form
field, body and header never get a server error, and the server keeps serving."""

import urllib.parse

import pytest
from hypothesis import given, settings, strategies as st

from cks.hkp.admin import AdminSettings, hash_password
from support import EXPECTED, fixture
from support.server import Cksd, raw_exchange

FUZZ = settings(max_examples=150, deadline=None)
KEY = EXPECTED["rsa2048.asc"][0]
ADMIN = AdminSettings(hash_password("fuzz", iterations=1000))
AUTHORIZATION = b"Authorization: Basic YWRtaW46ZnV6eg==\r\n"  # admin:fuzz
FORM = b"Content-Type: application/x-www-form-urlencoded\r\n"
SEARCHES = [b"0x" + KEY["keyid"].encode(), KEY["fingerprint"].encode(), b"rsa2048",
            b"rsa2048@example.org", b"rsa2048 fixture <rsa2048@example.org>", b"0x" + b"0" * 32]
OPS = [b"get", b"index", b"vindex", b"hget", b"stats", b"x-other"]
FLAGS = [b"on", b"off", b"mr", b"mr,nm"]


@pytest.fixture(scope="module")
def server(module_db_url, tmp_path_factory):
    config = tmp_path_factory.mktemp("conf") / "cks.conf"
    config.write_text("[ratelimit]\nlookups_per_second = 0\nuploads_per_minute = 0\n"
                      "[admin]\npassword_hash = %s\n" % ADMIN.password_hash)
    with Cksd(module_db_url, config=str(config)) as cksd:
        status, _, body = cksd.add(fixture("rsa2048"))
        assert status == 200, body
        yield cksd
        assert _still_serving(cksd)
        assert "Traceback" not in cksd.output()


def _still_serving(server) -> bool:
    status, _, body = server.lookup(op="get", options="mr", search="0x" + KEY["keyid"])
    return status == 200 and b"BEGIN PGP PUBLIC KEY BLOCK" in body


def _status(server, head: bytes, body: bytes = b"") -> int:
    """Send one request on a new connection, read the answer to the end, and
    return its status (the server must answer, not drop the connection)."""
    answer = raw_exchange(server.port, head + body)
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer[9:12])


def _answered(server, head: bytes, body: bytes = b"") -> None:
    """The request gets an answer below 500, or the 501 HKP gives an op it does
    not know (see the README's status codes)."""
    status = _status(server, head, body)
    assert status < 500 or status == 501, (status, head, body)


def _encode(value: bytes, raw: bool) -> bytes:
    """Percent-encoded, or as it is but for what would end the request line or a
    header (space, CR, LF); raw '%', '&', '=', ';' and '+' are fair game."""
    if not raw:
        return urllib.parse.quote_from_bytes(value, safe="").encode()
    return value.replace(b" ", b"%20").replace(b"\r", b"%0D").replace(b"\n", b"%0A")


def _fields(fields, raw: bool) -> bytes:
    return b"&".join(name + b"=" + _encode(value, raw) for name, value in fields
                     if value is not None)


def _head(method: bytes, target: bytes, headers: bytes = b"", body: bytes = b"") -> bytes:
    length = b"Content-Length: %d\r\n" % len(body) if method == b"POST" else b""
    return (method + b" " + target + b" HTTP/1.1\r\nHost: keys.example.org\r\n"
            b"Connection: close\r\n" + length + headers + b"\r\n")


def _header(name: bytes, value: bytes, colon: bool = True) -> bytes:
    """A header line; CR and LF are dropped so that it stays one line."""
    return (name + (b":" if colon else b"") + value).replace(b"\r", b"").replace(b"\n", b"") \
        + b"\r\n"


def values(known=(), max_size=60):
    """A field's value: absent, a meaningful one, random bytes, or random UTF-8
    text (which gets past the form parser, so the endpoints see it)."""
    choices = [st.none(), st.binary(max_size=max_size),
               st.text(max_size=max_size).map(str.encode)]
    return st.one_of(*choices, *([st.sampled_from(known)] if known else []))


some_headers = st.sampled_from([b"", b"Accept: text/html\r\n", b"User-Agent: GnuPG/2.4.5\r\n"])


# op and search are mostly meaningful, so that many lookups reach the database.
@settings(FUZZ, max_examples=300)
@given(op=st.one_of(st.sampled_from(OPS), values(OPS, 10)),
       search=st.one_of(st.sampled_from(SEARCHES), values(SEARCHES, 80)),
       options=values(FLAGS), exact=values(FLAGS), fingerprint=values(FLAGS),
       show_hash=values(FLAGS), unknown=values(), raw=st.booleans(),
       method=st.sampled_from([b"GET", b"HEAD"]), headers=some_headers)
def test_lookups_with_random_parameters(server, op, search, options, exact, fingerprint,
                                        show_hash, unknown, raw, method, headers):
    query = _fields([(b"op", op), (b"search", search), (b"options", options),
                     (b"exact", exact), (b"fingerprint", fingerprint), (b"hash", show_hash),
                     (b"x-unknown", unknown)], raw)
    _answered(server, _head(method, b"/pks/lookup?" + query, headers))


@FUZZ
@given(name=st.one_of(st.binary(min_size=1, max_size=20),
                      st.text(min_size=1, max_size=20).map(str.encode)),
       value=values(), search=values(SEARCHES), raw=st.booleans())
def test_lookups_with_a_random_parameter_name(server, name, value, search, raw):
    query = _fields([(b"op", b"index"), (b"search", search), (_encode(name, raw), value)], raw)
    _answered(server, _head(b"GET", b"/pks/lookup?" + query))


@FUZZ
@given(keytext=st.one_of(values(max_size=400), st.binary(max_size=400).map(
           lambda noise: fixture("rsa2048")[:300] + noise)),
       options=values(FLAGS), query_options=values(FLAGS),
       repeat=st.booleans(), raw=st.booleans(), headers=some_headers)
def test_upload_forms_with_random_fields(server, keytext, options, query_options, repeat,
                                         raw, headers):
    body = _fields([(b"keytext", keytext), (b"options", options)]
                   + [(b"keytext", keytext)] * repeat, raw)
    query = _fields([(b"options", query_options)], raw)
    _answered(server, _head(b"POST", b"/pks/add?" + query, FORM + headers, body), body)


@FUZZ
@given(body=st.binary(max_size=2000),
       content_type=st.one_of(st.sampled_from([
           b"application/pgp-keys", b"application/octet-stream",
           b"application/x-www-form-urlencoded", b"multipart/form-data; boundary=x",
           b"text/plain", b""]), st.binary(max_size=30)),
       options=values(FLAGS), raw=st.booleans())
def test_uploads_of_random_bodies(server, body, content_type, options, raw):
    head = _head(b"POST", b"/pks/add?" + _fields([(b"options", options)], raw),
                 _header(b"Content-Type", content_type), body)
    _answered(server, head, body)


@FUZZ
@given(post=st.booleans(), query=values(), body=st.binary(max_size=500), raw=st.booleans())
def test_hashquery_with_random_input(server, post, query, body, raw):
    target = b"/pks/hashquery?" + _fields([(b"x", query)], raw)
    if post:
        _answered(server, _head(b"POST", target, b"Content-Type: application/octet-stream\r\n",
                                body), body)
    else:
        _answered(server, _head(b"GET", target))


@FUZZ
@given(notice=values(), signature=values([fixture("rsa2048")]), unknown=values(),
       raw=st.booleans())
def test_rejection_notices_with_random_fields(server, notice, signature, unknown, raw):
    body = _fields([(b"notice", notice), (b"signature", signature), (b"x-unknown", unknown)],
                   raw)
    _answered(server, _head(b"POST", b"/pks/x-cks-rejection", FORM, body), body)


@FUZZ
@given(options=values(FLAGS), unknown=values(), raw=st.booleans(), headers=some_headers)
def test_rejection_audit_with_random_parameters(server, options, unknown, raw, headers):
    query = _fields([(b"options", options), (b"x-unknown", unknown)], raw)
    _answered(server, _head(b"GET", b"/pks/x-cks-rejections?" + query, headers))


@FUZZ
@given(post=st.booleans(), token=values([ADMIN.csrf_token("Basic YWRtaW46ZnV6eg==").encode()]),
       action=values([b"delete", b"reject", b"unreject"]), fingerprint=values(),
       reason=values(), query=values(), raw=st.booleans(),
       authorization=st.one_of(st.just(AUTHORIZATION), st.binary(max_size=40).map(
           lambda credentials: _header(b"Authorization", b" Basic " + credentials))),
       origin=st.one_of(st.just(b""), st.binary(max_size=30).map(
           lambda origin: _header(b"Origin", origin))))
def test_admin_page_with_random_fields(server, post, token, action, fingerprint, reason,
                                       query, raw, authorization, origin):
    target = b"/pks/admin?" + _fields([(b"x", query)], raw)
    headers = authorization + origin
    if post:
        body = _fields([(b"token", token), (b"action", action), (b"fingerprint", fingerprint),
                        (b"reason", reason)], raw)
        _answered(server, _head(b"POST", target, headers + FORM, body), body)
    else:
        _answered(server, _head(b"GET", target, headers))


known_headers = st.sampled_from([b"User-Agent", b"Accept", b"Content-Type", b"X-CKS-Sync",
                                 b"X-Forwarded-For", b"Authorization", b"Origin", b"Host"])


@FUZZ
@given(lines=st.lists(st.tuples(st.one_of(known_headers, st.binary(min_size=1, max_size=20)),
                                st.binary(max_size=60), st.booleans()), max_size=4),
       upload=st.booleans())
def test_random_header_lines(server, lines, upload):
    lines = [_header(*line) for line in lines]
    if any(line == b"\r\n" or line.partition(b":")[0].strip().lower() in (
            b"content-length", b"transfer-encoding") for line in lines):
        return  # an empty line ends the head; a body length would make the server wait
    headers = b"".join(lines)
    if upload:
        body = b"keytext=" + urllib.parse.quote_from_bytes(fixture("rsa2048")).encode()
        _answered(server, _head(b"POST", b"/pks/add", headers + FORM, body), body)
    else:
        _answered(server, _head(b"GET", b"/pks/lookup?op=get&search=0x" + KEY["keyid"].encode(),
                                headers))


@pytest.mark.parametrize("target,status", [
    (b"/pks/lookup?op=get&search=%00%ff", 400),
    (b"/pks/lookup?op=get&search=\xff\xfe", 400),
    (b"/pks/lookup?op=get;search=0x9C1DEEEB5EF6B51A", 400),
    (b"/pks/lookup?op=get&search=0x9C1DEEEB5EF6B51A&search=0x9C1DEEEB5EF6B51A", 400),
    (b"/pks/lookup?op=get&search=%", 400),
    (b"/pks/lookup?op=get&search=\x00", 400),
    (b"/pks/%ff%00", 404),
    (b"/pks/\xff", 404),
    (b"//[x/pks/lookup?op=stats", 404),
])
def test_known_bad_targets(server, target, status):
    assert _status(server, _head(b"GET", target)) == status
    assert _still_serving(server)
