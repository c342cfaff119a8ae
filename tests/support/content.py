"""What a database holds of its keys, comparable across backends and across
the paths that stored them (a bulk load, a deferred upload, the pipeline)."""

from __future__ import annotations

from cks import pipeline
from cks.store import open_store

from .db import run_sql

INDEX_QUERIES = [
    "SELECT fingerprint, version, keyid, short_keyid, algorithm, bits, created, expires, "
    "revoked, unverified_revocation, served_crc24, size FROM cks_keys",
    "SELECT * FROM cks_subkeys", "SELECT * FROM cks_userids", "SELECT * FROM cks_words",
    "SELECT * FROM cks_key_signers",
    "SELECT cache_key, key_fingerprint, status, weak_hash, reason FROM cks_sig_verdicts"]


def content(url):
    """Every key's network view, hash and served view, and the rows that
    describe them (index rows, signers, verdicts)."""
    keys = sorted((f, h, bytes(k), bytes(s), bool(r), bool(u)) for f, h, k, s, r, u in run_sql(
        url, "SELECT fingerprint, sks_hash, keydata, served, revoked, unverified_revocation "
             "FROM cks_keys"))
    return keys, [sorted(tuple(int(v) if isinstance(v, bool) else v for v in row)
                         for row in run_sql(url, query)) for query in INDEX_QUERIES]


def pipeline_content(tmp_path, data):
    """content() of a new SQLite database in `tmp_path` that the pipeline
    stored `data` in, each key's served view derived in its transaction."""
    url = "sqlite:///%s" % (tmp_path / "pipeline.db")
    store = open_store(url)
    try:
        pipeline.submit(store, data, pipeline.Source.admin(queue=False))
    finally:
        store.close()
    return content(url)
