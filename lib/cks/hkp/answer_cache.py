"""Lookup answers kept in memory while the keys they describe do not change.

GnuPG refreshes, crawlers and key pages ask for the same keys over and over,
and each answer costs database round trips and armoring.  The cache keeps
whole answers (200 and 404) under what they depend on: the request target and
the two facts about the client that change an answer (GnuPG is handed no key
of a version it cannot read by a text search; a browser gets HTML errors).

An answer is served only while the stored keys are as they were when it was
made: the database's generation (store/changes.py) is read BEFORE the answer
is computed and stored with it, and a new generation empties the cache.  An
index answer also shows whether keys have expired by now, so no answer is
kept longer than MAX_AGE seconds.  Least recently used answers go first when
the answers pass `max_bytes`.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Callable, Hashable, Optional, Tuple

from ..store.changes import KeyChangeWatch

MAX_AGE = 60.0
AnswerKey = Tuple[str, Optional[int], bool]  # target, newest version read, wants HTML


class AnswerCache:
    def __init__(self, watch: KeyChangeWatch, max_bytes: int, max_age: float = MAX_AGE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.watch = watch
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.clock = clock
        self.size = 0
        self._answers: "OrderedDict[AnswerKey, Tuple[object, int, float]]" = OrderedDict()
        self._generation: Optional[Hashable] = None
        self._lock = threading.Lock()  # the loop's thread and the workers share it

    def generation(self) -> Optional[Hashable]:
        """The database's generation now; None: nothing may be cached.  Ask
        before computing an answer, and hand the value to put()."""
        generation = self.watch.generation()
        with self._lock:
            if generation != self._generation:
                self._answers.clear()
                self.size = 0
                self._generation = generation
        return generation

    def get(self, key: AnswerKey, generation: Optional[Hashable]) -> Optional[object]:
        with self._lock:
            found = self._answers.get(key)
            if found is None or generation is None or generation != self._generation \
                    or self.clock() - found[2] > self.max_age:
                return None
            self._answers.move_to_end(key)
            return found[0]

    def put(self, key: AnswerKey, generation: Optional[Hashable], answer: object,
            size: int) -> None:
        """Keep `answer` (`size` bytes), made from the database at `generation`."""
        if generation is None or size > self.max_bytes // 8:
            return
        with self._lock:
            if generation != self._generation:
                return  # the keys changed while it was being made
            old = self._answers.pop(key, None)
            if old is not None:
                self.size -= old[1]
            self._answers[key] = (answer, size, self.clock())
            self.size += size
            while self.size > self.max_bytes:
                _, (_, dropped, _) = self._answers.popitem(last=False)
                self.size -= dropped
