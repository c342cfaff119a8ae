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
from support.disk import tmpfs

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


def _file_logger(name, stream):
    """A logger whose lines a BatchingHandler writes to `stream`."""
    target = logging.StreamHandler(stream)
    target.setFormatter(logging.Formatter(FORMAT))
    handler = BatchingHandler(target)
    handler.start()
    return _logger(name, handler), handler


def _batch(logger, handler, lines, text="line"):
    for n in range(lines):
        logger.info("%s %d", text, n)
    time.sleep(0.1)  # (written by the thread a moment after the first)


def test_lines_that_cannot_be_written_are_one_line_on_stderr_then_one_when_it_ends(
        capsys, tmp_path):
    """A full disk: the first failure and its end, one line each on standard
    error (the journal), and no more in between (each batch was a 20-line
    traceback: 3,341 lines for 1,200 requests)."""
    with open("/dev/full", "w") as full, open(tmp_path / "log", "w") as room:
        logger, handler = _file_logger("cks.test.full", full)
        for _ in range(3):
            _batch(logger, handler, 3)
        handler.target.setStream(room)  # space again
        _batch(logger, handler, 1, "after")
        handler.close()
    assert capsys.readouterr().err.splitlines() == [
        "cks.log: cannot write to /dev/full: [Errno 28] No space left on device; "
        "log lines lost: 3",
        "cks.log: writing to /dev/full again"]
    assert (tmp_path / "log").read_text() == "cks.test.full: after 0\n"


@pytest.fixture
def small_tmpfs(tmp_path):
    """A directory on a 64 kB tmpfs, to fill."""
    with tmpfs(tmp_path / "small", "64k") as directory:
        yield directory


def test_lines_said_lost_on_a_full_disk_are_never_written(capsys, small_tmpfs):
    """Lines said to be lost are dropped: once there was room again, the
    file's buffer wrote what it had kept (a torn line, then 49 old lines
    said to be lost) before the new lines."""
    path = small_tmpfs / "access.log"
    with open(path, "a", encoding="utf-8") as stream:
        logger, handler = _file_logger("cks.test.tmpfs", stream)
        for _ in range(20):  # 80 kB in all, 64 kB of room
            _batch(logger, handler, 50, "before" + "." * 60)
        assert "No space left on device" in capsys.readouterr().err
        with open(path, "w"):
            pass  # room again
        _batch(logger, handler, 3, "after")
        handler.close()
    assert path.read_text() == "".join("cks.test.tmpfs: after %d\n" % n for n in range(3))
    assert capsys.readouterr().err.splitlines() == [
        "cks.log: writing to %s again" % path]
