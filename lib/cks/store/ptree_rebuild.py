"""Rebuilding the prefix tree (ptree.py) from cks_keys, and checking the
stored one against them: both stream the stored hashes in order, so that a
tree over millions of keys takes little memory (`cks_admin.py ptree`)."""

from __future__ import annotations

import collections
import logging
from typing import Deque, Dict, Iterator, List, Set, Tuple

from ..sync.recon.field import (JOIN_THRESHOLD, SPLIT_THRESHOLD, add_element, empty_samples,
                                samples_of)
from .ptree import (BITQUANTUM, CHILD_BITS, HASH_BITS, NODE_COLUMNS, Node, Summary, TreeError,
                    add_nodes, decode_node, element_of, lock_tree, multiply, prefix_range,
                    save_nodes)
from .sql import Cursor

log = logging.getLogger("cks.store.ptree")

REBUILD_PAGE = 10000
"""Hashes read per query by rebuild and check, which stream cks_keys in order."""


class _HashStream:
    """Every stored hash in order, read REBUILD_PAGE at a time, so that a tree
    over millions of keys is built or checked in little memory."""

    def __init__(self, cursor: Cursor) -> None:
        self.cursor = cursor
        self.buffer: Deque[str] = collections.deque()
        self.after = ""
        self.exhausted = False

    def _fill(self) -> bool:
        if self.exhausted:
            return False
        rows = self.cursor.execute("SELECT sks_hash FROM cks_keys WHERE sks_hash > ? "
                                   "ORDER BY sks_hash LIMIT ?",
                                   (self.after, REBUILD_PAGE)).fetchall()
        self.buffer.extend(r[0] for r in rows)
        self.exhausted = len(rows) < REBUILD_PAGE
        if rows:
            self.after = rows[-1][0]
        return bool(rows)

    def peek(self, count: int, highest: str) -> int:
        """How many of the next `count` hashes are <= highest."""
        while len(self.buffer) < count and self._fill():
            pass
        seen = 0
        for h in self.buffer:
            if seen == count or h > highest:
                break
            seen += 1
        return seen

    def take(self, highest: str) -> Iterator[str]:
        """The next hashes up to `highest`, consumed."""
        while self.buffer or self._fill():
            if self.buffer[0] > highest:
                return
            yield self.buffer.popleft()

    def rest(self) -> int:
        """Consume and count what is left."""
        count = len(self.buffer)
        self.buffer.clear()
        while self._fill():
            count += len(self.buffer)
            self.buffer.clear()
        return count


def _build_stream(prefix: str, stream: _HashStream, out: List[Node]) -> Node:
    """_build, reading the hashes from the stream."""
    highest = prefix_range(prefix)[1]  # type: ignore[index]
    if stream.peek(SPLIT_THRESHOLD + 1, highest) <= SPLIT_THRESHOLD \
            or len(prefix) >= HASH_BITS:
        hashes = list(stream.take(highest))
        node = Node(prefix, len(hashes), samples_of(element_of(h) for h in hashes), True)
        out.append(node)
        return node
    node = Node(prefix, 0, empty_samples(), False)
    out.append(node)
    for bits in CHILD_BITS:
        child = _build_stream(prefix + bits, stream, out)
        node.size += child.size
        node.samples = multiply(node.samples, child.samples)
    return node


def rebuild(cursor: Cursor) -> Summary:
    """Replace the tree by one built from cks_keys (inside a write transaction;
    the root row stays, so writers waiting for its lock go on after us)."""
    lock_tree(cursor)
    has_root = cursor.scalar("SELECT count(*) FROM cks_ptree WHERE prefix = ?", ("",)) > 0
    cursor.execute("DELETE FROM cks_ptree WHERE prefix <> ?", ("",))
    stream = _HashStream(cursor)
    nodes: List[Node] = []
    root = _build_stream("", stream, nodes)
    left = stream.rest()
    if left:
        log.error("SKS reconciliation tree: %d hashes in cks_keys are not 32 upper-case hex "
                  "digits and were left out", left)
    if has_root:
        save_nodes(cursor, [root])
    else:
        add_nodes(cursor, [root])
    for start in range(1, len(nodes), 1000):
        add_nodes(cursor, nodes[start:start + 1000])
    return Summary(root.size, len(nodes), max(len(n.prefix) for n in nodes) // BITQUANTUM)


def _consume(stream: _HashStream, highest: str) -> Tuple[int, List[int]]:
    size, samples = 0, empty_samples()
    for h in stream.take(highest):
        size += 1
        samples = add_element(samples, element_of(h))
    return size, samples


def _verify(prefix: str, stored: Dict[str, Node], stream: _HashStream, seen: Set[str],
            problems: List[str]) -> Tuple[int, List[int]]:
    """The true size and samples of the subtree at `prefix` (from the
    stream), comparing the stored nodes on the way."""
    highest = prefix_range(prefix)[1]  # type: ignore[index]
    node = stored.get(prefix)
    if node is None:
        size, samples = _consume(stream, highest)
        problems.append("node %r is missing (%d elements fall under it)" % (prefix, size))
        return size, samples
    seen.add(prefix)
    name = "node %r" % prefix
    if not node.leaf and len(prefix) >= HASH_BITS:
        problems.append("%s is inner at the deepest level" % name)
    if node.leaf or len(prefix) >= HASH_BITS:
        size, samples = _consume(stream, highest)
        if size > SPLIT_THRESHOLD and len(prefix) < HASH_BITS:
            problems.append("%s is a leaf of %d elements (leaves split above %d)"
                            % (name, size, SPLIT_THRESHOLD))
    else:
        size, samples = 0, empty_samples()
        for bits in CHILD_BITS:
            child_size, child_samples = _verify(prefix + bits, stored, stream, seen, problems)
            size += child_size
            samples = multiply(samples, child_samples)
        if size <= JOIN_THRESHOLD:
            problems.append("%s is inner with %d elements (inner nodes join at %d or fewer)"
                            % (name, size, JOIN_THRESHOLD))
    if node.size != size:
        problems.append("%s has size %d, cks_keys has %d elements under it"
                        % (name, node.size, size))
    if node.samples != samples:
        problems.append("%s has wrong sample values" % name)
    return size, samples


def check(cursor: Cursor) -> List[str]:
    """Recompute sizes and sample values from cks_keys and compare them with
    the stored tree, and its shape with the split and join rules; one line
    per problem, none when it is right.  Use a snapshot cursor."""
    problems: List[str] = []
    stored: Dict[str, Node] = {}
    for row in cursor.execute("SELECT %s FROM cks_ptree" % NODE_COLUMNS).fetchall():
        try:
            stored[row[0]] = decode_node(row)
        except (TreeError, ValueError) as exc:
            problems.append("node %r cannot be read: %s" % (row[0], exc))
            stored[row[0]] = Node(row[0], int(row[1]), [], bool(row[3]))
    stream = _HashStream(cursor)
    seen: Set[str] = set()
    _verify("", stored, stream, seen, problems)
    left = stream.rest()
    if left:
        problems.append("%d hashes in cks_keys are not 32 upper-case hex digits" % left)
    for prefix in sorted(set(stored) - seen):
        problems.append("node %r is not reachable from the root (below a leaf, or not a "
                        "node name)" % prefix)
    return problems
