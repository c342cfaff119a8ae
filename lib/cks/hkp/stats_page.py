"""The stats page (op=stats): the report of stats.py as HTML, with the keys
added and updated per day drawn as an SVG bar chart (bar_chart.py).

Pool crawlers written for SKS read its stats page; this one states the same
facts where they look: a "Settings" heading followed by a table of
"Name:" / value cells (Hostname, Nodename, Software, Version, Server
contact), "Total number of keys: N" in the paragraph right after the
"Statistics" heading, and the recon peers as "host port" cells, a row per
line, in the table after "Gossip Peers" (the mail peers after "Outgoing
Mailsync Peers").  Everything else is for people.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..sync.peername import PeerNameError, parse_hkp_peer
from .bar_chart import Series, stacked_bars
from .html import date, e, page

# The chart's two series differ in lightness, not in hue alone (3.7:1 between
# them; each at least 3:1 against the white page), so that they stay apart in
# the eyes of a colour-blind reader and in grey.
ADDED_COLOUR, UPDATED_COLOUR = "#0b3d22", "#5891cc"
SHARE_BAR_WIDTH = 120


def render(report: Dict[str, Any]) -> str:
    keys = report["keys"]
    body = [
        "<p>Taken at %s. The same as JSON: <a href=\"/pks/lookup?op=stats&amp;options=mr\">"
        "op=stats&amp;options=mr</a>.</p>" % e(_when(report["taken_at"])),
        "<h2>Settings</h2>", _settings(report["server"]),
        "<h2>Statistics</h2><p>Total number of keys: %d</p>" % keys["total"],
        _named_rows([
            ("User IDs", _number(keys["user_ids"])),
            ("Keys new in the last 24 hours", _number(keys["new_24h"])),
            ("Keys added or changed in the last 24 hours", _number(keys["updated_24h"])),
            ("Keys waiting to be sent to peers", _number(report["sync"]["pending"])),
            ("Rejected keys", _number(keys["rejected"]))]),
        "<h3>Keys added and updated per day</h3>", _per_day(keys["per_day"]),
        "<h3>Keys by algorithm</h3>", _by_type(keys["by_type"], keys["total"]),
        "<p class=\"dim\">User IDs, days and algorithms counted at %s.</p>"
        % e(_when(keys["counted_at"])),
        "<h2>Peers</h2>", _peers(report["peers"]),
    ]
    body += _crawler_peer_lists(report["peers"])
    body += ["<h2>Rejections</h2>", _rejections(report["rejections"])]
    return page("Server statistics", "\n".join(body))


def _settings(server: Dict[str, Any]) -> str:
    """Label cells end in a colon and every row has two <td>s (crawlers)."""
    rows = [("Hostname", server["hostname"]), ("Nodename", server["nodename"]),
            ("Software", server["software"]), ("Version", server["version"])]
    if server["contact"]:
        rows.append(("Server contact", server["contact"]))
    rows.append(("HTTP port", server["port"]))
    if server["recon_port"] is not None:
        rows.append(("Recon port", server["recon_port"]))
    rows += [("Database", server["database"]),
             ("Largest upload", "%s bytes" % _number(server["max_upload_bytes"])),
             ("Keys per answer", _number(server["max_results"]))]
    return _named_rows(rows, name_cell="<td>%s:</td>")


def _per_day(days: Sequence[Dict[str, Any]]) -> str:
    labels = [d["date"] for d in days]
    chart = stacked_bars(
        "Keys added and updated per day, the last %d days (UTC)" % len(days),
        [label[5:] for label in labels],
        [Series("added", ADDED_COLOUR, [d["added"] for d in days]),
         Series("updated", UPDATED_COLOUR, [d["updated"] for d in days])],
        "day (UTC)", "keys")
    table = _table(["day (UTC)", "added", "updated"],
                   [[d["date"], _number(d["added"]), _number(d["updated"])]
                    for d in reversed(days)])
    return ("<figure>%s\n<figcaption class=\"dim\">A key counts as added on the day it was "
            "first seen here, and as updated on the day of its last change, if that came "
            "later.</figcaption></figure>\n<details><summary>The numbers</summary>%s"
            "</details>" % (chart, table))


def _by_type(types: Sequence[Dict[str, Any]], total: int) -> str:
    rows = []
    for entry in types:
        share = entry["keys"] / total if total else 0.0
        rows.append([e(entry["type"]), _number(entry["keys"]), "%.1f%% " % (100 * share)
                     + '<svg width="%d" height="10" aria-hidden="true"><rect width="%.1f" '
                     'height="10" fill="%s"/></svg>' % (SHARE_BAR_WIDTH, SHARE_BAR_WIDTH * share,
                                                        UPDATED_COLOUR)])
    # (the bar is in the share's cell: a column of its own had an empty header)
    return _table(["type", "keys", "share"], rows, escape=False) if rows else \
        "<p>No keys yet.</p>"


def _peers(peers: Sequence[Dict[str, Any]]) -> str:
    if not peers:
        return "<p>No peers.</p>"
    return _table(["peer", "kind", "last success", "last error", "keys owed",
                   "last recon round"],
                  [[p["peer"], p["kind"], _when(p["last_success"]), p["last_error"] or "",
                    _number(p["backlog"]) if p["kind"] != "recon" else "",
                    _last_round(p.get("recon"))] for p in peers])


def _last_round(recon: Optional[Dict[str, Any]]) -> str:
    if recon is None:
        return ""
    if not recon["last_round"]:
        return "none yet"
    return "%s: lacked here %s, there %s; fetched %s (%s rounds so far)" % (
        _when(recon["last_round"]), _number(recon["lacked_here"] or 0),
        _number(recon["lacked_there"] or 0), _number(recon["fetched"] or 0),
        _number(recon["rounds"]))


def _crawler_peer_lists(peers: Sequence[Dict[str, Any]]) -> List[str]:
    """The lists SKS crawlers follow: a cell per line, recon peers as
    "host port" (the recon port), mail peers as their address."""
    gossip = ["%s %d" % (_host(p["peer"]), p["recon"]["port"]) for p in peers
              if p["kind"] == "recon" and p["recon"]["port"]]
    mail = [p["peer"] for p in peers if p["kind"] == "mail"]
    out = []
    for title, cells in (("Gossip Peers", gossip), ("Outgoing Mailsync Peers", mail)):
        out.append("<h2>%s</h2>" % title)
        out += ["<table>"] + ["<tr><td>%s</td></tr>" % e(c) for c in cells] + ["</table>"] \
            if cells else ["<p>None.</p>"]
    return out


def _host(peer: str) -> str:
    try:
        return parse_hkp_peer(peer)[0]
    except PeerNameError:
        return peer


def _rejections(rejections: Dict[str, Any]) -> str:
    key = rejections["key"]
    out = ["<p>This node's rejection key (its operator signs the notices with it): %s.</p>"
           % ("<code>%s</code>" % e(key) if key else "none configured")]
    counts = rejections["notice_counts"]
    if counts:
        out.append("<p>Notices held, by status: %s.</p>" % e(", ".join(
            "%s %s" % (_number(n), status) for status, n in sorted(counts.items()))))
    notices = rejections["notices"]
    out.append("<p>The newest signed notices (all of them, with their signatures: "
               "<a href=\"%s\">%s</a>):</p>" % (e(rejections["audit"]), e(rejections["audit"])))
    out.append(_table(["date", "direction", "action", "fingerprint", "node", "reason", "status"],
                      [[date(n["time"]), n["direction"], n["action"], n["fingerprint"],
                        n["node"], n["reason"], n["status"]] for n in notices])
               if notices else "<p>None.</p>")
    return "\n".join(out)


def _table(columns: Sequence[str], rows: Sequence[Sequence[Any]], escape: bool = True) -> str:
    """A table with a header row of `columns`; the cells are escaped unless
    `escape` is False (they are HTML already)."""
    cell = e if escape else str
    out = ["<table>", "<tr>%s</tr>" % "".join("<th>%s</th>" % e(c) for c in columns)]
    out += ["<tr>%s</tr>" % "".join("<td>%s</td>" % cell(c) for c in row) for row in rows]
    return "\n".join(out + ["</table>"])


def _named_rows(rows: Sequence[Tuple[str, Any]],
                name_cell: str = "<th scope=\"row\">%s</th>") -> str:
    """A table of (name, value) rows, each name the header of its row (as
    <td>s, a screen reader took it for a layout table); the Settings table
    gives `name_cell` "<td>%s:</td>", as crawlers written for SKS read it."""
    return "<table>\n%s\n</table>" % "\n".join(
        "<tr>%s<td>%s</td></tr>" % (name_cell % e(name), e(value)) for name, value in rows)


def _number(value: int) -> str:
    return "{:,}".format(value)


def _when(epoch: Optional[int]) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch)) if epoch else "never"
