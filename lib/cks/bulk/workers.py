"""The worker processes of a bulk load: forked together, each given one job
at a time through a pipe of its own by a thread of the loading process.

No lock and no pipe is shared between workers, so one that dies (the
kernel's out-of-memory killer, kill -9) takes nothing with it: its thread
finds its pipe closed and fails the job (WorkerDied), and every job it
takes after.  multiprocessing.Pool forked a replacement, and waited for the
lost job for ever; ProcessPoolExecutor waited for ever for the rest of a
result the worker died sending, which the other workers then waited to send
theirs after.  A worker, likewise, finds its pipe closed when the loading
process is gone, and ends, quietly (a pool's workers printed tracebacks, or
waited for a job for ever).
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
import time
from multiprocessing.connection import Connection
from typing import Any, Callable, Generic, Iterator, List, Optional, Sequence, Tuple, TypeVar

T = TypeVar("T")


class WorkerDied(Exception):
    """A worker process died: what it was given is lost."""


class Job(Generic[T]):
    """A job given to the workers, and its outcome once a worker is done."""

    def __init__(self, argument: Any) -> None:
        self.argument = argument
        self.finished = 0.0  # when it was done (time.monotonic)
        self._outcome: Tuple[bool, Any] = (False, None)  # (failed, result or exception)
        self._done = threading.Event()

    def settle(self, failed: bool, value: Any) -> None:
        self.finished = time.monotonic()
        self._outcome = failed, value
        self._done.set()

    def result(self) -> T:
        """Its result, once it is done; what the worker raised is raised here."""
        self._done.wait()
        failed, value = self._outcome
        if failed:
            raise value
        return value


class Workers(Generic[T]):
    """`count` processes forked now, each of which runs `start(*args)` and
    then `function` on the argument of each job it is given."""

    def __init__(self, count: int, function: Callable[[Any], T],
                 start: Callable[..., None], args: Sequence[Any]) -> None:
        context = multiprocessing.get_context("fork")
        self._jobs: queue.Queue[Optional[Job[T]]] = queue.Queue()
        self._processes = []
        ours: List[Connection] = []
        for _ in range(count):
            mine, theirs = context.Pipe()
            # (daemonic: should close() never come, the process's exit ends them)
            process = context.Process(target=_serve, daemon=True, args=(
                theirs, ours + [mine], function, start, tuple(args)))
            process.start()
            theirs.close()
            ours.append(mine)
            self._processes.append(process)
        self._threads = [threading.Thread(target=self._feed, args=(end,), daemon=True)
                         for end in ours]  # (started once every worker is forked)
        for thread in self._threads:
            thread.start()

    def give(self, argument: Any) -> Job[T]:
        job: Job[T] = Job(argument)
        self._jobs.put(job)
        return job

    def close(self) -> None:
        """Wait for the jobs given, then end the workers."""
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join()
        for process in self._processes:
            process.join()

    def _feed(self, end: Connection) -> None:
        """Give the worker at the other `end` of its pipe one job at a time,
        until close(); once it died, fail each job taken."""
        alive = True
        with end:
            for job in iter(self._jobs.get, None):
                if alive:
                    try:
                        end.send(job.argument)
                        job.settle(*end.recv())
                        continue
                    except (EOFError, OSError):
                        alive = False
                    except Exception as exc:  # (an argument or a reply that does not pickle)
                        job.settle(True, exc)
                        continue
                job.settle(True, WorkerDied("a worker process of the load died "
                                             "(out of memory? killed?)"))


def _serve(end: Connection, inherited: List[Connection], function: Callable[[Any], Any],
           start: Callable[..., None], args: Tuple[Any, ...]) -> None:
    """A worker process: `function` on each argument read from `end`, its
    result or exception written back, until the loading process closes its
    end or is gone.  The loading process's ends of the pipes, inherited, are
    closed, so that they close when it does."""
    for other in inherited:
        other.close()
    start(*args)
    for argument in _received(end):
        try:
            reply: Tuple[bool, Any] = (False, function(argument))
        except Exception as exc:
            reply = True, exc
        try:
            end.send(reply)
        except OSError:  # (the loading process is gone)
            return


def _received(end: Connection) -> Iterator[Any]:
    """What comes from `end`, until its other end is closed (its process gone:
    a socket's end closed with a reply unread says so by ECONNRESET)."""
    while True:
        try:
            argument = end.recv()
        except (EOFError, OSError):
            return
        yield argument
