"""The SKS reconciliation set, kept in the database: a prefix tree over the
set elements of the stored keys (table cks_ptree, see schema.sql).

Why a tree in the database.  SKS reconciliation ("recon") compares the
sample values of prefix-tree nodes with a peer's.  Computing them on demand
would read every key for the root; SKS and Hockeypuck keep them, and so does
this table: a request reads a handful of rows.

The set and its prefixes.  A key's element is its SKS hash (cks_keys.sks_hash,
32 upper-case hex digits) read as a LITTLE-endian 128-bit number
(field.element_of_hash).  Nodes are named by bit prefixes of the element's
17-byte little-endian encoding, most significant bit first in each byte:
that encoding is the MD5 bytes followed by 0x00, so the first 128 bits of it
are exactly the bits of the hex string, in order.  A prefix is stored as a
string of '0'/'1' characters, BITQUANTUM (2) per level; the root is ''.  A
prefix of k bits therefore covers one contiguous range of hex strings,
prefix_range(), and cks_keys has a unique index on sks_hash: the elements
under any prefix are one index range query.  (That relies on the database
ordering equal-length upper-case hex strings, and strings of '0'/'1', as
bytes: the C collation and the usual glibc and ICU ones do; check() reads
the hashes in the database's order and would report one that does not.)

Rows.  One row per node: prefix, size (elements under it), samples (the
NUM_SAMPLES sample values, each zzp_bytes, concatenated: 6 x 17 bytes; NULL
means the empty set, all values 1, as schema.sql creates the root) and leaf.
A leaf's elements are not stored again: they are the cks_keys rows in its
range.  An inner node has all 4 children.

Shape.  A leaf splits when it holds more than SPLIT_THRESHOLD (50) elements;
an inner node joins (its descendants go, it becomes a leaf) when it falls to
JOIN_THRESHOLD (25) or fewer.  The gap means the shape depends on history:
a tree built from scratch (rebuild) has inner nodes exactly where a node holds
more than 50; one grown by inserts and deletes may also have inner nodes of
26..50 elements.  check() accepts both and verifies sizes, sample values,
leaf sizes <= 50 and inner sizes > 25.  A node at depth 64 (128 bits) holds
one hash at most and never splits.

Writes happen in the caller's transaction, right after the key row changed
(Store.save_key, rejections.delete_key): change_hash(old, new) removes the
old hash, then inserts the new one.  In that order the rows of cks_keys and
the tree's set agree whenever a split reads a leaf's elements from cks_keys.
A bulk load's new keys go in together: insert_all(), after all their rows.
Every change walks the path from the root and rewrites those rows (size,
samples); the first statement locks the root row (PostgreSQL: SELECT ...
FOR UPDATE; SQLite serializes writers anyway), which serializes tree writers
until their transactions end and makes the reads after it see the latest
committed tree.  A key written by another transaction that has not reached
its tree update yet is invisible to us (not committed) and not in the tree:
both agree again.  The cost: on PostgreSQL every key write that changes a
hash holds the root row lock from its tree update to its commit.

A tree found inconsistent while writing (a missing path node, a leaf that
does not hold what it counts) is logged and left alone rather than failing
the key write: storing keys matters more than recon, and `cks_admin.py ptree
--check` / `--rebuild` find and repair it.

The tree as recon rounds read it is in ptree_view.py; rebuilding it from
cks_keys and checking it against them, in ptree_rebuild.py.
"""

from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from ..sync.recon.field import (BITQUANTUM, JOIN_THRESHOLD, NUM_SAMPLES, P, SPLIT_THRESHOLD,
                                ZZP_BYTES, add_element, element_of_hash, empty_samples,
                                remove_element, samples_of, zzp_bytes, zzp_list_from_bytes)
from .changes import note_key_change
from .sql import IN_CHUNK, Cursor, in_chunks, rows_in

log = logging.getLogger("cks.store.ptree")

HASH_BITS = 128
"""Bits of a key hash; a prefix longer than this only adds the 0x00 byte."""

PREFIX_BITS = 8 * ZZP_BYTES
"""The longest prefix: every bit of the 17-byte encoding."""

SAMPLES_BYTES = NUM_SAMPLES * ZZP_BYTES
CHILD_BITS = [format(i, "0%db" % BITQUANTUM) for i in range(1 << BITQUANTUM)]
"""The suffixes of a node's children, in order (00, 01, 10, 11)."""

FIRST_LEVELS = 12
"""Levels a write reads at first (4^12 leaves: enough for any honest set)."""

_REBUILD_HINT = "run cks_admin.py ptree --check, then --rebuild"


class TreeError(Exception):
    """A stored node cannot be read (bad sample bytes)."""


@dataclass
class Node:
    """One row of cks_ptree, decoded."""

    prefix: str
    size: int
    samples: List[int]
    leaf: bool


@dataclass
class Summary:
    elements: int
    nodes: int
    depth: int


# --- prefixes, hashes and sample bytes ---------------------------------------------

def check_prefix(prefix: str) -> None:
    """Refuse what cannot name a node: not '0'/'1', not whole levels, too long."""
    if prefix.strip("01") or len(prefix) % BITQUANTUM or len(prefix) > PREFIX_BITS:
        raise ValueError("not a prefix-tree node: %r (a string of '0'/'1', %d bits per "
                         "level, at most %d)" % (prefix, BITQUANTUM, PREFIX_BITS))


def hash_bits(sks_hash: str) -> str:
    """The 128 bits of a hash, as a prefix string: where its element lies."""
    return format(int(sks_hash, 16), "0%db" % HASH_BITS)


def element_of(sks_hash: str) -> int:
    return element_of_hash(bytes.fromhex(sks_hash))


def prefix_range(prefix: str) -> Optional[Tuple[str, str]]:
    """The lowest and highest hash (upper-case hex, as cks_keys stores them)
    under `prefix`; None when no hash can have it (a 1 in the 0x00 byte)."""
    if len(prefix) > HASH_BITS:
        if "1" in prefix[HASH_BITS:]:
            return None
        prefix = prefix[:HASH_BITS]
    low = int(prefix.ljust(HASH_BITS, "0"), 2)
    high = int(prefix.ljust(HASH_BITS, "1"), 2)
    return "%032X" % low, "%032X" % high


def child_index(sks_hash: str, depth_bits: int) -> int:
    """Which child of a node `depth_bits` deep a hash goes to: read from its
    hex digits directly (2 bits never straddle a digit), cheaper than bits."""
    digit = int(sks_hash[depth_bits // 4], 16)
    return (digit >> (4 - BITQUANTUM - depth_bits % 4)) & ((1 << BITQUANTUM) - 1)


def samples_to_bytes(samples: Sequence[int]) -> bytes:
    return b"".join(zzp_bytes(s) for s in samples)


def samples_from_bytes(value: Optional[bytes]) -> List[int]:
    if value is None:
        return empty_samples()
    data = bytes(value)
    if len(data) != SAMPLES_BYTES:
        raise TreeError("sample values of %d bytes, not %d" % (len(data), SAMPLES_BYTES))
    try:
        return zzp_list_from_bytes(data)
    except ValueError as exc:
        raise TreeError("sample values: %s" % exc) from None


def multiply(a: Sequence[int], b: Sequence[int]) -> List[int]:
    """The sample values of the union of two disjoint sets."""
    return [x * y % P for x, y in zip(a, b)]


NODE_COLUMNS = "prefix, size, samples, leaf"


def decode_node(row: tuple) -> Node:
    return Node(row[0], int(row[1]), samples_from_bytes(row[2]), bool(row[3]))


# --- reading ----------------------------------------------------------------------

def hashes_under(cursor: Cursor, prefix: str) -> List[str]:
    """The stored hashes with this prefix, in order: one index range query."""
    bounds = prefix_range(prefix)
    if bounds is None:
        return []
    return [r[0] for r in cursor.execute(
        "SELECT sks_hash FROM cks_keys WHERE sks_hash >= ? AND sks_hash <= ? "
        "ORDER BY sks_hash", bounds).fetchall()]


def hashes_under_each(cursor: Cursor, prefixes: Sequence[str]) -> Dict[str, List[str]]:
    """hashes_under for many prefixes (disjoint or not) in one query per
    IN_CHUNK // 2 of them (two bounds each): a recon batch's leaves at once.

    The ranges are a table joined with the keys, one index range scan each:
    written as ORed conditions, PostgreSQL scanned every key instead (250
    ranges over 100,000 keys: 570 ms, joined 3.4 ms)."""
    found: Dict[str, List[str]] = {p: [] for p in prefixes}
    ranges = {p: bounds for p in found for bounds in [prefix_range(p)] if bounds is not None}
    for chunk in in_chunks(ranges.items(), IN_CHUNK // 2):
        hashes = sorted({r[0] for r in cursor.execute(
            "WITH ranges (low, high) AS (VALUES %s) SELECT sks_hash FROM ranges JOIN cks_keys "
            "ON sks_hash >= low AND sks_hash <= high" % ", ".join(["(?, ?)"] * len(chunk)),
            [bound for _, bounds in chunk for bound in bounds]).fetchall()})
        for prefix, (low, high) in chunk:
            found[prefix] = hashes[bisect.bisect_left(hashes, low):
                                   bisect.bisect_right(hashes, high)]
    return found


def load_nodes(cursor: Cursor, prefixes: Sequence[str]) -> Dict[str, Node]:
    """The stored nodes among `prefixes` (one query per IN_CHUNK of them)."""
    return {prefix: decode_node(row) for prefix, row in load_rows(cursor, prefixes).items()}


def load_rows(cursor: Cursor, prefixes: Sequence[str]) -> Dict[str, tuple]:
    """load_nodes, the rows not decoded yet."""
    return {r[0]: r for r in rows_in(cursor, "SELECT %s FROM cks_ptree WHERE prefix IN %%s"
                                     % NODE_COLUMNS, prefixes)}


def ancestors(prefix: str) -> List[str]:
    """The node prefixes from the root down to `prefix` itself."""
    return [prefix[:n] for n in range(0, len(prefix) + 1, BITQUANTUM)]


def summary(cursor: Cursor) -> Summary:
    """The root's size, the number of nodes and the depth (in levels)."""
    size = cursor.scalar("SELECT size FROM cks_ptree WHERE prefix = ?", ("",))
    nodes, longest = cursor.execute("SELECT count(*), max(length(prefix)) "
                                    "FROM cks_ptree").fetchone()
    return Summary(int(size or 0), int(nodes), int(longest or 0) // BITQUANTUM)


# --- writing: one element at a time (or a batch of new ones), in the caller's transaction

def change_hash(cursor: Cursor, old_hash: Optional[str], new_hash: Optional[str]) -> None:
    """A key's hash went from `old_hash` to `new_hash` (None: no key before, or
    none after).  Call it after the cks_keys row was written."""
    old_hash = old_hash.upper() if old_hash else None
    new_hash = new_hash.upper() if new_hash else None
    if old_hash == new_hash:
        return
    if old_hash is not None:
        remove(cursor, old_hash)
    if new_hash is not None:
        insert(cursor, new_hash)


def lock_tree(cursor: Cursor) -> None:
    """Take the tree's write lock, the root row's (see the module notes);
    SQLite's write transaction holds the whole database already.  Every
    change to the tree starts here, so it also counts as a change of the
    keys (changes.py), which a TreeCache watches."""
    note_key_change(cursor)
    cursor.backend.lock_row(cursor, "cks_ptree", "prefix", "")


def _inconsistent(what: str) -> None:
    log.error("SKS reconciliation tree: %s; the tree is inconsistent: %s", what, _REBUILD_HINT)


def _locked_path(cursor: Cursor, sks_hash: str) -> Optional[List[Node]]:
    """The nodes from the root to the leaf where `sks_hash` belongs, under the
    tree's lock; None (logged) if the tree has no such path."""
    lock_tree(cursor)
    nodes = _path_nodes(cursor, hash_bits(sks_hash))
    if "" not in nodes:
        _inconsistent("no root node")
        return None
    path = sorted(nodes.values(), key=lambda n: len(n.prefix))
    for depth, node in enumerate(path):
        if len(node.prefix) != depth * BITQUANTUM or node.leaf != (depth == len(path) - 1):
            _inconsistent("no path of inner nodes to a leaf for hash %s" % sks_hash)
            return None
    return path


def _path_nodes(cursor: Cursor, bits: str) -> Dict[str, Node]:
    """The stored nodes among the prefixes of `bits`.  Asked for the first
    FIRST_LEVELS levels, then, only when the tree is deeper there (hashes
    made to share a long prefix), for the rest: a shorter IN list is a
    measurably cheaper query, and this runs for every key write."""
    prefixes = ancestors(bits)
    nodes = load_nodes(cursor, prefixes[:FIRST_LEVELS + 1])
    deepest = nodes.get(prefixes[FIRST_LEVELS])
    if deepest is not None and not deepest.leaf:
        nodes.update(load_nodes(cursor, prefixes[FIRST_LEVELS + 1:]))
    return nodes


def _rows(nodes: Sequence[Node]) -> List[Tuple[str, int, bytes, bool]]:
    """(prefix, size, samples, leaf) of each node, as cks_ptree stores them."""
    return [(n.prefix, n.size, samples_to_bytes(n.samples), n.leaf) for n in nodes]


def save_nodes(cursor: Cursor, nodes: Sequence[Node]) -> None:
    cursor.backend.update_rows(cursor, "cks_ptree", "prefix", ("size", "samples", "leaf"),
                               _rows(nodes))


def add_nodes(cursor: Cursor, nodes: Sequence[Node]) -> None:
    cursor.backend.insert_rows(cursor, "cks_ptree", ("prefix", "size", "samples", "leaf"),
                               _rows(nodes))


def insert(cursor: Cursor, sks_hash: str) -> None:
    """Add a hash (its cks_keys row already there): every node on its path
    counts it and multiplies its factor in; a leaf over 50 splits."""
    element = element_of(sks_hash)
    path = _locked_path(cursor, sks_hash)
    if path is None:
        return
    for node in path:
        node.size += 1
        node.samples = add_element(node.samples, element)
    leaf = path[-1]
    if leaf.size > SPLIT_THRESHOLD and len(leaf.prefix) < HASH_BITS:
        _split(cursor, [leaf])
    save_nodes(cursor, path)


def insert_all(cursor: Cursor, hashes: Sequence[str]) -> None:
    """Add many hashes at once (their cks_keys rows already there, none in the
    tree yet, no other change to the set pending): the tree insert() gives
    one by one, read one level per query and each node written once.

    Down the tree, a node counts all of its new hashes together and an inner
    node hands them to its children.  Back up, a leaf multiplies the factors
    of its new elements into its samples, and an inner node the product of
    its children's (the union of disjoint sets): each element's factors are
    computed once, not once per level.  A leaf that then holds more than 50
    splits from its elements in cks_keys (the new ones among them).  With
    inserts alone a node is inner exactly when it once held more than 50,
    so the shape is the one of the inserts in any order."""
    pending: Dict[str, List[str]] = {"": sorted({h.upper() for h in hashes})}
    if not pending[""]:
        return
    lock_tree(cursor)
    levels: List[List[Tuple[str, Optional[Node], List[str]]]] = []
    while pending:
        stored = load_nodes(cursor, sorted(pending))
        below: Dict[str, List[str]] = {}
        level = []
        for prefix, under in pending.items():
            node = stored.get(prefix)
            level.append((prefix, node, under))
            if node is None:
                _inconsistent("no node %r on the path of hash %s" % (prefix, under[0]))
            elif not node.leaf:
                for sks_hash in under:
                    child = prefix + CHILD_BITS[child_index(sks_hash, len(prefix))]
                    below.setdefault(child, []).append(sks_hash)
        levels.append(level)
        pending = below
    added: Dict[str, List[int]] = {}  # prefix -> the sample values of its new hashes
    changed: List[Node] = []
    full: List[Node] = []
    for level in reversed(levels):
        for prefix, node, under in level:
            if node is None or node.leaf:
                factors = samples_of(element_of(h) for h in under)
            else:
                factors = empty_samples()
                for bits in CHILD_BITS:
                    if prefix + bits in added:
                        factors = multiply(factors, added[prefix + bits])
            added[prefix] = factors
            if node is None:
                continue
            node.size += len(under)
            node.samples = multiply(node.samples, factors)
            changed.append(node)
            if node.leaf and node.size > SPLIT_THRESHOLD and len(prefix) < HASH_BITS:
                full.append(node)
    _split(cursor, full)
    save_nodes(cursor, changed)


def remove(cursor: Cursor, sks_hash: str) -> None:
    """Take a hash out: the reverse of insert.  The highest inner node that
    falls to 25 or fewer joins: its descendants go and it becomes a leaf."""
    element = element_of(sks_hash)
    path = _locked_path(cursor, sks_hash)
    if path is None:
        return
    if path[-1].size < 1:
        _inconsistent("hash %s leaves an empty leaf %r" % (sks_hash, path[-1].prefix))
        return
    changed = []
    for node in path:
        node.size -= 1
        node.samples = remove_element(node.samples, element)
        changed.append(node)
        if not node.leaf and node.size <= JOIN_THRESHOLD:
            _join(cursor, node)
            break
    save_nodes(cursor, changed)


def _split(cursor: Cursor, leaves: Sequence[Node]) -> None:
    """Give leaves their children (and theirs, if one holds more than 50), from
    their elements in cks_keys, read for all of them at once (a bulk load's
    batch splits hundreds).  Called with their new sizes and samples."""
    under = hashes_under_each(cursor, [leaf.prefix for leaf in leaves])
    built: List[Node] = []
    for leaf in leaves:
        hashes = under[leaf.prefix]
        if len(hashes) != leaf.size:
            _inconsistent("leaf %r counts %d elements, cks_keys has %d"
                          % (leaf.prefix, leaf.size, len(hashes)))
            continue
        subtree: List[Node] = []
        _build(leaf.prefix, hashes, subtree)
        if subtree[0].samples != leaf.samples:
            _inconsistent("leaf %r has sample values that its elements do not give"
                          % leaf.prefix)
            continue
        leaf.leaf = False
        built += subtree[1:]
    add_nodes(cursor, built)


def _join(cursor: Cursor, node: Node) -> None:
    """Drop every descendant of `node` (one range: prefix + '0...' to prefix + '1...'
    lies between prefix and prefix + '2')."""
    cursor.defer("DELETE FROM cks_ptree WHERE prefix > ? AND prefix < ?",
                 (node.prefix, node.prefix + "2"))
    node.leaf = True


def _build(prefix: str, hashes: Sequence[str], out: List[Node]) -> Node:
    """The subtree at `prefix` holding `hashes`, shaped as a fresh tree is (a
    node with more than 50 is inner).  Appends its nodes to `out`, the node
    first; inner samples are products of the children's, so each element is
    multiplied in once."""
    node = Node(prefix, len(hashes), [], True)
    out.append(node)
    if len(hashes) <= SPLIT_THRESHOLD or len(prefix) >= HASH_BITS:
        node.samples = samples_of(element_of(h) for h in hashes)
        return node
    parts: List[List[str]] = [[] for _ in CHILD_BITS]
    for h in hashes:
        parts[child_index(h, len(prefix))].append(h)
    node.leaf = False
    node.samples = empty_samples()
    for bits, part in zip(CHILD_BITS, parts):
        node.samples = multiply(node.samples, _build(prefix + bits, part, out).samples)
    return node
