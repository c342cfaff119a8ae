"""What a peer's answer means for the backlog (pure function, no network)."""

import email.utils
import json
import socket
import threading

from cks.sync.hkp_push import FAILED_ALONE, OK, REFUSED, RETRY, SPLIT, Answer, HKPClient, \
    notice_verdict, retry_after, source_address, verdict

KEYS = ["F", "B"] + ["%040X" % n for n in range(98)]
"""The fingerprints of the keys of a batch (KEYS[:size])."""


def test_success_with_and_without_cks_json():
    assert verdict(Answer(200, b"<html>Key block added</html>"), KEYS[:5]).action == OK
    body = json.dumps({"added": ["A"], "refused": [{"fingerprint": "B", "reason": "no"}]})
    result = verdict(Answer(200, body.encode()), KEYS[:2])
    assert result.action == OK and result.refused == [("B", "no")]


def test_transient_failures_keep_the_backlog():
    assert verdict(Answer(error="connection refused"), KEYS[:3]).action == RETRY
    assert verdict(Answer(error="timed out"), KEYS[:1]).action == RETRY
    for status in (502, 503, 504, 429, 408, 302):
        assert verdict(Answer(status, b""), KEYS[:1]).action == RETRY, status
        assert verdict(Answer(status, b""), KEYS[:10]).action == RETRY, status


def test_an_address_that_takes_no_keys_keeps_the_backlog():
    """A 4xx that is not a keyserver's refusal of a key (403,
    413, 422 or 400, never a 404) says nothing about the keys."""
    page = b"<html><title>404 Not Found</title></html>"
    for status in (401, 404, 405, 407, 410, 415, 421):
        assert verdict(Answer(status, page), KEYS[:1]).action == RETRY, status
    assert verdict(Answer(404, page), KEYS[:1]).message == "HTTP 404: 404 Not Found"


def test_a_500_to_a_batch_splits_it_and_to_one_key_is_the_runners_to_weigh():
    sks = (b'<?xml version="1.0"?>\r\n<html><head>\r\n<title>Error handling request'
           b'</title>\r\n<style>.uid { color: green; }</style></head><body>Exception raised.'
           b'</body></html>')
    assert verdict(Answer(500, sks), KEYS[:100]).action == SPLIT
    alone = verdict(Answer(500, sks), KEYS[:1])
    assert alone.action == FAILED_ALONE and alone.message == "HTTP 500: Error handling request"
    assert verdict(Answer(501, b""), KEYS[:1]).action == FAILED_ALONE
    # a connection the peer took, then closed unanswered: its size limit, maybe
    assert verdict(Answer(error="closed", cut=True), KEYS[:5]).action == SPLIT
    assert verdict(Answer(error="closed", cut=True), KEYS[:1]).action == FAILED_ALONE


def test_a_request_sent_whole_and_not_answered_in_time_is_weighed_as_a_500():
    """A key the peer takes minutes over, or a batch too large for it: split,
    then weighed key by key (slow: each try cost the whole timeout).  A
    timeout before the request went out is about the peer."""
    batch = verdict(Answer(error="timed out", unanswered=True), KEYS[:5])
    assert batch.action == SPLIT and batch.slow
    alone = verdict(Answer(error="timed out", unanswered=True), KEYS[:1])
    assert alone.action == FAILED_ALONE and alone.slow and alone.message == "timed out"
    assert not verdict(Answer(500, b""), KEYS[:1]).slow


def test_a_notice_is_refused_for_good_only_by_the_peers_word_on_it():
    """Until 2026-12-05 any 4xx (a 429, a maintenance page's 404) wrote it off."""
    refusal = b'{"status": "refused", "reason": "notice field \'time\' expected"}'
    for status in (400, 422):
        result = notice_verdict(Answer(status, refusal))
        assert (result.action, result.message) == (REFUSED, "notice field 'time' expected")
    assert notice_verdict(Answer(200, b"")).action == OK
    slow_down = notice_verdict(Answer(429, b"slow down", retry_after=60.0))
    assert (slow_down.action, slow_down.retry_after) == (RETRY, 60.0)
    for status in (400, 401, 403, 404, 405, 407, 413, 422, 500, 503):
        for body in (b"<title>Maintenance</title>", b'{"status": "applied"}', b"[1]"):
            assert notice_verdict(Answer(status, body)).action not in (OK, REFUSED), status
    assert notice_verdict(Answer(error="timed out")).action == RETRY


def test_client_errors_split_a_batch_and_a_named_refusal_is_final():
    """A CKS peer's refusal names the key: final.  A bare 4xx to one key may
    be a WAF's or a proxy's to every request: the runner's to weigh, once."""
    body = json.dumps({"refused": [{"fingerprint": "F", "reason": "key is rejected: spam"}]})
    single = verdict(Answer(403, body.encode()), KEYS[:1])
    assert single.action == REFUSED and single.message == "key is rejected: spam"  # as in a 200
    # a refusal of a key not sent is no refusal (until 2026-12-07 it was taken)
    assert verdict(Answer(403, body.encode()), KEYS[1:2]).action == FAILED_ALONE
    assert verdict(Answer(200, body.encode()), KEYS[1:5]).refused == []
    assert verdict(Answer(413, b"too big"), KEYS[:10]).action == SPLIT
    for status in (400, 403, 413, 422):
        bare = verdict(Answer(status, b"no usable key"), KEYS[:1])
        assert bare.action == FAILED_ALONE and bare.once, status
        assert bare.message == "HTTP %d: no usable key" % status
    assert not verdict(Answer(500, b""), KEYS[:1]).once


def _listener():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)
    return sock


def test_the_client_tells_an_unanswered_request_from_no_connection():
    with _listener() as sock:  # takes the request, never answers
        port = sock.getsockname()[1]
        taken = []
        reader = threading.Thread(target=lambda: taken.append(_read_request(sock)))
        reader.start()
        answer = HKPClient("127.0.0.1", port, 0.5, "").post_keys("key")
        reader.join()
    assert answer.status == 0 and answer.error == "timed out" and answer.unanswered
    assert b"keytext=key" in taken[0]
    closed = _listener()
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    answer = HKPClient("127.0.0.1", port, 0.5, "").post_keys("key")
    assert answer.status == 0 and answer.error == "connection refused"
    assert not answer.unanswered and not answer.cut


def _read_request(sock):
    connection, _ = sock.accept()
    with connection:
        data = b""
        while b"keytext" not in data:
            data += connection.recv(65536)
        connection.recv(65536)  # until the client gives up and closes
        return data


def test_retry_after_in_seconds_or_as_a_date():
    now = 1_800_000_000.0
    assert retry_after("120", now) == 120.0
    assert retry_after(" 7 ", now) == 7.0
    in_90_s = email.utils.formatdate(now + 90, usegmt=True)
    assert retry_after(in_90_s, now) == 90.0
    assert retry_after(email.utils.formatdate(now - 90, usegmt=True), now) == 0.0
    for nothing in (None, "", "soon", "-5", "1.5", "Mon, 99 Foo 2026 25:61:00 GMT"):
        assert retry_after(nothing, now) == 0.0, nothing
    result = verdict(Answer(503, b"busy", retry_after=120.0), KEYS[:10])
    assert result.action == RETRY and result.retry_after == 120.0


def _answer_once(sock, head):
    connection, _ = sock.accept()
    with connection:
        data = b""
        while b"keytext" not in data:
            data += connection.recv(65536)
        connection.sendall(head + b"Content-Length: 4\r\nConnection: close\r\n\r\nbusy")


def test_the_client_reads_retry_after_of_a_429_or_503_only():
    for status, expected in ((b"503 Service Unavailable", 42.0), (b"429 Too Many Requests", 42.0),
                             (b"500 Internal Server Error", 0.0)):
        with _listener() as sock:
            head = b"HTTP/1.1 " + status + b"\r\nRetry-After: 42\r\n"
            server = threading.Thread(target=_answer_once, args=(sock, head))
            server.start()
            answer = HKPClient("127.0.0.1", sock.getsockname()[1], 5, "").post_keys("key")
            server.join()
        assert answer.status == int(status[:3]) and answer.retry_after == expected, status


def test_a_peer_is_asked_from_the_address_this_node_serves_on():
    """(hkp_push.source_address) Until 2026-12-06 only recon rounds were
    dialed from `[server] bind`; the pushes and fetches of a host of several
    addresses came from another, which a CKS peer took for a stranger's."""
    assert source_address("", "192.0.2.7") is None
    assert source_address("::", "192.0.2.7") is None and source_address("0.0.0.0", "x") is None
    assert source_address("203.0.113.5", "keys.example.net") == ("203.0.113.5", 0)
    assert source_address("::ffff:203.0.113.5", "192.0.2.7") == ("203.0.113.5", 0)
    assert source_address("127.0.0.1", "keys.example.net") is None  # (no answer would come)
    assert source_address("127.0.0.2", "127.0.0.1") == ("127.0.0.2", 0)
    with _listener() as sock:
        port = sock.getsockname()[1]
        came_from = []

        def answer():
            connection, address = sock.accept()
            came_from.append(address[0])
            with connection:
                connection.recv(65536)
                connection.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")

        reader = threading.Thread(target=answer)
        reader.start()
        assert HKPClient("127.0.0.1", port, 5, "", source="127.0.0.2").post_keys("k").status \
            == 200
        reader.join()
    assert came_from == ["127.0.0.2"]
