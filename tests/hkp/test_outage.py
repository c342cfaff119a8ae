"""DatabaseOutage: a failure of writes alone and one of the whole database
are two outages in the log, each with its own end."""

import logging

from cks.hkp.outage import DatabaseOutage
from cks.store.errors import StoreUnavailable


def _failure(message, writing):
    exc = StoreUnavailable(message)
    exc.writing = writing
    return exc


def test_a_failure_of_writes_hides_no_outage_of_the_database(caplog):
    """Found by a review of the first fix: an upload's lock timeout held the
    one outage open until a write got through, and a later outage of the
    whole database, its 503s and its end were never logged."""
    caplog.set_level(logging.INFO, logger="t")
    outage = DatabaseOutage(logging.getLogger("t"))
    outage.failed(_failure("statement timeout", writing=True))
    outage.succeeded(wrote=False)  # lookups go on: the writes' failure is not over
    outage.failed(_failure("statement timeout", writing=True))
    outage.failed(_failure("connection refused", writing=False))
    outage.failed(_failure("connection refused", writing=False))
    outage.succeeded(wrote=False)
    outage.succeeded(wrote=True)
    outage.succeeded(wrote=True)
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "database writes fail: statement timeout"),
        ("WARNING", "database unavailable: connection refused"),
        ("INFO", "database available again"),
        ("INFO", "database writes work again"),
    ]
