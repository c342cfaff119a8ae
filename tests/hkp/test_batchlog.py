"""cksd's background logging (batchlog.py): what BatchingHandler writes, and
what QuickLog writes without a LogRecord, reads exactly as the handler
would have written it at once, arguments and traceback included; the
lines of a batch go out in one write."""

import io
import logging
import time

import pytest

from cks.batchlog import BatchingHandler, QuickLog
from cks.logsetup import StampFormatter

FORMAT = "%(name)s: %(message)s"


class _Writes(io.StringIO):
    """A stream that counts the write() calls it gets."""

    calls = 0

    def write(self, text):
        self.calls += 1
        return super().write(text)


def _stream_handler(line_format=FORMAT, formatter=logging.Formatter):
    handler = logging.StreamHandler(_Writes())
    handler.setFormatter(formatter(line_format))
    return handler


def _logger(name, *handlers):
    logger = logging.getLogger(name)
    logger.handlers, logger.propagate = list(handlers), False
    logger.setLevel(logging.INFO)
    return logger


def _log_some(logger, mutable):
    logger.info('%s "%s" %d %.1fms', "192.0.2.1", "GET / HTTP/1.1", 200, 0.25)
    logger.warning("peers: %s", mutable)
    try:
        raise ValueError("broken input")
    except ValueError:
        logger.exception("a job failed after %d s", 3)


def _direct_lines(name):
    direct = _stream_handler()
    _log_some(_logger(name, direct), ["a"])
    return direct.stream.getvalue()


def _pass_all(record):
    return True


@pytest.mark.parametrize("filtered", [False, True], ids=["lines", "records"])
def test_batched_lines_read_as_the_handler_writes_them_directly(filtered):
    # A plain stream handler gets lines made where they are logged; one with
    # a filter gets the records, handled by the writing thread.
    expected = _direct_lines("cks.test.direct").replace("cks.test.direct", "cks.test.batched")
    target = _stream_handler()
    if filtered:
        target.addFilter(_pass_all)
    handler = BatchingHandler(target)
    assert handler.writes_lines is not filtered
    handler.start()
    peers = ["a"]
    _log_some(_logger("cks.test.batched", handler), peers)
    peers.append("changed after the call")  # the line keeps what was logged
    handler.close()

    assert target.stream.getvalue() == expected
    assert "peers: ['a']\n" in expected
    assert "ValueError: broken input" in expected


def test_a_batch_of_lines_is_one_write():
    target = _stream_handler()
    handler = BatchingHandler(target)
    logger = _logger("cks.test.onewrite", handler)
    for n in range(500):
        logger.info("line %d", n)  # the thread is not started: all wait
    handler.start()
    handler.close()
    assert target.stream.getvalue() == "".join(
        "cks.test.onewrite: line %d\n" % n for n in range(500))
    assert target.stream.calls == 1


def test_quicklog_writes_what_the_logger_writes():
    target = _stream_handler()
    handler = BatchingHandler(target)
    handler.start()
    logger = _logger("cks.test.quick", handler)
    quick = QuickLog(logger)
    quick.info('%s "%s" %d %.1fms', "192.0.2.1", "GET / HTTP/1.1", 200, 0.25)
    quick.info("no arguments: 100%")
    logger.info('%s "%s" %d %.1fms', "192.0.2.1", "GET / HTTP/1.1", 200, 0.25)
    logger.setLevel(logging.WARNING)
    quick.info("not written: below the logger's level")
    handler.close()
    first, second, third = target.stream.getvalue().splitlines()
    assert first == third == 'cks.test.quick: 192.0.2.1 "GET / HTTP/1.1" 200 0.2ms'
    assert second == "cks.test.quick: no arguments: 100%"


def test_quicklog_goes_up_the_hierarchy_as_records_do():
    target = _stream_handler()
    handler = BatchingHandler(target)
    handler.start()
    parent = _logger("cks.test.up", handler)
    child = logging.getLogger("cks.test.up.access")
    child.handlers, child.propagate = [], True
    QuickLog(child).info("%s %d", "GET", 200)
    parent.propagate = False
    handler.close()
    assert target.stream.getvalue() == "cks.test.up.access: GET 200\n"


def test_quicklog_leaves_other_handlers_and_filters_to_the_logger():
    plain = _stream_handler()
    quick = QuickLog(_logger("cks.test.plain", plain))
    quick.info("%s %d", "GET", 200)  # not a BatchingHandler: through the logger
    assert plain.stream.getvalue() == "cks.test.plain: GET 200\n"

    target = _stream_handler()
    handler = BatchingHandler(target)
    handler.start()
    logger = _logger("cks.test.filtered", handler)
    logger.addFilter(lambda record: "secret" not in record.getMessage())
    QuickLog(logger).info("%s", "a secret")
    QuickLog(logger).info("%s", "public")
    handler.close()
    assert target.stream.getvalue() == "cks.test.filtered: public\n"


def test_stamped_lines_read_as_the_standard_formatter_makes_them():
    line_format = "%(asctime)s %(name)s: %(message)s"
    stamped, standard = StampFormatter(line_format), logging.Formatter(line_format)
    base = time.time()
    for offset in (0.0, 0.0004, 0.999, 1.0, 1.5, 61.25, 3600.5, -86400.1):
        record = logging.LogRecord("cks.access", logging.INFO, __file__, 1, "GET %d",
                                   (200,), None)
        record.created = base + offset
        record.msecs = int((record.created - int(record.created)) * 1000)
        assert stamped.format(record) == standard.format(record)

    target = _stream_handler(line_format, StampFormatter)
    handler = BatchingHandler(target)
    handler.start()
    before = time.time()
    QuickLog(_logger("cks.test.stamped", handler)).info("GET %d", 200)
    handler.close()
    line = target.stream.getvalue()
    assert line.endswith(" cks.test.stamped: GET 200\n")
    stamp = time.mktime(time.strptime(line[:19], "%Y-%m-%d %H:%M:%S"))
    assert int(before) <= stamp <= time.time()
