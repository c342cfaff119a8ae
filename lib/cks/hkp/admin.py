"""The operator's web page (off unless [admin] password_hash is set): delete,
reject and unreject keys, from a browser.

Authentication is HTTP Basic against a PBKDF2 password hash in the config,
compared in constant time (serve it only behind TLS).  Actions are POST only
and protected against cross-site requests: a form token only our own page
knows, and a same-origin check of Origin/Referer when the browser sends them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from . import html

ITERATIONS = 200_000


def hash_password(password: str, iterations: int = ITERATIONS) -> str:
    salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return "pbkdf2_sha256$%d$%s$%s" % (iterations, salt.hex(), digest.hex())


def check_password(stored: str, password: str) -> bool:
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        candidate = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"),
                                        bytes.fromhex(salt), int(iterations))
        return hmac.compare_digest(candidate, bytes.fromhex(digest))
    except ValueError:
        return False


@dataclass
class AdminSettings:
    password_hash: str = ""  # empty: the admin page does not exist
    user: str = "admin"

    @property
    def enabled(self) -> bool:
        return bool(self.password_hash)

    def csrf_token(self) -> str:
        """A form token: knowable only by reading our own admin page."""
        return hmac.new(self.password_hash.encode(), b"cks-admin-form",
                        hashlib.sha256).hexdigest()[:40]

    def authenticated(self, authorization: str) -> bool:
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded.strip(), validate=True) \
                .decode("utf-8").partition(":")
        except ValueError:  # not base64 (binascii.Error), not ASCII, or not UTF-8
            return False
        user_ok = hmac.compare_digest(user.encode("utf-8"), self.user.encode("utf-8"))
        return check_password(self.password_hash, password) and user_ok


def same_origin(origin: str, referer: str, host: str) -> bool:
    """A browser's Origin (or Referer) names our own host; absent headers pass
    (non-browser clients), the form token still applies."""
    for value in (origin, referer):
        if value and value != "null":
            try:
                return urlsplit(value).netloc.lower() == host.lower()
            except ValueError:  # e.g. an unclosed [ in the host
                return False
        if value == "null":
            return False
    return True


def page(settings: AdminSettings, rejected, message: str = "") -> str:
    token = html.e(settings.csrf_token())
    rows = "".join("<tr><td><code>%s</code></td><td>%s</td><td>%s</td></tr>" % (
        html.e(r["fingerprint"]), html.e(r["source"]), html.e(r["reason"] or ""))
        for r in rejected) or "<tr><td colspan=3>none</td></tr>"
    forms = "".join("""
<form method="post" action="/pks/admin"><p>
<input type="hidden" name="token" value="%s"><input type="hidden" name="action" value="%s">
<label>Fingerprint: <input type="text" name="fingerprint" size="66" required></label>
%s<input type="submit" value="%s"></p></form>""" % (
        token, action, '<label>Reason: <input type="text" name="reason" size="30"></label> '
        if action == "reject" else "", label)
        for action, label in (("delete", "Delete"), ("reject", "Delete and reject"),
                              ("unreject", "Unreject")))
    notice = "<p><strong>%s</strong></p>" % html.e(message) if message else ""
    return html.page("Keyserver administration", notice + forms + """
<p class="dim">A rejection or unrejection made here is a notice of this node: sign it with
<code>cks_admin.py sign-notice</code> to publish it to the peers.</p>
<h2>Rejected keys</h2><table><tr><th>fingerprint</th><th>source</th><th>reason</th></tr>%s
</table>""" % rows)
