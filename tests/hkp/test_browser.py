"""The pages for people in a real browser: headless Chromium, driven through
chromedriver (support/browser.py), with its scripts on and off, against cksd
on SQLite and PostgreSQL.  A person's way through them: search from the
front page, follow the result to the key page and its photo ID, then to the
stats page and its chart.  Screenshots of every page go to the test's
tmp_path and to SCREENSHOTS."""

import base64
import os
import re
import shutil
import urllib.parse

import pytest

from cks.hkp import admin
from cks.hkp.keypage import grouped
from cks.openpgp import packet as pk
from cks.openpgp import signature as sg
from cks.openpgp.keys import read_keys
from cks.openpgp.userid import UserAttribute, UserID
from support import EXPECTED, fixture
from support.browser import Browser, ChromeDriver, require_browser, wait_for
from support.forge import Signer, image_attribute, keyring
from support.server import LOOPBACK_EXEMPT, Cksd

LOADED = ["rsa2048", "nistp256", "certified", "photo"]
SCREENSHOTS = "/tmp/cks-browser-screenshots"
PHOTO = EXPECTED["photo.asc"][0]
PHOTO_SIZE = 16  # the fixture's photo ID is a 16x16 JPEG
# A user ID whose PDI (U+2069) would end the isolate around it and its
# right-to-left override reorder what follows, and a key it certifies.
RLO_CERTIFIER, RLO_CERTIFIED = Signer.new(), Signer.new()
# A user ID of 5,000 characters without a space, and a key it certifies.
LONG, BY_LONG = Signer.new(), Signer.new()
# A key with more photo IDs than a window shows.
PHOTOS, MANY_PHOTOS = Signer.new(), 60
JPEG = read_keys(fixture("photo")).keys[0].attributes[0].value.images[0].data


def _key(owner, uid, certifier=None):
    """`owner`'s key with one self-certified user ID, certified by `certifier`."""
    user_id = UserID(uid)
    signers = [owner] + ([certifier] if certifier else [])
    return keyring([pk.Packet(pk.TAG_PUBLIC_KEY, owner.public.serialize()),
                    pk.Packet(pk.TAG_USER_ID, uid)] + [
        pk.Packet(pk.TAG_SIGNATURE, signer.sign(
            sg.CERT_POSITIVE if signer is owner else sg.CERT_GENERIC, owner.public,
            user_id).serialize()) for signer in signers])


def _photos_key(owner, count):
    """`owner`'s key with a user ID and `count` photo IDs (the fixture's JPEG,
    each with a comment of its own: alike, they would be one), each
    self-certified."""
    packets = [pk.Packet(pk.TAG_PUBLIC_KEY, owner.public.serialize())]
    for number in range(count + 1):
        packet = pk.Packet(pk.TAG_USER_ID, b"Photos <photos@example.org>") if number == 0 \
            else image_attribute((1, JPEG[:2] + b"\xff\xfe\x00\x04" + number.to_bytes(2, "big")
                                  + JPEG[2:]))
        target = UserID.parse(packet.body) if number == 0 else UserAttribute.parse(packet.body)
        packets += [packet, pk.Packet(pk.TAG_SIGNATURE, owner.sign(
            sg.CERT_POSITIVE, owner.public, target).serialize())]
    return keyring(packets)


MADE = [_key(RLO_CERTIFIER, "Certifier \u2069\u202eevil <rlo@example.org>".encode()),
        _key(RLO_CERTIFIED, b"Certified <certified-by-rlo@example.org>", RLO_CERTIFIER),
        _key(LONG, b"L" * 5000 + b" <long@example.org>"),
        _key(BY_LONG, b"By long <by-long@example.org>", LONG),
        _photos_key(PHOTOS, MANY_PHOTOS)]


@pytest.fixture(scope="module")
def server(module_db_url):
    with Cksd(module_db_url) as cksd:
        cksd.add_fixtures(LOADED)
        for data in MADE:
            status, _, body = cksd.request("POST", "/pks/add", data,
                                           {"Content-Type": "application/pgp-keys"})
            assert status == 200, body
        yield cksd


@pytest.fixture(scope="module")
def chromedriver():
    chromium, path = require_browser()
    with ChromeDriver(path) as driver:
        yield driver, chromium


@pytest.fixture(scope="module", params=[True, False], ids=["javascript", "no-javascript"])
def browser(request, chromedriver):
    driver, chromium = chromedriver
    with Browser(driver, chromium, javascript=request.param) as session:
        yield session


class Screenshots:
    """Numbered PNGs of the pages a test saw, in tmp_path and SCREENSHOTS."""

    def __init__(self, browser, directory, prefix):
        self.browser, self.directory, self.prefix = browser, directory, prefix
        self.count = 0
        os.makedirs(SCREENSHOTS, exist_ok=True)

    def take(self, name):
        self.count += 1
        path = str(self.directory / ("%s-%d-%s.png" % (self.prefix, self.count, name)))
        self.browser.screenshot(path)
        shutil.copy(path, SCREENSHOTS)


@pytest.fixture
def screenshots(request, browser, tmp_path):
    return Screenshots(browser, tmp_path, request.node.callspec.id)


def _visible(browser):
    """The page's visible text, its white space collapsed."""
    return " ".join(browser.text().split())


def test_browser_runs_page_scripts_only_when_asked(browser):
    browser.open("data:text/html,<p id=said>no script ran</p>"
                 "<script>document.getElementById('said').textContent='a script ran'</script>")
    said = browser.find("#said").text
    assert said == ("a script ran" if browser.javascript else "no script ran")


def test_search_result_list_and_key_page(browser, server, screenshots):
    browser.open(server.url + "/")
    browser.wait_for_title("OpenPGP keyserver")
    browser.find("#search").send_keys("photo@example.org")
    screenshots.take("home")
    browser.find('form[action="/pks/lookup"] input[type="submit"]').click()

    browser.wait_for_title("Search results for \u2068photo@example.org\u2069")
    assert "op=index" in browser.url and "search=photo%40example.org" in browser.url
    text = _visible(browser)
    assert "1 key found for photo@example.org" in text
    assert "pub eddsa255/%s 2024-01-01" % PHOTO["keyid"] in text
    assert "Fingerprint=" + grouped(PHOTO["fingerprint"]) in text
    assert "uid Photo fixture <photo@example.org>" in text and "uat photo ID" in text
    screenshots.take("results")
    browser.find_link(PHOTO["keyid"]).click()

    browser.wait_for_title("Key " + PHOTO["keyid"])
    text = _visible(browser)
    assert "Fingerprint " + grouped(PHOTO["fingerprint"]) in text
    assert "User IDs and photo IDs Photo fixture <photo@example.org> Signature" in text
    assert "certification (positive) self-signature 2024-01-01 verified" in text
    assert "Photo ID 1" in text
    screenshots.take("key")
    photo = browser.find('img[alt="Photo ID 1 of key %s"]' % PHOTO["keyid"])
    assert photo.property("complete") is True
    assert (photo.property("naturalWidth"), photo.property("naturalHeight")) == \
        (PHOTO_SIZE, PHOTO_SIZE)
    shown = photo.rect
    assert shown["width"] >= PHOTO_SIZE and shown["height"] >= PHOTO_SIZE
    assert browser.execute("return Array.from(document.images).every("
                           "i => i.complete && i.naturalWidth > 0)") is True


def test_certifier_link_and_the_stats_page(browser, server, screenshots):
    certified = EXPECTED["certified.asc"][0]
    signer = EXPECTED["rsa2048.asc"][0]
    browser.open(server.url + "/pks/lookup?op=vindex&fingerprint=on&search=0x"
                 + certified["fingerprint"])
    browser.wait_for_title("Key " + certified["keyid"])
    text = _visible(browser)
    assert "certification %s %s 2024-01-01 verified" % (signer["uids"][0], signer["keyid"]) \
        in text
    screenshots.take("certified")
    browser.find_link(signer["uids"][0]).click()
    browser.wait_for_title("Key " + signer["keyid"])

    browser.find_link("CKS OpenPGP keyserver").click()
    browser.wait_for_title("OpenPGP keyserver")
    browser.find_link("Server statistics").click()
    browser.wait_for_title("Server statistics")
    text = _visible(browser)
    assert "Total number of keys: %d" % (len(LOADED) + len(MADE)) in text
    assert "Software: CKS" in text
    chart = browser.find("figure svg").rect
    assert chart["width"] > 0 and chart["height"] > 0
    today = browser.find("figure svg g:last-of-type rect").rect  # the bar of keys added
    assert today["height"] > 0
    screenshots.take("stats")

    numbers = browser.find("details table")
    assert numbers.text == ""  # the numbers are folded away ...
    browser.find("details summary").click()
    newest = browser.find("details table tr:nth-child(2)").text  # ... until one opens them
    assert re.fullmatch(r"\d{4}-\d\d-\d\d %d 0" % (len(LOADED) + len(MADE)), newest), newest
    screenshots.take("stats-numbers")


def test_a_key_page_fetches_the_photo_ids_near_the_window_only(browser, server):
    """Each photo ID is a request that reads and parses the whole key: the
    key page's <img>s load lazily, with their size given, so a browser asks
    for those near the window, the rest as they are scrolled to (until
    2026-12-07 all at once: a key of 600 photo IDs cost 21 s of server time
    a view).  Chromium loads lazily only with scripts on (the HTML standard:
    without them, lazy loading would tell the server where a reader is)."""
    fingerprint = PHOTOS.public.fingerprint.hex().upper()
    start = len(server.output().encode())
    browser.open(server.url + "/pks/lookup?op=vindex&search=0x" + fingerprint)
    browser.wait_for_title("Key " + fingerprint[-16:])
    first = wait_for(lambda: browser.execute(
        "return document.images[0].complete && document.images[0].naturalWidth"),
        "the first photo")
    assert first == PHOTO_SIZE
    asked = "GET /pks/photo?fingerprint=" + fingerprint
    fetched = server.output(start).count(asked)
    if not browser.javascript:
        assert fetched == MANY_PHOTOS
        return
    assert 0 < fetched < MANY_PHOTOS / 2
    browser.execute("document.images[%d].scrollIntoView()" % (MANY_PHOTOS - 1))
    wait_for(lambda: browser.execute("return document.images[%d].complete"
                                     " && document.images[%d].naturalWidth > 0"
                                     % (MANY_PHOTOS - 1, MANY_PHOTOS - 1)), "the last photo")
    assert server.output(start).count(asked) < MANY_PHOTOS


def _left_of(browser, css):
    """(right edge of the element `css`, left edge of the text right after it)."""
    return browser.execute(
        "const element = document.querySelector(arguments[0]), range = document.createRange();"
        "range.setStart(element.nextSibling, 0); range.setEnd(element.nextSibling, 1);"
        "return [element.getBoundingClientRect().right, range.getBoundingClientRect().left];",
        css)


def test_a_right_to_left_override_reorders_nothing_after_it(browser, server):
    """In a search shown on a result list (a right-to-left isolate left open,
    and a PDI of its own), and in a certifier's name (before its key ID;
    since 2026-12-07 its right-to-left override shows as its code point):
    each is isolated."""
    browser.open(server.url + "/pks/lookup?op=index&search="
                 + urllib.parse.quote("\u2069\u2067fixture"))
    browser.wait_for_title("Search results for \u2068\u2067fixture\u2069\u2069")
    code, full_stop = _left_of(browser, "p code")  # "N keys found for <code>...</code>."
    assert full_stop >= code - 0.5, (code, full_stop)
    keyid = RLO_CERTIFIER.public.keyid.hex().upper()
    browser.open(server.url + "/pks/lookup?op=vindex&search=0x"
                 + RLO_CERTIFIED.public.fingerprint.hex())
    browser.wait_for_title("Key " + RLO_CERTIFIED.public.keyid.hex().upper())
    name = browser.find("td a bdi").rect
    shown_keyid = browser.find("td a + code")
    assert shown_keyid.text == keyid
    assert shown_keyid.rect["x"] >= name["x"] + name["width"] - 0.5


def test_a_long_user_id_is_wrapped_not_widening_the_page(browser, server, screenshots):
    """On the result list, the key's page and the page of a key it
    certified: the page is no wider than the window, and the table of
    signatures (which scrolls sideways when it must) no wider than the page."""
    for name, path in [
            ("long-results", "/pks/lookup?op=index&search=long%40example.org"),
            ("long-key", "/pks/lookup?op=vindex&search=0x" + LONG.public.fingerprint.hex()),
            ("long-certifier",
             "/pks/lookup?op=vindex&search=0x" + BY_LONG.public.fingerprint.hex())]:
        browser.open(server.url + path)
        browser.find("bdi")
        screenshots.take(name)
        widths = browser.execute(
            "return [document.documentElement.scrollWidth, window.innerWidth].concat("
            "Array.from(document.querySelectorAll('.sigs'), t => t.scrollWidth - t.clientWidth))")
        page, window, overflows = widths[0], widths[1], widths[2:]
        assert page <= window and not any(overflows), (name, widths)


NARROW = 320  # CSS pixels: the width WCAG 1.4.10 (reflow) asks pages to fit


@pytest.fixture
def narrow(browser):
    """The browser with a window NARROW pixels wide, for one test."""
    browser.devtools("Emulation.setDeviceMetricsOverride", {
        "width": NARROW, "height": 640, "deviceScaleFactor": 1, "mobile": False})
    yield browser
    browser.devtools("Emulation.clearDeviceMetricsOverride")


def _too_wide(browser):
    """The tags of the elements wider than their box (the page's own, HTML,
    among them), but tables and what is in them: a table of data may
    scroll on its own, text may not."""
    return browser.execute(
        "return Array.from(document.querySelectorAll('*')).filter(el => !el.closest('table')"
        " && el.clientWidth && el.scrollWidth > el.clientWidth + 1).map(el => el.tagName)")


def test_pages_reflow_at_320_pixels(narrow, server, screenshots):
    """The front page, an upload's error page, a result list, a key page
    (with SKS hashes: 32 digits that do not break) and the stats page fit a
    window 320 pixels wide: nothing but tables scrolls sideways."""
    narrow.open(server.url + "/")
    narrow.wait_for_title("OpenPGP keyserver")
    assert narrow.execute("return window.innerWidth") == NARROW
    assert _too_wide(narrow) == []
    narrow.find("#keytext").send_keys("this is not a key at all")
    narrow.find('form[action="/pks/add"] input[type="submit"]').click()
    narrow.wait_for_title("Key submission refused (Error 422: Unprocessable Content)")
    screenshots.take("narrow-upload")
    assert "no OpenPGP data found" in _visible(narrow)
    assert _too_wide(narrow) == []
    for name, path in [
            ("narrow-results", "/pks/lookup?op=index&hash=on&search=photo%40example.org"),
            ("narrow-key", "/pks/lookup?op=vindex&hash=on&search=0x" + PHOTO["fingerprint"]),
            ("narrow-stats", "/pks/lookup?op=stats"),
            ("narrow-notices", "/pks/x-cks-rejections")]:
        narrow.open(server.url + path)
        narrow.find("h1")
        screenshots.take(name)
        assert _too_wide(narrow) == [], name


def test_the_admin_page_reflows_at_320_pixels(narrow):
    """With a rejected key's 40 digits in its table and a refusal in a form
    (the page as cksd makes it, shown from a data: URL: no login needed)."""
    refused = admin.Outcome("reject", "a key ID is ambiguous: give the whole fingerprint",
                            refused=True, typed={"fingerprint": "0x" + "A" * 16})
    page = admin.page(admin.AdminSettings(password_hash="x"), "", [
        {"fingerprint": "A" * 40, "source": "local", "reason": "spam"}], refused)
    narrow.open("data:text/html;charset=utf-8," + urllib.parse.quote(page))
    narrow.find("h1")
    assert _too_wide(narrow) == []


ADMIN_PASSWORD = "a long pass phrase"


def test_a_form_of_the_admin_page_is_taken_from_the_browser(browser, tmp_path):
    """The browser sends the page's Origin with the form, and cksd takes it
    as its own: the pages' Referrer-Policy is same-origin (no-referrer,
    which the review of 2026-12-07 proposed, makes a browser send `Origin:
    null` with every form, and cksd refuses a form from origin null: 403)."""
    config = tmp_path / "cks.conf"
    config.write_text("[admin]\npassword_hash = %s\n%s" % (
        admin.hash_password(ADMIN_PASSWORD, iterations=1000), LOOPBACK_EXEMPT))
    login = base64.b64encode(("admin:" + ADMIN_PASSWORD).encode()).decode()
    with Cksd("sqlite:///%s" % (tmp_path / "k.db"), config=str(config)) as server:
        browser.devtools("Network.enable")
        browser.devtools("Network.setExtraHTTPHeaders",
                         {"headers": {"Authorization": "Basic " + login}})
        try:
            browser.open(server.url + "/pks/admin")
            browser.wait_for_title("Keyserver administration")
            browser.find('#reject-form + form input[name="fingerprint"]').send_keys(
                PHOTO["fingerprint"])
            browser.find('#reject-form + form input[type="submit"]').click()
            wait_for(lambda: browser.execute(
                "return document.querySelector('[role=status]') !== null"
                " || document.title.startsWith('Error')"), "the form's answer")
        finally:
            browser.devtools("Network.setExtraHTTPHeaders", {"headers": {}})
        assert browser.title == "Keyserver administration", _visible(browser)
        assert PHOTO["fingerprint"] in browser.find("table").text
