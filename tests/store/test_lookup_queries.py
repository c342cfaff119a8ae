"""Store lookups by key ID: key_rows_by_id (one query) gives what find_by_id
then key_rows gives (two), on both databases."""

from cks import pipeline
from cks.openpgp.keys import read_keys
from cks.store import open_store
from support import fixture

NAMES = ["rsa2048", "dsa-elg", "multi-uid", "two-keys", "v6-ed25519", "revoked"]


def test_key_rows_by_id_matches_find_then_rows(db_url):
    store = open_store(db_url)
    try:
        keys = []
        for name in NAMES:
            pipeline.submit(store, fixture(name), pipeline.Source.admin())
            keys.extend(read_keys(fixture(name)).keys)
        searches = []
        for key in keys:
            fingerprint = key.fingerprint.hex().upper()
            keyid = key.keyid.hex().upper()
            searches += [("fingerprint", fingerprint), ("keyid", keyid),
                         ("short_keyid", keyid[-8:])]
            searches += [("keyid", sub.value.keyid.hex().upper()) for sub in key.subkeys]
        searches.append(("keyid", "00" * 8))  # nobody's
        for column, value in searches:
            two_queries = store.key_rows(store.find_by_id(column, value, 101))
            assert store.key_rows_by_id(column, value, 101) == two_queries, (column, value)
        assert len(store.key_rows_by_id("keyid", keys[0].keyid.hex().upper(), 1)) == 1
        assert [u.uid for r in store.key_rows_by_id(
            "fingerprint", keys[0].fingerprint.hex().upper(), 1) for u in r.user_ids]
    finally:
        store.close()
