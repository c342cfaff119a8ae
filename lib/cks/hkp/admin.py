"""The operator's web page (off unless [admin] password_hash is set): delete,
reject and unreject keys, from a browser.

Authentication is HTTP Basic against a PBKDF2 password hash in the config,
compared in constant time (serve it only behind TLS).  Each check is ~0.17 s
of PBKDF2, so a header once verified is remembered, and password tries are
limited before PBKDF2 runs (Logins).  Actions are POST only
and protected against cross-site requests: a form token only our own page
knows, and a same-origin check of Origin/Referer when the browser sends them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading
from dataclasses import dataclass, field
from typing import Dict, Optional, Set, Tuple
from urllib.parse import urlsplit

from . import html
from .ratelimit import Rate, RateLimiter

ITERATIONS = 200_000
TRIES_PER_CLIENT = Rate(per_second=0.1, burst=5)  # 5 at once, then 1 per 10 s
TRIES_OVERALL = Rate(per_second=2, burst=10)  # all clients together, per serving process
MAX_VERIFIED = 64  # Authorization headers remembered (the operator's browsers)


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

    def csrf_token(self, authorization: str) -> str:
        """The form token of the operator who sent `authorization` (the
        header, which holds the password): knowable only by reading our own
        admin page, or by knowing the password.  Until 2026-12-06 it took the
        password hash alone, which anyone who can read the configuration
        could compute.  The same on every host and process, and after a
        restart (a password change makes new ones)."""
        return hmac.new(self.password_hash.encode(),
                        b"cks-admin-form\n" + authorization.encode("utf-8", "surrogateescape"),
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


class Logins:
    """Who gets the admin page: a password check costs ~0.17 s of PBKDF2, so
    an Authorization header once verified is remembered (the operator pays
    it once), and any other header is a try that must pass both limits
    (TRIES_PER_CLIENT, an IPv6 client's /64 as one; TRIES_OVERALL) before
    PBKDF2 runs: a flood of wrong passwords costs a few checks a second.  A
    try refused by either limit spends nothing of the other's."""

    def __init__(self) -> None:
        self._per_client = RateLimiter(TRIES_PER_CLIENT)
        self._overall = RateLimiter(TRIES_OVERALL)
        self._lock = threading.Lock()  # (both limits looked at and spent as one)
        # SHA-256 of the password hash and the header: a changed hash matches none
        self._verified: Set[bytes] = set()

    def verify(self, settings: AdminSettings, authorization: str, client: str,
               now: Optional[float] = None) -> Tuple[bool, float]:
        """(True, 0): the operator; (False, 0): not (401); (False, seconds):
        too many tries, wait (429), no password checked."""
        seen = hashlib.sha256(("%s\n%s" % (settings.password_hash, authorization))
                              .encode("utf-8", "surrogateescape")).digest()
        if seen in self._verified:
            return True, 0.0
        if not authorization:
            return False, 0.0
        with self._lock:  # (the overall limit first: a try it refuses spends none of the
            # client's, which until 2026-12-06 it did; one the client's refuses, none of it)
            wait = (self._overall.wait("all", now) or self._per_client.check(client, now)
                    or self._overall.check("all", now))
        if wait:
            return False, wait
        if not settings.authenticated(authorization):
            return False, 0.0
        if len(self._verified) >= MAX_VERIFIED:
            self._verified.clear()
        self._verified.add(seen)
        return True, 0.0


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


@dataclass
class Outcome:
    """What an action asked for on the page did: `message`, and when it was
    `refused`, what was typed (`typed`: the form's fields), to show again."""

    action: str
    message: str
    refused: bool = False
    typed: Dict[str, str] = field(default_factory=dict)


# (action, the heading of its form, its button)
_ACTIONS = (("delete", "Delete a key", "Delete"),
            ("reject", "Delete and reject a key", "Delete and reject"),
            ("unreject", "Unreject a key", "Unreject"))


def page(settings: AdminSettings, authorization: str, rejected,
         outcome: Optional[Outcome] = None) -> str:
    token = html.e(settings.csrf_token(authorization))
    rows = "".join("<tr><td><code>%s</code></td><td>%s</td><td>%s</td></tr>" % (
        html.e(r["fingerprint"]), html.e(r["source"]), html.e(r["reason"] or ""))
        for r in rejected) or "<tr><td colspan=3>none</td></tr>"
    in_form = outcome is not None and outcome.refused and \
        outcome.action in (action for action, _, _ in _ACTIONS)
    notice = "<p role=\"status\"><strong>%s</strong></p>" % html.e(outcome.message) \
        if outcome is not None and not in_form else ""
    forms = "".join(_form(token, action, heading, button,
                          outcome if in_form and outcome.action == action else None)
                    for action, heading, button in _ACTIONS)
    return html.page("Keyserver administration", notice + forms + """
<p class="dim">A rejection or unrejection made here is a notice of this node: sign it with
<code>cks_admin.py sign-notice</code> to publish it to the peers.</p>
<h2>Rejected keys</h2><table><tr><th>fingerprint</th><th>source</th><th>reason</th></tr>%s
</table>""" % rows)


def _form(token: str, action: str, heading: str, button: str,
          refused: Optional[Outcome]) -> str:
    """The form of one action, named by its heading, its fields by the
    action; when `refused`, the reason is in the form, its fields point to
    it (aria-describedby) and hold what was typed."""
    typed = refused.typed if refused else {}
    error = ('<p class="error" id="%s-error" role="alert">%s</p>' % (
        action, html.e(refused.message))) if refused else ""
    fields = [_field(action, "fingerprint", "Fingerprint of the key to %s:" % action, 66,
                     typed, refused is not None)]
    if action == "reject":
        fields.append(_field(action, "reason", "Reason:", 30, typed, refused is not None))
    return """
<h2 id="%s-form">%s</h2>
<form method="post" action="/pks/admin" aria-labelledby="%s-form">%s<p>
<input type="hidden" name="token" value="%s"><input type="hidden" name="action" value="%s">
%s <input type="submit" value="%s"></p></form>""" % (
        action, html.e(heading), action, error, token, action, " ".join(fields), button)


def _field(action: str, name: str, label: str, size: int, typed: Dict[str, str],
           refused: bool) -> str:
    return '<label>%s <input type="text" name="%s" size="%d"%s value="%s"%s></label>' % (
        html.e(label), name, size, " required" if name == "fingerprint" else "",
        html.e(typed.get(name, "")),
        ' aria-describedby="%s-error"' % action if refused else "")
