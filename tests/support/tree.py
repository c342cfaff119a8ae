"""Synthetic key rows for tests of the recon tree: a row with a given SKS
hash, entering and leaving the tree as the project's writers do it."""

from cks.store import ptree
from cks.store.rejections import delete_key


def fingerprint_of(sks_hash):
    """A made-up fingerprint for a synthetic key row."""
    return "FF" * 4 + sks_hash


def add_row(cursor, sks_hash):
    """A minimal cks_keys row with this hash, and the hash entering the tree, as
    Store.save_key does it (row first, then the tree)."""
    insert_row(cursor, sks_hash)
    ptree.change_hash(cursor, None, sks_hash)


def insert_row(cursor, sks_hash):
    """A minimal cks_keys row with this hash (the tree unchanged)."""
    cursor.execute(
        "INSERT INTO cks_keys (fingerprint, version, keyid, short_keyid, algorithm, bits, "
        "created, sks_hash, keydata, served, served_crc24, size, first_seen, last_changed, "
        "source) VALUES (?, 4, ?, ?, 1, 2048, 0, ?, ?, ?, 0, 1, 0, 0, 'test')",
        (fingerprint_of(sks_hash), sks_hash[-16:], sks_hash[-8:], sks_hash, b"k", b"s"))


def remove_row(cursor, sks_hash):
    """The project's delete_key: the row goes, and its hash leaves the tree."""
    assert delete_key(cursor, fingerprint_of(sks_hash))


def random_hashes(rng, count, crowded=0.5):
    """Random hashes; a share of them under one 8-bit prefix, so that a few
    hundred make a tree several levels deep."""
    out = set()
    while len(out) < count:
        value = rng.getrandbits(128)
        if rng.random() < crowded:
            value = (0xA7 << 120) | (value & ((1 << 120) - 1))
        out.add("%032X" % value)
    return sorted(out)
