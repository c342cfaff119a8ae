"""contrib/nginx/cks.conf in a real nginx in front of a real cksd: nginx takes
the site (nginx -t), passes hkps and plain HKP through, sets X-Forwarded-For
to the client's address (so a client cannot pick its own rate-limit bucket
by sending one), refuses uploads over [limits] max_upload_bytes itself, and
keeps the admin page off plain HTTP."""

import base64
import http.client
import re
import socket
import ssl
import subprocess
import time
import urllib.parse

from cks.hkp.admin import AdminSettings, hash_password
from support import fixture
from support.config_reads import setting_reads
from support.contrib import contrib_text, installed, require
from support.nodes import fpr
from support.pgcluster import free_port
from support.server import Cksd

NGINX_CONF = """daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    include {d}/site.conf;
}}
"""
SIZES = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def test_nginx_takes_uploads_as_big_as_cksd_does():
    (size,) = re.findall(r"^\s*client_max_body_size (\d+)([kmg]?);", contrib_text(
        "nginx/cks.conf"), re.M)
    (read,) = [r for r in setting_reads() if (r.section, r.option) == ("limits",
                                                                         "max_upload_bytes")]
    assert int(size[0]) * SIZES.get(size[1], 1) == read.default


class Proxy:
    """nginx with the contrib site in `directory`: hkps, plain HKP on port 80's
    and port 11371's stand-ins, all to cksd on `upstream`."""

    def __init__(self, directory, upstream):
        self.directory = directory
        self.tls, self.plain, self.hkp = free_port(), free_port(), free_port()
        subprocess.run([require("openssl", "openssl"), "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj",
                        "/CN=localhost", "-keyout", str(directory / "key.pem"),
                        "-out", str(directory / "cert.pem")], check=True, capture_output=True)
        (directory / "site.conf").write_text(installed("nginx/cks.conf", {
            "listen 443 ssl;": "listen 127.0.0.1:%d ssl;" % self.tls,
            "listen [::]:443 ssl;": "", "listen [::]:80;": "", "listen [2001:db8::1]:11371;": "",
            "listen 80;": "listen 127.0.0.1:%d;" % self.plain,
            "listen 192.0.2.1:11371;": "listen 127.0.0.1:%d;" % self.hkp,
            "/etc/letsencrypt/live/keys.example.org/fullchain.pem": str(directory / "cert.pem"),
            "/etc/letsencrypt/live/keys.example.org/privkey.pem": str(directory / "key.pem"),
            "server 127.0.0.1:11371;": "server 127.0.0.1:%d;" % upstream}))
        self.conf = directory / "nginx.conf"
        self.conf.write_text(NGINX_CONF.format(d=directory))

    def nginx(self, *args, **kwargs):
        command = [require("nginx", "nginx-light"), "-p", str(self.directory), "-e",
                   str(self.directory / "error.log"), "-c", str(self.conf)] + list(args)
        return subprocess.Popen(command, stderr=subprocess.PIPE, text=True, **kwargs)

    def __enter__(self):
        check = self.nginx("-t")
        assert check.wait(30) == 0, check.stderr.read()
        self.proc = self.nginx()
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.hkp), timeout=1).close()
                return self
            except OSError:
                assert self.proc.poll() is None, self.proc.stderr.read()
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.1)

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(20)

    def request(self, port, method, path, body=None, headers=None, tls=False):
        """(status, body) of one request on a new connection."""
        status, _, answer = self.exchange(port, method, path, body, headers, tls)
        return status, answer

    def exchange(self, port, method, path, body=None, headers=None, tls=False):
        """(status, header fields as (lower-case name, value) pairs, body)."""
        if tls:
            connection = http.client.HTTPSConnection(
                "127.0.0.1", port, timeout=30, context=ssl._create_unverified_context())
        else:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            connection.request(method, path, body, headers or {})
            response = connection.getresponse()
            return response.status, [(k.lower(), v) for k, v in response.getheaders()], \
                response.read()
        finally:
            connection.close()


LIMITED = "[ratelimit]\nlookups_per_second = 0.001\nlookup_burst = 3\n"


def test_nginx_in_front_of_cksd(db_url, tmp_path):
    config = tmp_path / "cks.conf"
    config.write_text(LIMITED)
    with Cksd(db_url, config=str(config)) as server, Proxy(tmp_path, server.port) as proxy:
        form = urllib.parse.urlencode({"keytext": fixture("rsa2048").decode()})
        status, body = proxy.request(proxy.tls, "POST", "/pks/add", form, {
            "Content-Type": "application/x-www-form-urlencoded"}, tls=True)
        assert status == 200, body
        assert proxy.request(proxy.hkp, "GET", "/health")[0] == 200

        # Each lookup names another client in X-Forwarded-For: nginx replaces
        # it with the real one, so they share one bucket (burst 3, /health's
        # request included).
        lookup = "/pks/lookup?op=get&options=mr&search=0x" + fpr("rsa2048")
        statuses = [proxy.request(proxy.plain, "GET", lookup,
                                  headers={"X-Forwarded-For": "203.0.113.%d" % n})[0]
                    for n in range(3)]
        assert statuses == [200, 200, 429]

        status, body = proxy.request(proxy.plain, "POST", "/pks/add", b"x" * (6 << 20),
                                     {"Content-Type": "application/pgp-keys"})
        assert status == 413 and b"nginx" in body  # refused by nginx, unread by cksd

        assert proxy.request(proxy.plain, "GET", "/pks/admin")[0] == 403
        assert proxy.request(proxy.tls, "GET", "/pks/admin", tls=True)[0] != 403
        _hsts_over_hkps_only(proxy)
        assert "203.0.113." not in server.output()  # the access log names the real client


def _hsts_over_hkps_only(proxy):
    """Each answer over hkps, cksd's and nginx's own (a 413), carries HSTS
    once, and cksd's nosniff; none over plain HTTP (until 2026-12-07 none
    carried HSTS)."""
    big = {"Content-Type": "application/pgp-keys"}
    for tls, port in [(True, proxy.tls), (False, proxy.plain), (False, proxy.hkp)]:
        for method, path, body in [("GET", "/", None), ("POST", "/pks/add", b"x" * (6 << 20))]:
            status, headers, _ = proxy.exchange(port, method, path, body, big, tls)
            hsts = [value for name, value in headers if name == "strict-transport-security"]
            assert hsts == (["max-age=31536000"] if tls else []), (port, status, headers)
            assert status == 413 or ("x-content-type-options", "nosniff") in headers


def test_the_admin_form_works_through_nginx_on_a_port_of_its_own(db_url, tmp_path):
    """hkps on a port other than 443: the browser's Origin names the port, and
    nginx passes the Host it was sent, port and all, so cksd takes the form
    as its own (until 2026-12-05 `$host` dropped the port: every form 403)."""
    password_hash = hash_password("a long pass phrase", iterations=1000)
    config = tmp_path / "cks.conf"
    config.write_text("[admin]\npassword_hash = %s\n" % password_hash)
    with Cksd(db_url, config=str(config)) as server, Proxy(tmp_path, server.port) as proxy:
        login = base64.b64encode(b"admin:a long pass phrase").decode()
        form = urllib.parse.urlencode({
            "token": AdminSettings(password_hash).csrf_token("Basic " + login),
            "action": "delete", "fingerprint": fpr("rsa2048")})
        status, body = proxy.request(proxy.tls, "POST", "/pks/admin", form, {
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": "Basic " + login,
            "Origin": "https://127.0.0.1:%d" % proxy.tls}, tls=True)
        assert status == 200 and b"no key" in body, body
