"""The operator's web page: off unless configured, authenticated, POST only,
protected against cross-site requests."""

import base64
import re
import urllib.parse
from html.parser import HTMLParser

import pytest

from cks.hkp.admin import check_password, hash_password
from cks.openpgp.keys import read_keys
from support import fixture
from support.procs import tool
from support.server import LOOPBACK_EXEMPT, Cksd, raw_exchange

PASSWORD = "correct horse battery"


def fpr(name):
    return read_keys(fixture(name)).keys[0].fingerprint.hex().upper()


def auth(password=PASSWORD, user="admin"):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


@pytest.fixture
def server(db_url, tmp_path):
    out = tool("cks_admin.py", ["passwd"], input=(PASSWORD + "\n").encode())
    assert out.returncode == 0
    line = out.stdout.decode().strip()
    assert line.startswith("password_hash = pbkdf2_sha256$")
    config = tmp_path / "cks.conf"
    config.write_text("[admin]\n%s\n%s" % (line, LOOPBACK_EXEMPT))
    with Cksd(db_url, config=str(config)) as cksd:
        assert cksd.add(fixture("rsa2048"))[0] == 200
        assert cksd.add(fixture("nistp256"))[0] == 200
        yield cksd


def token_of(server):
    status, _, body = server.request("GET", "/pks/admin", headers={"Authorization": auth()})
    assert status == 200
    return re.search(r'name="token" value="([0-9a-f]+)"', body.decode()).group(1)


def post(server, fields, headers=None):
    all_headers = {"Authorization": auth(),
                   "Content-Type": "application/x-www-form-urlencoded"}
    all_headers.update(headers or {})
    return server.request("POST", "/pks/admin", urllib.parse.urlencode(fields).encode(),
                          all_headers)


def test_password_hashes():
    stored = hash_password("secret words")
    assert check_password(stored, "secret words")
    assert not check_password(stored, "secret word")
    assert not check_password("garbage", "secret words")


@pytest.mark.parametrize("typed, password", [
    (b"correct horse battery\r\n", PASSWORD), (b"correct horse battery\n", PASSWORD),
    (b"correct horse battery", PASSWORD),
    (b" correct horse battery \r\n", " correct horse battery "),
    (b"correct horse battery\r\r\n", PASSWORD + "\r")])
def test_passwd_hashes_the_line_without_its_one_ending(typed, password):
    """A password file saved on Windows ends "\r\n": the carriage return
    was kept in the hash, and no browser's login matched it."""
    out = tool("cks_admin.py", ["passwd"], input=typed)
    assert out.returncode == 0, out.stderr
    stored = out.stdout.decode().strip()[len("password_hash = "):]
    assert check_password(stored, password)


def test_off_unless_configured(db_url):
    with Cksd(db_url) as plain:
        assert plain.request("GET", "/pks/admin", headers={"Authorization": auth()})[0] == 404


def test_authentication(server):
    status, headers, _ = server.request("GET", "/pks/admin")
    assert status == 401 and headers["www-authenticate"].startswith("Basic ")
    answer = raw_exchange(server.port, b"GET /pks/admin HTTP/1.1\r\nHost: x\r\n"
                                       b"Connection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 401 Unauthorized\r\n")  # not "401 Unknown"
    assert server.request("GET", "/pks/admin",
                          headers={"Authorization": auth("wrong")})[0] == 401
    assert server.request("GET", "/pks/admin",
                          headers={"Authorization": auth(user="root")})[0] == 401
    assert server.request("GET", "/pks/admin", headers={"Authorization": "Basic !!"})[0] == 401


class Labels(HTMLParser):
    """The text inputs of a page, (name, the text of the <label> around it)."""

    def __init__(self, page):
        super().__init__()
        self.inputs, self._label = [], None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "label":
            self._label = ""
        elif tag == "input" and attrs.get("type") == "text":
            self.inputs.append((attrs["name"], self._label))

    def handle_endtag(self, tag):
        if tag == "label":
            self._label = None

    def handle_data(self, data):
        if self._label is not None:
            self._label += data


def test_every_field_has_a_label(server):
    status, _, body = server.request("GET", "/pks/admin", headers={"Authorization": auth()})
    assert status == 200
    labelled = [(name, label and label.strip()) for name, label in Labels(body.decode()).inputs]
    assert labelled == [("fingerprint", "Fingerprint:"), ("fingerprint", "Fingerprint:"),
                        ("reason", "Reason:"), ("fingerprint", "Fingerprint:")]


def test_reject_and_unreject_from_the_page(server):
    token = token_of(server)
    status, _, body = post(server, {"token": token, "action": "reject",
                                    "fingerprint": fpr("rsa2048"), "reason": "web"},
                           {"Origin": "http://127.0.0.1:%d" % server.port})
    assert status == 200 and b"rejected " + fpr("rsa2048").encode() in body
    assert b"waits for your signature" in body
    assert server.lookup(op="get", search="0x" + fpr("rsa2048"))[0] == 404
    assert server.add(fixture("rsa2048"))[0] == 403
    status, _, body = post(server, {"token": token, "action": "unreject",
                                    "fingerprint": fpr("rsa2048")})
    assert status == 200 and server.add(fixture("rsa2048"))[0] == 200
    status, _, body = post(server, {"token": token, "action": "delete",
                                    "fingerprint": "0x" + fpr("nistp256")})
    assert status == 200 and b"deleted" in body
    assert server.lookup(op="get", search="0x" + fpr("nistp256"))[0] == 404


def test_cross_site_and_get_requests_change_nothing(server):
    token = token_of(server)
    fields = {"token": token, "action": "delete", "fingerprint": fpr("rsa2048")}
    assert post(server, dict(fields, token="0" * 40))[0] == 403
    assert post(server, {k: v for k, v in fields.items() if k != "token"})[0] == 403
    assert post(server, fields, {"Origin": "https://evil.example"})[0] == 403
    assert post(server, fields, {"Referer": "https://evil.example/page"})[0] == 403
    query = urllib.parse.urlencode(fields)
    status, _, _ = server.request("GET", "/pks/admin?" + query,
                                  headers={"Authorization": auth()})
    assert status == 200  # a GET only shows the page
    assert server.lookup(op="get", search="0x" + fpr("rsa2048"))[0] == 200


def test_a_reason_too_long_for_a_notice_is_refused(server):
    status, _, body = post(server, {"token": token_of(server), "action": "reject",
                                    "fingerprint": fpr("rsa2048"), "reason": "x" * 4200})
    assert status == 200 and b"the reason is 4200 bytes (UTF-8): a notice has room for " in body
    assert server.lookup(op="get", search="0x" + fpr("rsa2048"))[0] == 200


def test_a_key_id_is_refused_as_ambiguous_naming_the_stored_keys(server):
    """As cks_admin.py says it (until 2026-12-05 the page said only "... is not
    a fingerprint")."""
    keyid = "0x" + fpr("rsa2048")[-16:]
    status, _, body = post(server, {"token": token_of(server), "action": "reject",
                                    "fingerprint": keyid, "reason": "x"})
    assert status == 200 and ("a key ID is ambiguous: give the whole fingerprint (stored "
                              "keys with this ID: %s)" % fpr("rsa2048")).encode() in body
    assert server.lookup(op="get", search="0x" + fpr("rsa2048"))[0] == 200
