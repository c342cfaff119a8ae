"""Bringing a database made by an older CKS forward, one version at a time.

Every tool checks the schema version when it first connects; a database at
an older version is migrated then, in one transaction per step, under a lock
so that two programs starting together migrate it once.  A role that may
not run every step (README: least-privilege roles) runs none: the steps that
only rewrite rows, which it could, would leave the database at a version in
between, which neither the old release nor the new one serves.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Callable, Dict, Iterator, List, NamedTuple, Optional

from ..openpgp.userid import address_of
from .base import Store
from .errors import StoreError
from .ptree_rebuild import rebuild
from .schema import index_statement, storage_statements, table_names, table_statements
from .rows import WORD_COLUMNS, indexed_words
from .sql import Cursor, execute_in, rows_in

log = logging.getLogger("cks.store")


def _to_version_2(store: Store, cursor: Cursor) -> None:
    """Served views follow their signers (cks_key_signers, cks_view_work,
    cks_keys.unverified_revocation); a full send to a peer is rows of its
    backlog (pending_id 0) instead of a position in the key table; the SKS
    reconciliation tree (cks_ptree) over the keys stored, the hashes not
    fetched again (cks_recon_refused) and each recon peer's last round."""
    run = store.backend.run_ddl
    run(cursor, "ALTER TABLE cks_keys ADD COLUMN unverified_revocation boolean NOT NULL "
                "DEFAULT false")
    for table in ("cks_key_signers", "cks_view_work", "cks_recon_refused"):
        for statement in table_statements(table):
            run(cursor, statement)
    for column in RECON_PEER_COLUMNS:
        run(cursor, "ALTER TABLE cks_other_servers ADD COLUMN " + column)
    cursor.execute("INSERT INTO cks_sync_backlog (peer_id, fingerprint, pending_id) "
                   "SELECT p.id, k.fingerprint, 0 FROM cks_other_servers p, cks_keys k "
                   "WHERE p.catch_up_after IS NOT NULL AND k.fingerprint > p.catch_up_after "
                   "ON CONFLICT (peer_id, fingerprint) DO NOTHING")
    run(cursor, "ALTER TABLE cks_other_servers DROP COLUMN catch_up_after")
    run(cursor, "DROP INDEX cks_sync_backlog_order")
    run(cursor, "CREATE INDEX cks_sync_backlog_order ON cks_sync_backlog "
                "(peer_id, pending_id, fingerprint)")
    # Whose served views depend on whom, for the keys already stored.
    from ..openpgp.keys import parse_keyring
    from ..served import third_party_issuers
    after = ""
    while True:
        rows = cursor.execute("SELECT fingerprint, keydata FROM cks_keys WHERE fingerprint > ? "
                              "ORDER BY fingerprint LIMIT 500", (after,)).fetchall()
        if not rows:
            break
        for fingerprint, keydata in rows:
            keys = parse_keyring(bytes(keydata)).keys
            if keys:
                store.save_signers(cursor, fingerprint, third_party_issuers(keys[0]))
        after = rows[-1][0]
    # The recon tree over the keys already stored.
    for statement in table_statements("cks_ptree"):
        run(cursor, statement)
    _build_tree(cursor)


RECON_PEER_COLUMNS = ("recon_rounds bigint NOT NULL DEFAULT 0", "recon_last_round bigint",
                      "recon_lacked_here integer", "recon_lacked_there integer",
                      "recon_fetched integer")


def _build_tree(cursor: Cursor) -> None:
    tree = rebuild(cursor)
    log.warning("SKS reconciliation tree built: %d keys, %d nodes", tree.elements, tree.nodes)


def _to_version_3(store: Store, cursor: Cursor) -> None:
    """Indexes the stats page counts from (store/stats.py): keys by last
    change (now with first_seen, replacing cks_keys_last_changed), keys by
    algorithm and size, photo IDs.  About ten seconds per million keys."""
    run = store.backend.run_ddl
    run(cursor, "DROP INDEX IF EXISTS cks_keys_last_changed")
    for name in ("cks_keys_changed", "cks_keys_algorithm", "cks_userids_photos"):
        run(cursor, index_statement(name).replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS"))


def _to_version_4(store: Store, cursor: Cursor) -> None:
    """Keys stored uncompressed on PostgreSQL (schema.sql says why; SQLite
    has no such setting); the rows already stored stay as they are."""
    for statement in storage_statements():
        store.backend.run_ddl(cursor, statement)


def _to_version_5(store: Store, cursor: Cursor) -> None:
    """Every table and column of schema.sql the database lacks, made by the
    owner who migrates it.  The bulk load's tables (cks_load_progress and
    the others) were made by the first load, which under the runtime role
    (README: least-privilege roles) failed for want of CREATE.  A database
    made at version 2 before that step built the reconciliation tree (the
    code of 2026-12-03, 4c0bbe3) lacked the tree, the refused hashes and the
    recon peers' columns, and later steps never added them: it gets them
    here, and its tree is built."""
    run = store.backend.run_ddl
    for column in RECON_PEER_COLUMNS:
        if not store.backend.column_exists(cursor, "cks_other_servers", column.split()[0]):
            run(cursor, "ALTER TABLE cks_other_servers ADD COLUMN " + column)
    had_tree = store.backend.table_exists(cursor, "cks_ptree")
    for table in table_names():
        if not store.backend.table_exists(cursor, table):
            for statement in table_statements(table):
                run(cursor, statement)
    if not had_tree:
        _build_tree(cursor)


KEYS_PER_REINDEX = 5000


class StoredUserID(NamedTuple):
    position: int
    uid: str
    email: Optional[str]


def _unicode_user_ids(cursor: Cursor) -> Iterator[Dict[str, List[StoredUserID]]]:
    """The user IDs (not attributes) of every key with one that is not
    ASCII, by key: read KEYS_PER_REINDEX keys at a time (a million keys'
    user IDs at once would take hundreds of megabytes)."""
    after = ""
    while True:
        keys = [r[0] for r in cursor.execute(
            "SELECT fingerprint FROM cks_keys WHERE fingerprint > ? ORDER BY fingerprint "
            "LIMIT %d" % KEYS_PER_REINDEX, (after,)).fetchall()]
        if not keys:
            return
        after = keys[-1]
        user_ids: Dict[str, List[StoredUserID]] = {}
        for fingerprint, position, uid, email in rows_in(
                cursor, "SELECT key_fingerprint, position, uid, email FROM cks_userids "
                        "WHERE NOT is_attribute AND key_fingerprint IN %s", keys):
            user_ids.setdefault(fingerprint, []).append(StoredUserID(position, uid, email))
        yield {f: uids for f, uids in user_ids.items() if not all(u.uid.isascii() for u in uids)}


def _to_version_6(store: Store, cursor: Cursor) -> None:
    """The word index (cks_words) of every key with a user ID that is not
    ASCII, made again: words are NFC-normalized and case-folded and keep
    their combining marks since 2026-12-06 (rows.all_words_of), so `WEISS`
    finds `Weiß`; an ASCII user ID's words are as they were."""
    redone = 0
    for again in _unicode_user_ids(cursor):
        _index_words_again(store, cursor, again)
        redone += len(again)
    log.warning("word index made again for %d keys with user IDs that are not ASCII", redone)


def _index_words_again(store: Store, cursor: Cursor,
                       user_ids: Dict[str, List[StoredUserID]]) -> None:
    """The word index of these keys made again from their user IDs."""
    if user_ids:
        execute_in(cursor, "DELETE FROM cks_words WHERE key_fingerprint IN %s", user_ids)
        cursor.send_deferred()
        store.backend.insert_rows(cursor, "cks_words", WORD_COLUMNS, [
            (word, f) for f, uids in sorted(user_ids.items())
            for word in indexed_words(u.uid for u in sorted(uids))])


def _to_version_7(store: Store, cursor: Cursor) -> None:
    """The address index in key order (email, key_fingerprint): a search
    for an address many keys share read and sorted every one of them to
    answer the first 100 (20,000 keys: 63 ms instead of 0.4)."""
    store.backend.run_ddl(cursor, "DROP INDEX cks_userids_email")
    store.backend.run_ddl(cursor, index_statement("cks_userids_email"))


def _to_version_8(store: Store, cursor: Cursor) -> None:
    """The rules a database's served views were derived under
    (cks_schema_version.served_views, served.SERVED_VIEWS_VERSION): a
    database made before has 0, older than any, and cksd derives its views
    again (older_views.py); until then none recorded it, and an upgrade
    that changed what is served left every stored key served as before."""
    for column in ("served_views integer NOT NULL DEFAULT 0", "served_views_after text"):
        if not store.backend.column_exists(cursor, "cks_schema_version", column.split()[0]):
            store.backend.run_ddl(cursor, "ALTER TABLE cks_schema_version ADD COLUMN " + column)


def _to_version_9(store: Store, cursor: Cursor) -> None:
    """The user IDs that are not ASCII folded again, as searches fold them
    since 2026-12-06 (folding.py): their addresses (cks_userids.email)
    NFC-normalized before they are lower-cased, so that
    `müller@example.net` finds the address stored decomposed; their keys'
    words (cks_words) with Turkish dotted and dotless i folded to i, so
    that `YILMAZ` finds `Yılmaz`."""
    keys, addresses = 0, 0
    for again in _unicode_user_ids(cursor):
        changed = [(address, f, u.position) for f, uids in sorted(again.items()) for u in uids
                   for address in (address_of(u.uid),) if address != u.email]
        cursor.executemany("UPDATE cks_userids SET email = ? "
                           "WHERE key_fingerprint = ? AND position = ?", changed)
        _index_words_again(store, cursor, again)
        keys, addresses = keys + len(again), addresses + len(changed)
    log.warning("user IDs that are not ASCII folded again: the words of %d keys, %d addresses",
                keys, addresses)


STEPS: Dict[int, Callable[[Store, Cursor], None]] = {2: _to_version_2,
                                                     3: _to_version_3,
                                                     4: _to_version_4,
                                                     5: _to_version_5,
                                                     6: _to_version_6,
                                                     7: _to_version_7,
                                                     8: _to_version_8,
                                                     9: _to_version_9}


def migrate(store: Store, cursor: Cursor, target: int) -> None:
    """Apply every step from the database's version up to `target`."""
    while True:
        store.backend.begin_schema_change(cursor)
        try:
            version = cursor.scalar("SELECT max(version) FROM cks_schema_version")
            if version >= target:
                cursor.execute("COMMIT")
                return
            if not store.backend.may_change_schema(cursor):
                raise StoreError(
                    "database %s holds CKS schema version %d, not yet %d, and its role may "
                    "not migrate it: it does not own every CKS table, or may not create "
                    "tables (their owner migrates it first: cks_admin.py stats as that role); "
                    "nothing was changed" % (store.backend.describe(), version, target))
            log.warning("migrating the database from schema version %d to %d",
                        version, version + 1)
            STEPS[version + 1](store, cursor)
            cursor.execute("UPDATE cks_schema_version SET version = ?", (version + 1,))
            cursor.execute("COMMIT")
        except BaseException:
            # (SQLite has rolled back by itself after some errors, a full disk
            # among them: a ROLLBACK's own error must not hide the cause)
            with contextlib.suppress(Exception):
                cursor.execute("ROLLBACK")
            raise
