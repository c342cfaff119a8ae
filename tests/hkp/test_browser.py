"""The pages for people in a real browser: headless Chromium, driven through
chromedriver (support/browser.py), with its scripts on and off, against cksd
on SQLite and PostgreSQL.  A person's way through them: search from the
front page, follow the result to the key page and its photo ID, then to the
stats page and its chart.  Screenshots of every page go to the test's
tmp_path and to SCREENSHOTS."""

import os
import re
import shutil

import pytest

from cks.hkp.keypage import grouped
from support import EXPECTED
from support.browser import Browser, ChromeDriver, require_browser
from support.server import Cksd

LOADED = ["rsa2048", "nistp256", "certified", "photo"]
SCREENSHOTS = "/tmp/cks-browser-screenshots"
PHOTO = EXPECTED["photo.asc"][0]
PHOTO_SIZE = 16  # the fixture's photo ID is a 16x16 JPEG


@pytest.fixture(scope="module")
def server(module_db_url):
    with Cksd(module_db_url) as cksd:
        cksd.add_fixtures(LOADED)
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

    browser.wait_for_title("Search results")
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
    assert "Total number of keys: %d" % len(LOADED) in text
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
    assert re.fullmatch(r"\d{4}-\d\d-\d\d %d 0" % len(LOADED), newest), newest
    screenshots.take("stats-numbers")
