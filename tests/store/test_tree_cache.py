"""ptree_view.TreeCache: the recon tree's nodes kept between cksd's rounds, on
SQLite and PostgreSQL.  A round over an unchanged set makes no query; after
any change its answers are those of a tree read afresh, also when the set
came back to what it was with the tree's shape changed; a full cache stops
growing and its rounds still answer right."""

import contextlib
import random
import time

import pytest

from cks.store import ptree, ptree_view
from cks.store.changes import note_key_change
from cks.sync.recon.field import SPLIT_THRESHOLD
from support.db import listening_watch
from support.tree import add_row, random_hashes, remove_row
from test_ptree import stored_nodes

TOP = [""] + ptree.CHILD_BITS + [a + b for a in ptree.CHILD_BITS for b in ptree.CHILD_BITS]


@pytest.fixture
def cache(store):
    with listening_watch(store) as watch:
        yield ptree_view.TreeCache(watch)


def fill(store, hashes):
    with store.write() as cursor:
        for h in hashes:
            add_row(cursor, h)


def settled(cache):
    """Until the watch has heard of every change made (on PostgreSQL the
    notification of our own commit comes a moment after it)."""
    seen = cache.watch.generation()
    while True:
        time.sleep(0.1)
        now = cache.watch.generation()
        if now == seen:
            return
        seen = now


def answers(tree, prefixes, elements=True):
    """What a round learns of these nodes (whether one is a leaf may differ
    between two right answers: see below); the elements of the small ones
    are read from the keys, not kept."""
    return {p: (tree.node(p).size, tree.node(p).samples, sorted(tree.node(p).elements())
                if elements and tree.node(p).size <= SPLIT_THRESHOLD else None)
            for p in prefixes}


def fresh(store, prefixes):
    with ptree_view.open_tree(store) as tree:
        return answers(tree, prefixes)


@contextlib.contextmanager
def counted_reads(monkeypatch):
    """The tree's row reads (a list that grows by one per query)."""
    calls = []
    load_rows = ptree_view.load_rows

    def counting(cursor, prefixes):
        calls.append(list(prefixes))
        return load_rows(cursor, prefixes)
    monkeypatch.setattr(ptree_view, "load_rows", counting)
    yield calls
    monkeypatch.setattr(ptree_view, "load_rows", load_rows)


def test_an_unchanged_set_is_answered_without_a_query(store, cache, monkeypatch):
    fill(store, random_hashes(random.Random(11), 2000))
    settled(cache)
    with ptree_view.open_tree(store, cache) as tree:
        tree.read_top()
    with ptree_view.open_tree(store) as tree:
        expected = answers(tree, TOP, elements=False)
    with ptree_view.snapshot(store) as cursor:
        deeper = max(stored_nodes(cursor), key=len)  # not among the nodes kept
    opened = []
    read = store.read
    monkeypatch.setattr(store, "read", lambda: opened.append(1) or read())
    with counted_reads(monkeypatch) as reads, ptree_view.open_tree(store, cache) as tree:
        assert answers(tree, TOP, elements=False) == expected
        assert reads == [] and opened == []
        tree.node(deeper)  # the snapshot opens now
        assert len(reads) == 1 and len(opened) == 1


def test_a_changed_set_is_read_again(store, cache, monkeypatch):
    rng = random.Random(12)
    hashes = random_hashes(rng, 2000)
    fill(store, hashes)
    with ptree_view.open_tree(store, cache) as tree:
        tree.read_top()
        kept = answers(tree, TOP)
    more = random_hashes(rng, 60)
    fill(store, more)
    settled(cache)
    with counted_reads(monkeypatch) as reads, ptree_view.open_tree(store, cache) as tree:
        now = answers(tree, TOP)
        assert reads == [TOP]  # the root with two levels, in one query
        deeper = sorted(p for p in stored_nodes(tree.cursor) if len(p) == 6)[:8]
        assert deeper
        now_deeper = answers(tree, deeper, elements=False)
    assert now == fresh(store, TOP) != kept
    # A key change that leaves the set as it was: the first levels are read
    # again (the root tells the set is the same), and the nodes kept serve
    # the rest.
    with store.write() as cursor:
        note_key_change(cursor)
    settled(cache)
    with counted_reads(monkeypatch) as reads, ptree_view.open_tree(store, cache) as tree:
        assert answers(tree, TOP) == now
        assert answers(tree, deeper, elements=False) == now_deeper
    assert reads == [TOP]
    with store.write() as cursor:
        for h in more:
            remove_row(cursor, h)
    with ptree_view.open_tree(store, cache) as tree:
        assert answers(tree, TOP) == kept


def leaf_to_crowd(store):
    """A leaf holding more than the join threshold, and hashes that would
    split it."""
    with ptree_view.snapshot(store) as cursor:
        nodes = stored_nodes(cursor)
    leaf = max((p for p, (size, _, is_leaf) in nodes.items() if is_leaf and p),
               key=lambda p: nodes[p][0])
    assert nodes[leaf][0] > 25
    rng = random.Random(13)
    bits = 128 - len(leaf)
    extra = sorted({"%032X" % (int(leaf, 2) << bits | rng.getrandbits(bits))
                    for _ in range(SPLIT_THRESHOLD)})
    return leaf, extra


def test_the_same_set_in_another_shape(store, cache):
    """Nodes kept while a leaf was a leaf answer right once it is an inner
    node holding the same elements (it split, then lost what made it)."""
    fill(store, random_hashes(random.Random(14), 1500))
    leaf, extra = leaf_to_crowd(store)
    below = [leaf, leaf + "01", leaf + "0110", leaf + "11"]
    with ptree_view.open_tree(store, cache) as tree:
        kept = answers(tree, [""] + below)
        assert tree.node(leaf).is_leaf
    fill(store, extra)
    with store.write() as cursor:
        for h in extra:
            remove_row(cursor, h)
    with ptree_view.snapshot(store) as cursor:
        assert not stored_nodes(cursor)[leaf][2]  # inner now, same elements
    with ptree_view.open_tree(store, cache) as tree:
        assert answers(tree, [""] + below) == kept == fresh(store, [""] + below)


def test_a_full_cache_stops_growing_and_answers_right(store, monkeypatch):
    fill(store, random_hashes(random.Random(15), 3000))
    with listening_watch(store) as watch:
        cache = ptree_view.TreeCache(watch, max_rows=30)
        settled(cache)
        with ptree_view.open_tree(store, cache) as tree:
            tree.read_top()
            deep = sorted(stored_nodes(tree.cursor), key=len)[-40:]
            assert answers(tree, deep) == fresh(store, deep)
        shared, _ = cache.unchanged()
        assert shared is not None and len(shared.rows) <= 30
        with ptree_view.open_tree(store, cache) as tree:
            assert answers(tree, deep + TOP) == fresh(store, deep + TOP)
        assert len(cache.unchanged()[0].rows) <= 30
