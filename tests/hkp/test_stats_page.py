"""op=stats through a real cksd, on SQLite and PostgreSQL: the HTML page (with
its SVG chart) and the JSON, what SKS pool crawlers read from it, and that
what peers and notices say is shown as text."""

import json
import os
import time
import urllib.parse
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest

from cks import __version__, pipeline
from cks.hkp.app import KeyServer, ServerSettings
from cks.hkp.stats import KEPT_SECONDS, Statistics
from cks.hkp.stats_page import ADDED_COLOUR, UPDATED_COLOUR
from cks.notices import Notice, new_serial
from cks.store import open_store
from cks.store.peers import PeerStore
from support import EXPECTED, fixture
from support.db import run_sql
from support.gpg import GnuPG
from support.nodes import fpr
from support.procs import tool
from support.server import LOOPBACK_EXEMPT, Cksd

SVG = "{http://www.w3.org/2000/svg}"
OPERATOR = "revoker"  # signs this node's rejection notices, and the trusted peer's
LOADED = ["rsa2048", "nistp256", "dsa-elg", "multi-uid", "photo", "v6-ed25519", OPERATOR,
          "alice-t1", "v3-rsa"]
WE_REJECT, PEER_REJECTS = "rsa2048", "nistp256"
# The type names of the loaded keys' algorithm and size, as GnuPG prints them.
TYPE_NAMES = {(1, 2048): "rsa2048", (1, 1024): "rsa1024", (17, 2048): "dsa2048",
              (19, 256): "ecdsa256", (22, 255): "ed25519", (27, 255): "ed25519"}
HOSTILE = "<script>alert('x')</script> & <b>bold</b>"
TRUSTED_PEER = "node-b.example:11371"
COLOURED = "\x1b[31mred\x07 \x85 \ufffe"  # what HTML does not allow in text


def _expected(name):
    (key,) = EXPECTED[name + ".asc"]
    return key


def _stats(node):
    status, headers, body = node.lookup(op="stats", options="mr")
    assert status == 200 and headers["content-type"] == "application/json"
    return json.loads(body)


def _page(node):
    status, headers, body = node.request("GET", "/pks/lookup?op=stats",
                                         headers={"Accept": "text/html"})
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    return body.decode()


def _run(node, name, *args, env=None):
    done = tool(name, ["--db", node.db_url, "--config", node.config] + list(args), env=env)
    assert done.returncode == 0, done.stderr
    return done


def _deliver(node, operator, notice):
    """A notice signed by the operator key, posted as a peer does."""
    path = os.path.join(operator.home, "notice-%s.txt" % notice.serial)
    with open(path, "w") as handle:
        handle.write(notice.render())
    operator.run(["--armor", "--detach-sign", "--local-user", fpr(OPERATOR), path])
    with open(path + ".asc") as handle:
        fields = {"notice": notice.render(), "signature": handle.read()}
    status, _, answer = node.request("POST", "/pks/x-cks-rejection",
                                     urllib.parse.urlencode(fields).encode(),
                                     {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200 and json.loads(answer)["status"] == "applied", answer


def _chart(page):
    """The page's first inline SVG (the chart), parsed as XML."""
    start = page.index("<svg xmlns=")
    return ET.fromstring(page[start:page.index("</svg>", start) + len("</svg>")])


class CrawlerView(HTMLParser):
    """What a pool crawler written for SKS takes from a stats page: the
    "Name:" / value rows of the table after "Settings", the number in the
    element right after the "Statistics" heading, and the cells of the tables
    after "Gossip Peers" and "Outgoing Mailsync Peers"."""

    def __init__(self, page):
        super().__init__()
        self.settings, self.lists, self.total = {}, {}, None
        self._heading, self._table, self._after_statistics = None, None, False
        self._cells, self._text = [], None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        if tag in ("h2", "td", "p"):
            self._text = ""
        if tag == "table" and self._heading is not None:
            self._table, self._heading = self._heading, None
        if tag == "tr":
            self._cells = []

    def handle_endtag(self, tag):
        if tag in ("h2", "td", "p"):
            text, self._text = (self._text or "").strip(), None
        if tag == "h2":
            self._heading = text
            self._after_statistics = text == "Statistics"
        elif tag == "p" and self._after_statistics:
            self._after_statistics = False
            label, _, number = text.partition(":")
            if label == "Total number of keys":
                self.total = int(number)
        elif tag == "td":
            self._cells.append(text)
        elif tag == "tr" and self._table == "Settings":
            name, value = self._cells
            self.settings[name.rstrip(":")] = value
        elif tag == "tr" and self._table in ("Gossip Peers", "Outgoing Mailsync Peers"):
            self.lists.setdefault(self._table, []).extend(self._cells)
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._text is not None:
            self._text += data


def _sks_spider_peers(page):
    """The SKS tree's own spider: the lines after "<h2>Gossip Peers" and the
    one after it that start with "<tr><td>", each "host port"."""
    lines = page.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith("<h2>Gossip Peers"))
    peers = []
    for line in lines[start + 2:]:
        if not line.startswith("<tr><td>"):
            break
        host, port = line[len("<tr><td>"):].replace("<", " ").split()[:2]
        peers.append((host, int(port)))
    return peers


@pytest.fixture(scope="module")
def operator():
    with GnuPG() as gpg:
        gpg.run(["--import"], input=fixture("secret/" + OPERATOR))
        yield gpg


@pytest.fixture(scope="module")
def node(module_db_url, tmp_path_factory, operator):
    """A node with keys, peers of every kind, our signed rejection and one
    carried out for a trusted peer, and text from peers with HTML in it (the
    tests only read it)."""
    db_url = module_db_url
    config = tmp_path_factory.mktemp("conf") / "cks.conf"
    config.write_text("[server]\ncontact = ops %s\n[rejection]\nkey = %s\n[sync]\n"
                      "node_name = node-a.example\n%s" % (HOSTILE, fpr(OPERATOR),
                                                          LOOPBACK_EXEMPT))
    with Cksd(db_url, args=["--recon-port", "0"], config=str(config)) as cksd:
        _run(cksd, "cks_sync_manage.py", "add", "keys@pks.example.org")  # (owed the uploads)
        for name in LOADED:
            assert cksd.add(fixture(name))[0] == 200
        _run(cksd, "cks_sync_manage.py", "add", "sks.example.org", "--type", "recon",
             "--recon-port", "11380")
        _run(cksd, "cks_sync_manage.py", "add", TRUSTED_PEER, "--rejection-key",
             fpr(OPERATOR), "--honour-rejections", "--no-catch-up")
        store = open_store(db_url)
        try:  # a peer's name and its error message are the peers' words
            peers = PeerStore(store)
            hostile = peers.add("<i>x</i>.example:11371", "hkp", 200, None, catch_up=True)
            peers.record_attempt(hostile.id, int(time.time()), HOSTILE)
            colour = peers.add("colour.example:11371", "hkp", 200, None, catch_up=True)
            with store.write() as cursor:  # as stored before 2026-12-07 (now: one line)
                cursor.execute("UPDATE cks_other_servers SET last_error = ?, last_error_at = ? "
                               "WHERE id = ?", (COLOURED, int(time.time()), colour.id))
        finally:
            store.close()
        _run(cksd, "cks_admin.py", "reject", fpr(WE_REJECT), "--reason", HOSTILE,
             "--sign-with", fpr(OPERATOR), env={"GNUPGHOME": operator.home})
        _deliver(cksd, operator, Notice("reject", fpr(PEER_REJECTS), "peer says " + HOSTILE,
                                        int(time.time()), "node-b.example", new_serial()))
        yield cksd


def test_json_reports_what_was_stored(node):
    stats = _stats(node)
    held = [n for n in LOADED if n not in (WE_REJECT, PEER_REJECTS)]
    keys = stats["keys"]
    assert keys["total"] == len(held) and keys["rejected"] == 2
    assert keys["user_ids"] == sum(len(_expected(n)["uids"]) for n in held)
    by_type = {}
    for name in held:
        key = _expected(name)
        by_type[TYPE_NAMES[key["algo"], key["bits"]]] = \
            by_type.get(TYPE_NAMES[key["algo"], key["bits"]], 0) + 1
    assert {t["type"]: t["keys"] for t in keys["by_type"]} == by_type
    assert [t["keys"] for t in keys["by_type"]] == sorted(by_type.values(), reverse=True)
    days = keys["per_day"]
    today = time.strftime("%Y-%m-%d", time.gmtime(stats["taken_at"]))
    assert len(days) == 30 and days[-1]["date"] == today
    assert sum(d["added"] for d in days) == len(held)  # first seen, all in these 30 days
    assert sum(d["updated"] for d in days) == 0
    assert set(keys) >= {"new_24h", "updated_24h", "counted_at"}

    server = stats["server"]
    assert server["software"] == "CKS" and server["version"] == __version__
    assert server["port"] == node.port and server["recon_port"] > 0
    assert server["nodename"] == "node-a.example" and server["contact"] == "ops " + HOSTILE
    assert server["database"] == node.db_url.split(":")[0]
    assert set(server) >= {"hostname", "max_upload_bytes", "max_results"}

    peers = {p["peer"]: p for p in stats["peers"]}
    recon = peers["sks.example.org:11371"]
    assert recon["kind"] == "recon" and recon["recon"]["port"] == 11380
    assert recon["recon"]["rounds"] == 0 and recon["recon"]["last_round"] is None
    assert peers["keys@pks.example.org"]["kind"] == "mail"
    hostile = peers["<i>x</i>.example:11371"]
    assert hostile["last_error"] == HOSTILE and hostile["last_success"] is None
    assert hostile["backlog"] == len(held)  # a full send owes it every key
    assert peers[TRUSTED_PEER]["backlog"] == 0
    assert stats["sync"]["pending"] == len(held)  # uploaded by users, not yet pushed

    rejections = stats["rejections"]
    assert rejections["key"] == fpr(OPERATOR)
    assert rejections["notice_counts"] == {"issued": 1, "applied": 1}
    sent, received = sorted(rejections["notices"], key=lambda n: n["direction"], reverse=True)
    assert (sent["direction"], sent["action"], sent["fingerprint"], sent["reason"],
            sent["status"], sent["node"]) == ("sent", "reject", fpr(WE_REJECT), HOSTILE,
                                              "issued", "node-a.example")
    assert (received["direction"], received["fingerprint"], received["reason"],
            received["status"]) == ("received", fpr(PEER_REJECTS), "peer says " + HOSTILE,
                                    "applied")
    assert rejections["audit"] == "/pks/x-cks-rejections"


def test_page_shows_the_same_facts(node):
    stats = _stats(node)
    page = _page(node)
    total = stats["keys"]["total"]
    assert "<h2>Statistics</h2><p>Total number of keys: %d</p>" % total in page
    assert "<tr><td>Version:</td><td>%s</td></tr>" % __version__ in page
    for day in stats["keys"]["per_day"]:
        assert "<td>%s</td><td>%d</td><td>%d</td>" % (day["date"], day["added"],
                                                      day["updated"]) in page
    for entry in stats["keys"]["by_type"]:
        assert "<td>%s</td><td>%d</td>" % (entry["type"], entry["keys"]) in page
    assert "<code>%s</code>" % fpr(OPERATOR) in page
    # the figures' names are their rows' headers, no header is empty (until
    # 2026-12-06 all were <td>s, and the column of share bars had <th></th>)
    assert '<tr><th scope="row">User IDs</th><td>%d</td></tr>' % stats["keys"]["user_ids"] \
        in page
    assert "<th></th>" not in page and "<tr><th>type</th><th>keys</th><th>share</th></tr>" \
        in page
    assert "lacked here" not in page and "none yet" in page  # no recon round so far
    assert 'href="/pks/x-cks-rejections"' in page


def test_page_reads_for_crawlers_written_for_sks(node):
    page = _page(node)
    crawler = CrawlerView(page)
    assert crawler.total == _stats(node)["keys"]["total"]
    assert crawler.settings["Software"] == "CKS"
    assert crawler.settings["Version"] == __version__
    assert crawler.settings["Nodename"] == "node-a.example"
    assert crawler.settings["Server contact"] == "ops " + HOSTILE
    assert crawler.settings["HTTP port"] == str(node.port)
    assert int(crawler.settings["Recon port"]) > 0
    assert crawler.lists == {"Gossip Peers": ["sks.example.org 11380"],
                             "Outgoing Mailsync Peers": ["keys@pks.example.org"]}
    assert _sks_spider_peers(page) == [("sks.example.org", 11380)]


def test_text_from_peers_and_notices_is_shown_as_text(node):
    page = _page(node)
    assert "<script>" not in page and "<b>bold</b>" not in page and "<i>x</i>" not in page
    escaped = "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;"
    assert page.count(escaped) == 4  # contact, peer error, our notice, the peer's notice
    assert "&lt;i&gt;x&lt;/i&gt;.example:11371" in page
    assert not set(COLOURED) - set("[31mred ") & set(page)
    assert "<td>\ufffd[31mred\ufffd \ufffd \ufffd</td>" in page


def test_chart_is_svg_with_a_bar_per_day(node):
    stats = _stats(node)
    chart = _chart(_page(node))
    assert chart.tag == SVG + "svg"
    bars = chart.findall(SVG + "g")
    assert len(bars) == 30
    for bar, day in zip(bars, stats["keys"]["per_day"]):
        assert bar.find(SVG + "title").text == "%s: %d added, %d updated" % (
            day["date"][5:], day["added"], day["updated"])
        heights = [float(r.get("height")) for r in bar.findall(SVG + "rect")]
        assert len(heights) == 2 and (heights[0] > 0) == (day["added"] > 0)
    texts = [t.text for t in chart.iter(SVG + "text")]
    assert "day (UTC)" in texts and "keys" in texts and "0" in texts  # axis titles, origin


def _luminance(colour):
    """WCAG 2's relative luminance of an sRGB colour "#rrggbb"."""
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
              for c in (int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5))]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(one, other):
    light, dark = sorted((_luminance(one), _luminance(other)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_chart_series_differ_in_lightness():
    """Added and updated apart by 3:1 at least, not by hue alone (WCAG 1.4.1,
    1.4.11; until 2026-12-06 1.03:1), and each 3:1 against the page."""
    assert _contrast(ADDED_COLOUR, UPDATED_COLOUR) >= 3
    assert min(_contrast(c, "#ffffff") for c in (ADDED_COLOUR, UPDATED_COLOUR)) >= 3


def test_keys_updated_on_a_later_day(db_url):
    """A key first seen days ago and changed today counts as updated today and
    as added on its first day; the chart says the same."""
    with Cksd(db_url) as cksd:
        assert cksd.add(fixture("alice-t1"))[0] == 200
        assert cksd.add(fixture("rsa2048"))[0] == 200
        three_days_ago = int(time.time()) - 3 * 86400
        run_sql(db_url, "UPDATE cks_keys SET first_seen = ?, last_changed = ? "
                        "WHERE fingerprint = ?", (three_days_ago, three_days_ago,
                                                  fpr("alice-t1")), write=True)
        status, _, body = cksd.add(fixture("alice-t2"))  # alice-t1 plus a user ID
        assert status == 200 and b"updated" in body
        stats = _stats(cksd)
        days = {d["date"]: (d["added"], d["updated"]) for d in stats["keys"]["per_day"]}
        today = time.strftime("%Y-%m-%d", time.gmtime(stats["taken_at"]))
        then = time.strftime("%Y-%m-%d", time.gmtime(three_days_ago))
        assert days.pop(today) == (1, 1) and days.pop(then) == (1, 0)
        assert set(days.values()) == {(0, 0)}
        assert stats["keys"]["user_ids"] == 3
        titles = [g.find(SVG + "title").text for g in _chart(_page(cksd)).findall(SVG + "g")]
        assert titles[-1] == "%s: 1 added, 1 updated" % today[5:]


def test_head_and_an_empty_database(db_url):
    with Cksd(db_url) as cksd:
        stats = _stats(cksd)
        assert stats["keys"]["total"] == 0 and stats["keys"]["by_type"] == []
        assert stats["peers"] == [] and stats["rejections"]["notices"] == []
        assert stats["rejections"]["key"] is None and stats["server"]["contact"] is None
        assert stats["server"]["recon_port"] is None
        page = _page(cksd)
        assert "<td>Recon port:</td>" not in page and "<td>Server contact:</td>" not in page
        assert len(_chart(page).findall(SVG + "g")) == 30
        status, headers, body = cksd.request("HEAD", "/pks/lookup?op=stats")
        assert status == 200 and body == b"" and headers["content-type"].startswith("text/html")


def test_whole_index_counts_are_kept_for_ten_minutes(db_url):
    """In-process: the counts by type and day are kept KEPT_SECONDS (ten
    minutes), the others are read at every request."""
    store = open_store(db_url)
    PeerStore(store).add("push.example:11371", "hkp", 100, None, catch_up=False)
    clock = [1000.0]
    app = KeyServer(store, ServerSettings())
    app.statistics = Statistics(clock=lambda: clock[0])
    try:
        first = app.statistics.report(app)
        assert pipeline.submit(store, fixture("rsa2048"), pipeline.Source.user()).stored
        clock[0] += KEPT_SECONDS - 1
        kept = app.statistics.report(app)
        assert kept["keys"]["total"] == 1 and kept["sync"]["pending"] == 1
        assert kept["keys"]["by_type"] == [] and kept["keys"]["user_ids"] == 0
        assert kept["keys"]["counted_at"] == first["keys"]["counted_at"]
        clock[0] += 1
        fresh = app.statistics.report(app)
        assert fresh["keys"]["by_type"] == [{"type": "rsa2048", "keys": 1}]
        assert fresh["keys"]["user_ids"] == 1 and fresh["keys"]["per_day"][-1]["added"] == 1
    finally:
        store.close()
