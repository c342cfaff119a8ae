"""The SKS reconciliation tree in the database (cks_ptree, lib/cks/store/ptree.py),
on SQLite and PostgreSQL: after every change it holds what a tree computed from
the stored hashes holds, real keys enter and leave it through the pipeline and
delete_key, cks_admin.py ptree checks and rebuilds it, and the migration from
schema version 1 builds it."""

import random
import threading
from collections import defaultdict

import pytest

from cks import pipeline, rejection
from cks.store import open_store, ptree, ptree_rebuild, ptree_view
from cks.store.schema import SCHEMA_VERSION
from cks.sync.recon.field import (JOIN_THRESHOLD, SPLIT_THRESHOLD, P, element_of_hash,
                                  empty_samples, hash_of_element, samples_of)
from support import fixture
from support.db import run_sql
from support.nodes import fpr
from support.procs import tool
from support.tree import add_row, insert_row, random_hashes, remove_row
from test_migration import KEYS as MIGRATED_KEYS, make_version_1


# --- helpers ------------------------------------------------------------------------

def stored_nodes(cursor):
    return {row[0]: (int(row[1]), ptree.samples_from_bytes(row[2]), bool(row[3]))
            for row in cursor.execute("SELECT prefix, size, samples, leaf FROM cks_ptree")
            .fetchall()}


def assert_tree_matches(cursor, hashes):
    """The stored tree against one computed here from scratch, independently of
    ptree_rebuild.check: every node's size and samples are those of the hashes with
    its prefix; the shape follows the rules (inner nodes have 4 children and
    more than JOIN_THRESHOLD elements, leaves at most SPLIT_THRESHOLD, no node
    below a leaf); and ptree_rebuild.check agrees."""
    nodes = stored_nodes(cursor)
    depth = max(len(p) for p in nodes)
    under = defaultdict(list)
    for h in hashes:
        bits = ptree.hash_bits(h)
        for n in range(0, depth + 1, 2):
            under[bits[:n]].append(element_of_hash(bytes.fromhex(h)))
    assert "" in nodes
    for prefix, (size, samples, leaf) in nodes.items():
        elements = under.get(prefix, [])
        assert size == len(elements), prefix
        assert samples == samples_of(elements), prefix
        if prefix:
            parent = nodes.get(prefix[:-2])
            assert parent is not None and not parent[2], "%r hangs below a leaf" % prefix
        if leaf:
            assert size <= SPLIT_THRESHOLD, prefix
        else:
            assert size > JOIN_THRESHOLD, prefix
            assert all(prefix + bits in nodes for bits in ("00", "01", "10", "11")), prefix
    assert ptree_rebuild.check(cursor) == []
    return nodes


# --- the tree against a recomputation, change by change --------------------------------

def test_every_insert_and_delete_keeps_the_tree_exact(store, monkeypatch):
    done = defaultdict(set)  # depths at which leaves split and inner nodes joined

    def split(cursor, leaves, _real=ptree._split):
        done["_split"].update(len(leaf.prefix) for leaf in leaves)
        return _real(cursor, leaves)

    def join(cursor, node, _real=ptree._join):
        done["_join"].add(len(node.prefix))
        return _real(cursor, node)
    monkeypatch.setattr(ptree, "_split", split)
    monkeypatch.setattr(ptree, "_join", join)
    rng = random.Random(1)
    pool = random_hashes(rng, 400, crowded=0.6)
    present = []
    shapes = set()

    def step(change, sks_hash):
        with store.write() as cursor:
            change(cursor, sks_hash)
        with store.read() as cursor:
            shapes.add(len(assert_tree_matches(cursor, present)))

    def grow(to):  # leaves split, several levels deep
        for h in rng.sample([p for p in pool if p not in present], to - len(present)):
            present.append(h)
            step(add_row, h)

    def shrink(to):  # inner nodes join, the root last
        while len(present) > to:
            step(remove_row, present.pop(rng.randrange(len(present))))

    for size in (200, 30, 200, 60, 120, 0):
        if size > len(present):
            grow(size)
        else:
            shrink(size)
    with store.read() as cursor:
        assert stored_nodes(cursor) == {"": (0, empty_samples(), True)}
    assert max(shapes) > 16 and min(shapes) == 1
    assert len(done["_split"]) >= 3 and len(done["_join"]) >= 3


def test_hashes_made_to_share_a_long_prefix(store):
    """Anyone can make keys whose hashes share many leading bits: the tree
    grows deep there (deeper than ptree.FIRST_LEVELS) and stays exact."""
    rng = random.Random(9)
    deep = ["0123456789" + "%022X" % rng.getrandbits(88) for _ in range(110)]
    hashes = deep + random_hashes(rng, 40)
    rng.shuffle(hashes)
    for count, h in enumerate(hashes, 1):
        with store.write() as cursor:
            add_row(cursor, h)
            assert_tree_matches(cursor, hashes[:count])
    with store.read() as cursor:
        assert ptree.summary(cursor).depth > ptree.FIRST_LEVELS + 2
    for count, h in enumerate(hashes, 1):
        with store.write() as cursor:
            remove_row(cursor, h)
            assert_tree_matches(cursor, hashes[count:])
    with store.read() as cursor:
        assert ptree.summary(cursor) == ptree.Summary(0, 1, 0)


def test_thousands_of_hashes_and_a_rebuild_agree(store):
    rng = random.Random(2)
    hashes = random_hashes(rng, 3000, crowded=0.2)
    for start in range(0, len(hashes), 250):
        with store.write() as cursor:
            for h in hashes[start:start + 250]:
                add_row(cursor, h)
    gone = hashes[::3]
    with store.write() as cursor:
        for h in gone:
            remove_row(cursor, h)
    kept = [h for h in hashes if h not in set(gone)]
    with store.read() as cursor:
        grown = assert_tree_matches(cursor, kept)
    with store.write() as cursor:
        summary = ptree_rebuild.rebuild(cursor)
    with store.read() as cursor:
        rebuilt = assert_tree_matches(cursor, kept)
        assert ptree.summary(cursor) == summary
    assert summary.elements == len(kept) and summary.nodes == len(rebuilt)
    # a fresh tree splits exactly the nodes over SPLIT_THRESHOLD
    assert all(leaf == (size <= SPLIT_THRESHOLD) for size, _, leaf in rebuilt.values())
    for prefix in set(grown) & set(rebuilt):  # same values wherever both have a node
        assert grown[prefix][:2] == rebuilt[prefix][:2]


def add_rows_at_once(cursor, hashes):
    """Rows for all `hashes`, then the tree takes them in one insert_all, as a
    bulk load's network views go in (Store.save_network_views)."""
    for h in hashes:
        insert_row(cursor, h)
    ptree.insert_all(cursor, hashes)


class _Undone(Exception):
    """Raised to roll a write transaction back."""


def test_a_batch_of_new_hashes_gives_the_tree_of_inserts_one_by_one(store):
    """insert_all (a bulk load's batch) leaves the tree that inserting the same
    hashes one by one leaves, on a tree shaped by history (inner nodes of 26 to
    50 elements, left by deletions), with splits several levels down and below
    ptree.FIRST_LEVELS; each batch is tried both ways in the same state."""
    rng = random.Random(11)
    present = random_hashes(rng, 220, crowded=0.6)
    with store.write() as cursor:
        for h in present:
            add_row(cursor, h)
    rng.shuffle(present)

    def history_shaped():
        with store.read() as cursor:
            return any(not leaf and size <= SPLIT_THRESHOLD
                       for size, _, leaf in stored_nodes(cursor).values())

    while not history_shaped():  # deletions leave inner nodes of 26..50 elements
        with store.write() as cursor:
            remove_row(cursor, present.pop())
    deep = ["0123456789" + "%022X" % rng.getrandbits(88) for _ in range(60)]
    for batch in (random_hashes(rng, 500, crowded=0.6), deep, random_hashes(rng, 1)):
        one_by_one = {}
        with pytest.raises(_Undone):
            with store.write() as cursor:
                for h in batch:
                    add_row(cursor, h)
                one_by_one = stored_nodes(cursor)
                raise _Undone
        with store.write() as cursor:
            add_rows_at_once(cursor, batch)
        present += batch
        with store.read() as cursor:
            assert stored_nodes(cursor) == one_by_one
            assert_tree_matches(cursor, present)
    with store.read() as cursor:
        assert ptree.summary(cursor).depth > ptree.FIRST_LEVELS + 2


def test_a_batch_meeting_a_missing_node_is_stored_and_its_ancestors_count_it(store, caplog):
    """A node missing on a batch's path is logged, the keys are stored all the
    same, and every node above it still counts the hashes meant for it, so
    that check() finds the missing subtree and nothing else."""
    rng = random.Random(5)
    present = random_hashes(rng, 120, crowded=0.0)
    with store.write() as cursor:
        add_rows_at_once(cursor, present)
        cursor.execute("DELETE FROM cks_ptree WHERE prefix >= '01' AND prefix < '02'")
    batch = random_hashes(rng, 40, crowded=0.0)
    with caplog.at_level("ERROR", logger="cks.store.ptree"):
        with store.write() as cursor:
            add_rows_at_once(cursor, batch)
    assert "no node '01' on the path of hash" in caplog.text
    with store.read() as cursor:
        size, samples, leaf = stored_nodes(cursor)[""]
        every = [element_of_hash(bytes.fromhex(h)) for h in present + batch]
        assert (size, samples, leaf) == (160, samples_of(every), False)
        assert [p for p in ptree_rebuild.check(cursor) if "'01'" not in p] == []


def test_writers_in_parallel_keep_the_tree_exact(db_url):
    store = open_store(db_url, pool_size=6)
    hashes = random_hashes(random.Random(3), 600)
    errors = []

    def writer(part):
        try:
            for h in part:
                with store.write() as cursor:
                    add_row(cursor, h)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(hashes[i::6],)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        with store.read() as cursor:
            assert_tree_matches(cursor, hashes)
    finally:
        store.close()


# --- reading: LocalTree and NodeView -------------------------------------------------

def test_nodes_and_their_elements(store):
    hashes = random_hashes(random.Random(4), 900)
    with store.write() as cursor:
        for h in hashes:
            add_row(cursor, h)
    bits = {h: ptree.hash_bits(h) for h in hashes}

    def expected(prefix):
        return sorted(element_of_hash(bytes.fromhex(h)) for h in hashes
                      if bits[h].startswith(prefix))

    with ptree_view.open_tree(store) as tree:
        root = tree.root()
        assert (root.prefix, root.size, root.is_leaf) == ("", 900, False)
        stored = stored_nodes(tree.cursor)
        leaf = max((p for p in stored if stored[p][2]), key=lambda p: stored[p][0])
        inner = max((p for p in stored if p and not stored[p][2]), key=len)
        below = bits[next(h for h in hashes if bits[h].startswith(leaf))][:len(leaf) + 6]
        for prefix in ["", "10", "1010", inner, leaf, below, leaf + "1" * 40, "0" * 136]:
            node = tree.node(prefix)
            want = expected(prefix)
            assert sorted(node.elements()) == want, prefix
            assert node.size == len(want) and node.samples == samples_of(want), prefix
            assert node.is_leaf == (prefix not in stored or stored[prefix][2]), prefix
        children = tree.node(inner).children()
        assert [c.prefix for c in children] == [inner + b for b in ("00", "01", "10", "11")]
        assert sum(c.size for c in children) == tree.node(inner).size
        assert tree.node(leaf).children() == []
        for bad in ["0", "012", "x0", "0" * 138]:
            with pytest.raises(ValueError):
                tree.node(bad)


class CountingCursor:
    """A cursor that counts the statements it runs."""

    def __init__(self, cursor):
        self.cursor, self.statements = cursor, 0
        self.backend = cursor.backend

    def execute(self, sql, params=()):
        self.statements += 1
        return self.cursor.execute(sql, params)


def test_prefetched_nodes_and_elements_answer_without_queries(store):
    hashes = random_hashes(random.Random(5), 3000)
    with store.write() as cursor:
        for h in hashes:
            add_row(cursor, h)
    with ptree_view.open_tree(store) as plain:
        stored = stored_nodes(plain.cursor)
        # a batch as a round asks it: inner nodes two levels down, leaves, a
        # prefix below a leaf and one no hash can have
        leaves = sorted(p for p in stored if stored[p][2])[:150]
        small = leaves + [leaves[0] + "0110", "0" * 128 + "01"]
        batch = [p for p in stored if len(p) == 4] + small

        def seen(tree):
            return {p: (tree.node(p).size, tree.node(p).samples, tree.node(p).is_leaf,
                        sorted(tree.node(p).elements()) if p in small else None)
                    for p in batch}

        want = seen(plain)
        counting = CountingCursor(plain.cursor)
        tree = ptree_view.LocalTree(counting)
        tree.prefetch(batch)
        tree.prefetch_elements(small)
        # 150 leaves and their children need more than one query (IN_CHUNK values)
        assert 2 < counting.statements <= 6
        before = counting.statements
        assert seen(tree) == want
        for prefix in batch[:16]:  # their children were read along
            if not stored[prefix][2]:
                tree.node(prefix + "01")
        assert counting.statements == before
        with pytest.raises(ValueError):
            tree.prefetch(["012"])


def test_the_hashes_under_many_prefixes_at_once(store):
    """hashes_under_each (a recon batch's leaves) gives what hashes_under gives
    for each prefix: nested ones (a node, its ancestors and a prefix below a
    leaf) and more than one query's worth of them."""
    rng = random.Random(8)
    with store.write() as cursor:
        add_rows_at_once(cursor, random_hashes(rng, 900))
    with store.read() as cursor:
        prefixes = sorted(stored_nodes(cursor))
        prefixes += ["%s%02d" % (prefixes[-1], 10), "0" * 128 + "01"]
        prefixes += ["".join(rng.choice("01") for _ in range(10)) for _ in range(300)]
        assert len(prefixes) > ptree.IN_CHUNK // 2
        assert ptree.hashes_under_each(cursor, prefixes) == {
            p: ptree.hashes_under(cursor, p) for p in prefixes}


def test_prefix_ranges_follow_the_element_encoding():
    # bits of the 17-byte little-endian encoding, MSB first per byte: byte 0 of
    # the MD5 first, so the prefix is the hex string's bits
    md5 = bytes(range(1, 17))
    e = element_of_hash(md5)
    encoding = e.to_bytes(17, "little")
    assert encoding == md5 + b"\0"
    bits = "".join(format(b, "08b") for b in encoding)
    assert ptree.hash_bits(md5.hex().upper()) == bits[:128]
    assert ptree.prefix_range("") == ("0" * 32, "F" * 32)
    assert ptree.prefix_range("0000000100") == ("01" + "0" * 30, "013" + "F" * 29)
    assert ptree.prefix_range(bits) == (md5.hex().upper(),) * 2
    assert ptree.prefix_range("0" * 128 + "01") is None
    assert ptree.child_index("C0" + "0" * 30, 0) == 3 and ptree.child_index("1C", 6) == 0
    # the recon session names the same prefixes (wire.Prefix)
    from cks.sync.recon.wire import Prefix
    rng = random.Random(10)
    for _ in range(200):
        h, length = "%032X" % rng.getrandbits(128), 2 * rng.randrange(69)
        assert str(Prefix.of_element(ptree.element_of(h), length)) == \
            (ptree.hash_bits(h) + "0" * 8)[:length]


# --- real keys through the pipeline ------------------------------------------------

def tree_hashes(store):
    with ptree_view.open_tree(store) as tree:
        return {hash_of_element(e).hex().upper() for e in tree.root().elements()}, \
            tree.root().size


def stored_hash(store, fingerprint):
    with store.read() as cursor:
        return cursor.scalar("SELECT sks_hash FROM cks_keys WHERE fingerprint = ?",
                             (fingerprint,))


def test_a_merged_key_leaves_with_its_old_hash_and_enters_with_its_new(store):
    alice = fpr("alice-t1")
    assert fpr("alice-t2") == alice
    assert pipeline.submit(store, fixture("rsa2048"), pipeline.Source.admin()).outcomes
    pipeline.submit(store, fixture("alice-t1"), pipeline.Source.admin())
    old = stored_hash(store, alice)
    rsa = stored_hash(store, fpr("rsa2048"))
    assert tree_hashes(store) == ({old, rsa}, 2)
    (outcome,) = pipeline.submit(store, fixture("alice-t2"), pipeline.Source.admin()).outcomes
    assert outcome.status == pipeline.UPDATED
    new = stored_hash(store, alice)
    assert new != old
    assert tree_hashes(store) == ({new, rsa}, 2)
    again = pipeline.submit(store, fixture("alice-t1"), pipeline.Source.admin()).outcomes
    assert again[0].status == pipeline.UNCHANGED and tree_hashes(store) == ({new, rsa}, 2)
    with store.read() as cursor:
        assert_tree_matches(cursor, [new, rsa])
    assert rejection.delete(store, alice)
    assert tree_hashes(store) == ({rsa}, 1)
    with store.read() as cursor:
        assert_tree_matches(cursor, [rsa])


# --- cks_admin.py ptree -------------------------------------------------------------

def admin(db, *args):
    return tool("cks_admin.py", ["--db", db] + list(args))


def test_admin_ptree_summary_check_and_rebuild(store, db_url):
    for name in ("rsa2048", "nistp256", "ed25519"):
        pipeline.submit(store, fixture(name), pipeline.Source.admin(queue=False))
    hashes = random_hashes(random.Random(5), 400)
    with store.write() as cursor:
        for h in hashes:
            add_row(cursor, h)
        nodes = stored_nodes(cursor)
    out = admin(db_url, "ptree")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.decode().split("\n")
    assert lines[0].split() == ["elements", "403"]
    assert lines[1].split() == ["nodes", str(len(nodes))]
    assert int(lines[2].split()[1]) == max(len(p) for p in nodes) // 2 > 1
    good = admin(db_url, "ptree", "--check")
    assert good.returncode == 0 and b"ptree OK" in good.stdout, good.stderr
    leaf = sorted(p for p in nodes if nodes[p][2])[3]
    inner = sorted(p for p in nodes if p and not nodes[p][2])[0]
    for sql, params in [("UPDATE cks_ptree SET size = size + 1 WHERE prefix = ?", (leaf,)),
                        ("UPDATE cks_ptree SET samples = NULL WHERE prefix = ?", (inner,)),
                        ("DELETE FROM cks_ptree WHERE prefix = ?", (inner + "01",))]:
        run_sql(db_url, sql, params, write=True)
    bad = admin(db_url, "ptree", "--check")
    assert bad.returncode == 1
    errors = bad.stderr.decode()
    assert "ptree: node %r has size %d, cks_keys has %d elements under it" % (
        leaf, nodes[leaf][0] + 1, nodes[leaf][0]) in errors
    assert "ptree: node %r has wrong sample values" % inner in errors
    assert "ptree: node %r is missing" % (inner + "01") in errors
    assert errors.rstrip().split("\n")[-1].startswith("ptree: ") and \
        "--rebuild repairs it" in errors
    fixed = admin(db_url, "ptree", "--rebuild")
    assert fixed.returncode == 0 and fixed.stdout.startswith(b"rebuilt: 403 elements")
    assert admin(db_url, "ptree", "--check").returncode == 0
    with store.read() as cursor:
        assert_tree_matches(cursor, hashes + [stored_hash(store, fpr(n))
                                              for n in ("rsa2048", "nistp256", "ed25519")])


# --- the migration from version 1 ---------------------------------------------------

def test_the_migration_from_version_1_builds_the_tree(db_url):
    store = open_store(db_url)
    try:
        with store.write() as cursor:
            for h in random_hashes(random.Random(6), 200):
                add_row(cursor, h)
    finally:
        store.close()
    make_version_1(db_url)  # the keys of test_migration.KEYS too; no cks_ptree
    out = admin(db_url, "ptree", "--check")
    assert out.returncode == 0, out.stderr
    count = 200 + len(MIGRATED_KEYS)
    assert out.stdout.decode().split("\n")[0].split() == ["elements", str(count)]
    assert run_sql(db_url, "SELECT version FROM cks_schema_version") == [(SCHEMA_VERSION,)]
    hashes = [r[0] for r in run_sql(db_url, "SELECT sks_hash FROM cks_keys")]
    assert len(hashes) == count
    store = open_store(db_url)
    try:
        with store.read() as cursor:
            assert_tree_matches(cursor, hashes)
            assert ptree.summary(cursor).depth >= 2
    finally:
        store.close()


def test_stored_sample_values_are_read_back_and_bad_ones_refused():
    samples = [0, 1, P - 1, 2 ** 128, 5, 6]
    data = ptree.samples_to_bytes(samples)
    assert ptree.samples_from_bytes(data) == samples
    assert ptree.samples_from_bytes(None) == [1] * 6  # the empty set's
    with pytest.raises(ptree.TreeError):
        ptree.samples_from_bytes(data[:-1])
    with pytest.raises(ptree.TreeError):  # not reduced: a damaged row
        ptree.samples_from_bytes(data[:-17] + P.to_bytes(17, "little"))


def test_the_root_is_read_with_two_levels_below_it_in_one_query(store):
    """Where a round that finds a few differences goes: its second batch of
    requests (the root's grandchildren) then waits for no query."""
    with store.write() as cursor:
        for h in random_hashes(random.Random(9), 3000):
            add_row(cursor, h)
    with ptree_view.open_tree(store) as plain:
        stored = stored_nodes(plain.cursor)
        counting = CountingCursor(plain.cursor)
        tree = ptree_view.LocalTree(counting)
        tree.prefetch([""])
        assert counting.statements == 1
        levels = [p for p in stored if len(p) <= 4]
        assert len(levels) == 21
        assert {p: (tree.node(p).size, tree.node(p).samples) for p in levels} == \
            {p: stored[p][:2] for p in levels}
        assert counting.statements == 1
