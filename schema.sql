-- CKS PostgreSQL schema, version 8 (lib/cks/store/migrations.py brings an
-- older database forward).
-- `psql -f schema.sql DBNAME` on an empty database creates it; the tools do the
-- same on first use.  SQLite gets it translated (lib/cks/store/schema.py).
-- Fingerprints and key IDs are upper-case hex text; times are epoch seconds in
-- bigint (keys expire after 2038).  Keys are unbounded here: size limits are
-- policy, set in the configuration.

BEGIN;

CREATE TABLE cks_schema_version (
    version     integer NOT NULL,
    served_views integer NOT NULL DEFAULT 0,  -- the rules its served views were
                                          -- derived under (served.SERVED_VIEWS_VERSION)
    served_views_after text               -- while older: the last key derived again
);
INSERT INTO cks_schema_version (version, served_views) VALUES (9, 4);

-- One row per primary key: the canonical merged key and what lookups need.
CREATE TABLE cks_keys (
    fingerprint   text PRIMARY KEY,
    version       smallint NOT NULL,
    keyid         text NOT NULL,          -- 16 hex
    short_keyid   text NOT NULL,          -- the last 8 hex of keyid
    algorithm     smallint NOT NULL,
    bits          integer NOT NULL,
    created       bigint NOT NULL,
    expires       bigint,
    revoked       boolean NOT NULL DEFAULT false,  -- by a revocation this server verified
    unverified_revocation boolean NOT NULL DEFAULT false,  -- a designated revoker's
                                          -- revocation is served, its key is not held
    sks_hash      text NOT NULL UNIQUE,   -- 32 hex, SKS's MD5 key hash
    keydata       bytea NOT NULL,         -- the network's view: every packet, merged
    served        bytea NOT NULL,         -- the verified view clients get (README)
    served_crc24  integer NOT NULL,       -- of served: armoring a lookup skips it;
                                          -- -1: not served yet (bulk load, README)
    size          integer NOT NULL,
    first_seen    bigint NOT NULL,
    last_changed  bigint NOT NULL,
    source        text NOT NULL           -- who brought the last change
);
CREATE INDEX cks_keys_keyid ON cks_keys (keyid);
CREATE INDEX cks_keys_short_keyid ON cks_keys (short_keyid);
CREATE INDEX cks_keys_first_seen ON cks_keys (first_seen);
-- The stats page counts from these alone, never reading key rows
-- (lib/cks/store/stats.py): keys changed per day, keys by algorithm and size.
CREATE INDEX cks_keys_changed ON cks_keys (last_changed, first_seen);
CREATE INDEX cks_keys_algorithm ON cks_keys (algorithm, bits);
-- Keys are stored uncompressed (PostgreSQL only; SQLite never compresses):
-- OpenPGP keys do not compress, and trying cost a bulk load a third of its
-- write time; substr(keydata, ...) then reads only the chunks it needs.
ALTER TABLE cks_keys ALTER COLUMN keydata SET STORAGE EXTERNAL,
    ALTER COLUMN served SET STORAGE EXTERNAL;

CREATE TABLE cks_subkeys (
    key_fingerprint text NOT NULL REFERENCES cks_keys (fingerprint) ON DELETE CASCADE,
    fingerprint     text NOT NULL,
    keyid           text NOT NULL,
    short_keyid     text NOT NULL,
    version         smallint NOT NULL,
    algorithm       smallint NOT NULL,
    bits            integer NOT NULL,
    created         bigint NOT NULL,
    expires         bigint,
    revoked         boolean NOT NULL DEFAULT false,
    PRIMARY KEY (key_fingerprint, fingerprint)
);
CREATE INDEX cks_subkeys_fingerprint ON cks_subkeys (fingerprint);
CREATE INDEX cks_subkeys_keyid ON cks_subkeys (keyid);
CREATE INDEX cks_subkeys_short_keyid ON cks_subkeys (short_keyid);

CREATE TABLE cks_userids (
    key_fingerprint text NOT NULL REFERENCES cks_keys (fingerprint) ON DELETE CASCADE,
    position        integer NOT NULL,     -- display order: primary first
    uid             text NOT NULL,
    email           text,                 -- the address, folded (NFC, lower-cased)
    is_attribute    boolean NOT NULL DEFAULT false,
    created         bigint,
    expires         bigint,
    revoked         boolean NOT NULL DEFAULT false,
    PRIMARY KEY (key_fingerprint, position)
);
CREATE INDEX cks_userids_email ON cks_userids (email, key_fingerprint);  -- in key order
CREATE INDEX cks_userids_photos ON cks_userids (key_fingerprint) WHERE is_attribute;  -- stats

-- Signature verdicts, so each signature is verified once.  cache_key is
-- SHA-256 over the signature, what it is bound to and the issuer key.
CREATE TABLE cks_sig_verdicts (
    cache_key       text PRIMARY KEY,
    key_fingerprint text NOT NULL REFERENCES cks_keys (fingerprint) ON DELETE CASCADE,
    status          text NOT NULL,        -- valid, invalid, unsupported
    weak_hash       boolean NOT NULL,
    reason          text NOT NULL
);
CREATE INDEX cks_sig_verdicts_key ON cks_sig_verdicts (key_fingerprint);

-- Who signed each stored key: the key IDs of the other keys that made
-- signatures in its network view (certifications, revocations).  A key's
-- served view depends on these keys, so when one arrives or leaves, the keys
-- it signed are derived again.
CREATE TABLE cks_key_signers (
    signer_keyid    text NOT NULL,
    key_fingerprint text NOT NULL REFERENCES cks_keys (fingerprint) ON DELETE CASCADE,
    PRIMARY KEY (signer_keyid, key_fingerprint)
);
CREATE INDEX cks_key_signers_key ON cks_key_signers (key_fingerprint);

-- Served views to derive again, queued in the transaction that stored or
-- deleted a key and worked off right after it commits (by the same program;
-- cksd also drains what a crash left).  signed: the key arrived or left, so
-- the keys it signed follow.  missing: key IDs of signers the key lacked
-- when stored; it is derived again if one of them is held by then.
CREATE TABLE cks_view_work (
    id          bigserial PRIMARY KEY,
    fingerprint text NOT NULL,
    keyid       text NOT NULL,
    signed      boolean NOT NULL,
    missing     text NOT NULL DEFAULT ''
);

-- Word index for text search, as SKS keeps it: every word of every user ID,
-- lower-cased; a search matches the keys that hold all of its words.  Equal
-- semantics on both databases, and an index lookup per word.
CREATE TABLE cks_words (
    word            text NOT NULL,
    key_fingerprint text NOT NULL REFERENCES cks_keys (fingerprint) ON DELETE CASCADE,
    PRIMARY KEY (word, key_fingerprint)
);
CREATE INDEX cks_words_key ON cks_words (key_fingerprint);

-- Keys waiting to be pushed to peers: only keys that users or the operator
-- added.  A key changed again is queued again under a new id.
CREATE TABLE cks_pending_sync (
    id          bigserial PRIMARY KEY,
    fingerprint text NOT NULL UNIQUE,
    queued_at   bigint NOT NULL,
    source      text NOT NULL
);

-- The peers.  kind: hkp (CKS and other HKP servers), mail (pks/SKS e-mail
-- sync), recon (SKS reconciliation).  Lower sync_priority runs first.
CREATE TABLE cks_other_servers (
    id                serial PRIMARY KEY,
    peer              text NOT NULL UNIQUE,   -- host:port, or an e-mail address
    kind              text NOT NULL CHECK (kind IN ('hkp', 'mail', 'recon')),
    sync_priority     integer NOT NULL DEFAULT 100,
    contact_email     text,
    enabled           boolean NOT NULL DEFAULT true,
    recon_port        integer,
    filters           text,
    added_at          bigint NOT NULL,
    last_attempt      bigint,
    last_success      bigint,
    last_error        text,
    last_error_at     bigint,
    rejection_key     text,       -- fingerprint of the key the peer's operator signs
                                  -- rejection notices with
    honour_rejections boolean NOT NULL DEFAULT false, -- apply its notices here
    recon_rounds      bigint NOT NULL DEFAULT 0,  -- recon peers: rounds that completed
    recon_last_round  bigint,     -- when the last one completed
    recon_lacked_here integer,    -- in it: keys we lacked (found by recon),
    recon_lacked_there integer,   -- keys the peer lacked (we told it),
    recon_fetched     integer     -- and keys fetched and stored here
);

-- Each peer's backlog: the queued keys it has not acknowledged yet.  A row
-- goes only when the peer answered 2xx for that queue entry (pending_id): a
-- key queued again meanwhile keeps its row and is sent again.  A full send
-- (catch-up) owes the keys stored when it was asked for: rows with
-- pending_id 0, sent first, in fingerprint order.
CREATE TABLE cks_sync_backlog (
    peer_id     integer NOT NULL REFERENCES cks_other_servers (id) ON DELETE CASCADE,
    fingerprint text NOT NULL,
    pending_id  bigint NOT NULL,
    PRIMARY KEY (peer_id, fingerprint)
);
CREATE INDEX cks_sync_backlog_order ON cks_sync_backlog (peer_id, pending_id, fingerprint);
CREATE INDEX cks_sync_backlog_fingerprint ON cks_sync_backlog (fingerprint);

-- Keys a peer refused for good (a refusal; or a 500, a cut connection or no
-- answer in time to that key alone: see lib/cks/sync/runner.py): reported
-- once, not retried until the key changes again.
CREATE TABLE cks_sync_refusals (
    peer_id     integer NOT NULL REFERENCES cks_other_servers (id) ON DELETE CASCADE,
    fingerprint text NOT NULL,
    refused_at  bigint NOT NULL,
    message     text,
    PRIMARY KEY (peer_id, fingerprint)
);

-- The SKS reconciliation set (recon) as a prefix tree, kept in the transaction
-- that changes a key (lib/cks/store/ptree.py).  The set's elements are the
-- keys' sks_hash read as little-endian numbers; a node is named by a prefix
-- of the hash's bits, most significant first, as a string of '0'/'1' (2 bits
-- per level; '' is the root, always present).  Every node keeps the number of
-- elements under it and their sample values (6 x 17 bytes, little-endian;
-- NULL for the empty set).  A leaf's elements are not stored here: they are
-- the cks_keys rows whose sks_hash lies in the prefix's range.  A leaf splits
-- above 50 elements, an inner node (4 children) joins at 25 or fewer.
-- `cks_admin.py ptree --check` compares it with cks_keys, `--rebuild` redoes it.
CREATE TABLE cks_ptree (
    prefix      text PRIMARY KEY,
    size        bigint NOT NULL,
    samples     bytea,
    leaf        boolean NOT NULL
);
INSERT INTO cks_ptree (prefix, size, samples, leaf) VALUES ('', 0, NULL, true);

-- Where an interrupted `cks_admin.py load` goes on (lib/cks/bulk/): per input
-- file, the byte offset after the last key committed, written in the same
-- transaction as the keys.  A file whose size or modification time changed is
-- read from the start again; the rows go when the load completes.  Databases
-- made before these load tables existed get them from the step to version 5.
CREATE TABLE cks_load_progress (
    path        text PRIMARY KEY,     -- absolute path of the input file
    size        bigint NOT NULL,
    mtime_ns    bigint NOT NULL,
    resume_at   bigint NOT NULL,      -- byte offset to read on from
    updated_at  bigint NOT NULL
);

-- What an interrupted load found in each input file up to its `resume_at`
-- (written in the same transactions): keys by outcome ('added', 'updated',
-- 'unchanged', 'refused:KIND') and its problem lines in order, so that the
-- run that completes the load reports them (lib/cks/bulk/load.py).  The rows
-- go with the file's cks_load_progress row.
CREATE TABLE cks_load_counts (
    path        text NOT NULL,        -- as in cks_load_progress
    outcome     text NOT NULL,
    keys        bigint NOT NULL,
    PRIMARY KEY (path, outcome)
);

CREATE TABLE cks_load_problems (
    path        text NOT NULL,        -- as in cks_load_progress
    seq         bigint NOT NULL,      -- 0, 1, ... in the order found
    problem     text NOT NULL,
    PRIMARY KEY (path, seq)
);

-- The keys whose served views the running (or an interrupted) load's second
-- phase derived, each with every key the load stored held: what one of them
-- signed among them is not derived again when the load follows up their
-- signers (lib/cks/bulk/load.py).  Emptied when the load ends, and by any
-- later load that stores new keys; a key deleted leaves it.
CREATE TABLE cks_load_served (
    fingerprint text PRIMARY KEY
);

-- Fingerprints that may never be stored again.
CREATE TABLE cks_rejected_keys (
    fingerprint text PRIMARY KEY,
    reason      text,
    rejected_at bigint NOT NULL,
    source      text NOT NULL DEFAULT 'local'  -- 'local', or 'notice:SERIAL' when a
                                               -- trusted peer's notice put it here
);

-- Rejection notices: signed statements that a node rejected (or un-rejected)
-- a key.  Ours (origin 'local') and those peers delivered to us.
-- status: unsigned (ours, waiting for the operator's signature), issued
-- (ours, signed), applied (a trusted peer's, carried out here), pending
-- (received, not applied: see status_reason), superseded (a newer notice
-- about the same key was applied first).
CREATE TABLE cks_rejection_notices (
    serial        text PRIMARY KEY,
    action        text NOT NULL CHECK (action IN ('reject', 'unreject')),
    fingerprint   text NOT NULL,
    reason        text NOT NULL,
    notice_time   bigint NOT NULL,
    node          text NOT NULL,
    body          text NOT NULL,      -- the exact text that is signed
    signature     text,               -- armored detached OpenPGP signature
    signer        text,               -- fingerprint of the key that made it
    origin        text NOT NULL,      -- 'local', or who delivered it
    status        text NOT NULL,
    status_reason text NOT NULL DEFAULT '',
    received_at   bigint NOT NULL,
    applied_at    bigint
);
CREATE INDEX cks_rejection_notices_fingerprint ON cks_rejection_notices (fingerprint);

-- Each peer's backlog of our signed notices, delivered like keys.
CREATE TABLE cks_notice_backlog (
    peer_id     integer NOT NULL REFERENCES cks_other_servers (id) ON DELETE CASCADE,
    serial      text NOT NULL REFERENCES cks_rejection_notices (serial) ON DELETE CASCADE,
    PRIMARY KEY (peer_id, serial)
);

-- SKS key hashes that reconciliation does not fetch again
-- (lib/cks/sync/recon/fetch.py).  Recon lists a hash this node lacks at every
-- round, with every peer that holds its key, so a key fetched and then not
-- stored under that hash would be fetched again and again.  A hash names fixed
-- bytes, so fetching it again can only bring the same answer: the hash goes
-- here when its key was refused (rejected, over a limit, unparseable, an
-- answer over the size limit) or is held here in another form (merged with
-- packets the peer lacks, or read differently).  One row per hash, whichever
-- peer answered; a hash not returned by the peer is not recorded.  A row older
-- than 30 days is purged and the hash asked again, so a raised limit takes
-- effect; unrejecting or deleting the key purges its rows at once.
CREATE TABLE cks_recon_refused (
    sks_hash    text PRIMARY KEY,     -- 32 hex, as cks_keys.sks_hash
    fingerprint text,                 -- of the key in the answer; NULL if unparseable
    refused_at  bigint NOT NULL,
    reason      text NOT NULL
);

COMMIT;

-- The role of the mail account (cks_mail_sync.py, run by the MTA for the
-- pgp-keys account).  It reads the peer list and the rejected keys, merges
-- keys (insert and update, and the reconciliation tree with them; it cannot
-- delete a key, reject or unreject one, or change the peer list) and queues
-- what it forwards to the mail peers.
-- Not run by this file: as the owner of the tables, after creating them, run
-- the lines below without their "-- " (with your database's name for cks),
-- then see README.md (Mail synchronization) for logging in without a password.
--
-- CREATE ROLE cks_mail LOGIN;
-- GRANT CONNECT ON DATABASE cks TO cks_mail;
-- GRANT SELECT ON cks_schema_version, cks_rejected_keys, cks_other_servers TO cks_mail;
-- GRANT UPDATE (last_success) ON cks_other_servers TO cks_mail;
-- GRANT SELECT, INSERT, UPDATE ON cks_keys TO cks_mail;
-- GRANT SELECT, INSERT, DELETE ON cks_subkeys, cks_userids, cks_words TO cks_mail;
-- GRANT SELECT, INSERT ON cks_sig_verdicts TO cks_mail;
-- GRANT SELECT, INSERT, DELETE ON cks_key_signers TO cks_mail;
-- GRANT SELECT, INSERT, DELETE ON cks_view_work TO cks_mail;
-- GRANT USAGE ON SEQUENCE cks_view_work_id_seq TO cks_mail;
-- GRANT SELECT, INSERT, DELETE ON cks_pending_sync TO cks_mail;
-- GRANT USAGE ON SEQUENCE cks_pending_sync_id_seq TO cks_mail;
-- GRANT SELECT, INSERT, UPDATE, DELETE ON cks_sync_backlog TO cks_mail;
-- GRANT SELECT, INSERT, UPDATE, DELETE ON cks_ptree TO cks_mail;
