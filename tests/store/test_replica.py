"""cksd on a real PostgreSQL primary and streaming replica: lookups read the
replica (--db-read, [database] read_url), uploads go to the primary, and
either server may be down."""

import contextlib
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from cks.openpgp import packet as pk
from cks.openpgp import signature as sg
from cks.openpgp.armor import scan
from cks.openpgp.keys import parse_keyring, read_keys, sks_hash
from cks.pipeline import ADDED, Source, submit
from cks.openpgp.userid import UserID
from cks.store import open_store
from cks.store.peers import PeerStore
from cks.store.postgres import CUT_MARGIN
from cks.sync.recon import hashquery
from support import fixture, in_ci
from support import pgcluster
from support.forge import Signer, keyring
from support.server import LOOPBACK_EXEMPT, Cksd


@pytest.fixture(scope="module")
def cluster():
    why_not = pgcluster.missing()
    if why_not:
        if in_ci():
            pytest.fail("CI must run the replica tests: " + why_not)
        pytest.skip(why_not)
    with pgcluster.PgCluster() as made:
        yield made


@pytest.fixture
def urls(cluster):
    """(primary URL, replica URL) of a new CKS database, its schema replayed."""
    name = "cks_replica_%s" % uuid.uuid4().hex[:10]
    cluster.create_database(name)
    store = open_store(cluster.primary.url(name))
    store.check()
    store.close()
    cluster.wait_replayed()
    return cluster.primary.url(name), cluster.replica.url(name)


def fpr(name):
    return read_keys(fixture(name)).keys[0].fingerprint.hex().upper()


def get(cksd, name):
    return cksd.lookup(op="get", options="mr", search="0x" + fpr(name))


def eventually_found(cksd, name, timeout=30):
    deadline = time.monotonic() + timeout
    while get(cksd, name)[0] != 200:
        assert time.monotonic() < deadline, "%s never served" % name
        time.sleep(0.05)


@contextlib.contextmanager
def replay_paused(cluster):
    """The replica replays nothing within the block."""
    cluster.sql(cluster.replica, "SELECT pg_wal_replay_pause()")
    try:
        deadline = time.monotonic() + 10
        while cluster.sql(cluster.replica,
                          "SELECT pg_get_wal_replay_pause_state()")[0][0] != "paused":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        yield
    finally:
        cluster.sql(cluster.replica, "SELECT pg_wal_replay_resume()")


def on_primary(cluster, url, statement, params=()):
    return cluster.sql(cluster.primary, statement, params, dbname=url.rsplit("/", 1)[1])


def views_derived(cluster, url, timeout=30):
    """Until cksd's background job has derived every served view owed."""
    deadline = time.monotonic() + timeout
    while on_primary(cluster, url, "SELECT count(*) FROM cks_view_work")[0][0]:
        assert time.monotonic() < deadline, "served views never derived"
        time.sleep(0.05)


def stored_elsewhere(url, name):
    """`name`'s key stored with its served view by another writer than the
    cksd under test (another cksd host, say), which therefore does not know
    of it."""
    store = open_store(url)
    try:
        assert submit(store, fixture(name), Source.user()).with_status(ADDED)
    finally:
        store.close()


def test_lookups_read_the_replica(cluster, urls):
    primary, replica = urls
    with Cksd(primary, ["--db-read", replica]) as cksd:
        assert cksd.add(fixture("rsa2048"))[0] == 200
        eventually_found(cksd, "rsa2048")
        views_derived(cluster, primary)
        cluster.wait_replayed()
        # Replay paused: a key another host stores is not served until the
        # replica replays it, so the lookups are the replica's.
        with replay_paused(cluster):
            stored_elsewhere(primary, "ed25519")
            assert on_primary(cluster, primary, "SELECT count(*) FROM cks_keys")[0][0] == 2
            assert get(cksd, "ed25519")[0] == 404
            stats = json.loads(cksd.lookup(op="stats", options="mr")[2])
            assert stats["keys"]["total"] == 1
        eventually_found(cksd, "ed25519")


def _post(cksd, data):
    return cksd.request("POST", "/pks/add", data, {"Content-Type": "application/pgp-keys"})[0]


def test_what_this_cksd_stored_is_read_on_the_primary_while_the_replica_lags(cluster, urls):
    """With replay paused: a new key looked up after its served view was
    derived in the background, an update's new user ID, a search by it, and
    a peer's hashquery all see what this cksd committed; once the replica
    has replayed it, the lookups read the replica again.  (Until 2026-12-06
    the first three read the lagging replica: 404, the key as it was, 404;
    and hashqueries always read it: a round found keys the fetch never got.)"""
    primary, replica = urls
    owner = Signer.new()
    fingerprint = owner.public.fingerprint.hex().upper()
    first, both = (_key_of(owner, uids) for uids in (
        [b"lagging <lagging@example.org>"],
        [b"lagging <lagging@example.org>", b"second <second@example.org>"]))
    with Cksd(primary, ["--db-read", replica]) as cksd:
        with replay_paused(cluster):
            assert _post(cksd, first) == 200
            views_derived(cluster, primary)  # (by the idle serving process, not the lookup)
            time.sleep(0.2)
            assert cksd.lookup(op="get", options="mr", search="0x" + fingerprint)[0] == 200
            assert _post(cksd, both) == 200
            status, _, body = cksd.lookup(op="index", options="mr", search="0x" + fingerprint)
            assert status == 200 and b"second@example.org" in body
            assert cksd.lookup(op="index", options="mr",
                               search="second@example.org")[0] == 200
            assert _hashquery(cksd, both) == 1
        cluster.wait_replayed()
        time.sleep(0.05)
        with replay_paused(cluster):  # the lookups are the replica's again; hashqueries not
            stored_elsewhere(primary, "ed25519")
            assert get(cksd, "ed25519")[0] == 404
            assert _hashquery(cksd, fixture("ed25519")) == 1


def _hashquery(cksd, data):
    """How many keys cksd's answer to a hashquery for this key's SKS hash holds."""
    digest = sks_hash(read_keys(data).keys[0])
    status, _, body = cksd.request("POST", "/pks/hashquery", hashquery.encode_request([digest]))
    assert status == 200
    return len(hashquery.decode_answer(body))


@contextlib.contextmanager
def slow_wal_writer(cluster):
    """Within the block, WAL that a commit did not wait for is written (and
    sent to the replica) every 2 s: what such commits wrote reaches the
    replica that late."""
    def alter(setting):
        cluster.sql(cluster.primary, "ALTER SYSTEM " + setting)
        cluster.sql(cluster.primary, "SELECT pg_reload_conf()")

    alter("SET wal_writer_delay = '2s'")
    try:
        yield
    finally:
        alter("RESET wal_writer_delay")


def _key_of(owner, uids):
    """`owner`'s key with these self-certified user IDs."""
    packets = [pk.Packet(pk.TAG_PUBLIC_KEY, owner.public.serialize())]
    for uid in uids:
        packets += [pk.Packet(pk.TAG_USER_ID, uid),
                    pk.Packet(pk.TAG_SIGNATURE, owner.sign(sg.CERT_POSITIVE, owner.public,
                                                           UserID(uid)).serialize())]
    return keyring(packets)


def new_key(n):
    """(key data, fingerprint) of a new Ed25519 key with a self-certified user ID."""
    owner = Signer.new()
    return _key_of(owner, [b"new %d <new%d@example.org>" % (n, n)]), \
        owner.public.fingerprint.hex().upper()


@pytest.mark.parametrize("processes", [1, 2])
def test_a_key_uploaded_is_found_at_once(cluster, urls, tmp_path, processes):
    """Upload, then look up at once through the same cksd: found every time,
    though the replica lags (until 2026-12-05 never: the served view was
    committed without waiting for the disk, so it reached the replica with
    the primary's next WAL write, and a lookup that derived it read the
    replica right after)."""
    primary, replica = urls
    config = tmp_path / "cks.conf"
    config.write_text("[server]\nprocesses = %d\n%s" % (processes, LOOPBACK_EXEMPT))
    with slow_wal_writer(cluster), \
            Cksd(primary, ["--db-read", replica], config=str(config)) as cksd:
        for n in range(6):
            data, fingerprint = new_key(n)
            assert cksd.request("POST", "/pks/add", data,
                                {"Content-Type": "application/pgp-keys"})[0] == 200
            assert cksd.lookup(op="get", options="mr", search="0x" + fingerprint)[0] == 200


def test_a_replica_without_the_schema_yet_is_left_to_replay_it(cluster):
    """cksd makes the schema on the primary; the replica's store waits for
    it (it never tries to make it there) and says why it cannot answer."""
    name = "cks_replica_%s" % uuid.uuid4().hex[:10]
    cluster.create_database(name)
    cluster.wait_replayed()
    primary, replica = cluster.primary.url(name), cluster.replica.url(name)
    with replay_paused(cluster):
        with Cksd(primary, ["--db-read", replica]) as cksd:
            assert cksd.add(fixture("rsa2048"))[0] == 200
            views_derived(cluster, primary)  # (so the lookup tries the replica)
            assert get(cksd, "rsa2048")[0] == 200  # (read on the primary)
            cksd.wait_for_output("the read replica cannot answer, lookups read the primary "
                                 "until it does: database %s holds no CKS tables" % replica)
            assert "read-only transaction" not in cksd.output()
            assert "transaction is aborted" not in cksd.output()
    cluster.wait_replayed()
    assert cluster.sql(cluster.replica, "SELECT to_regclass('cks_keys') IS NOT NULL",
                       dbname=name) == [(True,)]  # (replayed from the primary)


def test_primary_down_lookups_answer_uploads_get_503(cluster, urls, tmp_path):
    primary, replica = urls
    config = tmp_path / "cks.conf"  # one serving process: one pool of connections
    config.write_text("[server]\nprocesses = 1\n" + LOOPBACK_EXEMPT)
    store = open_store(primary)
    PeerStore(store).add("push.example:11371", "hkp", 100, None, catch_up=False)  # (owed)
    store.close()
    with Cksd(primary, ["--db-read", replica], config=str(config)) as cksd:
        assert cksd.add(fixture("rsa2048"))[0] == 200
        eventually_found(cksd, "rsa2048")
        cluster.primary.stop("fast")
        try:
            assert get(cksd, "rsa2048")[0] == 200
            assert cksd.lookup(op="index", options="mr", search="rsa2048")[0] == 200
            status, headers, _ = cksd.add(fixture("ed25519"))
            assert status == 503
            assert int(headers["retry-after"]) > 0
            assert get(cksd, "rsa2048")[0] == 200
        finally:
            cluster.primary.start()
        assert cksd.proc.poll() is None
        assert on_primary(cluster, primary, "SELECT fingerprint FROM cks_keys") == \
            [(fpr("rsa2048"),)]
        assert on_primary(cluster, primary, "SELECT fingerprint FROM cks_pending_sync") == \
            [(fpr("rsa2048"),)]
        # The retry succeeds at once: the first failure closed the pooled
        # connections that died with the primary.
        assert cksd.add(fixture("ed25519"))[0] == 200, cksd.output()
        eventually_found(cksd, "ed25519")
        assert cksd.proc.poll() is None


def test_the_primary_down_before_the_replica_replayed_this_cksds_upload(cluster, urls):
    """Lookups that would read the primary until the replica replays this
    cksd's last change read the replica once the primary is down."""
    primary, replica = urls
    with Cksd(primary, ["--db-read", replica]) as cksd:
        assert cksd.add(fixture("rsa2048"))[0] == 200
        eventually_found(cksd, "rsa2048")
        views_derived(cluster, primary)
        with replay_paused(cluster):
            assert cksd.add(fixture("ed25519"))[0] == 200
            views_derived(cluster, primary)
            cluster.primary.stop("fast")
            try:
                assert get(cksd, "rsa2048")[0] == 200
                assert get(cksd, "ed25519")[0] == 404  # (not replayed, not 503)
            finally:
                cluster.primary.start()
        eventually_found(cksd, "ed25519")


def test_health_follows_the_primary(cluster, urls, tmp_path):
    primary, _ = urls
    config = tmp_path / "cks.conf"  # one serving process: one pool of connections
    config.write_text("[server]\nprocesses = 1\n" + LOOPBACK_EXEMPT)
    with Cksd(primary, config=str(config)) as cksd:
        assert cksd.request("GET", "/health")[::2] == (200, b"ok\n")
        cluster.primary.stop("fast")
        try:
            status, headers, body = cksd.request("GET", "/health")
            assert (status, body) == (503, b"database unavailable\n")
            assert int(headers["retry-after"]) > 0
        finally:
            cluster.primary.start()
        assert cksd.request("GET", "/health")[0] == 200  # a fresh connection
        assert cksd.request("HEAD", "/health")[0] == 200
        assert cksd.proc.poll() is None


def test_health_tells_lookups_apart_from_uploads(cluster, urls, tmp_path):
    """The primary stopped: /health (uploads) 503, /health?lookups 200 (the
    replica answers them), and the metrics say which is down."""
    primary, replica = urls
    config = tmp_path / "cks.conf"  # one serving process: one scrape reads the database
    config.write_text("[server]\nprocesses = 1\n" + LOOPBACK_EXEMPT)
    with Cksd(primary, ["--db-read", replica], config=str(config)) as cksd:
        assert cksd.request("GET", "/health")[::2] == (200, b"ok\n")
        assert cksd.request("GET", "/health?lookups")[::2] == (200, b"ok\n")
        cluster.primary.stop("fast")
        try:
            assert cksd.request("GET", "/health")[0] == 503
            assert cksd.request("GET", "/health?lookups")[::2] == (200, b"ok\n")
            metrics = cksd.request("GET", "/metrics")[2].decode()
        finally:
            cluster.primary.start()
    assert "\ncks_database_up 0\n" in metrics and "\ncks_replica_up 1\n" in metrics


def test_a_frozen_primary_holds_health_and_metrics_up_for_seconds_only(cluster, urls,
                                                                       tmp_path):
    """A primary stopped with SIGSTOP acknowledges packets and never answers:
    /health and /metrics give up on it after ANSWER_SECONDS (until 2026-12-05
    they waited until it answered, and systemd's check restarted cksd)."""
    primary, replica = urls
    config = tmp_path / "cks.conf"
    config.write_text("[server]\nprocesses = 1\n" + LOOPBACK_EXEMPT)
    with Cksd(primary, ["--db-read", replica], config=str(config)) as cksd:
        assert cksd.request("GET", "/health")[0] == 200
        with cluster.primary.frozen():
            started = time.monotonic()
            assert cksd.request("GET", "/health", timeout=15)[0] == 503
            assert cksd.request("GET", "/health?lookups", timeout=15)[0] == 200
            metrics = cksd.request("GET", "/metrics", timeout=15)[2].decode()
            assert time.monotonic() - started < 15
        assert "\ncks_database_up 0\n" in metrics and "\ncks_replica_up 1\n" in metrics
        assert cksd.request("GET", "/health")[0] == 200


def test_a_frozen_replica_costs_one_lookup_its_bound_then_the_primary_answers(cluster, urls,
                                                                             tmp_path):
    """A replica stopped with SIGSTOP: the lookup waiting for it has its
    connection cut after request_timeout and CUT_MARGIN (until 2026-12-05
    it waited until the replica answered) and reads the primary; the
    lookups after it read the primary at once."""
    primary, replica = urls
    config = tmp_path / "cks.conf"
    config.write_text("[server]\nprocesses = 1\nrequest_timeout = 2\n" + LOOPBACK_EXEMPT)
    with Cksd(primary, ["--db-read", replica], config=str(config)) as cksd:
        assert unknown_key_id(cksd) == 404
        with cluster.replica.frozen():
            started = time.monotonic()
            assert unknown_key_id(cksd) == 404
            assert time.monotonic() - started < 2 + CUT_MARGIN + 2
            started = time.monotonic()
            assert unknown_key_id(cksd) == 404
            assert time.monotonic() - started < 1
        cksd.wait_for_output("the read replica answers again", timeout=30)


def unknown_key_id(cksd):
    """A lookup of a key ID never asked for (no cached answer); its status."""
    return cksd.lookup(op="get", options="mr", search="0x" + uuid.uuid4().hex[:16])[0]


def _certified_copies(name, count):
    """`count` uploads of one key, each with a certification the others lack."""
    parts = list(pk.iter_packets(scan(fixture(name))[0][0].data))
    key = parse_keyring(keyring(parts)).keys[0]
    after_uid = next(i for i, p in enumerate(parts) if p.tag == pk.TAG_USER_ID) + 2
    copies = []
    for n in range(count):
        cert = Signer.new().sign(sg.CERT_GENERIC, key.public_key, key.user_ids[0].value,
                                 created=1704067200 + 3600 + n)
        copies.append(keyring(parts[:after_uid] + [pk.Packet(pk.TAG_SIGNATURE, cert.serialize())]
                              + parts[after_uid:]))
    return copies, len(key.user_ids[0].sigs)


def test_two_daemons_merge_concurrent_uploads_of_one_key(cluster, urls):
    primary, replica = urls
    copies, own_sigs = _certified_copies("ed25519", 12)
    with Cksd(primary, ["--db-read", replica]) as first, \
            Cksd(primary, ["--db-read", replica]) as second:
        uploads = [(server, copy) for copy in copies for server in (first, second)]
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(
                lambda job: job[0].request("POST", "/pks/add", job[1],
                                           {"Content-Type": "application/pgp-keys"})[0],
                uploads))
        assert answers == [200] * len(uploads)
    (keydata,) = on_primary(cluster, primary, "SELECT keydata FROM cks_keys")[0]
    (merged,) = parse_keyring(bytes(keydata)).keys
    assert len(merged.user_ids[0].sigs) == own_sigs + len(copies)


def test_replica_down_lookups_read_the_primary(cluster, urls, tmp_path):
    primary, _ = urls
    config = tmp_path / "cks.conf"
    config.write_text("[server]\nprocesses = 1\n"  # (each process warns once)
                      "[database]\nread_url = postgresql://postgres@127.0.0.1:%d/none\n%s"
                      % (pgcluster.free_port(), LOOPBACK_EXEMPT))
    with Cksd(primary, config=str(config)) as cksd:
        assert cksd.add(fixture("rsa2048"))[0] == 200
        for _ in range(3):
            assert get(cksd, "rsa2048")[0] == 200
        # the log is written by a background thread: wait for the three lookups
        cksd.wait_for_output(r'(?s)(search=0x%s .*){3}' % fpr("rsa2048"))
        assert cksd.output().count("the read replica cannot answer") == 1
        # /health?lookups: they are answered (by the primary); the metrics say why
        assert cksd.request("GET", "/health?lookups")[0] == 200
        metrics = cksd.request("GET", "/metrics")[2].decode()
        assert "\ncks_database_up 1\n" in metrics and "\ncks_replica_up 0\n" in metrics
        cluster.primary.stop("fast")
        try:
            assert cksd.request("GET", "/health?lookups")[0] == 503  # (nothing answers them)
        finally:
            cluster.primary.start()
