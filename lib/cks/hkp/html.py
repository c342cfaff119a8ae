"""HTML pages for people: the front page, key lists, signatures, stats, results."""

from __future__ import annotations

import html
import time
from typing import Dict, Iterable, List, Optional
from urllib.parse import quote

from ..openpgp import algorithms as alg
from ..openpgp.keys import Key
from ..openpgp.signature import KEY_REVOCATION, TYPE_NAMES
from ..store.base import KeyRow

STYLE = ("body{font-family:sans-serif;max-width:60em;margin:1em auto;padding:0 1em}"
         "pre{font-size:90%;overflow-x:auto}table{border-collapse:collapse}"
         "td,th{padding:.2em .6em;text-align:left}.dim{color:#666}")
REVOCATION_UNVERIFIED = ("[may be revoked: a designated revoker's revocation that this "
                         "server cannot verify, since it does not hold the revoker's key]")
UNVERIFIED = ("Signatures shown here were not cryptographically verified by this server: "
              "check them with your own OpenPGP software.")


def e(text: object) -> str:
    return html.escape(str(text), quote=True)


def page(title: str, body: str) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width\">"
            "<title>%s</title><style>%s</style></head><body>\n<h1>%s</h1>\n%s\n"
            "<hr><p class=\"dim\"><a href=\"/\">CKS OpenPGP keyserver</a></p></body></html>\n"
            % (e(title), STYLE, e(title), body))


def _date(epoch: Optional[int]) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(epoch)) if epoch is not None else ""


def _lookup(op: str, search: str, extra: str = "") -> str:
    return "/pks/lookup?op=%s&amp;search=%s%s" % (op, quote(search, safe=""), extra)


def front_page(hostname: str) -> str:
    body = """
<h2>Search</h2>
<form action="/pks/lookup" method="get">
<p><input type="text" name="search" size="50" placeholder="name, e-mail, key ID or fingerprint"
 required>
<select name="op"><option value="index">list keys</option><option value="vindex">list
keys with signatures</option><option value="get">get keys</option></select>
<label><input type="checkbox" name="fingerprint" value="on" checked> fingerprints</label>
<input type="submit" value="Search"></p>
</form>
<h2>Submit a key</h2>
<form action="/pks/add" method="post">
<p>Paste an ASCII-armored public key (<code>gpg --armor --export YOU</code>):</p>
<p><textarea name="keytext" rows="14" cols="70" required></textarea></p>
<p><input type="submit" value="Submit"></p>
</form>
<p>GnuPG: <code>gpg --keyserver hkp://%s --send-keys KEYID</code>, <code>--recv-keys</code>,
<code>--search-keys</code>. <a href="/pks/lookup?op=stats">Server statistics</a>.</p>
""" % e(hostname)
    return page("OpenPGP keyserver", body)


def _algo(row_algorithm: int, bits: int) -> str:
    return alg.algorithm_name(row_algorithm, bits) if row_algorithm not in alg.OID_ALGORITHMS \
        else "%s%d" % ({alg.ECDSA: "ecdsa", alg.ECDH: "ecdh", alg.EDDSA_LEGACY: "eddsa"}
                       [row_algorithm], bits)


def _status(revoked: bool, expires: Optional[int], now: int) -> str:
    if revoked:
        return " <strong>[revoked]</strong>"
    if expires is not None:
        return " [%s %s]" % ("expired" if expires <= now else "expires", _date(expires))
    return ""


def _key_head(row: KeyRow, now: int, show_fpr: bool, show_hash: bool) -> List[str]:
    out = ["<strong>pub</strong> %s/<a href=\"%s\">%s</a> %s%s" % (
        e(_algo(row.algorithm, row.bits)), _lookup("get", "0x" + row.fingerprint),
        e(row.keyid), _date(row.created), _status(row.revoked, row.expires, now))]
    if row.revocation_unverified:
        out.append("    <strong>%s</strong>" % e(REVOCATION_UNVERIFIED))
    if show_fpr:
        out.append("    Fingerprint=%s" % e(row.fingerprint))
    if show_hash:
        out.append("    Hash=%s" % e(row.sks_hash))
    return out


def index_page(search: str, rows: Iterable[KeyRow], now: int, show_fpr: bool,
               show_hash: bool, truncated: bool) -> str:
    rows = list(rows)
    parts = ["<p>%d key%s found for <code>%s</code>%s.</p>" % (
        len(rows), "" if len(rows) == 1 else "s", e(search),
        " (only the first ones: narrow your search)" if truncated else "")]
    for row in rows:
        lines = _key_head(row, now, show_fpr, show_hash)
        for uid in row.user_ids:
            if uid.is_attribute:
                lines.append("<strong>uat</strong> [photo ID]")
                continue
            lines.append("<strong>uid</strong> <a href=\"%s\">%s</a>%s" % (
                _lookup("vindex", "0x" + row.fingerprint, "&amp;fingerprint=on"), e(uid.uid),
                _status(uid.revoked, uid.expires, now)))
        parts.append("<pre>%s</pre>" % "\n".join(lines))
    return page("Search results", "\n".join(parts))


def vindex_page(key: Key, row: KeyRow, signer_names: Dict[bytes, str], now: int,
                show_hash: bool) -> str:
    lines = _key_head(row, now, True, show_hash)

    def sig_lines(entries) -> None:
        for entry in entries:
            sig = entry.sig
            issuer = sig.issuer_keyid or b""
            name = "[selfsig]" if key.is_self_issued(sig) else signer_names.get(issuer, "")
            if sig.sig_type == KEY_REVOCATION and not name and row.revocation_unverified:
                name = "[not verified: the revoker's key is not held here]"
            issuer_hex = issuer.hex().upper()
            link = "<a href=\"%s\">%s</a>" % (_lookup("index", "0x" + issuer_hex), issuer_hex) \
                if issuer else "(no issuer)"
            lines.append("sig  %-6s %s %s %s %s" % (
                e(TYPE_NAMES.get(sig.sig_type, "0x%02x" % sig.sig_type)), link,
                _date(sig.created), _date(sig.expires).ljust(10), e(name)))

    sig_lines(key.direct_sigs)
    for component in key.identities:
        lines.append("")
        if component.packet.tag == 17:
            lines.append("<strong>uat</strong> [photo ID]")
        else:
            lines.append("<strong>uid</strong> %s" % e(component.value.text))
        sig_lines(component.sigs)
    for component in key.subkeys:
        sub = component.value
        lines.append("")
        lines.append("<strong>sub</strong> %s/%s %s" % (
            e(sub.algorithm_name), sub.keyid.hex().upper(), _date(sub.created)))
        sig_lines(component.sigs)
    return page("Key %s" % row.keyid,
                "<p class=\"dim\">%s</p>\n<pre>%s</pre>" % (e(UNVERIFIED), "\n".join(lines)))


def armored_page(armored: str, count: int) -> str:
    return page("Public key%s" % ("" if count == 1 else "s"),
                "<pre>%s</pre>" % e(armored))


def stats_page(stats: Dict) -> str:
    server = stats["server"]
    rows = "".join("<tr><th>%s</th><td>%s</td></tr>" % (e(k), e(v)) for k, v in [
        ("Software", "%s %s" % (server["software"], server["version"])),
        ("Hostname", server["hostname"]), ("HKP port", server["port"]),
        ("Database", server["database"]), ("Keys", stats["keys"]["total"]),
        ("New keys (24 h)", stats["keys"]["new_24h"]),
        ("Updated keys (24 h)", stats["keys"]["updated_24h"]),
        ("Keys waiting for peers", stats["sync"]["pending"]),
        ("Rejected keys", stats["keys"]["rejected"]),
        ("Maximum upload", "%d bytes" % server["max_upload_bytes"]),
        ("Maximum results", server["max_results"]),
    ])
    peers = "".join("<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>" % (
        e(p["peer"]), e(p["kind"]), _date(p["last_success"]), e(_last_round(p)),
        e(p["last_error"] or "")) for p in stats["peers"]) or \
        "<tr><td colspan=5>none</td></tr>"
    return page("Server statistics", "<table>%s</table>\n<h2>Peers</h2>\n"
                "<table><tr><th>peer</th><th>kind</th><th>last success</th>"
                "<th>last recon round</th><th>last error</th></tr>%s</table>" % (rows, peers))


def _last_round(peer: Dict) -> str:
    recon = peer.get("recon")
    if not recon or not recon["last_round"]:
        return "" if not recon else "none yet"
    return "%s: lacked here %d, there %d; fetched %d" % (
        _date(recon["last_round"]), recon["lacked_here"] or 0, recon["lacked_there"] or 0,
        recon["fetched"] or 0)


def error_page(status: int, message: str) -> str:
    return page("Error %d" % status, "<p>%s</p>" % e(message))


def add_page(lines: List[str]) -> str:
    return page("Key submission", "<pre>%s</pre>" % e("\n".join(lines)))
