"""Rate limits: token buckets per client, proxies, and a flood from one address."""

import http.client
import threading
import urllib.parse

from cks.hkp.ratelimit import Rate, RateLimiter, client_address, parse_networks
from support import fixture
from support.server import Cksd

PROXIES = parse_networks("127.0.0.1, 10.0.0.0/8")


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


def _post(port, source, body):
    conn = http.client.HTTPConnection("127.0.0.1", port, source_address=(source, 0), timeout=20)
    try:
        conn.request("POST", "/pks/add", body,
                     {"Content-Type": "application/x-www-form-urlencoded"})
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("Retry-After")
    finally:
        conn.close()


def test_a_flood_of_uploads_from_one_address_is_limited_while_another_is_served(tmp_path):
    config = tmp_path / "cks.conf"
    config.write_text("[ratelimit]\nuploads_per_minute = 6\nupload_burst = 5\n")
    body = urllib.parse.urlencode({"keytext": fixture("rsa2048")}).encode()
    with Cksd("sqlite:///%s" % (tmp_path / "k.db"), config=str(config)) as server:
        flood = []
        threads = [threading.Thread(target=lambda: flood.append(
            _post(server.port, "127.0.0.2", body))) for _ in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        statuses = sorted(status for status, _ in flood)
        assert statuses.count(200) == 5 and statuses.count(429) == 35
        assert all(int(retry) >= 1 for status, retry in flood if status == 429)
        # another address still gets through, during the flood's aftermath
        assert _post(server.port, "127.0.0.3", body)[0] == 200
        server.wait_for_output(r'127\.0\.0\.2 "POST /pks/add HTTP/1.1" 429')


def test_lookups_limited_per_forwarded_client(tmp_path):
    config = tmp_path / "cks.conf"
    config.write_text("[ratelimit]\nlookups_per_second = 1\nlookup_burst = 3\n"
                      "trusted_proxies = 127.0.0.1\n")
    with Cksd("sqlite:///%s" % (tmp_path / "k.db"), config=str(config)) as server:
        path = "/pks/lookup?op=stats&options=mr"
        alice = {"X-Forwarded-For": "198.51.100.1"}
        codes = [server.request("GET", path, headers=alice)[0] for _ in range(5)]
        assert codes == [200, 200, 200, 429, 429]
        assert server.request("GET", path, headers={"X-Forwarded-For": "198.51.100.2"})[0] \
            == 200
        server.wait_for_output(r'198\.51\.100\.1 "GET /pks/lookup\?op=stats&options=mr '
                               r'HTTP/1.1" 429')
