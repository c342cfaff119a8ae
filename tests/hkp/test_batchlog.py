"""cksd's background logging (batchlog.py): a record queued by
RecordQueueHandler and written by BatchingListener reads exactly as the
handler would have written it at once, arguments and traceback included."""

import io
import logging
import queue

from cks.batchlog import BatchingListener, RecordQueueHandler

FORMAT = "%(name)s: %(message)s"


def _stream_handler():
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(logging.Formatter(FORMAT))
    return handler


def _log_some(logger, mutable):
    logger.info('%s "%s" %d %.1fms', "192.0.2.1", "GET / HTTP/1.1", 200, 0.25)
    logger.warning("peers: %s", mutable)
    try:
        raise ValueError("broken input")
    except ValueError:
        logger.exception("a job failed after %d s", 3)


def test_queued_lines_read_as_the_handler_writes_them_directly():
    direct = _stream_handler()
    logger = logging.getLogger("cks.test.direct")
    logger.handlers, logger.propagate = [direct], False
    _log_some(logger, ["a"])

    written = _stream_handler()
    records = queue.SimpleQueue()
    listener = BatchingListener(records, written, respect_handler_level=True)
    logger = logging.getLogger("cks.test.queued")
    logger.handlers, logger.propagate = [RecordQueueHandler(records)], False
    listener.start()
    peers = ["a"]
    _log_some(logger, peers)
    peers.append("changed after the call")  # the line keeps what was logged
    listener.stop()

    expected = direct.stream.getvalue().replace("cks.test.direct", "cks.test.queued")
    assert written.stream.getvalue() == expected
    assert "peers: ['a']\n" in expected
    assert "ValueError: broken input" in expected


def test_a_record_is_queued_itself_with_its_message_final():
    records = queue.SimpleQueue()
    handler = RecordQueueHandler(records)
    record = logging.LogRecord("cks.access", logging.INFO, __file__, 1, "%s %d",
                               ("GET", 200), None)
    handler.handle(record)
    queued = records.get_nowait()
    assert queued is record
    assert (queued.msg, queued.args) == ("GET 200", None)
