"""HKP endpoints for rejections: peers deliver signed notices, anyone can audit
them, and the operator's web page (see admin.py)."""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, FrozenSet

from .. import rejection
from ..notices import NoticeError
from ..rejection import RejectionError
from ..store.rejections import notices, rejected_keys
from . import admin, html
from .ratelimit import is_loopback
from .request import Form, HKPError, parse_form

if TYPE_CHECKING:  # pragma: no cover
    from .app import KeyServer, Request, Response

NOTICE_PATH = "/pks/x-cks-rejection"  # POST: a peer delivers a notice
AUDIT_PATH = "/pks/x-cks-rejections"  # GET: the notices this node issued or applied
ADMIN_PATH = "/pks/admin"

log = logging.getLogger("cks.hkp")


def _form(request: "Request", once: FrozenSet[str]) -> Form:
    if request.header("content-type").split(";")[0].strip().lower() != \
            "application/x-www-form-urlencoded":
        raise HKPError(415, "send application/x-www-form-urlencoded")
    return parse_form(request.body, once)


def receive_notice(app: "KeyServer", request: "Request") -> "Response":
    """Fields `notice` (the signed text) and `signature` (armored, detached).
    A notice or signature that cannot be read is refused with 400 and the
    status "refused" in the JSON, which tells the sender it is refused for
    good (hkp_push.notice_verdict; a proxy's or a WAF's 400 says nothing of
    the notice).  A stranger's notice that would wait for review is answered
    503 while rejection.MAX_PENDING do."""
    values = _form(request, frozenset({"notice", "signature"}))
    body = values.get("notice") or ""
    signature = values.get("signature") or ""
    # (X-CKS-Sync names the sender only from a peer, as for uploads: until
    # 2026-12-06 a stranger's named any node it liked to the operator)
    peer = app.sent_by_a_peer(request)
    origin = (request.header("x-cks-sync").strip() if peer else "") or request.client
    try:
        status, why = rejection.receive(app.store, body, signature, origin, stranger=not peer)
    except NoticeError as exc:
        return _notice_answer(400, "refused", str(exc))
    except rejection.TooManyPending as exc:
        return _notice_answer(503, "later", "too many notices wait for review here (%s): "
                              "try again later" % exc)
    return _notice_answer(200, status, why)


def _notice_answer(code: int, status: str, why: str) -> "Response":
    from .app import Response
    return Response(code, json.dumps({"status": status, "reason": why}).encode() + b"\n",
                    "application/json")


def audit(app: "KeyServer", request: "Request") -> "Response":
    """Every notice this node issued (signed) or carried out, with the signed
    text and signature, so anyone can check what was removed, when and why."""
    from .app import Response, _html
    found = notices(app.store, ["issued", "applied"])
    if "mr" in request.query.options:
        return Response(200, json.dumps([{
            "serial": n.serial, "action": n.action, "fingerprint": n.fingerprint,
            "reason": n.reason, "time": n.notice_time, "node": n.node, "signer": n.signer,
            "status": n.status, "notice": n.body, "signature": n.signature}
            for n in found], indent=2).encode() + b"\n", "application/json")
    rows = "".join("<tr><td>%s</td><td>%s</td><td><code>%s</code></td><td>%s</td><td>%s</td>"
                   "<td>%s</td></tr>" % (
                       time.strftime("%Y-%m-%d", time.gmtime(n.notice_time)), html.e(n.action),
                       html.e(n.fingerprint), html.e(n.node), html.e(n.reason),
                       html.e(n.status)) for n in found) or "<tr><td colspan=6>none</td></tr>"
    return _html(200, html.page("Rejection notices", (
        "<p>Keys this node removed, or removed on a trusted peer's signed notice. The "
        "signed notices: <a href=\"%s?options=mr\">JSON</a>.</p><table><tr><th>date</th>"
        "<th>action</th><th>fingerprint</th><th>node</th><th>reason</th><th>status</th></tr>"
        "%s</table>") % (AUDIT_PATH, rows)))


def admin_page(app: "KeyServer", request: "Request") -> "Response":
    from .app import Response, _html
    settings = app.settings.admin
    if not settings.enabled:
        raise HKPError(404, "no such page: %s" % ADMIN_PATH)
    if _in_clear(app, request):
        raise HKPError(403, "use https (port %d): the admin page is not served over plain "
                       "HTTP, where its password would go in clear" % app.settings.tls_port)
    authorization = request.header("authorization")
    admitted, wait = app.admin_logins.verify(settings, authorization, request.client)
    if wait:
        return app.too_many(request, "too many failed logins from %s: try again later"
                            % request.client, wait)
    if not admitted:
        if authorization:  # a try (Logins limits them, and these lines)
            log.warning("admin page: failed login from %s", request.client)
        return Response(401, b"authentication required\n", headers=[
            ("WWW-Authenticate", 'Basic realm="CKS administration", charset="UTF-8"')])
    outcome = None
    if request.method == "POST":
        values = _form(request, frozenset({"token", "action", "fingerprint", "reason"}))
        token = (values.get("token") or "").encode()  # compare_digest refuses non-ASCII str
        same_site = admin.same_origin(request.header("origin"), request.header("referer"),
                                      request.header("host"))
        expected = settings.csrf_token(authorization).encode()
        if not (admin.hmac.compare_digest(token, expected) and same_site):
            raise HKPError(403, "refused: the form did not come from this page")
        outcome = _act(app, values)
        log.info("admin page: %s %s by %s: %s", values.get("action"),
                 values.get("fingerprint"), request.client, outcome.message)
    page = _html(200, admin.page(settings, authorization, rejected_keys(app.store), outcome))
    page.headers.append(("Cache-Control", "no-store"))  # (server.py: instead of no-cache)
    return page


def _in_clear(app: "KeyServer", request: "Request") -> bool:
    """Whether a request for the admin page came over plain HTTP from another
    host while cksd serves TLS itself: refused (403) before its password is
    asked for, as the contrib nginx site refuses it.  The operator's own
    tools on this host (loopback: the real client, behind a trusted proxy)
    may still use the plain port."""
    return app.settings.tls_port is not None and not request.tls \
        and not is_loopback(request.client)


def _act(app: "KeyServer", values: Form) -> admin.Outcome:
    """What the action asked for did; refused (RejectionError), with what
    was typed, for the page to show again."""
    action = values.get("action") or ""
    try:
        return admin.Outcome(action, _carry_out(app, action, values))
    except RejectionError as exc:
        return admin.Outcome(action, str(exc), refused=True, typed={
            name: values.get(name) or "" for name in ("fingerprint", "reason")})


def _carry_out(app: "KeyServer", action: str, values: Form) -> str:
    fingerprint = rejection.fingerprint_named(app.store, values.get("fingerprint") or "")
    if action == "delete":
        found = rejection.delete(app.store, fingerprint)
        return ("deleted %s" if found else "no key %s is stored here") % fingerprint
    if action == "reject":
        notice, _ = rejection.reject(app.store, fingerprint, values.get("reason") or "",
                                  app.settings.identity)
        return "rejected %s; notice %s waits for your signature" % (fingerprint,
                                                                   notice.serial)
    if action == "unreject":
        notice = rejection.unreject(app.store, fingerprint, app.settings.identity)
        return "unrejected %s; notice %s waits for your signature" % (fingerprint,
                                                                     notice.serial)
    raise HKPError(400, "unknown action")
