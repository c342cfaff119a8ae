"""The serving loop's selector: a new connection on a listening socket that
several serving processes watch wakes one of them, not all."""

import selectors
import socket
import threading

import pytest

from cks.hkp.server import LISTENER, loop_selector

BLOCKED_FIRST = 0.5  # seconds the waiters get to block in select() before the connection


def _woken(make_selector, waiters: int = 2) -> int:
    """How many of `waiters` selectors, each blocked in its own thread on one
    listening socket (as each serving process's loop is), a new connection wakes."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    ready = threading.Barrier(waiters + 1)
    woke = []

    def wait() -> None:
        selector = make_selector()
        selector.register(listener, selectors.EVENT_READ, LISTENER)
        ready.wait()
        events = selector.select(timeout=BLOCKED_FIRST + 1.5)
        woke.extend(key.data for key, _ in events)
        selector.close()

    threads = [threading.Thread(target=wait) for _ in range(waiters)]
    for thread in threads:
        thread.start()
    ready.wait()
    threading.Event().wait(BLOCKED_FIRST)
    client = socket.create_connection(listener.getsockname())
    for thread in threads:
        thread.join()
    client.close()
    listener.close()
    assert all(data == LISTENER for data in woke)
    return len(woke)


@pytest.mark.skipif(not hasattr(selectors, "EpollSelector"), reason="epoll is Linux's")
def test_a_new_connection_wakes_one_waiting_loop():
    assert _woken(loop_selector) == 1


def test_a_plain_selector_wakes_every_waiting_loop():
    """The control: without the exclusive registration both loops wake."""
    assert _woken(selectors.DefaultSelector) == 2


def test_the_loop_selector_serves_other_sockets_as_before():
    selector = loop_selector()
    left, right = socket.socketpair()
    try:
        selector.register(left, selectors.EVENT_READ, "connection")
        assert selector.select(timeout=0) == []
        right.send(b"x")
        assert [key.data for key, _ in selector.select(timeout=1)] == ["connection"]
        selector.modify(left, selectors.EVENT_WRITE, "connection")
        assert [events for _, events in selector.select(timeout=1)] == [selectors.EVENT_WRITE]
        selector.unregister(left)
        assert selector.select(timeout=0) == []
    finally:
        selector.close()
        left.close()
        right.close()
