"""HTML pages for people: the page frame, the front page, results.

The pages about keys are in keypage.py.  Pages use no JavaScript and nothing
from other sites: CONTENT_SECURITY_POLICY (sent with every page) allows
only their own inline style, images from this server and forms to it.
"""

from __future__ import annotations

import html
import re
import time
from typing import List, Optional, Tuple

from .http1 import REASONS

STYLE = ("body{font-family:sans-serif;max-width:64em;margin:1em auto;padding:0 1em;"
         "line-height:1.4;overflow-wrap:break-word}pre{font-size:90%;overflow-x:auto}"
         "table{border-collapse:collapse;display:block;overflow-x:auto}"
         "td,th{padding:.2em .6em;text-align:left;vertical-align:top}.dim{color:#666}"
         ".key{border:1px solid #ccc;border-radius:4px;padding:0 1em;margin:1em 0}"
         ".banner{padding:.5em 1em;border-radius:4px;font-weight:bold}"
         ".revoked,.error{color:#900}.banner.revoked{background:#fdd}.expired{color:#940}"
         ".banner.expired{background:#fed}.unverified{background:#ffd}"
         "h2.pub{font-size:1em;margin:1em 0}"
         ".ok{color:#060}.warn{color:#940}.fpr{word-spacing:.2em}"
         "dl.facts{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:.2em 1em}"
         "dl.facts dt{font-weight:bold}dl.facts dd{margin:0}"
         ".identity,.subkey{margin:1em 0}.sigs{font-size:90%}"
         ".sigs caption{text-align:left;font-style:italic}.uid{font-size:1em}"
         ".sigs th{border-bottom:1px solid #ccc}.day{white-space:nowrap}"
         "textarea,input[type=text],input[type=search],select{max-width:100%;"
         "box-sizing:border-box}"
         "pre.commands{white-space:pre-wrap;overflow-wrap:anywhere}"
         "figure.photo{margin:.5em 0}figure.photo img{max-width:240px;max-height:320px;"
         "border:1px solid #ccc}bdi{overflow-wrap:anywhere}")
CONTENT_SECURITY_POLICY = ("default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
                           "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
HKP_PORT = 11371
HKPS_PORT = 443
# The characters the pages show as U+FFFD: those HTML does not allow in text
# (a parse error; browsers show them raw or not at all): the C0 controls but
# white space, DEL, the C1 controls, the noncharacters; and of the white
# space form feed and carriage return, which would show as a mere space.
_NOT_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ufdd0-\ufdef%s]" % "".join(
    chr(plane << 16 | 0xFFFE) + chr(plane << 16 | 0xFFFF) for plane in range(17)))
_ISOLATE_STARTS = "\u2066\u2067\u2068"  # LRI, RLI, FSI: a PDI (U+2069) ends each
FSI, PDI = "\u2068", "\u2069"
# Shown as their code points in text someone else chose: the direction
# embeddings and overrides (U+202A to U+202E), which make text show as other
# text ("\u202eevil" as "live"), and the invisible characters no name needs
# (zero width space, word joiner, zero width no-break space), which make two
# user IDs that differ look alike.  Joiners, marks and isolates, which
# scripts and emoji use, are left as they are.
_DISGUISING = re.compile("[\u202a-\u202e\u200b\u2060\ufeff]")


def e(text: object) -> str:
    """`text` as HTML text or attribute value: escaped, and each character
    HTML does not allow in text (_NOT_TEXT) shown as U+FFFD, the
    replacement character, so that a user ID or search with a control
    character shows where it has one."""
    return html.escape(_NOT_TEXT.sub("\ufffd", str(text)), quote=True)


def user_text(text: str) -> str:
    """Text someone else chose (a user ID, a search), escaped and isolated:
    inside <bdi>, its direction controls cannot reorder the page's text
    after it, as the key ID or the dates; and those that would make it show
    as other text (U+202E, RIGHT-TO-LEFT OVERRIDE, say) are shown as their
    code points (_DISGUISING), as `[U+202E]`."""
    return "<bdi>%s</bdi>" % e(_undisguised(_balanced(text)))


def isolated(text: str) -> str:
    """user_text for where no markup can go (a <title>): text between FSI
    and PDI (U+2068, U+2069), the Unicode isolate <bdi> stands for."""
    return FSI + _undisguised(_balanced(text)) + PDI


def _undisguised(text: str) -> str:
    """`text` with the characters _DISGUISING finds shown as `[U+XXXX]`.
    Until 2026-12-07 they were shown as they are, isolated: a user ID
    `\u202eevil` showed as `live`, and a search for `live` found nothing
    (a review found it)."""
    return _DISGUISING.sub(lambda match: "[U+%04X]" % ord(match.group()), text)


def _balanced(text: str) -> str:
    """`text` with its own isolates balanced: a PDI that ends none of them
    left out, a PDI added for each left open; else one could end the
    isolate the page puts the text in (Chromium's <bdi> too), and a
    right-to-left override after it reorder the page's text."""
    if PDI not in text and not any(start in text for start in _ISOLATE_STARTS):
        return text
    out, depth = [], 0
    for char in text:
        if char == PDI:
            if not depth:
                continue
            depth -= 1
        elif char in _ISOLATE_STARTS:
            depth += 1
        out.append(char)
    return "".join(out) + PDI * depth


def page(title: str, body: str, heading: Optional[str] = None) -> str:
    """A page titled `title` (text); `heading`: its <h1> as HTML, when that
    is more than the title escaped.  The heading and body are its <main>,
    the link home its <footer>: landmarks a screen reader can go to."""
    before, after = page_around(title, heading)
    return before + body + after


def page_around(title: str, heading: Optional[str] = None) -> Tuple[str, str]:
    """A page (as page() makes it) up to its body and after it, for a body
    written in pieces."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width\">"
            "<title>%s</title><style>%s</style></head><body>\n<main>\n<h1>%s</h1>\n"
            % (e(title), STYLE, e(title) if heading is None else heading),
            "\n</main>\n<footer><hr><p class=\"dim\"><a href=\"/\">CKS OpenPGP keyserver</a>"
            "</p></footer></body></html>\n")


def date(epoch: Optional[int]) -> str:
    """A time as the pages show it: the day, in UTC."""
    return time.strftime("%Y-%m-%d", time.gmtime(epoch)) if epoch is not None else ""


def gnupg_addresses(hostname: str, port: int, tls_port: Optional[int],
                    public_address: str) -> List[str]:
    """The keyserver addresses to give GnuPG: the operator's `public_address`
    when set, else hkps (when cksd serves TLS) and hkp (unless `port` itself
    speaks TLS), each with its port unless it is the scheme's default."""
    if public_address:
        return [public_address]
    out = []
    if tls_port is not None:
        out.append("hkps://%s%s" % (hostname, "" if tls_port == HKPS_PORT else ":%d" % tls_port))
    if tls_port != port:
        out.append("hkp://%s%s" % (hostname, "" if port == HKP_PORT else ":%d" % port))
    return out


def front_page(addresses: List[str]) -> str:
    address = addresses[0]
    others = "".join("<li><code>%s</code></li>" % e(a) for a in addresses)
    body = """
<h2>Search for keys</h2>
<form action="/pks/lookup" method="get">
<p><label for="search">Name, e-mail address, key ID or fingerprint:</label><br>
<input type="search" id="search" name="search" size="50" required></p>
<p><label for="op">What to do:</label>
<select id="op" name="op"><option value="index">list the keys</option>
<option value="vindex">show the keys with their signatures</option>
<option value="get">get the keys (ASCII-armored)</option></select>
<input type="hidden" name="fingerprint" value="on">
<input type="submit" value="Search"></p>
</form>
<h2>Upload a key</h2>
<form action="/pks/add" method="post">
<p><label for="keytext">Paste an ASCII-armored public key
(<code>gpg --armor --export YOUR-KEY-ID</code>):</label><br>
<textarea id="keytext" name="keytext" rows="14" cols="70" required></textarea></p>
<p><input type="submit" value="Upload"></p>
</form>
<p>This server publishes only what it verified: user IDs, photo IDs and subkeys with a
valid self-signature, and certifications by other keys as its policy says.</p>
<h2>Using this keyserver with GnuPG</h2>
<p>The keyserver address:</p>
<ul>%s</ul>
<pre class="commands">gpg --keyserver %s --send-keys YOUR-KEY-ID
gpg --keyserver %s --recv-keys KEY-ID-OR-FINGERPRINT
gpg --keyserver %s --search-keys alice@example.org</pre>
<p>Or once for all, in <code>~/.gnupg/dirmngr.conf</code>: <code>keyserver %s</code></p>
<p><a href="/pks/lookup?op=stats">Server statistics</a></p>
""" % ((others,) + (e(address),) * 4)
    return page("OpenPGP keyserver", body)


def armored_page_around(several: bool) -> Tuple[str, str]:
    """The page of armored keys (one, or `several`) up to the armor (escaped,
    written after it) and after it.  The armor starts a line: onak reads it so."""
    before, after = page_around("Public keys" if several else "Public key")
    return before + "<pre>\n", "</pre>" + after


def error_title(status: int) -> str:
    """"Error 404: Not Found": the status and what it means, so that a
    page's title tells what went wrong."""
    return "Error %d: %s" % (status, REASONS.get(status, "Unknown"))


def error_page(status: int, message: str) -> str:
    return page(error_title(status), "<p>%s</p>" % e(message))


def add_page(status: int, lines: List[str]) -> str:
    """What an upload did, a line per key or problem: a list that wraps
    with the window (in a <pre> it scrolled sideways); the title says
    whether the upload was taken."""
    title = "Key submission accepted" if status == 200 else \
        "Key submission refused (%s)" % error_title(status)
    return page(title, "<ul>%s</ul>" % "".join("<li>%s</li>" % e(line) for line in lines))
