"""The pages for people: the front page, result lists, key pages and photo IDs,
through cksd on SQLite and PostgreSQL (and the settings behind them in-process):
what they show, that user-controlled text is escaped, and every answer of the
photo endpoint."""

import html
import json
import os
import urllib.parse
from html.parser import HTMLParser

import pytest

from cks import pipeline
from cks.cli.cksd import server_settings
from cks.config import ConfigError, Settings
from cks.hkp.app import KeyServer, Request, ServerSettings
from cks.hkp.html import gnupg_addresses, isolated, user_text
from cks.hkp.photos import MAX_PHOTO_BYTES, jpeg_size, shown_size
from cks.openpgp import packet as pk
from cks.openpgp import signature as sg
from cks.openpgp.keys import read_keys
from cks.openpgp.signature import Subpacket
from cks.openpgp.userid import Image, UserAttribute, UserID
from cks.served import ServePolicy
from cks.store import open_store
from support import EXPECTED, FIXTURES, fixture
from support.forge import CREATED, Signer, image_attribute, key_flags, keyring
from support.server import LOOPBACK_EXEMPT, Cksd, raw_exchange

LOADED = ["rsa2048", "nistp256", "certified", "photo", "revoked", "expired", "desig-revoked",
          "revoked-parts"]
HOSTNAME = "keys.example.org"
HTML = {"Accept": "text/html"}
EVIL_UID = b'<script>alert("uid")</script> Mallory & "Co" \xe2\x80\xae<mallory@example.org>'
EVIL_REASON = b"<img src=x onerror=alert(1)>"
# A user ID with characters HTML does not allow in text: C0 controls, DEL, a C1
# control (U+0085), noncharacters (U+FFFE, U+FDD0, U+10FFFF); and a tab, which it does.
CONTROL_UID = (b"ctrl\x01\x07\x1b[31mred\x7f\x0b\xc2\x85 \xef\xbf\xbe\xef\xb7\x90"
               b"\xf4\x8f\xbf\xbf tab\there <ctrl@example.org>")
NOT_HTML_TEXT = "\x01\x07\x0b\x1b\x7f\x85\ufffe\ufdd0\U0010ffff"
# The photo ID of tests/fixtures/keys/photo.asc: a 16x16 grey baseline JPEG
# (make_fixtures.py builds it, gpg's addphoto put it in the key).
JPEG = read_keys(fixture("photo")).keys[0].attributes[0].value.images[0].data
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452")


def _fp(name):
    return EXPECTED[name + ".asc"][0]["fingerprint"]


def _keyid(name):
    return EXPECTED[name + ".asc"][0]["keyid"]


# --- keys made here --------------------------------------------------------------------

def _jpeg_of_size(size):
    """A valid JPEG of exactly `size` bytes: JPEG with comment segments after SOI."""
    padding, segments = size - len(JPEG), []
    while padding:
        take = min(padding, 65537)  # FF FE, a length counting itself, the comment
        if padding - take in (1, 2, 3):
            take -= 4
        segments.append(b"\xff\xfe" + (take - 2).to_bytes(2, "big") + bytes(take - 4))
        padding -= take
    return JPEG[:2] + b"".join(segments) + JPEG[2:]


def _signature(sig):
    return pk.Packet(pk.TAG_SIGNATURE, sig.serialize())


def _key(owner, identities, certifier=None, direct=(), stranger=None, withdrawn=False):
    """`owner`'s key with these user ID / attribute packets, each self-certified
    (by `stranger` instead for attributes, when given) and certified by `certifier`
    (who then revokes that certification, when `withdrawn`)."""
    out = [pk.Packet(pk.TAG_PUBLIC_KEY, owner.public.serialize())]
    out += [_signature(sig) for sig in direct]
    for packet in identities:
        target = UserID.parse(packet.body) if packet.tag == pk.TAG_USER_ID \
            else UserAttribute.parse(packet.body)
        maker = stranger if stranger and packet.tag == pk.TAG_USER_ATTRIBUTE else owner
        out += [packet, _signature(maker.sign(sg.CERT_POSITIVE, owner.public, target))]
        if certifier is not None:
            out.append(_signature(certifier.sign(sg.CERT_GENERIC, owner.public, target)))
        if withdrawn:
            out.append(_signature(certifier.sign(sg.CERT_REVOCATION, owner.public, target)))
    return keyring(out)


def _uid(text):
    return pk.Packet(pk.TAG_USER_ID, text)


YEAR = 365 * 86400


def _lapsed_key(owner):
    """`owner`'s key with a user ID whose self-certification expired, and
    two encryption subkeys: one whose key expiry passed, one whose only
    binding signature expired (both a year after they were made, on
    2024-12-31)."""
    lapsing = [Subpacket(sg.SUB_EXPIRATION_TIME, YEAR.to_bytes(4, "big"))]
    uid = b"Lapsed <lapsed@example.org>"
    out = [pk.Packet(pk.TAG_PUBLIC_KEY, owner.public.serialize()),
           _uid(uid), _signature(owner.sign(sg.CERT_POSITIVE, owner.public, UserID(uid))),
           _uid(uid[:6]), _signature(owner.sign(sg.CERT_POSITIVE, owner.public,
                                                UserID(uid[:6]), lapsing))]
    for hashed in ([Subpacket(sg.SUB_KEY_EXPIRATION_TIME, YEAR.to_bytes(4, "big"))], lapsing):
        sub = Signer.new(created=CREATED)
        out += [pk.Packet(pk.TAG_PUBLIC_SUBKEY, sub.public.serialize()), _signature(
            owner.sign(sg.SUBKEY_BINDING, owner.public, sub.public, [key_flags(0x0C)] + hashed))]
    return keyring(out)


class Made:
    """The keys the tests make: name -> (its owner's Signer, the binary key)."""

    def __init__(self):
        mallory, victim, odd, big, hidden, ctrl, blank, by_blank, lapsed, withdrawn = (
            Signer.new() for _ in range(10))
        revocation = victim.sign(sg.KEY_REVOCATION, victim.public, None, hashed=[
            Subpacket(sg.SUB_REVOCATION_REASON, b"\x02" + EVIL_REASON)])
        self.keys = {
            # a user ID full of HTML, and the key it certifies (revoked with an HTML reason)
            "mallory": (mallory, _key(mallory, [_uid(EVIL_UID)])),
            "victim": (victim, _key(victim, [_uid(b"Victim <victim@example.org>")],
                                    certifier=mallory, direct=[revocation])),
            # photo IDs 1 and 2 are not JPEG images (a PNG said to be JPEG; an unknown
            # image format), photo ID 3 is
            "odd": (odd, _key(odd, [_uid(b"Odd photos <odd@example.org>"), image_attribute(
                (1, PNG), (0x64, JPEG)), image_attribute((1, JPEG))])),
            # photo ID 1 just fits the size limit, photo ID 2 is one byte over it
            "big": (big, _key(big, [_uid(b"Big photos <big@example.org>"),
                                    image_attribute((1, _jpeg_of_size(MAX_PHOTO_BYTES))),
                                    image_attribute((1, _jpeg_of_size(MAX_PHOTO_BYTES + 1)))])),
            # a photo ID someone else signed: stored, never served
            "hidden": (hidden, _key(hidden, [_uid(b"Hidden photo <hidden@example.org>"),
                                             image_attribute((1, JPEG))],
                                    stranger=mallory)),
            "ctrl": (ctrl, _key(ctrl, [_uid(CONTROL_UID)])),
            # an empty user ID, the only one of a key that certifies another
            "blank": (blank, _key(blank, [_uid(b"")])),
            "by-blank": (by_blank, _key(by_blank, [_uid(b"By blank <by-blank@example.org>")],
                                        certifier=blank)),
            "lapsed": (lapsed, _lapsed_key(lapsed)),
            # certified by by-blank, who then revoked that certification
            "withdrawn": (withdrawn, _key(withdrawn, [_uid(b"Withdrawn <withdrawn@example.org>")],
                                          certifier=by_blank, withdrawn=True)),
        }

    def fingerprint(self, name):
        return self.keys[name][0].public.fingerprint.hex().upper()

    def keyid(self, name):
        return self.keys[name][0].public.keyid.hex().upper()


MADE = Made()


@pytest.fixture(scope="module")
def server(module_db_url, tmp_path_factory):
    config = tmp_path_factory.mktemp("conf") / "cks.conf"
    config.write_text("[server]\nhostname = %s\n[limits]\nmax_upload_bytes = 16000000\n"
                      "max_packet_bytes = 1100000\n%s" % (HOSTNAME, LOOPBACK_EXEMPT))
    with Cksd(module_db_url, config=str(config)) as cksd:
        for name in LOADED:
            status, _, body = cksd.add(fixture(name))
            assert status == 200, body
        for name in MADE.keys:  # certifiers first
            status, _, body = cksd.request("POST", "/pks/add?options=mr", MADE.keys[name][1],
                                           {"Content-Type": "application/pgp-keys"})
            assert status == 200 and json.loads(body)["added"], body
        yield cksd


class Page(HTMLParser):
    """What the tests look at in an HTML page: its headings, table rows,
    images, links and text; the tags must nest properly."""

    VOID = frozenset({"meta", "img", "br", "hr", "input", "link"})
    INLINE = frozenset({"a", "bdi", "code", "strong", "span", "label"})

    def __init__(self, body: bytes):
        super().__init__(convert_charrefs=True)
        self.raw = body.decode()
        self.headings, self.rows, self.images, self.links, self._text = [], [], [], [], []
        self._open, self._row, self._cell, self._heading, self._link = [], None, None, None, None
        self.feed(self.raw)
        self.close()
        assert not self._open, "unclosed: %s" % self._open

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag not in self.INLINE:
            self._text.append(" ")  # what a reader sees apart stays apart
        if tag not in self.VOID:
            self._open.append(tag)
        if tag in ("h1", "h2", "h3"):
            self._heading = [tag, ""]
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = ""
        elif tag == "img":
            self.images.append(attrs)
        elif tag == "a":
            self._link = [attrs.get("href"), ""]

    def handle_endtag(self, tag):
        assert self._open and self._open[-1] == tag, "</%s> closes %s" % (tag, self._open)
        self._open.pop()
        if tag not in self.INLINE:
            self._text.append(" ")
        if tag in ("h1", "h2", "h3"):
            self.headings.append((tag, self._heading[1].strip()))
        elif tag in ("td", "th"):
            self._row.append(" ".join(self._cell.split()))
            self._cell = None
        elif tag == "tr":
            self.rows.append(self._row)
        elif tag == "a":
            self.links.append((self._link[0], " ".join(self._link[1].split())))

    def handle_data(self, data):
        if self._open and self._open[-1] in ("style", "title"):
            return
        self._text.append(data)
        for part in (self._heading, self._link):
            if part is not None:
                part[1] += data
        if self._cell is not None:
            self._cell += data

    @property
    def text(self):
        return " ".join("".join(self._text).split())


def _page(server, path, status=200, headers=None):
    got, answer_headers, body = server.request("GET", path, headers=headers)
    assert got == status, body
    assert answer_headers["content-type"] == "text/html; charset=utf-8"
    assert answer_headers["content-security-policy"].startswith("default-src 'none';")
    assert "script-src" not in answer_headers["content-security-policy"]
    return Page(body)


def _key_page(server, fingerprint):
    return _page(server, "/pks/lookup?op=vindex&fingerprint=on&search=0x" + fingerprint)


# --- the front page ---------------------------------------------------------------------

def test_front_page_forms_and_address(server):
    page = _page(server, "/")
    assert [h for _, h in page.headings] == ["OpenPGP keyserver", "Search for keys",
                                              "Upload a key", "Using this keyserver with GnuPG"]
    assert 'action="/pks/lookup"' in page.raw and 'name="search"' in page.raw
    assert 'action="/pks/add"' in page.raw and 'name="keytext"' in page.raw
    address = "hkp://%s:%d" % (HOSTNAME, server.port)  # not the HKP port: it is given
    assert "gpg --keyserver %s --recv-keys" % address in page.text
    assert "<script" not in page.raw
    # every field has a visible label (until 2026-12-06 the <select> had
    # only aria-label="what to show")
    assert '<label for="op">What to do:</label>\n<select id="op" name="op">' in page.raw
    assert "aria-label" not in page.raw


def test_gnupg_addresses():
    assert gnupg_addresses("k.example", 11371, None, "") == ["hkp://k.example"]
    assert gnupg_addresses("k.example", 8080, None, "") == ["hkp://k.example:8080"]
    assert gnupg_addresses("k.example", 11371, 443, "") == ["hkps://k.example",
                                                             "hkp://k.example"]
    assert gnupg_addresses("k.example", 80, 8443, "") == ["hkps://k.example:8443",
                                                          "hkp://k.example:80"]
    assert gnupg_addresses("k.example", 443, 443, "") == ["hkps://k.example"]  # TLS only
    assert gnupg_addresses("k.example", 80, 8443, "hkps://keys.example.org") == \
        ["hkps://keys.example.org"]


def _settings(text):
    settings = Settings()
    settings.parser.read_string(text)
    return settings


def test_public_address_setting_overrides_the_front_page_address():
    settings = server_settings(_settings("[server]\nhostname = internal.example\n"
                                         "public_address = hkps://keys.example.org\n"), 8080)
    assert settings.public_address == "hkps://keys.example.org"
    body = KeyServer(None, settings).handle(Request("GET", "/", client="127.0.0.1")).body
    page = Page(body)
    assert "gpg --keyserver hkps://keys.example.org --send-keys" in page.text
    assert "internal.example" not in page.text
    assert server_settings(Settings(), 11371).public_address == ""


@pytest.mark.parametrize("address", ["keys.example.org", "https://keys.example.org",
                                     "hkps://keys.example.org/path", "hkp://a b",
                                     "hkps://<b>"])
def test_bad_public_address_is_a_config_error(address):
    with pytest.raises(ConfigError, match="public_address"):
        server_settings(_settings("[server]\npublic_address = %s\n" % address), 11371)


# --- upload answers ----------------------------------------------------------------------

def test_upload_answer_is_a_list_that_wraps(server):
    """A line per key or problem, as a list: in a <pre> it scrolled sideways."""
    status, _, body = server.request(
        "POST", "/pks/add", urllib.parse.urlencode({"keytext": "this is not a key at all"})
        .encode(), {"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"})
    assert status == 422
    page = Page(body)
    assert "<title>Key submission refused (Error 422: Unprocessable Content)</title>" in page.raw
    assert "<pre" not in page.raw
    assert "<ul><li>problem: no OpenPGP data found" in page.raw


def test_titles_say_what_the_page_holds(server):
    """A result list names its search, an error page its error, an upload's
    answer whether it was taken (until 2026-12-06 "Search results", "Error
    404" and "Key submission", whatever they said)."""
    page = _page(server, "/pks/lookup?op=index&search=fixture")
    assert "<title>Search results for \u2068fixture\u2069</title>" in page.raw
    page = _page(server, "/pks/lookup?op=index&search=nobody-at-all", 404, HTML)
    assert "<title>Error 404: Not Found</title>" in page.raw
    assert page.headings == [("h1", "Error 404: Not Found")]
    status, _, body = server.request(
        "POST", "/pks/add", urllib.parse.urlencode({"keytext": fixture("rsa2048")}).encode(),
        {"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"})
    assert status == 200
    assert Page(body).headings == [("h1", "Key submission accepted")]


def test_every_page_has_landmarks(server):
    """The heading and body in <main>, the link home in <footer> (until
    2026-12-06 no page had a landmark)."""
    for path, status in [("/", 200), ("/pks/lookup?op=index&search=fixture", 200),
                         ("/pks/lookup?op=vindex&search=0x" + _fp("photo"), 200),
                         ("/pks/lookup?op=stats", 200), ("/pks/x-cks-rejections", 200),
                         ("/pks/lookup?op=index&search=nobody-at-all", 404)]:
        raw = _page(server, path, status, HTML).raw
        assert raw.count("<main>") == raw.count("<footer>") == 1, path
        assert raw.index("<body>\n<main>\n<h1>") < raw.index("</main>\n<footer>") \
            < raw.index("CKS OpenPGP keyserver</a>") < raw.index("</footer></body>"), path


def _head_fields(answer: bytes):
    """The header fields of a raw HTTP answer, names in lower case."""
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
    return dict((name.lower(), value.strip()) for name, _, value in
                (line.partition(":") for line in head))


def test_every_answer_says_nosniff_and_keeps_its_address_from_other_sites(server):
    """Pages, keys, errors, photos, the operator's /health and the server's
    own refusals: a browser takes none as a type it guessed, and tells
    another site nothing of the page a link came from (until 2026-12-07 only
    photo IDs had nosniff, and no answer a Referrer-Policy).  No HSTS over
    plain HTTP, where a browser ignores it."""
    answers = [server.request("GET", path, headers=HTML)[1] for path in [
        "/", "/pks/lookup?op=vindex&search=0x" + _fp("photo"),
        "/pks/lookup?op=get&options=mr&search=0x" + _fp("rsa2048"),
        "/pks/lookup?op=index&search=nobody-at-all", "/health",
        "/pks/photo?fingerprint=%s&n=1" % _fp("photo")]]
    refused = raw_exchange(server.port, b"BREW / HTCPCP/1.0\r\n\r\n")
    assert refused.startswith(b"HTTP/1.1 400 "), refused
    answers.append(_head_fields(refused))
    for headers in answers:
        assert headers["x-content-type-options"] == "nosniff", headers
        assert headers["referrer-policy"] == "same-origin", headers
        assert "strict-transport-security" not in headers


# --- result lists ------------------------------------------------------------------------

def test_result_list(server):
    page = _page(server, "/pks/lookup?op=index&fingerprint=on&search=fixture")
    assert page.headings[0] == ("h1", "Search results for fixture")
    text = page.text
    assert "Fingerprint=AD62 5CE7 F94E 6F84 7AF0 8DB0 9C1D EEEB 5EF6 B51A" in text
    assert "rsa2048/%s 2024-01-01" % _keyid("rsa2048") in text
    assert "eddsa255/%s 2024-01-01 [revoked]" % _keyid("revoked") in text
    assert "eddsa255/%s 2015-01-01 [expired 2016-01-01]" % _keyid("expired") in text
    assert "cannot verify" in text  # desig-revoked: its revoker's key is not here
    key_page = "/pks/lookup?op=vindex&fingerprint=on&search=0x" + _fp("photo")
    assert (key_page, "photo ID") in page.links
    # a heading per key, and its links named with its key ID (until 2026-12-06
    # every key had links "Key page" and "Download the key", and no heading)
    assert ("h2", "pub eddsa255/%s 2024-01-01" % _keyid("photo")) in page.headings
    assert ("h2", "pub eddsa255/%s 2024-01-01 [revoked]" % _keyid("revoked")) in page.headings
    assert (key_page, "Key page of " + _keyid("photo")) in page.links
    assert ("/pks/lookup?op=get&options=mr&search=0x" + _fp("photo"),
            "Download key " + _keyid("photo")) in page.links
    names = [name for _, name in page.links if name != "photo ID"]
    assert len(set(names)) == len(names)  # no two links alike, but a photo ID's


# --- key pages ----------------------------------------------------------------------------

def test_key_page_facts_and_verified_certifications(server):
    page = _key_page(server, _fp("certified"))
    # each user ID a heading, each table of signatures captioned (until
    # 2026-12-06 neither: a user ID was <p><strong>)
    assert page.headings == [("h1", "Key " + _keyid("certified")),
                             ("h2", "User IDs and photo IDs"),
                             ("h3", "Certified fixture <certified@example.org>"),
                             ("h2", "Subkeys")]
    assert "<caption>Signatures on user ID <bdi>Certified fixture &lt;certified@example.org" \
        "&gt;</bdi></caption>" in page.raw
    assert "<caption>Signatures on subkey D0F93E9CBCDF1298</caption>" in page.raw
    text = page.text
    assert "Fingerprint B24E 81B8 7287 E5EF A102 03F5 7176 A56C 4648 E0DC" in text
    assert "Algorithm EdDSA on ed25519, 255 bits Created 2024-01-01 Expires never " \
           "Usage certify, sign" in text
    assert "sub cv25519/D0F93E9CBCDF1298 2024-01-01 [encrypt]" in text
    assert ["certification (positive)", "self-signature", "2024-01-01", "", "verified"] \
        in page.rows
    for name in ("rsa2048", "nistp256"):  # signers held here: named, linked, verified
        signer = "%s fixture <%s@example.org>" % (name, name)
        assert ["certification", "%s %s" % (signer, _keyid(name)), "2024-01-01", "",
                "verified"] in page.rows
        assert ("/pks/lookup?op=vindex&fingerprint=on&search=0x" + _fp(name),
                signer) in page.links
    assert ("/pks/lookup?op=get&options=mr&search=0x" + _fp("certified"),
            "Download the key") in page.links
    assert "says for every signature shown whether it verified it" in text
    assert "not cryptographically verified" not in text


def test_key_page_banners(server):
    revoked = _key_page(server, _fp("revoked")).text
    assert "This key is revoked: key compromised (“Fixture: this key is revoked”)." in revoked
    expired = _key_page(server, _fp("expired")).text
    assert "This key expired on 2016-01-01." in expired and "Expires 2016-01-01 (expired)" \
        in expired
    unverified = _key_page(server, _fp("desig-revoked"))
    assert "may be revoked" in unverified.text and "This key is revoked" not in unverified.text
    assert "<caption>Signatures on the key</caption>" in unverified.raw
    revoker = EXPECTED["revoker.asc"][0]
    assert ["key revocation", "%s (key not held here)" % revoker["keyid"], "2024-01-01", "",
            "not verified: the revoker's key is not held here"] in unverified.rows
    assert "Revocable by %s" % " ".join(
        revoker["fingerprint"][i:i + 4] for i in range(0, 40, 4)) in unverified.text
    parts = _key_page(server, _fp("revoked-parts"))
    assert "Revoked UID <revoked-uid@example.org> [revoked]" in parts.text
    assert "[sign] [revoked]" in parts.text
    assert ["user ID revocation", "self-signature", "2024-01-01", "", "verified"] in parts.rows


def test_a_certification_revoked_by_its_maker_is_no_user_id_revocation(server):
    """Another key's certification revocation withdraws its certification,
    not the holder's user ID (RFC 9580 5.2.1): the page must not say the user
    ID was revoked."""
    page = _key_page(server, MADE.fingerprint("withdrawn"))
    signer = "By blank <by-blank@example.org> %s" % MADE.keyid("by-blank")
    assert ["certification revocation", signer, "2024-01-01", "", "verified"] in page.rows
    assert not any(row[0] == "user ID revocation" for row in page.rows)
    assert "[revoked]" not in page.text


def test_a_subkey_whose_binding_expired_is_shown_expired(server):
    """As a user ID whose self-certification expired: GnuPG counts neither
    (`sub:i`); until 2026-12-06 the subkey was shown as valid."""
    page = _key_page(server, MADE.fingerprint("lapsed"))
    assert page.text.count("[encrypt] [expired 2024-12-31]") == 2
    assert "Lapsed [expired 2024-12-31]" in page.text
    assert "This key expired" not in page.text


def test_key_page_of_several_keys(server):
    page = _page(server, "/pks/lookup?op=vindex&search=fixture")
    assert page.headings[0] == ("h1", "Keys found for fixture")
    assert ("h2", "Key " + _keyid("rsa2048")) in page.headings
    assert ("h3", "Subkeys") in page.headings
    assert "<h4 class=\"uid\"><bdi>rsa2048 fixture &lt;rsa2048@example.org&gt;</bdi></h4>" \
        in page.raw
    assert page.raw.count("<!DOCTYPE html>") == 1


# --- photo IDs -----------------------------------------------------------------------------

def _photo(server, fingerprint, number, method="GET"):
    return server.request(method, "/pks/photo?" + urllib.parse.urlencode(
        {"fingerprint": fingerprint, "n": number}))


def test_photo_on_the_key_page_and_at_its_url(server):
    page = _key_page(server, _fp("photo"))
    (image,) = page.images
    assert image["alt"] == "Photo ID 1 of key " + _keyid("photo")
    assert image["src"] == "/pks/photo?fingerprint=%s&n=1" % _fp("photo")
    assert (image["width"], image["height"], image["loading"]) == ("16", "16", "lazy")
    assert "<caption>Signatures on photo ID 1</caption>" in page.raw
    status, headers, body = server.request("GET", image["src"])
    assert status == 200 and body == JPEG
    assert body.startswith(b"\xff\xd8") and body.endswith(b"\xff\xd9")
    assert headers["content-type"] == "image/jpeg"
    assert headers["content-security-policy"].startswith("default-src 'none'")
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cross-origin-resource-policy"] == "same-origin"
    status, headers, body = _photo(server, _fp("photo").lower(), 1, "HEAD")
    assert status == 200 and body == b"" and int(headers["content-length"]) == len(JPEG)
    for site, expected in (("same-origin", 200), ("same-site", 200), ("none", 200),
                           ("cross-site", 403)):  # (another site's page: refused unread)
        assert server.request("GET", image["src"], headers={"Sec-Fetch-Site": site})[0] \
            == expected
    # the result list points at the key page, where the photo is
    listing = _page(server, "/pks/lookup?op=index&search=photo@example.org")
    assert "uat photo ID" in listing.text and not listing.images


def _with_frame(width, height):
    """The fixture's JPEG, its frame header saying `width` x `height`."""
    at = JPEG.index(b"\xff\xc0")
    return JPEG[:at + 5] + height.to_bytes(2, "big") + width.to_bytes(2, "big") \
        + JPEG[at + 9:]


@pytest.mark.parametrize("data,size,shown", [
    (JPEG, (16, 16), (16, 16)),
    (_with_frame(960, 480), (960, 480), (240, 120)),  # as wide as a page shows one
    (_with_frame(100, 1000), (100, 1000), (32, 320)),  # as tall
    (_with_frame(5000, 1), (5000, 1), (240, 1)),
    (_with_frame(0, 16), None, None),  # (the height from a later DNL segment: unknown)
    (JPEG[:JPEG.index(b"\xff\xc0")], None, None),  # cut off before its frame header
    (b"\xff\xd8\xff\xda\x00\x02\xff\xc0", None, None),  # a scan before any frame
    (b"\xff\xd8\xff\xff\xc2\x00\x0b\x08\x00\x02\x00\x03\x01", (3, 2), (3, 2)),
])
def test_the_size_of_a_photo_as_a_key_page_gives_it(data, size, shown):
    """From the JPEG's frame header, without decoding it: the page keeps
    each photo's place before it loads, and lazy loading asks only for those
    near the window (a key of 600 photo IDs cost 21 s of server time a view
    until 2026-12-07: each is a request that reads and parses the key)."""
    assert jpeg_size(data) == size
    assert shown_size(Image(1, data)) == shown


@pytest.mark.parametrize("query,status,message", [
    ("n=2", 404, "has no photo ID 2 (it has 1)"),
    ("n=0", 400, "n= needs one photo number"),
    ("n=x", 400, "n= needs one photo number"),
    ("n=1&n=1", 400, "n= needs one photo number"),
    ("", 400, "n= needs one photo number"),
])
def test_photo_bad_number(server, query, status, message):
    got, _, body = server.request("GET", "/pks/photo?fingerprint=%s&%s" % (_fp("photo"), query))
    assert got == status and message in body.decode()


@pytest.mark.parametrize("fingerprint,status,message", [
    ("0" * 40, 404, "no key with fingerprint 0000000000000000000000000000000000000000"),
    (_keyid("photo"), 400, "needs the key's fingerprint"),
    ("X" * 40, 400, "needs the key's fingerprint"),
    ("", 400, "needs the key's fingerprint"),
])
def test_photo_bad_key(server, fingerprint, status, message):
    got, _, body = _photo(server, fingerprint, 1)
    assert got == status and message in body.decode()
    assert server.request("POST", "/pks/photo?n=1", b"")[0] == 405
    assert server.request("GET", "/")[0] == 200  # still serving


def test_only_jpeg_photos_are_served(server):
    fingerprint = MADE.fingerprint("odd")
    for number in (1, 2):
        status, headers, body = _photo(server, fingerprint, number)
        assert status == 415 and headers["content-type"].startswith("text/plain")
        assert "photo ID %d of key %s: not a JPEG image" % (number, fingerprint) \
            in body.decode()
    status, headers, body = _photo(server, fingerprint, 3)
    assert status == 200 and body == JPEG and headers["content-type"] == "image/jpeg"
    page = _key_page(server, fingerprint)
    assert "Photo ID 1 is not shown: not a JPEG image" in page.text
    assert "Photo ID 2 is not shown: not a JPEG image" in page.text
    assert [i["src"] for i in page.images] == ["/pks/photo?fingerprint=%s&n=3" % fingerprint]


def test_photo_size_limit(server):
    fingerprint = MADE.fingerprint("big")
    status, _, body = _photo(server, fingerprint, 1)
    assert status == 200 and len(body) == MAX_PHOTO_BYTES and body.endswith(b"\xff\xd9")
    status, _, body = _photo(server, fingerprint, 2)
    assert status == 403
    assert "%d bytes: photo IDs over %d bytes are not served" % (
        MAX_PHOTO_BYTES + 1, MAX_PHOTO_BYTES) in body.decode()
    page = _key_page(server, fingerprint)
    assert [i["src"] for i in page.images] == ["/pks/photo?fingerprint=%s&n=1" % fingerprint]
    assert "Photo ID 2 is not shown: %d bytes" % (MAX_PHOTO_BYTES + 1) in page.text


def test_only_photos_of_the_served_view(server):
    fingerprint = MADE.fingerprint("hidden")
    index = server.lookup(op="index", search="0x" + fingerprint, hash="on")[2].decode()
    sks_hash = index.split("Hash=")[1][:32]
    (stored,) = read_keys(server.lookup(op="hget", options="mr", search=sks_hash)[2]).keys
    assert len(stored.attributes) == 1  # stored as sent, but its self-signature is not one
    status, _, body = _photo(server, fingerprint, 1)
    assert status == 404 and "has no photo ID 1 (it has 0)" in body.decode()
    page = _key_page(server, fingerprint)
    assert not page.images and "Photo ID" not in page.text


# --- escaping ----------------------------------------------------------------------------------

def _no_markup_from_keys(page):
    assert "<script" not in page.raw and "<img src=x" not in page.raw


def test_user_ids_with_html_are_text_on_every_page(server):
    evil = EVIL_UID.decode().replace("\u202e", "[U+202E]")  # (shown as its code point)
    listing = _page(server, "/pks/lookup?op=index&search=mallory")
    _no_markup_from_keys(listing)
    assert evil in listing.text
    own = _key_page(server, MADE.fingerprint("mallory"))
    _no_markup_from_keys(own)
    assert evil in own.text
    # on the page of a key it certified (verified: its key is here), and in the reason
    # of that key's revocation
    certified = _key_page(server, MADE.fingerprint("victim"))
    _no_markup_from_keys(certified)
    assert ["certification", "%s %s" % (evil, MADE.keyid("mallory")), "2024-01-01", "",
            "verified"] in certified.rows
    assert "This key is revoked: key compromised (“%s”)." % EVIL_REASON.decode() \
        in certified.text
    assert "<img" not in certified.raw
    # isolated, its right-to-left override (U+202E) shown as its code point,
    # where it is shown: the listing, its own page, the certification's signer
    isolated = "<bdi>%s</bdi>" % html.escape(evil, quote=True)
    assert isolated in listing.raw and isolated in own.raw
    assert isolated + "</a> <code>%s</code>" % MADE.keyid("mallory") in certified.raw


def test_searches_and_errors_are_text(server):
    search = "<script>mallory</script>"  # the words "script" and "mallory"
    page = _page(server, "/pks/lookup?" + urllib.parse.urlencode(
        {"op": "index", "search": search}))
    _no_markup_from_keys(page)
    assert "1 key found for %s." % search in page.text
    page = _page(server, "/pks/lookup?" + urllib.parse.urlencode(
        {"op": "vindex", "search": search, "exact": "on"}), 404, HTML)
    assert "no keys found" in page.text
    page = _page(server, "/pks/lookup?op=x-%3Cscript%3E&search=a", 501, HTML)
    _no_markup_from_keys(page)
    assert "op=x-<script> is not supported here" in page.text


def _shown_as_text(page):
    """No character HTML does not allow in text is in the page."""
    assert not set(NOT_HTML_TEXT) & set(page.raw), \
        sorted(set(NOT_HTML_TEXT) & set(page.raw))


def test_control_characters_and_noncharacters_are_shown_as_replacement_characters(server):
    shown = html.escape("ctrl\ufffd\ufffd\ufffd[31mred\ufffd\ufffd\ufffd \ufffd\ufffd\ufffd "
                        "tab\there <ctrl@example.org>")
    for page in (_page(server, "/pks/lookup?op=index&search=ctrl%40example.org"),
                 _key_page(server, MADE.fingerprint("ctrl"))):
        _shown_as_text(page)
        assert "<bdi>%s</bdi>" % shown in page.raw
    page = _page(server, "/pks/lookup?op=index&search=ctrl%1b[31mred%07")
    _shown_as_text(page)
    assert "1 key found for ctrl\ufffd[31mred\ufffd." in page.text
    page = _page(server, "/pks/lookup?op=x-%1b&search=a", 501, HTML)
    _shown_as_text(page)
    assert "op=x-\ufffd is not supported here" in page.text


def test_an_empty_user_id_is_shown_as_one(server):
    empty = '<span class="dim">(empty user ID)</span>'
    listing = _page(server, "/pks/lookup?op=index&search=0x" + MADE.fingerprint("blank"))
    key_page = "/pks/lookup?op=vindex&fingerprint=on&search=0x" + MADE.fingerprint("blank")
    assert (key_page, "(empty user ID)") in listing.links and empty in listing.raw
    own = _key_page(server, MADE.fingerprint("blank"))
    assert "User IDs and photo IDs (empty user ID) Signature" in own.text and empty in own.raw
    certified = _key_page(server, MADE.fingerprint("by-blank"))
    assert ["certification", "(empty user ID) %s" % MADE.keyid("blank"), "2024-01-01", "",
            "verified"] in certified.rows
    assert (key_page, "(empty user ID)") in certified.links


def test_searches_shown_are_isolated(server):
    """A right-to-left override (U+202E) in a search reorders none of the
    page's text after it: <bdi> where the search is shown, FSI...PDI
    (U+2068, U+2069) in the title, which holds no markup.  A PDI of the
    search's own that ends none of its isolates is left out: it would end
    the page's."""
    query = urllib.parse.quote("\u2069\u2067example\u2069 fixture")
    page = _page(server, "/pks/lookup?op=index&search=" + query)
    assert "found for <code><bdi>\u2067example\u2069 fixture</bdi></code>." in page.raw
    page = _page(server, "/pks/lookup?op=vindex&search=" + query)
    assert "<h1>Keys found for <bdi>\u2067example\u2069 fixture</bdi></h1>" in page.raw
    assert "<title>Keys found for \u2068\u2067example\u2069 fixture\u2069</title>" in page.raw


def test_isolated_text_is_balanced():
    assert user_text("\u2067a\u2069\u2069b\u2066c\u2068") == \
        "<bdi>\u2067a\u2069b\u2066c\u2068\u2069\u2069</bdi>"
    assert isolated("x\u2069\u202ey") == "\u2068x[U+202E]y\u2069"


def test_text_that_would_show_as_other_text_shows_its_code_points():
    """A direction override or embedding, or an invisible character no name
    needs, in text someone else chose is shown as its code point: until
    2026-12-07 a user ID `\u202eevil` showed as `live` (a review found it).
    Joiners and marks, which scripts and emoji need, stay."""
    assert user_text("\u202eevil") == "<bdi>[U+202E]evil</bdi>"
    assert user_text("Al\u200bice\u2060\ufeff") == "<bdi>Al[U+200B]ice[U+2060][U+FEFF]</bdi>"
    for kept in ("\u0645\u06cc\u200c\u0634\u0648\u062f", "\U0001f468\u200d\U0001f469",
                 "a\u200fb", "\u05d0\u05d1"):
        assert user_text(kept) == "<bdi>%s</bdi>" % kept


# --- what the key page says under the other certification policies ----------------------

def _key_page_rows(db_url, policy, names, fingerprint):
    """The table rows of the page of key `fingerprint`, with fixtures `names`
    stored under [policy] certifications = `policy`."""
    limits = pipeline.Limits(serve=ServePolicy(policy))
    store = open_store(db_url)
    try:
        for name in names:
            assert pipeline.submit(store, fixture(name), pipeline.Source.user(), limits).stored
        response = KeyServer(store, ServerSettings(limits=limits)).handle(Request(
            "GET", "/pks/lookup?op=vindex&search=0x" + fingerprint, client="127.0.0.1"))
    finally:
        store.close()
    assert response.status == 200
    return Page(response.body).rows


def test_key_page_under_the_all_policy(db_url):
    rows = _key_page_rows(db_url, "all", ["certified", "rsa2048"], _fp("certified"))
    assert ["certification (positive)", "self-signature", "2024-01-01", "", "verified"] in rows
    assert ["certification", "rsa2048 fixture <rsa2048@example.org> %s" % _keyid("rsa2048"),
            "2024-01-01", "", "not checked by this server"] in rows
    # nistp256, the other certifier, is not here
    assert ["certification", "%s (key not held here)" % _keyid("nistp256"), "2024-01-01", "",
            "not checked by this server"] in rows


def test_key_page_under_the_attested_policy(db_url):
    with open(os.path.join(FIXTURES, "attested.json")) as handle:
        attested = json.load(handle)
    rows = _key_page_rows(db_url, "attested", ["attested"], _fp("ed25519"))  # certified ed25519
    assert ["attestation", "self-signature"] in [row[:2] for row in rows]
    certifications = [row for row in rows if row[0] == "certification"]
    assert [row[1] for row in certifications] == ["%s (key not held here)" % attested["attested"]]
    assert certifications[0][4] == "not checked: attested by the key's holder"
