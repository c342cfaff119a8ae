"""An answer a worker thread prepared goes out from that thread: the client
does not wait for the loop's thread to take it back (HKPServer._post)."""

import contextlib
import http.client
import socket
import threading
import urllib.parse

import pytest

from cks.hkp.app import KeyServer, Response, ServerSettings
from support import fixture
from support.server import serving_here


def test_a_workers_answer_does_not_wait_for_the_loop(store):
    """An upload is being answered by a worker when the loop's thread gets
    held up (here by a lookup it answers itself): the upload's answer
    reaches its client all the same."""
    app = KeyServer(store, ServerSettings())
    upload_began, upload_may_end = threading.Event(), threading.Event()
    loop_held, loop_may_go_on = threading.Event(), threading.Event()
    handle = app.handle

    def holding(request):
        if request.path == "/pks/add":
            upload_began.set()
            upload_may_end.wait(30)
        elif request.query.get("search") == "hold":
            loop_held.set()
            loop_may_go_on.wait(30)
        return handle(request)
    app.handle = holding
    with serving_here(app) as (port, loop), \
            contextlib.closing(http.client.HTTPConnection("127.0.0.1", port)) as uploading, \
            contextlib.closing(http.client.HTTPConnection("127.0.0.1", port)) as holder:
        try:
            uploading.request("POST", "/pks/add", urllib.parse.urlencode(
                {"keytext": fixture("rsa2048").decode()}).encode(),
                {"Content-Type": "application/x-www-form-urlencoded"})
            assert upload_began.wait(30)  # (a worker has it)
            holder.request("GET", "/pks/lookup?op=index&search=hold")
            assert loop_held.wait(30)
            upload_may_end.set()
            uploading.sock.settimeout(10)
            try:
                answer = uploading.getresponse()  # (the loop is still held)
            except socket.timeout:
                raise AssertionError("the upload's answer waited for the loop") from None
            assert answer.status == 200 and b"added" in answer.read()
        finally:
            upload_may_end.set()
            loop_may_go_on.set()
        assert holder.getresponse().status == 404  # (then the loop answers: no such key)
    assert not loop.is_alive()


@pytest.mark.parametrize("method,target", [
    ("POST", "/pks/add"),  # answered by a worker
    ("GET", "/pks/lookup?op=index&search=broken"),  # in the loop's thread
])
def test_an_answer_that_cannot_be_written_is_a_500_and_the_server_serves_on(
        store, method, target):
    """A bug in an answer (a header that is no Latin-1) is logged and answered
    500, neither left waiting nor taking the loop down, and the next request
    is served."""
    app = KeyServer(store, ServerSettings())
    handle = app.handle

    def broken(request):
        if request.path == "/pks/add" or request.query.get("search") == "broken":
            return Response(200, b"ok\n", headers=[("X-Snowman", "\u2603")])
        return handle(request)
    app.handle = broken
    with serving_here(app) as (port, _), contextlib.closing(
            http.client.HTTPConnection("127.0.0.1", port, timeout=30)) as client:
        client.request(method, target, b"keytext=x" if method == "POST" else None,
                       {"Content-Type": "application/x-www-form-urlencoded"})
        answer = client.getresponse()
        assert answer.status == 500 and answer.read() == b"internal server error\n"
        client.request("GET", "/pks/lookup?op=index&search=nobody")
        assert client.getresponse().status == 404
