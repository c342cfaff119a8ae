"""RepeatedFailure: a background job's failure at every round is logged when
it starts, then every few minutes with a count, and when it ends."""

import logging

from cks.repeated import RepeatedFailure
from support.clock import Clock


def test_an_outage_is_said_once_then_every_few_minutes_and_its_end_once(caplog):
    clock = Clock()
    failure = RepeatedFailure(logging.getLogger("t"), "job failed", "job works again",
                              every=600, clock=clock)
    caplog.set_level(logging.INFO, logger="t")
    failure.succeeded()  # nothing to say
    for _ in range(300):  # ten minutes of rounds every 2 s
        failure.failed(OSError("database down"))
        clock.now += 2
    failure.failed("database down")
    clock.now += 2
    failure.succeeded()
    failure.succeeded()
    failure.failed("again")
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "job failed: database down"),
        ("WARNING", "job failed: database down (299 more times since the last report)"),
        ("INFO", "job works again"),
        ("WARNING", "job failed: again"),
    ]
