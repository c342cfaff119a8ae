"""Items taken in runs of a byte budget: what reads stored keys a bounded
amount at a time (served views derived again, a hashquery's answer) share."""

from __future__ import annotations

from typing import Iterable, Iterator, List, Tuple, TypeVar

Item = TypeVar("Item")


def in_runs(sized: Iterable[Tuple[Item, int]], budget: int) -> Iterator[List[Item]]:
    """The items of (item, size) pairs, in order, in runs whose sizes add up
    to `budget` at most (an item larger than that alone)."""
    run: List[Item] = []
    total = 0
    for item, size in sized:
        if run and total + size > budget:
            yield run
            run, total = [], 0
        run.append(item)
        total += size
    if run:
        yield run
