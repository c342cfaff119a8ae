"""Rate limits: token buckets per client, proxies, peers, and a flood from one address."""

import http.client
import ipaddress
import logging
import socket
import threading
import time
import urllib.parse

import pytest

from cks.cli.cksd import peer_refresh, server_settings
from cks.config import ConfigError, Settings
from cks.hkp import app as app_module
from cks.hkp.app import KeyServer, Request, ServerSettings
from cks.hkp.peer_addresses import PeerRefresher, enabled_peer_names, peer_host, resolve_peers
from cks.hkp.ratelimit import (Rate, RateLimiter, bucket_of, client_address, ip_of,
                               is_loopback, parse_networks)
from cks.store import StoreUnavailable, open_store
from cks.store.peers import PeerStore
from support import fixture
from support.db import with_schema
from support.procs import tool
from support.server import Cksd

PROXIES = parse_networks("127.0.0.1, 10.0.0.0/8")
LOOPBACK = parse_networks("127.0.0.0/8, ::1")


def test_token_bucket():
    limiter = RateLimiter(Rate(per_second=2, burst=3))
    assert [limiter.check("a", now=100.0) for _ in range(3)] == [0, 0, 0]
    assert limiter.check("a", now=100.0) == 0.5  # empty: half a second to the next token
    assert limiter.check("b", now=100.0) == 0  # another client has its own bucket
    assert limiter.check("a", now=100.5) == 0  # refilled
    assert RateLimiter(Rate(0, 0)).check("a") == 0  # 0 disables the limit
    exempt = RateLimiter(Rate(1, 1), exempt=parse_networks("192.0.2.0/24"))
    assert all(exempt.check("192.0.2.9", now=1.0) == 0 for _ in range(10))


def test_bounded_memory():
    limiter = RateLimiter(Rate(1, 1), max_clients=10)
    for n in range(100):
        limiter.check("10.0.0.%d" % n, now=1.0)
    assert len(limiter._buckets) == 10


def test_client_address_behind_proxies():
    assert client_address("192.0.2.1", "198.51.100.7", PROXIES) == "192.0.2.1"  # not a proxy
    assert client_address("127.0.0.1", "198.51.100.7", PROXIES) == "198.51.100.7"
    # the client may prepend anything: the right-most untrusted hop is the client
    assert client_address("127.0.0.1", "6.6.6.6, 198.51.100.7, 10.1.2.3", PROXIES) == \
        "198.51.100.7"
    assert client_address("127.0.0.1", "", PROXIES) == "127.0.0.1"
    assert client_address("127.0.0.1", "10.0.0.1", PROXIES) == "127.0.0.1"


def _server(trusted_proxies=LOOPBACK):
    """A KeyServer for requests to "/" (which need no database), two requests
    of burst and no refill to speak of."""
    return KeyServer(None, ServerSettings(lookup_rate=Rate(0.001, 2), upload_rate=Rate(0.001, 2),
                                          trusted_proxies=trusted_proxies))


def _get(app, peer, forwarded_for=None, method="GET"):
    headers = {"x-forwarded-for": forwarded_for} if forwarded_for else {}
    return app.handle(Request(method, "/", headers, client=peer)).status


def _config(text):
    settings = Settings()
    settings.parser.read_string(text)
    return settings


def test_default_trusted_proxies_are_loopback():
    assert ServerSettings().trusted_proxies == LOOPBACK
    assert server_settings(Settings(), 11371).trusted_proxies == LOOPBACK


def test_the_default_burst_lets_a_large_keyring_be_refreshed():
    """gpg --refresh-keys asks for each key in turn and says nothing of a 429
    (the key is silently not refreshed): with the defaults, a client behind
    the proxy may look up 2,000 keys at once, then 20 a second."""
    rate = server_settings(Settings(), 11371).lookup_rate
    assert (rate.burst, rate.per_second) == (2000, 20)
    limiter = RateLimiter(rate)  # (at one instant: no refill while it counts)
    assert [limiter.check("192.0.2.1", now=100.0) for _ in range(2000)] == [0.0] * 2000
    assert limiter.check("192.0.2.1", now=100.0) == pytest.approx(1 / 20)


def test_peer_refresh_setting():
    assert peer_refresh(Settings()) == 300
    assert peer_refresh(_config("[ratelimit]\npeer_refresh = 60\n")) == 60
    with pytest.raises(ConfigError):
        peer_refresh(_config("[ratelimit]\npeer_refresh = 0\n"))


def test_explicitly_empty_trusted_proxies_trusts_nobody():
    settings = server_settings(_config("[ratelimit]\ntrusted_proxies =\n"
                                       "lookups_per_second = 0.001\nlookup_burst = 2\n"), 11371)
    assert settings.trusted_proxies == []
    app = KeyServer(None, settings)
    request = Request("GET", "/", {"x-forwarded-for": "192.0.2.1"}, client="127.0.0.1")
    assert app.handle(request).status == 200 and request.client == "127.0.0.1"
    # every client the proxy names shares the proxy's bucket
    assert [_get(app, "127.0.0.1", "192.0.2.%d" % n) for n in (2, 3)] == [200, 429]


def test_loopback_without_forwarded_for_is_never_limited():
    for app in (_server(), _server(trusted_proxies=[])):
        for peer in ("127.0.0.1", "127.0.0.5", "::1"):
            assert all(_get(app, peer) == 200 for _ in range(500))
            # uploads too: 405 (POST to "/") means the limiter let it through
            assert all(_get(app, peer, method="POST") == 405 for _ in range(50))
        assert [_get(app, "192.0.2.9") for _ in range(3)] == [200, 200, 429]


def test_a_loopback_proxy_limits_each_client_it_names():
    app = _server()
    assert [_get(app, "127.0.0.1", "192.0.2.1") for _ in range(3)] == [200, 200, 429]
    assert _get(app, "127.0.0.1", "192.0.2.2") == 200
    assert _get(app, "::1", "192.0.2.1") == 429  # the same client through another proxy
    assert _get(app, "127.0.0.1") == 200  # the operator's own requests still go


def test_a_forged_left_most_forwarded_for_is_limited_as_the_real_client():
    app = _server()
    forged = "198.51.100.7, 203.0.113.9"  # the client sent the first; the proxy appended it
    request = Request("GET", "/", {"x-forwarded-for": forged}, client="127.0.0.1")
    assert app.handle(request).status == 200 and request.client == "203.0.113.9"
    assert _get(app, "127.0.0.1", forged) == 200
    assert _get(app, "127.0.0.1", "6.6.6.6, 203.0.113.9") == 429  # forging anew does not help
    assert _get(app, "127.0.0.1", "203.0.113.9") == 429
    assert _get(app, "127.0.0.1", "198.51.100.7") == 200  # the forged address was not charged


def test_ipv4_mapped_addresses_count_as_the_ipv4_address():
    assert ip_of("::ffff:127.0.0.1") == ipaddress.IPv4Address("127.0.0.1")
    assert is_loopback("::ffff:127.0.0.1") and not is_loopback("::ffff:192.0.2.1")
    assert client_address("::ffff:127.0.0.1", "198.51.100.7", LOOPBACK) == "198.51.100.7"
    assert client_address("127.0.0.1", "6.6.6.6, ::ffff:127.0.0.1", LOOPBACK) == "6.6.6.6"
    assert parse_networks("::ffff:10.0.0.0/104") == parse_networks("10.0.0.0/8")
    limiter = RateLimiter(Rate(1, 1), exempt=parse_networks("192.0.2.0/24"))
    assert all(limiter.check("::ffff:192.0.2.9", now=1.0) == 0 for _ in range(10))
    assert limiter.check("198.51.100.1", now=1.0) == 0
    assert limiter.check("::ffff:198.51.100.1", now=1.0) == 1  # one bucket for both spellings
    app = _server()
    assert all(_get(app, "::ffff:127.0.0.1") == 200 for _ in range(500))
    assert [_get(app, "::ffff:127.0.0.1", "192.0.2.1") for _ in range(3)] == [200, 200, 429]


def test_ipv6_clients_share_a_bucket_per_64():
    """A VPS gets a /64: until 2026-12-06 each of its addresses had a bucket
    of its own, so one machine was in effect never limited."""
    assert bucket_of("2001:db8:1:2::1") == bucket_of("2001:db8:1:2:ffff::7") == \
        "2001:db8:1:2::/64"
    assert bucket_of("2001:db8:1:3::1") != bucket_of("2001:db8:1:2::1")
    assert bucket_of("::ffff:192.0.2.1") == bucket_of("192.0.2.1") == "192.0.2.1"
    assert bucket_of("192.0.2.2") != bucket_of("192.0.2.1")  # IPv4: each address its own
    assert bucket_of("not an address") == "not an address"
    limiter = RateLimiter(Rate(1, 2), exempt=parse_networks("2001:db8:1:2::99"))
    assert [limiter.check("2001:db8:1:2::%x" % n, now=1.0) for n in range(1, 4)] == [0, 0, 1]
    assert limiter.check("2001:db8:1:3::1", now=1.0) == 0  # another /64
    assert all(limiter.check("2001:db8:1:2::99", now=1.0) == 0 for _ in range(5))  # exempt


def test_rotating_addresses_of_one_64_do_not_push_others_out():
    limiter = RateLimiter(Rate(0.001, 1), max_clients=10)
    assert limiter.check("192.0.2.1", now=1.0) == 0
    for n in range(1000):
        limiter.check("2001:db8:1:2::%x" % n, now=1.0)
    assert limiter.check("192.0.2.1", now=1.0) > 0  # its bucket is still there, empty


def _one_process_cksd(tmp_path, ratelimit):
    """cksd with one serving process (each process keeps its own buckets)
    and the `[ratelimit]` lines `ratelimit`."""
    config = tmp_path / "cks.conf"
    config.write_text("[server]\nprocesses = 1\n[ratelimit]\n" + ratelimit)
    return Cksd("sqlite:///%s" % (tmp_path / "k.db"), config=str(config))


def test_cksd_limits_an_ipv6_64_as_one_client(tmp_path):
    with _one_process_cksd(tmp_path, "lookups_per_second = 0.01\nlookup_burst = 3\n"
                                     "exempt = 2001:db8:1:2::99\n") as server:
        def status(client):
            return server.request("GET", "/",
                                  headers={"X-Forwarded-For": client})[0]
        codes = [status("2001:db8:1:2::%x" % n) for n in range(1, 21)]
        assert codes == [200] * 3 + [429] * 17
        assert status("2001:db8:1:3::1") == 200  # the next /64 is someone else
        assert all(status("2001:db8:1:2::99") == 200 for _ in range(5))  # exempt: the address
        server.wait_for_output(r'2001:db8:1:2::14 "GET / '
                               r'HTTP/1.1" 429')  # the log says the address itself


RESOLVED = {"keys.example.org": ["192.0.2.50", "2001:db8::50"],
            "recon.example.org": ["::ffff:192.0.2.60"],
            "disabled.example.org": ["198.51.100.50"]}


def _resolve(host):
    """getaddrinfo without DNS: the names above, and IP literals."""
    if host in RESOLVED:
        return RESOLVED[host]
    if ip_of(host) is not None:
        return [host]
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


def _store(db_url):
    store = open_store(db_url)
    store.check()
    return store


def test_peer_host():
    assert peer_host("keys.example.org:11371") == "keys.example.org"
    assert peer_host("192.0.2.50:11371") == "192.0.2.50"
    assert peer_host("[2001:db8::1]:11371") == "2001:db8::1"
    assert peer_host("pgp-keys@example.org") is None  # a mail peer
    assert peer_host("[nonsense:11371") is None


def test_enabled_peers_addresses_are_exempt(db_url):
    store = _store(db_url)
    try:
        peers = PeerStore(store)
        peers.add("keys.example.org:11371", "hkp", 10, None, False)
        peers.add("recon.example.org:11370", "recon", 20, None, False)
        peers.add("pgp-keys@example.net", "mail", 30, None, False)
        peers.add("disabled.example.org:11371", "hkp", 40, None, False)
        peers.update("disabled.example.org:11371", enabled=False)
        assert enabled_peer_names(store) == ["keys.example.org:11371", "recon.example.org:11370"]
        app = _server()
        PeerRefresher(lambda: enabled_peer_names(store), app.exempt_peers, 300, _resolve).refresh()
        for client in ("192.0.2.50", "2001:db8::50", "::ffff:192.0.2.50", "192.0.2.60"):
            assert all(_get(app, "127.0.0.1", client) == 200 for _ in range(20))
            assert all(_get(app, "127.0.0.1", client, method="POST") == 405 for _ in range(20))
        assert [_get(app, "127.0.0.1", "198.51.100.50") for _ in range(3)] == [200, 200, 429]
    finally:
        store.close()


def test_an_unresolvable_peer_is_logged_and_the_others_still_count(caplog):
    app = _server()
    names = ["nowhere.example.org:11371", "keys.example.org:11371"]
    with caplog.at_level(logging.WARNING, logger="cks.hkp"):
        PeerRefresher(lambda: names, app.exempt_peers, 300, _resolve).refresh()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "nowhere.example.org" in warnings[0]
    assert all(_get(app, "127.0.0.1", "192.0.2.50") == 200 for _ in range(20))
    assert resolve_peers(["nowhere.example.org:11371"], _resolve) == frozenset()


def test_a_database_failure_keeps_the_addresses_already_exempt():
    lists = [["keys.example.org:11371"]]

    def names():
        if not lists:
            raise StoreUnavailable("database down")
        return lists.pop()

    app = _server()
    refresher = PeerRefresher(names, app.exempt_peers, 300, _resolve)
    refresher.refresh()
    refresher.refresh()
    assert ip_of("192.0.2.50") in app.lookup_limiter.exempt_addresses


def _eventually(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not so after %.0f s" % timeout
        time.sleep(0.02)


def test_the_refresher_picks_up_a_peer_added_after_it_started(db_url):
    store = _store(db_url)
    app = _server()
    refresher = PeerRefresher(lambda: enabled_peer_names(store), app.exempt_peers, 0.05,
                              _resolve)
    refresher.start()
    try:
        peer = ip_of("192.0.2.50")
        assert peer not in app.lookup_limiter.exempt_addresses
        PeerStore(store).add("192.0.2.50:11371", "hkp", 10, None, False)
        _eventually(lambda: peer in app.lookup_limiter.exempt_addresses)
        assert peer in app.upload_limiter.exempt_addresses
        PeerStore(store).update("192.0.2.50:11371", enabled=False)
        _eventually(lambda: peer not in app.lookup_limiter.exempt_addresses)
    finally:
        refresher.stop()
        store.close()
    assert not any(t.name == "peer-addresses" for t in threading.enumerate())


def _post(port, client, body):
    """An upload through a proxy on this host, for `client`."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request("POST", "/pks/add", body,
                     {"Content-Type": "application/x-www-form-urlencoded",
                      "X-Forwarded-For": client})
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("Retry-After")
    finally:
        conn.close()


def test_a_flood_of_uploads_from_one_address_is_limited_while_another_is_served(tmp_path):
    config = tmp_path / "cks.conf"
    # one serving process: each process keeps its own buckets
    config.write_text("[server]\nprocesses = 1\n"
                      "[ratelimit]\nuploads_per_minute = 6\nupload_burst = 5\n")
    body = urllib.parse.urlencode({"keytext": fixture("rsa2048")}).encode()
    with Cksd("sqlite:///%s" % (tmp_path / "k.db"), config=str(config)) as server:
        flood = []
        threads = [threading.Thread(target=lambda: flood.append(
            _post(server.port, "192.0.2.2", body))) for _ in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        statuses = sorted(status for status, _ in flood)
        assert statuses.count(200) == 5 and statuses.count(429) == 35
        assert all(int(retry) >= 1 for status, retry in flood if status == 429)
        # another address still gets through, during the flood's aftermath
        assert _post(server.port, "192.0.2.3", body)[0] == 200
        server.wait_for_output(r'192\.0\.2\.2 "POST /pks/add HTTP/1.1" 429')


def test_a_stats_page_costs_a_client_stats_tokens(tmp_path):
    """op=stats reads whole indexes: a client's bucket pays app.STATS_TOKENS
    for one (until 2026-12-07 one token, and one client asking again and
    again kept PostgreSQL busy at a million keys); the operator's own
    requests never pay."""
    burst = app_module.STATS_TOKENS + 50
    with _one_process_cksd(tmp_path, "lookups_per_second = 1\nlookup_burst = %d\n"
                                     "trusted_proxies = 127.0.0.1\n" % burst) as server:
        stats = "/pks/lookup?op=stats&options=mr"
        alice = {"X-Forwarded-For": "198.51.100.1"}
        assert [server.request("GET", stats, headers=alice)[0] for _ in range(3)] == \
            [200, 200, 429]
        assert server.request("GET", "/", headers=alice)[0] == 429  # (in debt for all)
        assert server.request("GET", "/", headers={"X-Forwarded-For": "198.51.100.2"})[0] \
            == 200
        assert all(server.request("GET", stats)[0] == 200 for _ in range(5))  # (loopback's own)


def test_lookups_limited_per_forwarded_client(tmp_path):
    with _one_process_cksd(tmp_path, "lookups_per_second = 1\nlookup_burst = 3\n"
                                     "trusted_proxies = 127.0.0.1\n") as server:
        path = "/"
        alice = {"X-Forwarded-For": "198.51.100.1"}
        codes = [server.request("GET", path, headers=alice)[0] for _ in range(5)]
        assert codes == [200, 200, 200, 429, 429]
        assert server.request("GET", path, headers={"X-Forwarded-For": "198.51.100.2"})[0] \
            == 200
        server.wait_for_output(r'198\.51\.100\.1 "GET / '
                               r'HTTP/1.1" 429')


def test_each_request_on_a_kept_alive_proxy_connection_is_its_own_clients(tmp_path):
    """A proxy (nginx with `keepalive`) sends many clients' requests on one
    connection: until 2026-12-05 all were taken for the first one's client,
    its rate limit, its log lines and its standing as a peer or exempt."""
    config = tmp_path / "cks.conf"
    config.write_text("[server]\nprocesses = 1\n"
                      "[ratelimit]\nlookups_per_second = 0.01\nlookup_burst = 2\n")
    with Cksd("sqlite:///%s" % (tmp_path / "k.db"), config=str(config)) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)

        def get(client):
            conn.request("GET", "/",
                         headers={"X-Forwarded-For": client} if client else {})
            answer = conn.getresponse()
            answer.read()
            return answer.status
        try:
            assert [get("198.51.100.1") for _ in range(3)] == [200, 200, 429]
            assert [get("203.0.113.5") for _ in range(3)] == [200, 200, 429]
            assert all(get(None) == 200 for _ in range(5))  # the proxy's own: never limited
        finally:
            conn.close()
        server.wait_for_output(r'203\.0\.113\.5 "GET / '
                               r'HTTP/1.1" 429')
        server.wait_for_output(r'127\.0\.0\.1 "GET / '
                               r'HTTP/1.1" 200')


def test_cksd_limits_forwarded_clients_but_not_loopback_or_peers(db_url, tmp_path):
    added = tool("cks_sync_manage.py", ["--db", with_schema(db_url), "add", "192.0.2.50:11371",
                                        "--no-catch-up"])  # no traffic is ever sent to it
    assert added.returncode == 0, added.stderr
    config = tmp_path / "cks.conf"
    config.write_text("[server]\nprocesses = 1\n"  # each process keeps its own buckets
                      "[ratelimit]\nlookups_per_second = 1\nlookup_burst = 2\n")
    with Cksd(db_url, config=str(config)) as server:
        server.wait_for_output(r"peer addresses exempt from rate limits: 192\.0\.2\.50\n")

        def statuses(count, forwarded_for=None):
            headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
            return [server.request("GET", "/",
                                   headers=headers)[0] for _ in range(count)]

        assert statuses(20) == [200] * 20  # 127.0.0.1 without X-Forwarded-For
        limited = statuses(5, "192.0.2.1")
        assert limited[:2] == [200, 200] and 429 in limited
        assert statuses(1, "192.0.2.2") == [200]
        assert statuses(20, "192.0.2.50") == [200] * 20  # the peer
        assert 429 in statuses(5, "192.0.2.51")
