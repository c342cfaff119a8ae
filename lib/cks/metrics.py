"""Metrics in the Prometheus text format (version 0.0.4), counted by several
processes and summed when read.

Every metric (a Family) and every combination of its label values is
declared up front, so each has fixed slots: a counter or gauge one, a
histogram one per bucket and one for the sum of what it observed.
SharedMetrics keeps the slots in memory made before the serving processes
are forked (multiprocessing.RawArray), one row per process.  A process adds
to its own row only, under a lock of its own (its threads share the row);
a scrape sums the rows.  No lock is shared between processes, and counting
a request is a few additions.
"""

from __future__ import annotations

import bisect
import itertools
import math
import multiprocessing
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, Iterable, Iterator, List, Sequence, Tuple

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = Tuple[Tuple[str, str], ...]  # (name, value) pairs, in output order
Sample = Tuple[str, Labels, float]  # name suffix ("", "_bucket", "_sum", "_count"), labels, value


def combinations(*values: Sequence[str]) -> Tuple[Tuple[str, ...], ...]:
    """Every combination of one value per label, e.g. for a Family's label_values."""
    return tuple(itertools.product(*values))


@dataclass(frozen=True)
class Family:
    """One metric.  `label_values` lists every combination it may take (an
    empty value leaves its label out of that sample); a `sparse` family
    shows only the combinations counted at least once."""

    name: str
    kind: str  # "counter", "gauge" or "histogram"
    help: str
    label_names: Tuple[str, ...] = ()
    label_values: Tuple[Tuple[str, ...], ...] = ((),)
    buckets: Tuple[float, ...] = ()  # histograms: the upper bounds, increasing
    sparse: bool = False
    _positions: Dict[Tuple[str, ...], int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_positions", {
            values: index * self.width for index, values in enumerate(self.label_values)})

    @property
    def width(self) -> int:
        """Slots per label combination: buckets, +Inf and the sum for a histogram."""
        return len(self.buckets) + 2 if self.kind == "histogram" else 1

    @property
    def size(self) -> int:
        return self.width * len(self.label_values)

    def position(self, values: Tuple[str, ...]) -> int:
        """The first slot of a label combination, from the family's first (KeyError:
        not declared)."""
        return self._positions[values]

    def samples(self, slots: Sequence[float]) -> Iterator[Sample]:
        """The samples that the family's `slots` (summed over processes) make."""
        for values in self.label_values:
            start = self._positions[values]
            labels = tuple((n, v) for n, v in zip(self.label_names, values) if v)
            if self.kind != "histogram":
                if slots[start] or not self.sparse:
                    yield "", labels, slots[start]
                continue
            counts = itertools.accumulate(slots[start:start + len(self.buckets) + 1])
            cumulative = list(counts)
            if self.sparse and not cumulative[-1]:
                continue
            bounds = [format_value(b) for b in self.buckets] + ["+Inf"]
            for bound, count in zip(bounds, cumulative):
                yield "_bucket", labels + (("le", bound),), count
            yield "_sum", labels, slots[start + len(self.buckets) + 1]
            yield "_count", labels, cumulative[-1]


def format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 2 ** 53:
        return str(int(value))
    return repr(value)


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_family(name: str, kind: str, help_text: str, samples: Iterable[Sample]) -> str:
    """A metric's HELP and TYPE lines, then a line per sample."""
    lines = ["# HELP %s %s" % (name, escape_help(help_text)), "# TYPE %s %s" % (name, kind)]
    for suffix, labels, value in samples:
        text = ",".join('%s="%s"' % (n, escape_label_value(v)) for n, v in labels)
        lines.append("%s%s%s %s" % (name, suffix, "{%s}" % text if text else "",
                                    format_value(value)))
    return "\n".join(lines) + "\n"


def render(families: Sequence[Family], slots: Sequence[float]) -> str:
    """The families, whose slots lie one after the other in `slots`."""
    out = []
    start = 0
    for family in families:
        own = slots[start:start + family.size]
        out.append(format_family(family.name, family.kind, family.help, family.samples(own)))
        start += family.size
    return "".join(out)


class Row:
    """One process's slots: it counts here, from any of its threads."""

    def __init__(self, slots: memoryview, start: int) -> None:
        self._slots = slots
        self._start = start
        self._lock = threading.Lock()

    def add(self, slot: int, amount: float = 1.0) -> None:
        with self._lock:
            self._slots[self._start + slot] += amount

    def add_and_observe(self, slot: int, histogram: int, buckets: Sequence[float],
                        value: float) -> None:
        """Add 1 at `slot` and count `value` in the histogram whose first slot
        is `histogram`, under one lock (a request: its count and its time)."""
        start = self._start
        bucket = start + histogram + bisect.bisect_left(buckets, value)
        total = start + histogram + len(buckets) + 1
        slots = self._slots
        with self._lock:
            slots[start + slot] += 1
            slots[bucket] += 1
            slots[total] += value


class SharedMetrics:
    """The slots of `families` for `processes` processes.  Make it before
    forking them; each process counts in row(its index)."""

    def __init__(self, families: Sequence[Family], processes: int = 1) -> None:
        self.families = tuple(families)
        self.processes = processes
        self.started = time.time()
        self._first: Dict[str, int] = {}
        width = 0
        for family in self.families:
            self._first[family.name] = width
            width += family.size
        self.width = width
        self._slots = memoryview(multiprocessing.RawArray("d", width * processes)) \
            .cast("B").cast("d")

    def slot(self, family: Family, values: Tuple[str, ...] = ()) -> int:
        """Where in a row a label combination of `family` starts."""
        return self._first[family.name] + family.position(values)

    def row(self, process: int) -> Row:
        if not 0 <= process < self.processes:
            raise IndexError("no row %d among %d processes" % (process, self.processes))
        return Row(self._slots, process * self.width)

    def totals(self) -> List[float]:
        """Every slot summed over the processes' rows."""
        rows = [self._slots[r * self.width:(r + 1) * self.width].tolist()
                for r in range(self.processes)]
        return [math.fsum(column) for column in zip(*rows)]

    def render(self) -> str:
        return render(self.families, self.totals())
