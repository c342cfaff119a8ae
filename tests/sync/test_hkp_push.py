"""What a peer's answer means for the backlog (pure function, no network)."""

import json

from cks.sync.hkp_push import OK, REFUSED, RETRY, SPLIT, Answer, verdict


def test_success_with_and_without_cks_json():
    assert verdict(Answer(200, b"<html>Key block added</html>"), 5).action == OK
    body = json.dumps({"added": ["A"], "refused": [{"fingerprint": "B", "reason": "no"}]})
    result = verdict(Answer(200, body.encode()), 2)
    assert result.action == OK and result.refused == [("B", "no")]


def test_transient_failures_keep_the_backlog():
    assert verdict(Answer(error="connection refused"), 3).action == RETRY
    assert verdict(Answer(500, b"oops"), 1).action == RETRY
    assert verdict(Answer(503, b""), 1).action == RETRY
    assert verdict(Answer(429, b""), 1).action == RETRY
    assert verdict(Answer(302, b""), 1).action == RETRY


def test_client_errors_are_final_for_one_key_and_split_a_batch():
    body = json.dumps({"refused": [{"fingerprint": "F", "reason": "key is rejected: spam"}]})
    single = verdict(Answer(403, body.encode()), 1)
    assert single.action == REFUSED and single.message == "HTTP 403: key is rejected: spam"
    assert verdict(Answer(422, b"no usable key"), 1).message == "HTTP 422: no usable key"
    assert verdict(Answer(413, b"too big"), 10).action == SPLIT
