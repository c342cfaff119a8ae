"""The operator's web page: off unless configured, authenticated, POST only,
protected against cross-site requests."""

import base64
import re
import urllib.parse
from html.parser import HTMLParser

import pytest

from cks.hkp import admin
from cks.hkp.admin import AdminSettings, Logins, check_password, hash_password
from cks.openpgp.keys import read_keys
from support import fixture
from support.procs import tool
from support.server import LOOPBACK_EXEMPT, Cksd, raw_exchange

PASSWORD = "correct horse battery"


def fpr(name):
    return read_keys(fixture(name)).keys[0].fingerprint.hex().upper()


def auth(password=PASSWORD, user="admin"):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


def admin_cksd(db_url, tmp_path, more=""):
    """cksd with the admin page (PASSWORD) and the configuration lines `more`."""
    out = tool("cks_admin.py", ["passwd"], input=(PASSWORD + "\n").encode())
    assert out.returncode == 0
    line = out.stdout.decode().strip()
    assert line.startswith("password_hash = pbkdf2_sha256$")
    config = tmp_path / "cks.conf"
    config.write_text("%s[admin]\n%s\n%s" % (more, line, LOOPBACK_EXEMPT))
    return Cksd(db_url, config=str(config))


@pytest.fixture
def server(db_url, tmp_path):
    with admin_cksd(db_url, tmp_path) as cksd:
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
    # each labelled with its action, each form named by its heading (until
    # 2026-12-06 three fields were "Fingerprint:", in unnamed forms)
    assert labelled == [("fingerprint", "Fingerprint of the key to delete:"),
                        ("fingerprint", "Fingerprint of the key to reject:"),
                        ("reason", "Reason:"),
                        ("fingerprint", "Fingerprint of the key to unreject:")]
    page = body.decode()
    for action, heading in (("delete", "Delete a key"), ("reject", "Delete and reject a key"),
                            ("unreject", "Unreject a key")):
        assert '<h2 id="%s-form">%s</h2>\n<form method="post" action="/pks/admin" ' \
            'aria-labelledby="%s-form">' % (action, heading, action) in page


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


def test_the_form_token_takes_the_password_not_only_its_hash(server):
    """Until 2026-12-06 the token was an HMAC of the password hash alone, which
    anyone who reads the configuration (/etc/cks.conf is world-readable) could
    compute for a cross-site form; now it also takes the operator's
    Authorization header, which holds the password.  The admin page is not
    kept by the browser's cache (no-store)."""
    token = token_of(server)
    with open(server.config) as config:
        hashed = re.search(r"password_hash = (\S+)", config.read()).group(1)
    settings = AdminSettings(password_hash=hashed)
    assert token == settings.csrf_token(auth())
    assert settings.csrf_token(auth()) != settings.csrf_token(auth("another password"))
    for known_from_the_file in (admin.hmac.new(hashed.encode(), b"cks-admin-form",
                                               admin.hashlib.sha256).hexdigest()[:40],
                                settings.csrf_token("")):
        assert token != known_from_the_file
        assert post(server, {"token": known_from_the_file, "action": "delete",
                             "fingerprint": fpr("rsa2048")})[0] == 403
    status, headers, _ = server.request("GET", "/pks/admin", headers={"Authorization": auth()})
    assert status == 200 and headers["cache-control"] == "no-store"
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
    # said in the form that was refused, its fields pointing to it and holding
    # what was typed (until 2026-12-06 it came above the forms, which were empty)
    page = body.decode()
    form = page[page.index('<h2 id="reject-form">'):page.index('<h2 id="unreject-form">')]
    assert '<p class="error" id="reject-error" role="alert">a key ID is ambiguous' in form
    assert 'name="fingerprint" size="66" required value="%s" aria-describedby="reject-error">' \
        % keyid in form
    assert 'name="reason" size="30" value="x" aria-describedby="reject-error">' in form
    assert page.count("aria-describedby") == 2 and page.count('value="%s"' % keyid) == 1
    assert server.lookup(op="get", search="0x" + fpr("rsa2048"))[0] == 200


def _count_password_checks(monkeypatch):
    """The passwords PBKDF2 checks from now on, each appended as it runs."""
    checks = []
    real = admin.check_password
    monkeypatch.setattr(admin, "check_password",
                        lambda stored, password: checks.append(password) or real(stored, password))
    return checks


def test_a_verified_header_costs_one_pbkdf2_and_failures_are_throttled_before_it(monkeypatch):
    """Each password check is ~0.17 s of PBKDF2: until 2026-12-06 every
    request paid it, the operator's too, and failures were limited only by
    the lookup limit, so a flood of wrong passwords slowed everyone's lookups."""
    checks = _count_password_checks(monkeypatch)
    settings = AdminSettings(hash_password(PASSWORD, iterations=1000))
    logins = Logins()
    assert all(logins.verify(settings, auth(), "192.0.2.1", now=1.0) == (True, 0)
               for _ in range(20))
    assert len(checks) == 1
    wrong = [logins.verify(settings, auth("guess"), "2001:db8::%x" % n, now=1.0)
             for n in range(20)]  # one /64: one client
    assert wrong[:5] == [(False, 0)] * 5 and all(not ok and wait > 0 for ok, wait in wrong[5:])
    assert len(checks) == 6
    assert logins.verify(settings, auth("guess"), "2001:db8::1", now=11.0) == (False, 0)
    assert logins.verify(settings, auth("guess"), "2001:db8::1", now=11.0)[1] > 0
    assert len(checks) == 7  # 1 per 10 s after the first 5
    checks.clear()
    overall = [logins.verify(settings, auth("guess"), "203.0.113.%d" % n, now=1000.0)
               for n in range(100)]
    assert len(checks) == overall.count((False, 0)) == 10  # all clients together
    assert logins.verify(settings, auth(), "192.0.2.1", now=1000.0) == (True, 0)  # remembered
    assert logins.verify(settings, auth("guess"), "192.0.2.2", now=1000.0)[1] > 0
    assert logins.verify(settings, "", "192.0.2.3", now=1001.0) == (False, 0)  # no PBKDF2
    assert len(checks) == 10
    changed = AdminSettings(hash_password("new words", iterations=1000))
    assert logins.verify(changed, auth(), "192.0.2.1", now=2000.0) == (False, 0)  # forgotten


def test_a_try_refused_by_the_overall_limit_spends_none_of_the_clients_tries(monkeypatch):
    """Until 2026-12-06 a try refused by the limit for all clients (wrong
    passwords from many /64s of a /48) spent one of the client's own tries
    all the same: the operator, refused during the flood, found his 5 tries
    gone after it (1 per 10 s).  A client's try is spent only when PBKDF2
    runs, and one refused by its own limit spends nothing of the overall one."""
    checks = _count_password_checks(monkeypatch)
    settings = AdminSettings(hash_password(PASSWORD, iterations=1000))
    logins = Logins()
    flood = [logins.verify(settings, auth("guess"), "2001:db8:0:%x::1" % n, now=1000.0)
             for n in range(100)]
    assert flood.count((False, 0)) == len(checks) == 10
    during = [logins.verify(settings, auth("typo %d" % n), "198.51.100.7", now=1000.0)
              for n in range(5)]
    assert all(not ok and wait > 0 for ok, wait in during) and len(checks) == 10
    after = [logins.verify(settings, auth("typo %d" % n), "198.51.100.7", now=1005.0)
             for n in range(4)] + [logins.verify(settings, auth(), "198.51.100.7", now=1005.0)]
    assert after == [(False, 0)] * 4 + [(True, 0)] and len(checks) == 15
    one = [logins.verify(settings, auth("guess"), "203.0.113.1", now=2000.0) for _ in range(50)]
    assert one.count((False, 0)) == 5  # its own limit: the other 45 spend no overall try
    others = [logins.verify(settings, auth("guess"), "203.0.113.%d" % n, now=2000.0)
              for n in range(2, 12)]
    assert others[:5] == [(False, 0)] * 5 and all(wait > 0 for _, wait in others[5:])
    assert len(checks) == 15 + 10


def test_a_flood_of_wrong_passwords_is_answered_429_without_pbkdf2(db_url, tmp_path):
    with admin_cksd(db_url, tmp_path, "[server]\nprocesses = 1\n") as server:
        def admin_page(password, client):
            status, headers, _ = server.request(
                "GET", "/pks/admin", headers={"Authorization": auth(password),
                                              "X-Forwarded-For": client})
            return status, headers.get("retry-after")

        assert admin_page(PASSWORD, "192.0.2.1") == (200, None)
        flood = [admin_page("guess", "203.0.113.5") for _ in range(30)]
        assert flood[:5] == [(401, None)] * 5
        assert all(status == 429 and int(retry) >= 1 for status, retry in flood[5:])
        many = [admin_page("guess", "198.51.100.%d" % n)[0] for n in range(40)]
        assert many.count(401) < 20 and many.count(429) > 20  # the limit for all clients
        assert admin_page(PASSWORD, "192.0.2.1") == (200, None)  # verified before: still in
        lookups = [server.request("GET", "/pks/lookup?op=stats&options=mr",
                                  headers={"X-Forwarded-For": "192.0.2.9"})[0]
                   for _ in range(10)]
        assert lookups == [200] * 10


def test_admin_actions_and_failed_logins_are_logged(server):
    """Until 2026-12-06 only the access log's request line said anything."""
    assert server.request("GET", "/pks/admin", headers={
        "Authorization": auth("guess"), "X-Forwarded-For": "203.0.113.7"})[0] == 401
    server.wait_for_output(r"admin page: failed login from 203\.0\.113\.7\n")
    assert "guess" not in server.output()
    assert server.request("GET", "/pks/admin")[0] == 401  # a browser's first request
    assert "failed login from 127.0.0.1" not in server.output()
    token = token_of(server)
    for action in ("reject", "unreject", "delete"):
        status, _, _ = post(server, {"token": token, "action": action,
                                     "fingerprint": fpr("rsa2048"), "reason": "spam"},
                            {"X-Forwarded-For": "192.0.2.8"})
        assert status == 200
        server.wait_for_output(r"admin page: %s %s by 192\.0\.2\.8: " % (action, fpr("rsa2048")))
