"""The prefix tree (ptree.py) as a recon round reads it: LocalTree.node(prefix)
-> NodeView (size, samples, is_leaf, elements(), children()), over one
cursor; open_tree(store) gives one on a read-only snapshot, so a recon
session sees one state of the set; open_tree(store, TreeCache) one that
starts from the nodes that earlier rounds read over the same set (cksd's
rounds)."""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from typing import (Callable, Dict, Hashable, Iterator, List, Optional, Sequence, Set, Tuple,
                    Union)

from ..sync.recon.field import samples_of
from .base import Store
from .changes import KeyChangeWatch
from .ptree import (CHILD_BITS, Node, ancestors, check_prefix, decode_node, element_of,
                    hashes_under, hashes_under_each, load_nodes, load_rows)
from .sql import Cursor

GRANDCHILDREN = [a + b for a in CHILD_BITS for b in CHILD_BITS]
TOP = [""] + CHILD_BITS + GRANDCHILDREN
"""The root and the two levels below it: where a round finding a few
differences goes, read in one query."""


class NodeView:
    """A node as the recon session sees it.  `prefix` below a leaf is answered
    too (a peer's tree may be deeper than ours): its values are computed from
    its elements, and it is a leaf."""

    def __init__(self, tree: "LocalTree", prefix: str, size: int, samples: List[int],
                 is_leaf: bool) -> None:
        self._tree = tree
        self.prefix = prefix
        self.size = size
        self.samples = samples
        self.is_leaf = is_leaf

    def elements(self) -> List[int]:
        """Every element under this node (for a large node: many; ask leaves)."""
        hashes = self._tree._hashes.get(self.prefix)
        if hashes is None:
            hashes = hashes_under(self._tree.cursor, self.prefix)
        return [element_of(h) for h in hashes]

    def children(self) -> List["NodeView"]:
        """The 4 children in order 00, 01, 10, 11; none for a leaf."""
        if self.is_leaf:
            return []
        prefixes = [self.prefix + bits for bits in CHILD_BITS]
        stored = load_nodes(self._tree.cursor, prefixes)
        return [NodeView(self._tree, p, stored[p].size, stored[p].samples, stored[p].leaf)
                if p in stored else self._tree.node(p) for p in prefixes]

    def __repr__(self) -> str:
        return "NodeView(%r, size=%d, %s)" % (self.prefix, self.size,
                                              "leaf" if self.is_leaf else "inner")


class LocalTree:
    """Our side of recon: node(prefix) -> NodeView.  Use open_tree() for one
    on a snapshot, so that all answers of a session describe one state of
    the set.  `cursor`: a cursor, or a function that opens one when a query
    is first due; `shared`: the nodes kept from other snapshots of the same
    set (TreeCache), which this one adds to while there is room."""

    def __init__(self, cursor: Union[Cursor, Callable[[], Cursor]],
                 shared: Optional["SharedNodes"] = None) -> None:
        self._cursor = cursor
        self._shared = shared
        # Nodes read so far: they are of one state of the set, so they stay
        # true.  Reading a node reads its children along, which a round may
        # ask next; a row is decoded when it is first asked for.
        self._rows: Dict[str, tuple] = shared.rows if shared else {}
        self._nodes: Dict[str, Node] = shared.nodes if shared else {}
        self._absent: Set[str] = shared.absent if shared else set()  # below a leaf
        self._hashes: Dict[str, List[str]] = {}  # the hashes under a prefix, when prefetched

    @property
    def cursor(self) -> Cursor:
        if callable(self._cursor):
            self._cursor = self._cursor()
        return self._cursor

    def root(self) -> NodeView:
        return self.node("")

    def prefetch(self, prefixes: Sequence[str]) -> None:
        """Read the nodes a batch of recon requests names, and their children
        (which a round asks next), in one query: on PostgreSQL a query is a
        round trip, and a round asks about hundreds of nodes."""
        for prefix in prefixes:
            check_prefix(prefix)
        self._load([p for p in prefixes if p not in self._rows and p not in self._absent], [])

    def read_top(self) -> None:
        """Read and decode the root and the two levels below it, where a
        round finding a few differences goes."""
        self.prefetch(CHILD_BITS)
        for prefix in TOP:
            self.node(prefix)

    def _load(self, prefixes: Sequence[str], along: Sequence[str]) -> None:
        """Read these nodes, their children and the `along` ones; remember
        which of `prefixes` the tree does not hold (below a leaf)."""
        if not prefixes:
            return
        wanted = {q for p in prefixes for q in [p] + [p + bits for bits in CHILD_BITS]}
        if "" in prefixes:  # the root with two levels: where a round finding a
            wanted.update(GRANDCHILDREN)  # few differences goes, in one query
        rows = load_rows(self.cursor, sorted(wanted | set(along)))
        if self._shared is not None and not self._shared.keeps(len(rows)):
            self._shared = None  # no room: go on with copies of what is shared
            self._rows, self._nodes, self._absent = \
                dict(self._rows), dict(self._nodes), set(self._absent)
        self._rows.update(rows)
        self._absent.update(p for p in prefixes if p not in self._rows)

    def prefetch_elements(self, prefixes: Sequence[str]) -> None:
        """Read the elements under these (small) nodes in one query."""
        for prefix in prefixes:
            check_prefix(prefix)
        self._hashes.update(hashes_under_each(
            self.cursor, [p for p in prefixes if p not in self._hashes]))

    def node(self, prefix: str) -> NodeView:
        check_prefix(prefix)
        found = self._nodes.get(prefix)
        if found is None:
            if prefix not in self._rows and prefix not in self._absent:
                self._load([prefix], ancestors(prefix))
            row = self._rows.get(prefix)
            if row is not None:
                found = self._nodes[prefix] = decode_node(row)
        if found is not None:
            return NodeView(self, prefix, found.size, found.samples, found.leaf)
        # Below a leaf (or in a damaged tree): computed from the elements.
        hashes = self._hashes.get(prefix)
        elements = [element_of(h) for h in (hashes_under(self.cursor, prefix)
                                            if hashes is None else hashes)]
        return NodeView(self, prefix, len(elements), samples_of(elements), True)


@dataclass
class SharedNodes:
    """The nodes read from the tree while the set was one set (TreeCache),
    for every round over that set."""

    max_rows: int
    rows: Dict[str, tuple] = field(default_factory=dict)
    nodes: Dict[str, Node] = field(default_factory=dict)
    absent: Set[str] = field(default_factory=set)

    def keeps(self, count: int) -> bool:
        """Is there room for `count` more rows?"""
        return len(self.rows) + count <= self.max_rows


TREE_CACHE_ROWS = 5000
"""Nodes a TreeCache keeps (about 1.3 KB each with the row they were read
from: 6 MB in all): a round finding ten differences reads some 20 to 100,
and a tree of a million keys has about 50,000."""


class TreeCache:
    """The tree's nodes read by earlier rounds, kept while the set is the
    same: a round of an idle node reads its first levels from memory,
    without a query (on PostgreSQL each is a round trip), and decodes them
    once.

    When is the set the same?  While no key changed: the generation of the
    stored keys (`watch`, changes.py) is still the one the nodes were kept
    at.  A change by another process shows there a moment after its commit
    (on PostgreSQL when the notification comes; on SQLite within 2 ms, and
    any commit counts, a round's record of itself too); a round that starts
    within that moment answers from the nodes of just before, as a round
    that started a moment earlier would have, and the next round sees the
    change.  When the generation moved, the round opens its snapshot and
    reads the root: the root's size and sample values name the set (six
    values modulo a 128-bit prime: another set with the same ones is a
    negligible chance), and a node's values depend only on the elements
    under its prefix, not on the tree's shape.  So the kept nodes are still
    used when the root is the same, whatever was written in between; where
    the shape changed meanwhile (a leaf split, a node joined), a kept inner
    node's children are read now (below a leaf: computed from its elements),
    and so are a kept leaf's elements."""

    def __init__(self, watch: KeyChangeWatch, max_rows: int = TREE_CACHE_ROWS) -> None:
        self.watch = watch
        self.max_rows = max_rows
        self._lock = threading.Lock()
        self._shared: Optional[SharedNodes] = None
        self._generation: Optional[Hashable] = None

    def unchanged(self) -> Tuple[Optional[SharedNodes], Optional[Hashable]]:
        """The kept nodes if no key changed since they were kept (else
        None), and the generation now, for adopt()."""
        generation = self.watch.generation()
        with self._lock:
            same = generation is not None and generation == self._generation
            return (self._shared if same else None), generation

    def adopt(self, generation: Optional[Hashable], top: Dict[str, tuple]) -> SharedNodes:
        """The nodes for a snapshot opened after `generation` was read, whose
        first levels' rows are `top`: the kept ones if the set is the same
        (the same root), else these."""
        with self._lock:
            if self._shared is None or self._shared.rows.get("") != top[""]:
                self._shared = SharedNodes(self.max_rows, dict(top))
            self._generation = generation
            return self._shared


@contextlib.contextmanager
def snapshot(store: Store) -> Iterator[Cursor]:
    """A cursor whose queries all see one state of the database, while keys
    are written meanwhile (PostgreSQL: a REPEATABLE READ READ ONLY transaction;
    SQLite in WAL mode: a read transaction)."""
    with store.read() as cursor:
        cursor.backend.begin_snapshot(cursor)
        try:
            yield cursor
        except BaseException:
            with contextlib.suppress(Exception):
                cursor.execute("ROLLBACK")
            raise
        cursor.execute("ROLLBACK")


@contextlib.contextmanager
def open_tree(store: Store, cache: Optional[TreeCache] = None) -> Iterator[LocalTree]:
    """The tree on one snapshot; with `cache`, starting from the nodes kept
    from earlier rounds over the same set, and, while no key changed, with
    the snapshot opened only when a node not kept must be read."""
    shared, generation = cache.unchanged() if cache is not None else (None, None)
    if shared is not None:
        with contextlib.ExitStack() as opened:
            yield LocalTree(lambda: opened.enter_context(snapshot(store)), shared)
        return
    with snapshot(store) as cursor:
        # (the root with the levels a round reads first, in the one query)
        top = load_rows(cursor, TOP) if cache is not None else {}
        yield LocalTree(cursor, cache.adopt(generation, top) if "" in top else None)
