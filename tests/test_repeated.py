"""RepeatedFailure: a background job's failure at every round is logged when
it starts, then every few minutes with a count, and when it ends."""

import logging

from cks.repeated import OncePerKey, RepeatedFailure
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


def test_once_per_key_says_each_key_once_in_a_while_and_bounds_its_memory():
    clock = Clock()
    said = OncePerKey(every=600, max_keys=3, clock=clock)
    assert [said.allows("a") for _ in range(5)] == [True, False, False, False, False]
    assert said.allows("b") and said.allows("c")
    assert not said.allows("d")  # three keys remembered: a fourth waits
    clock.now += 600
    assert said.allows("d") and said.allows("a")  # the others forgotten; a said again
    assert not said.allows("a")
