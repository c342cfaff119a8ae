"""Counts the serving processes of one cksd share, with no lock between them."""

import multiprocessing
import os
import signal
import threading

from cks.shared_counts import SharedCounts


def test_processes_adding_at_once_lose_no_addition():
    """Three processes add to the same column at once, each in its own
    row: the total is every addition, without a lock shared between them."""
    rows = SharedCounts.rows(3, 2)
    context = multiprocessing.get_context("fork")
    children = [context.Process(target=lambda row=row: [row.add(0) for _ in range(20000)])
                for row in rows[1:]]
    for child in children:
        child.start()
    for _ in range(20000):
        rows[0].add(0)
    for child in children:
        child.join()
    assert [row.total(0) for row in rows] == [60000] * 3 and rows[0].total(1) == 0


def test_the_highest_is_any_process_raise():
    first, second = SharedCounts.rows(2, 1)
    second.raise_to(0, 7)
    first.raise_to(0, 5)
    second.raise_to(0, 3)  # (never lowers a row)
    assert first.highest(0) == second.highest(0) == 7 and first.total(0) == 12


def test_a_process_killed_while_it_adds_holds_up_no_other():
    """A process killed while it adds in a loop (kill -9, the OOM killer):
    the others go on adding (a shared lock it held would stop them for good)."""
    first, second = SharedCounts.rows(2, 1)
    context = multiprocessing.get_context("fork")
    child = context.Process(target=lambda: [second.add(0) for _ in iter(int, 1)])
    child.start()
    while first.total(0) < 1000:
        pass
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    before = first.total(0)
    adding = threading.Thread(target=lambda: [first.add(0) for _ in range(1000)])
    adding.start()
    adding.join(5)
    assert not adding.is_alive() and first.total(0) == before + 1000
