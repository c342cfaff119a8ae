"""hkps: cksd serving TLS itself ([server] tls_cert, tls_key, tls_port), with a
test CA made here; curl-like clients, real GnuPG, bad clients, bad
certificates, and a new certificate on SIGHUP."""

import base64
import datetime
import http.client
import ipaddress
import os
import signal
import socket
import ssl
import threading
import time
import urllib.parse

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cks.hkp.admin import AdminSettings, hash_password
from support import EXPECTED, PUBLIC_FIXTURES, fixture
from support.gpg import GnuPG
from support.nodes import settled
from support.server import LOOPBACK_EXEMPT, READY, Cksd, raw_exchange, start_failure

HTTPS_READY = r"cksd listening on https://127\.0\.0\.1:(\d+)"
# dirmngr checks the certificate of a host name with a dot only (and looks
# 127.0.0.1 up as "localhost"): the fully qualified name of localhost has one.
GPG_HOST = "localhost."


# --- a test CA ---------------------------------------------------------------------------

def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _certificate(subject, key, issuer, issuer_key, ca, days=90):
    """With the extensions a public CA's certificates carry: Python 3.13's
    default context (VERIFY_X509_STRICT) refuses a chain without the key
    identifiers ("Missing Authority Key Identifier"); valid for `days` more
    days (less than 0: expired)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=30))
               .not_valid_after(now + datetime.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                              critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   issuer_key.public_key()), critical=False)
               .add_extension(x509.KeyUsage(
                   digital_signature=not ca, content_commitment=False, key_encipherment=False,
                   data_encipherment=False, key_agreement=False, key_cert_sign=ca,
                   crl_sign=ca, encipher_only=False, decipher_only=False), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.DNSName(GPG_HOST),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


class Authority:
    """A test CA in `directory` (ca.pem) and server certificates it signs for
    127.0.0.1 and localhost."""

    def __init__(self, directory):
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = _certificate("CKS test CA", self.key, "CKS test CA", self.key, ca=True)
        self.path = str(directory / "ca.pem")
        with open(self.path, "wb") as handle:
            handle.write(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, name="server", days=90):
        """A new certificate and key: (cert path, key path, the certificate's DER)."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate("localhost", key, "CKS test CA", self.key, ca=False, days=days)
        cert_path, key_path = self.directory / (name + ".pem"), self.directory / (name + ".key")
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(_pem_key(key))
        return str(cert_path), str(key_path), cert.public_bytes(serialization.Encoding.DER)

    def client_context(self):
        return ssl.create_default_context(cafile=self.path)


@pytest.fixture
def ca(tmp_path):
    return Authority(tmp_path)


def _tls_config(tmp_path, cert, key, extra=""):
    config = tmp_path / "cks.conf"
    config.write_text("[server]\ntls_cert = %s\ntls_key = %s\n%s\n%s"
                      % (cert, key, extra, LOOPBACK_EXEMPT))
    return str(config)


def _https(port, ca, method="GET", path="/", body=None, headers=None):
    """One request over a new TLS connection: (status, body)."""
    status, _, answer = _https_exchange(port, ca, method, path, body, headers)
    return status, answer


def _https_exchange(port, ca, method="GET", path="/", body=None, headers=None):
    """One request over a new TLS connection: (status, headers with names in
    lower case, body)."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ca.client_context(),
                                       timeout=20)
    try:
        conn.request(method, path, body, headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, \
            response.read()
    finally:
        conn.close()


def _statuses_at_once(port, ca, count):
    """The statuses of `count` requests made at the same time, each on its own connection."""
    statuses = []
    threads = [threading.Thread(target=lambda: statuses.append(
        _https(port, ca, path="/pks/lookup?op=stats&options=mr")[0])) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def _served_certificate(port, ca):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with ca.client_context().wrap_socket(sock, server_hostname="localhost") as tls:
            return tls.getpeercert(binary_form=True)


def _closed_on(sock):
    """Whether the server closed `sock` without a word (a reset: it left
    bytes of ours unread)."""
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True


def _fp(name):
    return EXPECTED[name + ".asc"][0]["fingerprint"]


# --- serving -----------------------------------------------------------------------------

def test_hkps_on_its_own_port_beside_plain_hkp(db_url, tmp_path, ca):
    cert, key, _ = ca.issue()
    with Cksd(db_url, config=_tls_config(tmp_path, cert, key), args=["--tls-port", "0"]) \
            as server:
        tls_port = int(server.wait_for_output(HTTPS_READY).group(1))
        assert tls_port != server.port
        assert server.add(fixture("rsa2048"))[0] == 200  # plain HKP as before
        status, body = _https(tls_port, ca, path="/pks/lookup?op=get&options=mr&search=0x"
                              + _fp("rsa2048"))
        assert status == 200 and body.startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")
        form = urllib.parse.urlencode({"keytext": fixture("ed25519")}).encode()
        status, body = _https(tls_port, ca, "POST", "/pks/add", form,
                              {"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 200 and _fp("ed25519").encode() in body
        assert server.lookup(op="get", options="mr", search="0x" + _fp("ed25519"))[0] == 200
        # the front page gives GnuPG both addresses, hkps first
        home = _https(tls_port, ca)[1].decode()
        assert "hkps://" in home and home.index("hkps://") < home.index("hkp://")
        assert ":%d" % tls_port in home and ":%d" % server.port in home
        for name in PUBLIC_FIXTURES:
            server.add(fixture(name))
        # (the keys the new ones signed get their views again in the background:
        # the answers compared are those after it)
        settled(server)
        # answers and bodies of several TLS records; a keep-alive connection
        path = "/pks/lookup?op=get&options=mr&search=fixture"
        plain = server.request("GET", path)[2]
        conn = http.client.HTTPSConnection("127.0.0.1", tls_port,
                                           context=ca.client_context(), timeout=20)
        for _ in range(3):
            conn.request("GET", path)
            response = conn.getresponse()
            assert response.status == 200 and response.read() == plain
        assert len(plain) > 20000
        padded = urllib.parse.urlencode({"keytext": fixture("rsa2048"),
                                         "padding": "x" * (3 << 20)}).encode()
        conn.request("POST", "/pks/add", padded,
                      {"Content-Type": "application/x-www-form-urlencoded"})
        response = conn.getresponse()
        assert response.status == 200 and response.read().startswith(b"unchanged ")
        conn.close()
        server.wait_for_output(r'127\.0\.0\.1 "POST /pks/add HTTP/1\.1" 200')


def test_answers_over_tls_say_to_come_back_by_https_only(tmp_path, ca):
    """HSTS on every answer over cksd's TLS, none on its plain HKP port
    (a browser ignores it there): a browser that saw it sends the admin
    page's password over TLS only (until 2026-12-07 no answer had it)."""
    cert, key, _ = ca.issue()
    with Cksd("sqlite:///%s" % (tmp_path / "k.db"), config=_tls_config(tmp_path, cert, key),
              args=["--tls-port", "0"]) as server:
        tls_port = int(server.wait_for_output(HTTPS_READY).group(1))
        for path in ["/", "/pks/lookup?op=get&search=nobody", "/pks/admin"]:
            headers = _https_exchange(tls_port, ca, path=path)[1]
            assert headers["strict-transport-security"] == "max-age=31536000", path
        assert "strict-transport-security" not in server.request("GET", "/")[1]


def _tls_sending(port, ca, request, source="127.0.0.1"):
    """A new TLS connection from `source` that has sent `request` (bytes)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=20,
                                    source_address=(source, 0))
    tls = ca.client_context().wrap_socket(sock, server_hostname="localhost")
    tls.sendall(request)
    return tls


def _answer_head(tls):
    """The head of the answer on `tls`: its status and headers (names in
    lower case)."""
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = tls.recv(65536)
        assert chunk, answer
        answer += chunk
    status_line, *lines = answer.split(b"\r\n\r\n")[0].decode().split("\r\n")
    return int(status_line.split()[1]), \
        {k.lower(): v.strip() for k, v in (h.split(":", 1) for h in lines)}


def test_the_servers_own_refusals_over_tls_say_to_come_back_by_https_only(tmp_path, ca):
    """HSTS on the answers the server gives without routing a request too:
    a malformed head (400), an upload over the limit (413), a head not
    received in time (408), a request cut off to make room (503).  Until
    2026-12-06 they had none."""
    cert, key, _ = ca.issue()
    config = tmp_path / "cks.conf"
    config.write_text("[server]\ntls_cert = %s\ntls_key = %s\nprocesses = 1\n"
                      "head_timeout = 1\nmax_connections = 2\n"
                      "[ratelimit]\ntrusted_proxies =\n" % (cert, key))
    upload = (b"POST /pks/add HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
              b"Content-Type: application/x-www-form-urlencoded\r\n\r\nkeytext=")
    with Cksd("sqlite:///%s" % (tmp_path / "k.db"), config=str(config)) as server:
        for request, status in [(b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", 400),
                                (upload % 99999999, 413),
                                (b"GET / HTTP/1.1\r\nHost: x\r\n", 408)]:
            with _tls_sending(server.port, ca, request) as tls:
                answer = _answer_head(tls)
            assert answer[0] == status
            assert answer[1]["strict-transport-security"] == "max-age=31536000", status
        held = [_tls_sending(server.port, ca, upload % 1000, "127.0.0.2") for _ in range(2)]
        try:
            with _tls_sending(server.port, ca, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
                              "127.0.0.3") as newcomer:
                assert _answer_head(newcomer)[0] == 200
            status, headers = _answer_head(held[0])  # cut off to make room
            assert status == 503
            assert headers["strict-transport-security"] == "max-age=31536000"
        finally:
            for tls in held:
                tls.close()


def test_beside_hkps_the_plain_port_refuses_the_admin_page_to_other_hosts(tmp_path, ca):
    """With cksd's own tls_port, the admin page on the plain port answers
    another host 403 before asking for its password, as the contrib nginx
    site does (until 2026-12-06 it took the password in clear: 401, then
    200); the operator's own tools on the host (loopback) and everyone over
    hkps are served.  Another host here: a client a trusted proxy (loopback,
    by default) names in X-Forwarded-For."""
    cert, key, _ = ca.issue()
    admin = AdminSettings(hash_password("secret", iterations=1000))
    config = _tls_config(tmp_path, cert, key, "[admin]\nuser = admin\npassword_hash = %s\n"
                         % admin.password_hash)
    login = {"Authorization": "Basic " + base64.b64encode(b"admin:secret").decode()}
    remote = {"X-Forwarded-For": "192.0.2.7"}
    with Cksd("sqlite:///%s" % (tmp_path / "k.db"), config=config,
              args=["--tls-port", "0"]) as server:
        tls_port = int(server.wait_for_output(HTTPS_READY).group(1))
        for headers in (remote, dict(remote, **login)):
            status, answer_headers, body = server.request("GET", "/pks/admin", headers=headers)
            assert status == 403 and "www-authenticate" not in answer_headers
            assert body.startswith(b"use https (port %d): the admin page is not served over "
                                   b"plain HTTP" % tls_port)
        assert server.request("GET", "/pks/admin")[0] == 401  # from this host
        assert server.request("GET", "/pks/admin", headers=login)[0] == 200
        assert _https(tls_port, ca, path="/pks/admin", headers=remote)[0] == 401
        assert _https(tls_port, ca, path="/pks/admin", headers=dict(remote, **login))[0] == 200
        assert "failed login" not in server.output()


def test_without_tls_port_the_port_speaks_tls_only(tmp_path, ca):
    cert, key, _ = ca.issue()
    with Cksd("sqlite:///%s" % (tmp_path / "k.db"), config=_tls_config(tmp_path, cert, key)) \
            as server:
        assert READY.search(server.output()).group(0).startswith("cksd listening on https://")
        assert "cksd listening on http://" not in server.output()
        status, body = _https(server.port, ca, path="/pks/lookup?op=stats&options=mr")
        assert status == 200 and b'"software": "CKS"' in body
        home = _https(server.port, ca)[1].decode()
        assert "hkps://" in home and ":%d" % server.port in home and "hkp://" not in home
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as plain:
            plain.sendall(b"GET /pks/lookup?op=stats HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _closed_on(plain)  # no answer in plain HTTP
        server.wait_for_output(r'127\.0\.0\.1 "-" TLS handshake failed \(HTTP_REQUEST\)')
        assert _https(server.port, ca)[0] == 200


def test_a_tls_client_on_the_plain_port_fails_at_once(tmp_path, ca):
    """hkps:// to the plain HKP port: the handshake fails at once, not after
    head_timeout (10 s; until 2026-12-05 the client waited that long for a
    plaintext 408), and the log says why."""
    with Cksd("sqlite:///%s" % (tmp_path / "k.db")) as server:
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
            with pytest.raises(ssl.SSLError):
                ca.client_context().wrap_socket(sock, server_hostname="localhost")
        assert time.monotonic() - started < 2
        answer = raw_exchange(server.port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        assert answer.startswith(b"HTTP/1.1 400 ")
        assert answer.endswith(b"this is the plain HTTP port: a TLS handshake came "
                               b"(hkps:// needs cksd's TLS port or a proxy)\n")
        server.wait_until(lambda: server.output().count(
            '127.0.0.1 "-" 400 93 (this is the plain HTTP port: a TLS handshake came') == 2)
        assert server.lookup(op="stats", options="mr")[0] == 200


def test_several_processes_all_serve_tls(tmp_path, ca):
    cert, key, _ = ca.issue()
    config = _tls_config(tmp_path, cert, key, "processes = 2")
    with Cksd("sqlite:///%s" % (tmp_path / "k.db"), config=config) as server:
        assert _statuses_at_once(server.port, ca, 16) == [200] * 16
        assert len(server.children()) == 2
    assert server.proc.returncode == 0


def test_bad_clients_on_the_tls_port_hurt_nobody(tmp_path, ca):
    cert, key, _ = ca.issue()
    config = _tls_config(tmp_path, cert, key, "processes = 1\nhead_timeout = 1")
    with Cksd("sqlite:///%s" % (tmp_path / "k.db"), config=config) as server:
        stalled = socket.create_connection(("127.0.0.1", server.port), timeout=10)  # says nothing
        half = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        half.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a ClientHello's start
        garbage = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        garbage.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")  # not TLS at all
        assert _closed_on(garbage)
        started = time.monotonic()
        assert _statuses_at_once(server.port, ca, 10) == [200] * 10
        assert time.monotonic() - started < 5
        for sock in (stalled, half):  # cut off at head_timeout
            assert sock.recv(100) == b""
            assert time.monotonic() - started < 5
            sock.close()
        garbage.close()
        server.wait_for_output(r'127\.0\.0\.1 "-" TLS handshake failed \(\w+\)')
        assert server.output().count("TLS handshake failed") == 1
        server.wait_until(
            lambda: server.output().count('"-" TLS handshake not finished in time') == 2)
        assert _https(server.port, ca)[0] == 200
        assert server.proc.poll() is None


def test_silent_tls_connections_at_the_cap_make_room_longest_waiting_first(tmp_path, ca):
    """Connections to the hkps port that never send a byte are closed at
    `max_connections` to make room, as silent plain ones are: until
    2026-12-06 they stayed in their handshake, which the cap did not close,
    and held every client out (plain HTTP too: 503) until head_timeout."""
    cert, key, _ = ca.issue()
    config = _tls_config(tmp_path, cert, key, "processes = 1\nmax_connections = 4\n"
                         "head_timeout = 60")
    with Cksd("sqlite:///%s" % (tmp_path / "k.db"), config=config,
              args=["--tls-port", "0"]) as server:
        tls_port = int(server.wait_for_output(HTTPS_READY).group(1))
        silent = []
        for _ in range(4):
            silent.append(socket.create_connection(("127.0.0.1", tls_port), timeout=10))
            time.sleep(0.1)  # (accepted in this order)
        time.sleep(0.3)
        assert server.request("GET", "/health")[0] == 200
        assert _closed_on(silent[0])  # the one that waited longest made room
        for sock in silent[1:]:
            sock.settimeout(0.3)
            with pytest.raises(socket.timeout):
                sock.recv(100)
        silent.append(socket.create_connection(("127.0.0.1", tls_port), timeout=10))
        time.sleep(0.3)
        assert _https(tls_port, ca)[0] == 200  # hkps too, at the cap again
        silent[1].settimeout(10)
        assert _closed_on(silent[1])
        for sock in silent:
            sock.close()


@pytest.mark.parametrize("opening", [b"", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"],
                         ids=["silent", "half-a-client-hello"])
def test_unfinished_handshakes_from_many_addresses_lock_nobody_out(tmp_path, ca, opening):
    """One connection to the hkps port from each of 8 addresses, its
    handshake never finished, with `max_connections = 8` (loopback counted
    as any address: no trusted proxy): a newcomer from another address
    would tie with them, and the one that waited longest makes room, for
    plain HTTP and hkps alike.  Until 2026-12-06 plain HTTP got 503 and
    hkps was closed at once for as long as the holders came back."""
    cert, key, _ = ca.issue()
    config = tmp_path / "cks.conf"
    config.write_text("[server]\ntls_cert = %s\ntls_key = %s\nprocesses = 1\n"
                      "max_connections = 8\nhead_timeout = 60\n"
                      "[ratelimit]\ntrusted_proxies =\n" % (cert, key))
    with Cksd("sqlite:///%s" % (tmp_path / "k.db"), config=str(config),
              args=["--tls-port", "0"]) as server:
        tls_port = int(server.wait_for_output(HTTPS_READY).group(1))
        held = []

        def hold(number):
            held.append(socket.create_connection(("127.0.0.1", tls_port), timeout=10,
                                                 source_address=("127.0.0.%d" % number, 0)))
            held[-1].sendall(opening)
            time.sleep(0.05)  # (accepted in this order)

        try:
            for number in range(2, 10):
                hold(number)
            time.sleep(0.3)
            assert server.request("GET", "/health")[0] == 200
            assert _closed_on(held[0])
            hold(10)  # (the cap again)
            time.sleep(0.3)
            assert _https(tls_port, ca, path="/health")[0] == 200
            assert _closed_on(held[1])
        finally:
            for sock in held:
                sock.close()


def test_a_new_certificate_on_sighup_and_a_bad_one_is_not_taken(tmp_path, ca):
    cert, key, first = ca.issue()
    config = _tls_config(tmp_path, cert, key, "processes = 2")
    with Cksd("sqlite:///%s" % (tmp_path / "k.db"), config=config) as server:
        assert {_served_certificate(server.port, ca) for _ in range(6)} == {first}
        before = http.client.HTTPSConnection("127.0.0.1", server.port,
                                             context=ca.client_context(), timeout=20)
        before.request("GET", "/")
        assert before.getresponse().read()
        _, _, second = ca.issue("renewed")
        os.replace(tmp_path / "renewed.pem", cert)  # as certbot's deploy hook leaves them
        os.replace(tmp_path / "renewed.key", key)
        server.proc.send_signal(signal.SIGHUP)
        server.wait_until(lambda: server.output().count("TLS certificate reloaded") == 2)
        assert {_served_certificate(server.port, ca) for _ in range(6)} == {second}
        before.request("GET", "/")  # a connection from before goes on as it was
        assert before.getresponse().status == 200
        before.close()

        with open(cert, "w") as broken:
            broken.write("not a certificate\n")
        server.proc.send_signal(signal.SIGHUP)
        server.wait_until(lambda: server.output().count("TLS certificate not reloaded") == 2)
        assert "tls_cert %s: no PEM certificate in it" % cert in server.output()
        assert {_served_certificate(server.port, ca) for _ in range(4)} == {second}
        assert server.proc.poll() is None
    assert server.proc.returncode == 0


def test_sighup_takes_the_certificate_paths_the_config_file_names_now(tmp_path, ca):
    """tls_cert and tls_key edited, then SIGHUP: the new files are served;
    until 2026-12-06 the edit was ignored and the log said "reloaded from"
    the old path.  A bad new pair is refused in one line, the old one kept."""
    cert, key, _ = ca.issue()
    config = _tls_config(tmp_path, cert, key, "processes = 2")
    with Cksd("sqlite:///%s" % (tmp_path / "k.db"), config=config) as server:
        new_cert, new_key, second = ca.issue("elsewhere")
        with open(config) as handle:
            text = handle.read().replace(cert, new_cert).replace(key, new_key)
        with open(config, "w") as handle:
            handle.write(text)
        server.proc.send_signal(signal.SIGHUP)
        server.wait_until(lambda: server.output().count(
            "TLS certificate reloaded from %s" % new_cert) == 2)
        assert {_served_certificate(server.port, ca) for _ in range(6)} == {second}
        _, other_key, _ = ca.issue("other")
        with open(config, "w") as handle:
            handle.write(text.replace(new_key, other_key))
        server.proc.send_signal(signal.SIGHUP)
        server.wait_until(lambda: server.output().count("TLS certificate not reloaded") == 2)
        assert "is not the key of the certificate" in server.output()
        assert {_served_certificate(server.port, ca) for _ in range(4)} == {second}
        assert "restart" not in server.output()
    assert server.proc.returncode == 0


@pytest.mark.parametrize("days,warning", [(90, None), (5, "expires within 14 days, on "),
                                          (-1, "expired on ")])
def test_a_certificate_near_its_end_is_a_warning_at_start_and_at_reload(tmp_path, ca, days,
                                                                       warning):
    """cksd serves an expired certificate all the same (clients refuse it):
    it started and reloaded one without a word."""
    cert, key, _ = ca.issue(days=days)
    config = _tls_config(tmp_path, cert, key, "processes = 1")
    with Cksd("sqlite:///%s" % (tmp_path / "k.db"), config=config) as server:
        server.proc.send_signal(signal.SIGHUP)
        server.wait_until(lambda: "TLS certificate reloaded" in server.output())
        assert server.stop() == 0
        said = [line for line in server.output().splitlines()
                if line.startswith("cks.tls: TLS certificate %s " % cert)]
        assert len(said) == (0 if warning is None else 2), server.output()
        assert all(warning in line and line.endswith(" GMT") for line in said)


# --- GnuPG -------------------------------------------------------------------------------

def test_gnupg_receives_keys_over_hkps(db_url, tmp_path, ca):
    cert, key, _ = ca.issue()
    with Cksd(db_url, config=_tls_config(tmp_path, cert, key), args=["--tls-port", "0"]) \
            as server:
        tls_port = int(server.wait_for_output(HTTPS_READY).group(1))
        assert server.add(fixture("rsa4096"))[0] == 200
        with GnuPG(keyserver="hkps://%s:%d" % (GPG_HOST, tls_port)) as gpg:
            with open(os.path.join(gpg.home, "dirmngr.conf"), "a") as conf:
                conf.write("hkp-cacert %s\n" % ca.path)
            gpg.run(["--recv-keys", _fp("rsa4096")])
            assert gpg.fingerprints() == [_fp("rsa4096")]
            gpg.run(["--import"], input=fixture("nistp256"))
            gpg.run(["--send-keys", _fp("nistp256")])
        # GnuPG.close() killed the dirmngr of that home
        server.wait_for_output(r'"GET /pks/lookup\?op=get&options=mr&search=0x%s HTTP/1\.\d" '
                               r'200' % _fp("rsa4096"))
        assert server.lookup(op="get", options="mr", search="0x" + _fp("nistp256"))[0] == 200


# --- bad settings ------------------------------------------------------------------------

@pytest.mark.parametrize("case,message", [
    ("missing cert", "tls_cert {dir}/none.pem: cannot read it: No such file or directory"),
    ("garbage cert", "tls_cert {dir}/garbage.pem: no PEM certificate in it"),
    ("other key", "tls_key {dir}/other.key is not the key of the certificate in tls_cert "
                  "{dir}/server.pem"),
    ("encrypted key", "tls_key {dir}/encrypted.key is encrypted"),
    ("cert only", "tls_cert and tls_key go together"),
])
def test_bad_certificate_settings_are_one_clear_line(tmp_path, ca, case, message):
    cert, key, _ = ca.issue()
    _, other_key, _ = ca.issue("other")
    (tmp_path / "garbage.pem").write_text("garbage\n")
    (tmp_path / "encrypted.key").write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret")))
    cert, key = {"missing cert": (tmp_path / "none.pem", key),
                 "garbage cert": (tmp_path / "garbage.pem", key),
                 "other key": (cert, other_key),
                 "encrypted key": (cert, tmp_path / "encrypted.key"),
                 "cert only": (cert, "")}[case]
    code, err = start_failure(tmp_path, "[server]\ntls_cert = %s\ntls_key = %s\n" % (cert, key))
    assert code == 1 and message.format(dir=tmp_path) in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_tls_port_without_a_certificate_is_refused(tmp_path):
    code, err = start_failure(tmp_path, "[server]\ntls_port = 0\n")
    assert code == 2 and "[server] tls_port needs [server] tls_cert and tls_key" in err, err
    assert err.count("\n") == 1
