"""cks_admin.py load (streaming, batched, parallel, resumable) and dump, on
SQLite and PostgreSQL: the same result as the pipeline, dumps that load back
and that SKS builds, interruption and resume, mixed and corrupt input."""

import contextlib
import gc
import io
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time

import pytest

from cks import pipeline, rejection, views
from cks.bulk import derive, load
from cks.hkp.views_owed import follow_views
from cks.bulk.split import read_chunks
from cks.cli import admin as admin_cli
from cks.openpgp import armor
from cks.openpgp.keys import read_keys, sks_hash
from cks.openpgp.userid import UserID
from cks.openpgp.packet import TAG_SIGNATURE, Packet, encode_header, iter_packets, read_packet
from cks.openpgp.signature import Signature
from cks.served import third_party_issuers
from cks.store import StoreUnavailable, open_store
from support import ROOT, fixture
from support.content import content, pipeline_content
from support.db import run_sql
from support.forge import Signer, key_flags, keyring
from support.hockeypuck import HockeypuckNode, hockeypuck_binary
from support.nodes import fpr, settled
from support.procs import tool
from support.server import Cksd
from support.sks import sks_node

DEBIAN = "/usr/share/keyrings/debian-keyring.gpg"
FIXTURES = ["rsa2048", "nistp256", "certified", "ed25519", "alice-t1", "v6-ed25519"]


def admin(db, *args, input=None):
    return tool("cks_admin.py", ["--db", db] + list(args), input=input, timeout=300)


def debian_keys(count):
    """The first `count` keys of the Debian keyring, binary, one per item."""
    if not os.path.exists(DEBIAN):
        pytest.skip("no %s (apt-get install debian-keyring)" % DEBIAN)
    with open(DEBIAN, "rb") as handle:
        chunks = read_chunks(handle, 1 << 30)
        return [next(chunks).data for _ in range(count)]


def ptree_ok(url):
    out = admin(url, "ptree", "--check")
    assert out.returncode == 0, out.stderr


def test_served_views_equal_the_pipeline_in_any_order(db_url, tmp_path):
    keys = debian_keys(60)
    # the certifiers come after the keys they certified, across batches
    (tmp_path / "keys.gpg").write_bytes(b"".join(reversed(keys)))
    out = admin(db_url, "load", "--no-sync", "--batch-size", "7", "--jobs", "2",
                str(tmp_path / "keys.gpg"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode().strip() == \
        "60 added, 0 updated, 0 unchanged, 0 refused; 0 problems"
    assert content(db_url) == pipeline_content(tmp_path, b"".join(keys))
    assert run_sql(db_url, "SELECT count(*) FROM cks_view_work") == [(0,)]
    assert run_sql(db_url, "SELECT count(*) FROM cks_load_progress") == [(0,)]
    ptree_ok(db_url)


def without_certification(key, which):
    """`key` (binary) without the `which`-th signature made by another key."""
    own = read_keys(key).keys[0].keyid
    packets = list(iter_packets(key))
    others = [i for i, p in enumerate(packets) if p.tag == TAG_SIGNATURE
              and Signature.parse(p.body).issuer_keyid not in (None, own)]
    return b"".join(p.serialize() for i, p in enumerate(packets) if i != others[which])


def test_batches_in_flight_together_give_the_pipelines_result(db_url, tmp_path):
    """A batch goes to the workers before the one before it is written: a key
    whose two copies (each lacking a certification the other has) lie in
    successive batches, and keys stored before the load that keys of an
    earlier batch certified, end as the pipeline leaves them."""
    keys = debian_keys(40)
    stored, loaded = keys[30:], keys[:30]
    assert admin(db_url, "load", "--no-sync", "-", input=b"".join(stored)).returncode == 0
    certified = max(loaded, key=lambda k: len(k))  # the most certifications
    first, second = without_certification(certified, 0), without_certification(certified, -1)
    assert first != second and len(first) < len(certified)
    at = loaded.index(certified)
    data = b"".join(loaded[:at] + [first] + loaded[at + 1:at + 4] + [second]
                    + loaded[at + 4:] + list(reversed(stored)))
    out = admin(db_url, "--verbose", "load", "--no-sync", "--batch-size", "4", "--jobs", "2",
                "-", input=data)
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode().strip() == \
        "30 added, 1 updated, 10 unchanged, 0 refused; 0 problems"
    assert content(db_url) == pipeline_content(tmp_path, b"".join(keys))
    assert run_sql(db_url, "SELECT count(*) FROM cks_view_work") == [(0,)]
    ptree_ok(db_url)


def test_workers_read_what_the_loading_process_wrote_after_closing_its_connections(
        store, db_url, tmp_path, monkeypatch, caplog):
    """The loading process holds a connection when it forks the workers (as
    cks_admin.py's check of the database leaves one), and closes its idle
    connections after each write (as it does after a failed statement).  On
    SQLite a worker forked so counted on its parent's file locks: once the
    parent's last connection closed, the parent deleted the write-ahead log
    the workers read, and they read the database as it was then for the
    rest of the load (keys derived again and again, left to the follow-up,
    until 2026-12-07)."""
    keys = debian_keys(40)
    stored, loaded = keys[30:], keys[:30]
    (tmp_path / "stored.pgp").write_bytes(b"".join(stored))
    (tmp_path / "loaded.pgp").write_bytes(b"".join(loaded + list(reversed(stored))))
    store.check()  # a connection in the pool when the workers are forked
    write = store.write

    @contextlib.contextmanager
    def write_then_close_idle(*args, **kwargs):
        with write(*args, **kwargs) as cursor:
            yield cursor
        store._close_idle()
    monkeypatch.setattr(store, "write", write_then_close_idle)
    caplog.set_level("WARNING", "cks.bulk")
    for name in ("stored.pgp", "loaded.pgp"):
        load.Loader(store, db_url, pipeline.Limits(), pipeline.Source.admin(queue=False),
                    jobs=2, batch_size=4).load([str(tmp_path / name)])
    assert "signers moved" not in caplog.text
    assert content(db_url) == pipeline_content(tmp_path, b"".join(keys))
    assert run_sql(db_url, "SELECT count(*) FROM cks_view_work") == [(0,)]


def test_a_load_and_a_rebuilt_tree_leave_the_database_tidied(db_url):
    """On PostgreSQL, VACUUM (ANALYZE) after the load and after ptree --rebuild
    (its pages all-visible for index-only scans, the planner's statistics
    new); the load's line says how long it took."""
    def tidied():
        return run_sql(db_url, "SELECT relname FROM pg_stat_user_tables WHERE relname IN "
                               "('cks_keys', 'cks_ptree', 'cks_words') AND last_vacuum IS NOT "
                               "NULL AND last_analyze IS NOT NULL ORDER BY relname")
    out = admin(db_url, "--verbose", "load", "--no-sync", "-", input=b"".join(debian_keys(5)))
    assert out.returncode == 0, out.stderr
    assert re.search(rb"then served views [\d.]+ s, then tidying [\d.]+ s\)", out.stderr)
    if not db_url.startswith("postgresql"):
        return  # (SQLite: nothing to tidy)
    assert tidied() == [("cks_keys",), ("cks_ptree",), ("cks_words",)]
    run_sql(db_url, "SELECT pg_stat_reset()")
    assert tidied() == []
    assert admin(db_url, "ptree", "--rebuild").returncode == 0
    assert tidied() == [("cks_keys",), ("cks_ptree",), ("cks_words",)]


def on_a_terminal(command):
    """The shell command `command` run with a terminal for its output
    (script(1)): what it wrote."""
    if shutil.which("script") is None:
        pytest.skip("no script(1) (util-linux)")
    out = subprocess.run(["script", "-qec", command, "/dev/null"],
                         stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    assert out.returncode == 0, out.stdout
    return out.stdout.decode()


@pytest.mark.parametrize("read", ["a file", "standard input"])
def test_the_progress_lines_end_with_the_final_count(db_url, tmp_path, read):
    """On a terminal, each phase's progress line ends with its last state,
    however soon after the one before it came; the share of the input read
    and the time left only when the input's size is known."""
    keyring = tmp_path / "keys.gpg"
    keyring.write_bytes(b"".join(debian_keys(60)))
    options = ["--batch-size", "7", "--jobs", "2"]
    if read == "a file":
        command = shlex.join(load_command(db_url, keyring, *options))
        phase_1 = r"60 keys, \d+ keys/s, 100\.0% of the input, about 0m00s left"
    else:
        command = "%s < %s" % (shlex.join(load_command(db_url, "-", *options)),
                               shlex.quote(str(keyring)))
        phase_1 = r"60 keys, \d+ keys/s"
    shown = on_a_terminal(command)
    lines = shown.replace("\r\n", "\n").split("\n")
    ended = [line.split("\r")[-1].strip() for line in lines]  # as each line was left
    assert re.fullmatch(phase_1, ended[0]), shown
    assert re.fullmatch(r"served views: 60 of 60 keys, \d+ signatures/s, about 0m00s left",
                        ended[1]), shown
    # (the phases' times only with --verbose: until 2026-12-05 on any terminal too)
    assert ended[2:] == ["60 added, 0 updated, 0 unchanged, 0 refused; 0 problems", ""]


def test_the_first_line_ends_at_the_whole_input_whatever_follows_the_last_key(
        db_url, tmp_path):
    """Text after an armored file's last block, and batches that end with
    its last key: the line still ends at 100% (it said 98.5%)."""
    keyring = tmp_path / "keys.asc"
    keyring.write_bytes(fixture("rsa2048") + fixture("ed25519") + b"-- end of the keys\n")
    shown = on_a_terminal(shlex.join(load_command(db_url, keyring, "--batch-size", "1")))
    first = shown.replace("\r\n", "\n").split("\n")[0].split("\r")[-1].strip()
    assert re.fullmatch(r"2 keys, \d+ keys/s, 100\.0% of the input, about 0m00s left",
                        first), shown


def test_the_share_read_of_one_big_armor_block_grows_with_its_keys(db_url, tmp_path):
    """A file of one armor block (`gpg -a --export` of many keys): the share
    of the input read, and the time left, follow the keys read from it
    (until 2026-12-06 it stayed at 0.0% until the block's last batch, and
    a block after some text gave a time left of hundreds of hours)."""
    keyring = tmp_path / "keys.asc"
    keyring.write_bytes(b"text before the block\n" + armor.encode(
        b"".join(debian_keys(300))).encode())
    shown = on_a_terminal(shlex.join(load_command(db_url, keyring, "--batch-size", "100",
                                                  "--jobs", "1")))
    first = shown.replace("\r\n", "\n").split("\n")[0]
    states = [s.strip() for s in first.split("\r") if s.strip()]
    shares = [float(re.search(r"([\d.]+)% of the input", s).group(1)) for s in states]
    assert 0 < shares[0] < 50 and shares == sorted(shares) and shares[-1] == 100.0, shown
    assert re.fullmatch(r"100 keys, \d+ keys/s, [\d.]+% of the input, about \d+m\d\ds left",
                        states[0]), shown


def certifications(keys):
    """(certifier, certified) index pairs of `keys` (binary keys)."""
    parsed = [read_keys(k).keys[0] for k in keys]
    index = {key.keyid: i for i, key in enumerate(parsed)}
    return [(index[issuer], j) for j, key in enumerate(parsed)
            for issuer in third_party_issuers(key) if issuer in index]


def fpr_of(key):
    return read_keys(key).keys[0].fingerprint.hex().upper()


def loader(store, db_url):
    return load.Loader(store, db_url, pipeline.Limits(), pipeline.Source.admin(queue=False),
                       jobs=1)


def load_without_follow_up(store, db_url, path, monkeypatch):
    """Load `path` and stop where the load follows up signers after its second
    phase, as a load killed there would."""
    class Killed(Exception):
        pass

    serve_unserved = load.Loader._serve_unserved

    def killed_after_phase_2(self):
        serve_unserved(self)
        raise Killed
    with monkeypatch.context() as patched:
        patched.setattr(load.Loader, "_serve_unserved", killed_after_phase_2)
        with pytest.raises(Killed):
            loader(store, db_url).load([str(path)])


def test_keys_served_together_are_not_derived_again_for_each_other(db_url, tmp_path,
                                                                  monkeypatch):
    """The second phase derives every new key with all of them held, so the
    follow-up derives again only the key stored before the load that one of
    them certified; what the second phase served is listed in the database
    (cks_load_served), not in memory, and the list is emptied at the end."""
    keys = debian_keys(60)
    pairs = certifications(keys)
    _, certified = pairs[0]
    loaded = [k for i, k in enumerate(keys) if i != certified]
    assert any(certified not in pair for pair in pairs)  # certifications among the loaded
    store = open_store(db_url, 2)
    rederived = []
    rederive = load.Loader._rederive
    monkeypatch.setattr(load.Loader, "_rederive", lambda self, fingerprints: (
        rederived.extend(fingerprints), rederive(self, fingerprints))[1])
    try:
        pipeline.submit(store, keys[certified], pipeline.Source.admin(queue=False))
        (tmp_path / "keys.gpg").write_bytes(b"".join(loaded))
        summary = loader(store, db_url).load([str(tmp_path / "keys.gpg")])
    finally:
        store.close()
    assert summary.counts[pipeline.ADDED] == 59
    assert rederived == [fpr_of(keys[certified])]
    assert run_sql(db_url, "SELECT count(*) FROM cks_load_served") == [(0,)]
    assert content(db_url) == pipeline_content(tmp_path, b"".join(keys))


def certifier_deleted_after_phase_2(store, db_url, tmp_path, monkeypatch):
    """30 Debian keys loaded up to their follow-up, then one that certifies
    another deleted: (the keys, the deleted one's index)."""
    keys = debian_keys(30)
    certifier, _ = certifications(keys)[0]
    (tmp_path / "keys.gpg").write_bytes(b"".join(keys))
    load_without_follow_up(store, db_url, tmp_path / "keys.gpg", monkeypatch)
    assert rejection.delete(store, fpr_of(keys[certifier]))
    return keys, certifier


def test_a_signer_deleted_before_the_follow_up_is_followed(db_url, tmp_path, monkeypatch):
    """A key the second phase served, deleted before the follow-up ran (an
    interrupted load, resumed): the keys it certified lose its certification,
    listed as served together or not."""
    store = open_store(db_url, 2)
    try:
        keys, certifier = certifier_deleted_after_phase_2(store, db_url, tmp_path, monkeypatch)
        loader(store, db_url).load([])
    finally:
        store.close()
    kept = b"".join(k for i, k in enumerate(keys) if i != certifier)
    assert content(db_url)[0] == pipeline_content(tmp_path, kept)[0]


def test_a_signer_deleted_and_uploaded_again_is_followed(db_url, tmp_path, monkeypatch):
    """A key the second phase served, deleted (cksd then derives the keys it
    certified again, without it) and uploaded again before the load's
    follow-up: those keys get its certification back."""
    store = open_store(db_url, 2)
    try:
        keys, certifier = certifier_deleted_after_phase_2(store, db_url, tmp_path, monkeypatch)
        views.follow_signers(store, pipeline.Limits().serve)  # as cksd does
        pipeline.submit(store, keys[certifier], pipeline.Source.admin(queue=False),
                        follow=False)
        loader(store, db_url).load([])
    finally:
        store.close()
    assert content(db_url)[0] == pipeline_content(tmp_path, b"".join(keys))[0]


def test_a_new_load_does_not_count_an_interrupted_ones_keys_as_settled(db_url, tmp_path,
                                                                      monkeypatch):
    """A load interrupted before its follow-up (whose queue cksd then worked
    off) leaves its list of keys served; a later load that stores a key
    certifying one of them must still derive that one again."""
    keys = debian_keys(30)
    certifier, _ = certifications(keys)[0]
    first = b"".join(k for i, k in enumerate(keys) if i != certifier)
    (tmp_path / "first.gpg").write_bytes(first)
    (tmp_path / "second.gpg").write_bytes(keys[certifier])
    store = open_store(db_url, 2)
    try:
        load_without_follow_up(store, db_url, tmp_path / "first.gpg", monkeypatch)
        assert run_sql(db_url, "SELECT count(*) FROM cks_load_served") == [(29,)]
        views.follow_signers(store, pipeline.Limits().serve)  # as cksd does
        loader(store, db_url).load([str(tmp_path / "second.gpg")])
    finally:
        store.close()
    assert content(db_url) == pipeline_content(tmp_path, b"".join(keys))


def test_cksd_does_not_derive_again_what_a_load_served_together(db_url, tmp_path,
                                                                monkeypatch):
    """cksd's follow-up (its background job) also leaves out what the second
    phase of a running or interrupted load served together; on a database
    that never ran a load it derives everything named, as before."""
    keys = debian_keys(60)
    _, certified = certifications(keys)[0]
    (tmp_path / "keys.gpg").write_bytes(b"".join(k for i, k in enumerate(keys)
                                                 if i != certified))
    rederived = []
    reverify = views.reverify
    monkeypatch.setattr(views, "reverify", lambda store, policy, fingerprints=None, **options: (
        rederived.extend(fingerprints), reverify(store, policy, fingerprints, **options))[1])
    store = open_store(db_url, 2)
    try:
        pipeline.submit(store, keys[certified], pipeline.Source.admin(queue=False))
        load_without_follow_up(store, db_url, tmp_path / "keys.gpg", monkeypatch)
        assert follow_views(store, pipeline.Limits().serve)
        assert rederived == [fpr_of(keys[certified])]
        assert run_sql(db_url, "SELECT count(*) FROM cks_view_work") == [(0,)]
        assert content(db_url) == pipeline_content(tmp_path, b"".join(keys))
        # a database made before the list existed, which never ran a load
        run_sql(db_url, "DROP TABLE cks_load_served", write=True)
        rederived.clear()
        with store.write() as cursor:  # the loaded keys' follow-up once more
            for key in keys:
                fingerprint = fpr_of(key)
                cursor.execute("INSERT INTO cks_view_work (fingerprint, keyid, signed, "
                               "missing) VALUES (?, ?, ?, '')",
                               (fingerprint, fingerprint[-16:], True))
        assert follow_views(store, pipeline.Limits().serve)
        assert len(rederived) > 1
        assert run_sql(db_url, "SELECT count(*) FROM cks_view_work") == [(0,)]
    finally:
        store.close()


def test_a_batch_that_fails_to_write_stops_the_load_and_the_next_goes_on(db_url, tmp_path,
                                                                        monkeypatch):
    """The load ends with the error, what was written before it kept, the
    cycle collector's threshold put back; the next load goes on."""
    keys = debian_keys(12)
    path = tmp_path / "keys.pgp"
    path.write_bytes(b"".join(keys))
    write, written, thresholds = load.Loader._write, [], []

    def fails_third(self, tasks, *args):
        thresholds.append(gc.get_threshold()[0])
        if len(written) == 2:
            raise StoreUnavailable("the disk is full")
        write(self, tasks, *args)
        written.append(len(tasks))
    monkeypatch.setattr(load.Loader, "_write", fails_third)
    before = gc.get_threshold()
    store = open_store(db_url, 2)
    try:
        with pytest.raises(StoreUnavailable, match="the disk is full"):
            load.Loader(store, db_url, pipeline.Limits(), pipeline.Source.admin(queue=False),
                        jobs=2, batch_size=4).load([str(path)])
        assert gc.get_threshold() == before and set(thresholds) == {load.GC_THRESHOLD}
        assert written == [4, 4]
        assert run_sql(db_url, "SELECT count(*) FROM cks_keys") == [(8,)]
        monkeypatch.setattr(load.Loader, "_write", write)
        summary = load.Loader(store, db_url, pipeline.Limits(),
                              pipeline.Source.admin(queue=False), jobs=2,
                              batch_size=4).load([str(path)])
    finally:
        store.close()
    # (the whole load's count: the 8 keys written before the failure too)
    assert summary.line() == "12 added, 0 updated, 0 unchanged, 0 refused; 0 problems"
    assert content(db_url) == pipeline_content(tmp_path, b"".join(keys))


def test_one_load_at_a_time(db_url, tmp_path):
    """A load started while another holds the load lock (the list of keys
    served in phase 2 is the running load's) exits 75 and stores nothing."""
    store = open_store(db_url)
    try:
        with store.exclusive(load.LOAD_LOCK) as locked:
            assert locked
            out = admin(db_url, "load", "-", input=fixture("rsa2048"))
    finally:
        store.close()
    assert out.returncode == 75
    assert out.stderr.decode().strip() == (
        "cks_admin.py: error: another load is running on this database; run this one when "
        "it ends")
    assert run_sql(db_url, "SELECT count(*) FROM cks_keys") == [(0,)]
    assert admin(db_url, "load", "-", input=fixture("rsa2048")).returncode == 0


@pytest.mark.parametrize("holder, second", [
    ("cks.db", "alias.db"), ("alias.db", "cks.db"), ("cks.db", "{tmp}/alias.db"),
    ("{tmp}/cks.db", "cks.db"), ("cks.db", "{tmp}/cks.db")])
def test_one_load_at_a_time_however_the_path_is_spelled(tmp_path, monkeypatch, holder, second):
    """The lock file is beside the database file itself: it was <path as
    given>.load.lock, and a load through a symlink ran beside another."""
    monkeypatch.chdir(tmp_path)
    os.symlink("cks.db", "alias.db")
    spelled = {name: "sqlite:///" + name.format(tmp=tmp_path) for name in (holder, second)}
    store = open_store(spelled[holder])
    try:
        with store.exclusive(load.LOAD_LOCK) as locked:
            assert locked
            out = tool("cks_admin.py", ["--db", spelled[second], "load", "-"],
                       input=fixture("rsa2048"), cwd=str(tmp_path))
    finally:
        store.close()
    assert out.returncode == 75, out.stderr
    assert run_sql(spelled[holder], "SELECT count(*) FROM cks_keys") == [(0,)]


MOST = {"--batch-size": 1000000, "--jobs": 1024, "--keys-per-file": 1000000000}


@pytest.mark.parametrize("option", ["--batch-size", "--jobs"])
@pytest.mark.parametrize("size", ["0", "-5"])
def test_a_batch_size_or_jobs_below_one_is_a_usage_error(db_url, tmp_path, option, size):
    """Refused before anything is read: a batch size of 0 stored the keys and
    never served them, and on PostgreSQL a negative one failed after the
    first phase; a negative number of jobs meant one."""
    keyring = tmp_path / "keys.gpg"
    keyring.write_bytes(b"".join(debian_keys(5)))
    out = admin(db_url, "load", option, size, str(keyring))
    assert out.returncode == 2
    assert out.stderr.decode().splitlines()[-1] == \
        "cks_admin.py load: error: argument %s: must be a whole number from 1 to %d, not %r" \
        % (option, MOST[option], size)
    assert out.stdout == b""
    assert run_sql(db_url, "SELECT count(*) FROM cks_keys") == [(0,)]


@pytest.mark.parametrize("command, option, value", [
    ("load", "--batch-size", "99999999999999999999"), ("load", "--batch-size", "1000001"),
    ("load", "--jobs", "1025"), ("dump", "--keys-per-file", "99999999999999999999"),
    ("dump", "--keys-per-file", "0"), ("load", "--jobs", "\u0663"),
    ("load", "--batch-size", "1_000")])
def test_a_count_out_of_its_range_is_a_usage_error(db_url, tmp_path, command, option, value):
    """Refused before anything is read or written: a batch size past the
    database's integers stored the first batch and then failed with a
    traceback (until 2026-12-06; SQLite: OverflowError, PostgreSQL: bigint
    out of range).  ASCII digits only: until 2026-12-06 '\u0663' was 3 and
    '1_000' a thousand, as int() reads them (cks_sync_manage.py refused them)."""
    keyring = tmp_path / "keys.gpg"
    keyring.write_bytes(b"".join(debian_keys(5)))
    out = admin(db_url, command, option, value,
                str(keyring if command == "load" else tmp_path / "dump"))
    assert out.returncode == 2
    assert out.stderr.decode().splitlines()[-1] == \
        "cks_admin.py %s: error: argument %s: must be a whole number from 1 to %d, not %r" % (
            command, option, MOST[option], value)
    assert out.stdout == b"" and not os.path.exists(tmp_path / "dump")
    assert run_sql(db_url, "SELECT count(*) FROM cks_keys") == [(0,)]


def greedy_batches(sizes, limit):
    """How many items each batch takes when a batch ends once its items
    reach `limit` bytes."""
    batches, total = [0], 0
    for size in sizes:
        if batches[-1] and total >= limit:
            batches, total = batches + [0], 0
        batches[-1] += 1
        total += size
    return batches


def test_batches_end_at_a_byte_limit_in_both_phases(db_url, tmp_path, monkeypatch):
    """Large keys make small batches (memory stays flat whatever their size):
    phase 1 cuts the input, phase 2 the stored keys in fingerprint order,
    once a batch reaches BATCH_BYTES; the result is the pipeline's."""
    keys = debian_keys(12)
    monkeypatch.setattr(load, "BATCH_BYTES", sum(len(k) for k in keys) // 5)
    phase1, phase2 = [], []
    send = load.Loader._send
    monkeypatch.setattr(load.Loader, "_send", lambda self, batch, read_to: (
        phase1.append(len(batch)), send(self, batch, read_to))[1])
    path = tmp_path / "keys.pgp"
    path.write_bytes(b"".join(keys))
    store = open_store(db_url, 2)
    unserved = store.unserved
    store.unserved = lambda *args: (lambda found: (phase2.append(len(found)), found)[1])(
        unserved(*args))
    try:
        summary = load.Loader(store, db_url, pipeline.Limits(),
                              pipeline.Source.admin(queue=False), jobs=1).load([str(path)])
    finally:
        store.close()
    assert summary.line() == "12 added, 0 updated, 0 unchanged, 0 refused; 0 problems"
    assert phase1 == greedy_batches([len(k) for k in keys], load.BATCH_BYTES)
    stored = [size for _, size in sorted(run_sql(db_url, "SELECT fingerprint, size "
                                                          "FROM cks_keys"))]
    assert phase2 == greedy_batches(stored, load.BATCH_BYTES) + [0]
    assert 3 < len(phase1) < 12 and 3 < len(phase2) < 13
    assert content(db_url) == pipeline_content(tmp_path, b"".join(keys))


PEAK = ("import resource, subprocess, sys; "
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def peak_kib(url, path):
    """The peak resident size of the load of `path` (its largest process), KiB."""
    out = subprocess.run([sys.executable, "-c", PEAK, *load_command(url, path, "--no-sync")],
                         capture_output=True, check=True)
    return int(out.stdout)


def test_an_armor_block_loads_in_the_memory_a_binary_keyring_does(tmp_path):
    """A block is decoded as it is read (until 2026-12-05 it was held whole,
    at about eight times its size: 357 MB for the Debian keyring as one
    block, 117 MB now and for the keyring itself)."""
    keys = b"".join(debian_keys(400))
    (tmp_path / "keys.gpg").write_bytes(keys)
    (tmp_path / "keys.asc").write_text(armor.encode(keys))
    binary = peak_kib("sqlite:///%s" % (tmp_path / "binary.db"), tmp_path / "keys.gpg")
    armored = peak_kib("sqlite:///%s" % (tmp_path / "armored.db"), tmp_path / "keys.asc")
    size_kib = (tmp_path / "keys.asc").stat().st_size // 1024
    assert size_kib > 10000
    assert armored - binary < size_kib // 2, (binary, armored, size_kib)
    assert content("sqlite:///%s" % (tmp_path / "binary.db")) == \
        content("sqlite:///%s" % (tmp_path / "armored.db"))


def test_dump_loads_back_to_the_same_content(db_url, tmp_path):
    data = b"".join(fixture(n) for n in FIXTURES)
    assert admin(db_url, "load", "-", input=data).returncode == 0
    assert admin(db_url, "load", "--no-sync", "--batch-size", "5", "-",
                 input=b"".join(debian_keys(20))).returncode == 0
    out = admin(db_url, "dump", str(tmp_path / "dump"), "--keys-per-file", "7")
    assert out.returncode == 0 and out.stdout.decode().startswith(
        "26 keys in 5 files in %s (1 key SKS 1.1.6 cannot read in cks-dump-newer-*.keys)"
        % (tmp_path / "dump"))
    assert sorted(os.listdir(tmp_path / "dump")) == \
        ["cks-dump-%04d.pgp" % i for i in range(4)] + ["cks-dump-newer-0000.keys"]  # (v6)
    other = "sqlite:///%s" % (tmp_path / "other.db")
    out = admin(other, "load", "--no-sync", str(tmp_path / "dump"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode().startswith("26 added")
    assert content(other) == content(db_url)
    ptree_ok(other)


def test_mixed_inputs_and_a_corrupt_file_in_the_middle(db_url, tmp_path):
    keys = debian_keys(12)
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a-keyring.gpg").write_bytes(b"".join(keys[:4]))
    (inputs / "b-armored.asc").write_bytes(b"some text\n" + fixture("rsa2048") + b"\n--\n"
                                           + fixture("nistp256") + fixture("ed25519"))
    corrupt = b"".join(keys[4:8])
    cut = len(keys[4]) + len(keys[5]) // 2  # inside the second key
    (inputs / "c-corrupt.gpg").write_bytes(corrupt[:cut] + b"\x00garbage" + corrupt[cut:])
    (inputs / "d-sks-dump-0000.pgp").write_bytes(b"".join(keys[8:]))
    out = admin(db_url, "load", "--no-sync", str(inputs / "a-keyring.gpg"), str(inputs))
    assert out.returncode == 1
    errors = out.stderr.decode().splitlines()
    # the first file named twice is read once; the damage reported where its key starts
    assert len(errors) == 2 and errors[0].endswith("a-keyring.gpg: named before, read once")
    assert "c-corrupt.gpg: offset %d: " % len(keys[4]) in errors[1], errors
    # 4 + 3 + 3 (one key of the corrupt file lost) + 4
    assert out.stdout.decode().strip() == \
        "14 added, 0 updated, 0 unchanged, 0 refused; 1 problem"
    assert run_sql(db_url, "SELECT count(*) FROM cks_keys") == [(14,)]
    ptree_ok(db_url)


def test_a_file_cut_inside_a_keys_first_packet_loses_that_key_alone(db_url, tmp_path):
    """The key before the cut one is whole and stored; the problem is
    reported where the cut key starts (until 2026-12-05 the whole key
    before it was lost too, and named)."""
    keys = debian_keys(4)
    path = tmp_path / "cut.gpg"
    path.write_bytes(b"".join(keys[:3]) + keys[3][:10])
    out = admin(db_url, "load", "--no-sync", str(path))
    assert out.returncode == 1
    assert out.stdout.decode().strip() == "3 added, 0 updated, 0 unchanged, 0 refused; 1 problem"
    assert out.stderr.decode().splitlines() == [
        "%s: offset %d: truncated packet (needs %d bytes, 7 left)" % (
            path, len(b"".join(keys[:3])), read_packet(keys[3])[1] - 3)]


def unusable_primary():
    """A v4 key whose primary key packet frames well but whose RSA modulus is
    cut short, with a user ID."""
    body = b"\x04" + (1500000000).to_bytes(4, "big") + b"\x01" + b"\x08\x00\x01"
    return encode_header(6, len(body)) + body + encode_header(13, 9) + b"Bad <b@x>"


def test_a_primary_key_whose_material_does_not_parse_is_reported(db_url, tmp_path):
    """The loading process reads a primary key's fingerprint without parsing
    its key material; the worker finds the key unusable and says where."""
    good = [read_keys(fixture(n)).keys[0].serialize() for n in ("rsa2048", "nistp256")]
    path = tmp_path / "keys.gpg"
    path.write_bytes(good[0] + unusable_primary() + good[1])
    out = admin(db_url, "load", "--no-sync", str(path))
    assert out.returncode == 1
    assert out.stdout.decode().strip() == "2 added, 0 updated, 0 unchanged, 0 refused; 1 problem"
    assert out.stderr.decode().splitlines() == [
        "%s: offset %d: unusable primary key: public key material (algorithm 1): truncated "
        "(needs 256 more bytes, 1 left)" % (path, len(good[0]))]


def test_a_batch_key_that_does_not_parse_counts_as_not_held(db_url, monkeypatch):
    """A worker deriving a stored key's view does not fail on a key of the
    batch whose material does not parse: that signer is not held."""
    store = open_store(db_url)
    try:
        pipeline.submit(store, fixture("certified"), pipeline.Source.admin(queue=False))
    finally:
        store.close()
    monkeypatch.setattr(derive, "_worker", None)
    derive.start_worker(db_url, pipeline.Limits())
    signer = read_keys(fixture("rsa2048")).keys[0]
    task = [derive.Task(fpr("certified"))]
    broken = {signer.keyid.hex().upper(): [(signer.fingerprint.hex().upper(),
                                            b"\x04\x00\x00\x00\x00\x01\x08\x00\x01")]}
    try:
        with_broken = derive.derive_group(derive.Group(task, broken))[0]
        alone = derive.derive_group(derive.Group(task, {}))[0]
    finally:
        derive._worker.store.close()
    assert with_broken.view.served == alone.view.served
    assert signer.keyid.hex().upper() in with_broken.view.missing


def test_refused_keys_are_counted_by_reason(db_url, tmp_path):
    run_sql(db_url, "INSERT INTO cks_rejected_keys (fingerprint, reason, rejected_at) "
                    "VALUES (?, 'spam', 0)", (fpr("nistp256"),), write=True)
    config = tmp_path / "cks.conf"
    config.write_text("[limits]\nmax_signatures_per_key = 2\n")
    data = b"".join(fixture(n) for n in ["rsa2048", "nistp256", "certified"])
    out = tool("cks_admin.py", ["--db", db_url, "--config", str(config), "load", "-"],
               input=data)
    assert out.returncode == 1
    line = out.stdout.decode().strip()
    assert line.startswith("1 added, 0 updated, 0 unchanged, 2 refused "
                           "(over-limit: 1, rejected: 1); 2 problems"), line
    stderr = out.stderr.decode()
    assert "key %s refused: key is rejected on this server: spam" % fpr("nistp256") in stderr
    assert "key %s refused: has 4 signatures, over this server's limit of 2" % fpr(
        "certified") in stderr


def v3_twin():
    """(the v3 fixture, binary; a copy of its key packet created a day later,
    with the same packets after it): two keys with one v3 fingerprint."""
    (held,) = read_keys(fixture("v3-rsa")).keys
    other = bytearray(held.primary.body)
    other[1:5] = (int.from_bytes(other[1:5], "big") + 86400).to_bytes(4, "big")
    (twin,) = read_keys(Packet(6, bytes(other)).serialize() + b"".join(
        p.serialize() for p in held.packets()[1:])).keys
    assert twin.fingerprint == held.fingerprint
    return held.serialize(), twin.serialize()


@pytest.mark.parametrize("held_first", [False, True])
def test_a_second_key_of_one_v3_fingerprint_is_refused_as_an_upload_refuses_it(
        db_url, tmp_path, held_first):
    """Until 2026-12-06 a load kept the first key read of one (v3)
    fingerprint and dropped the other without a word; with the other one
    held, the held one's copy (its new packets) was dropped too."""
    v3, twin = v3_twin()
    fingerprint = fpr("v3-rsa")
    if held_first:  # the fixture held, its twin read first
        assert admin(db_url, "load", "--no-sync", "-", input=v3).returncode == 0
    (tmp_path / "both.gpg").write_bytes(twin + v3 if held_first else v3 + twin)
    out = admin(db_url, "load", "--no-sync", str(tmp_path / "both.gpg"))
    assert out.returncode == 1
    assert out.stdout.decode().startswith(
        "%d added, 0 updated, %d unchanged, 1 refused (conflict: 1); 1 problem" % (
            0 if held_first else 1, 1 if held_first else 0)), out.stdout
    assert "key %s refused: another key with this fingerprint is read with it" % fingerprint \
        in out.stderr.decode()
    assert [bytes(r[0]) for r in run_sql(db_url, "SELECT keydata FROM cks_keys")] == [v3]


PHASES = ["network views", "served views"]


def load_command(db_url, keyring, *options):
    return [sys.executable, os.path.join(ROOT, "cks_admin.py"), "--db", db_url, "load",
            *options, str(keyring)]


def wait_until_in(phase, db_url, keyring, count):
    """Until the load of `keyring` (`count` keys) into `db_url` is half-way
    through `phase`, as its committed batches show."""
    size = keyring.stat().st_size
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if phase == "network views" and _progress(db_url) > 0:  # a first batch is in
            return
        if phase == "served views" and _progress(db_url) == size \
                and 0 < _unserved(db_url) < count:
            return
        time.sleep(0.01)


def assert_interrupted_in(phase, db_url, keyring, count):
    """The load was interrupted half-way through `phase`; a key stored
    without its served view yet is not found, and its network view is
    there for recon (op=hget)."""
    offset = _progress(db_url)
    stored = run_sql(db_url, "SELECT count(*) FROM cks_keys")[0][0]
    if phase == "network views":
        assert 0 < offset < keyring.stat().st_size  # half-way through the input
    else:
        assert offset == keyring.stat().st_size and stored == count \
            and 0 < _unserved(db_url) < count
    unserved = run_sql(db_url, "SELECT keyid, sks_hash FROM cks_keys WHERE served_crc24 = -1")
    if unserved:
        keyid, hash_ = unserved[0]
        with Cksd(db_url) as server:
            assert server.lookup(op="get", search="0x" + keyid)[0] == 404
            assert server.lookup(op="index", options="mr", search="0x" + keyid)[0] == 404
            assert server.lookup(op="hget", search=hash_)[0] == 200


def assert_resumes_to_the_uninterrupted_result(db_url, tmp_path, command, keyring):
    """`command` run again on the interrupted load's database adds the keys
    still missing, leaves what a load never interrupted leaves, and says
    what it says: the whole load's counts and problems, and its status."""
    out = subprocess.run(command, capture_output=True)
    assert _unserved(db_url) == 0
    whole = "sqlite:///%s" % (tmp_path / "whole.db")
    uninterrupted = admin(whole, "load", str(keyring))
    assert (out.returncode, out.stdout.decode(), out.stderr.decode()) == (
        uninterrupted.returncode, uninterrupted.stdout.decode(), uninterrupted.stderr.decode())
    assert content(db_url) == content(whole)
    for table in ("cks_pending_sync", "cks_key_signers", "cks_words", "cks_sig_verdicts"):
        assert run_sql(db_url, "SELECT count(*) FROM %s" % table) == \
            run_sql(whole, "SELECT count(*) FROM %s" % table), table
    for table in ("cks_load_progress", "cks_load_counts", "cks_load_problems"):
        assert run_sql(db_url, "SELECT count(*) FROM %s" % table) == [(0,)], table
    ptree_ok(db_url)


def load_killed_at(db_url, paths, monkeypatch, method, calls, batch_size, queue=False):
    """Load `paths` in batches of `batch_size` (queued for the peers: `queue`)
    and stop when Loader's `method` is called once it ran `calls` times, as
    a load killed then would."""
    class Killed(Exception):
        pass

    run = getattr(load.Loader, method)
    ran = []

    def killed_after(self, *args):
        if len(ran) == calls:
            raise Killed
        ran.append(True)
        return run(self, *args)
    store = open_store(db_url, 2)
    try:
        with monkeypatch.context() as patched:
            patched.setattr(load.Loader, method, killed_after)
            with pytest.raises(Killed):
                load.Loader(store, db_url, pipeline.Limits(), pipeline.Source.admin(queue=queue),
                            jobs=1, batch_size=batch_size).load([str(p) for p in paths])
    finally:
        store.close()


def test_an_unchanged_upload_serves_a_key_an_interrupted_load_left_unserved(
        db_url, tmp_path, monkeypatch):
    """A key a load stored in its first phase, the load interrupted before
    its second: an upload of the same key says `unchanged`, and the key is
    served (until 2026-12-06 it stayed 404 until the load ran again).  The
    load run again then ends as an uninterrupted one does."""
    keyring = tmp_path / "keys.asc"
    keyring.write_bytes(fixture("certified") + fixture("rsa2048"))
    load_killed_at(db_url, [keyring], monkeypatch, "_serve_unserved", 0, 4000)
    assert _unserved(db_url) == 2
    certified = fpr("certified")
    with Cksd(db_url) as server:
        status, _, body = server.add(fixture("certified"))
        assert (status, body.decode()) == (200, "unchanged %s\n" % certified)
        assert server.lookup(op="get", search="0x" + certified)[0] == 200
        assert server.lookup(op="index", options="mr", search="certified")[0] == 200
        assert server.lookup(op="get", search="0x" + fpr("rsa2048"))[0] == 404  # (not sent)
        settled(server)
    assert run_sql(db_url, "SELECT signer_keyid FROM cks_key_signers WHERE "
                   "key_fingerprint = ? ORDER BY signer_keyid", (certified,)) == sorted(
        (k.hex().upper(),) for k in third_party_issuers(read_keys(fixture("certified")).keys[0]))
    assert_resumes_to_the_uninterrupted_result(db_url, tmp_path, load_command(db_url, keyring),
                                               keyring)


def test_stats_counts_the_keys_an_interrupted_load_left_unserved(db_url, tmp_path, monkeypatch):
    """`stats` says how many keys are stored without a served view yet, and
    what serves them (until 2026-12-06 it counted them with the others
    alone, found by no lookup as they are)."""
    keyring = tmp_path / "keys.asc"
    keyring.write_bytes(fixture("certified") + fixture("rsa2048") + fixture("ed25519"))
    load_killed_at(db_url, [keyring], monkeypatch, "_serve_unserved", 0, 4000)
    out = admin(db_url, "stats")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.decode().splitlines()
    assert lines[:2] == ["keys               3", "unserved keys      3 " + admin_cli.UNSERVED_NOTE]
    assert json.loads(admin(db_url, "stats", "--json").stdout)["unserved_keys"] == 3
    assert admin(db_url, "load", str(keyring)).returncode == 0
    assert admin(db_url, "stats").stdout.decode().splitlines()[:2] == [
        "keys               3", "unserved keys      0"]


def test_a_loads_second_phase_serves_a_key_an_upload_left_unserved(store, db_url, tmp_path):
    """A new key whose upload was answered before its served view was
    derived (cksd's uploads: its signers are saved with its network view)
    is served by a load's second phase that finds it so (until 2026-12-06
    the load failed, writing its signers again)."""
    pipeline.submit(store, fixture("certified"), pipeline.Source.user(), follow=False,
                    defer_views=True)
    assert _unserved(db_url) == 1
    loader(store, db_url).load([])
    assert _unserved(db_url) == 0
    assert content(db_url) == pipeline_content(tmp_path, fixture("certified"))


def load_stopped_after_first_batch(db_url, path, batch_size, monkeypatch):
    """Load `path` in batches of `batch_size` and stop once the first batch
    is committed (with where to go on), as a load killed then would."""
    load_killed_at(db_url, [path], monkeypatch, "_write", 1, batch_size)


@pytest.mark.parametrize("spot", [b"\x00" * 4096, b"some text, not a key\n" * 8],
                         ids=["zero bytes", "text"])
def test_a_load_stopped_after_a_corrupt_spot_says_it_when_it_ends(db_url, tmp_path,
                                                                  monkeypatch, spot):
    """A batch that ends with a corrupt spot inside a binary keyring records
    the problem, and the next key as where to go on; run again, the load
    stores every key after it and says what a load never stopped says: the
    whole load's counts and the problem, once (until 2026-12-05 the run
    that went on found the spot again, at another offset, and counted only
    its own keys; before, it judged the format from that byte and stored no
    key after it)."""
    keys = debian_keys(20)
    cut = len(b"".join(keys[:12])) + read_packet(keys[12])[1]  # in the 13th key
    data = b"".join(keys)
    path = tmp_path / "keys.gpg"
    path.write_bytes(data[:cut] + spot + data[cut:])
    load_stopped_after_first_batch(db_url, path, 13, monkeypatch)  # 12 keys, the spot
    assert _progress(db_url) == len(b"".join(keys[:13])) + len(spot)  # the 14th key
    assert run_sql(db_url, "SELECT count(*) FROM cks_keys") == [(12,)]
    out = admin(db_url, "load", "--no-sync", str(path))
    assert out.returncode == 1
    assert out.stdout.decode().strip() == "19 added, 0 updated, 0 unchanged, 0 refused; 1 problem"
    assert out.stderr.decode().splitlines() == [
        "%s: offset %d: %s at offset %d; the key there is incomplete and was skipped" % (
            path, len(b"".join(keys[:12])), "not an OpenPGP packet (byte 0x%02X)" % spot[0], cut)]
    whole = "sqlite:///%s" % (tmp_path / "whole.db")
    uninterrupted = admin(whole, "load", "--no-sync", str(path))
    assert (uninterrupted.stdout, uninterrupted.stderr) == (out.stdout, out.stderr)
    assert content(db_url) == content(whole)
    assert run_sql(db_url, "SELECT count(*) FROM cks_load_progress") == [(0,)]


def armored_in_two_blocks(path):
    """12 Debian keys armored 6 a block into `path`, with zero bytes after the
    second (it is lost: a problem) and the last cut short (a problem): 6
    chunks a block, so that read 3 a batch each block ends the second
    batch it is in."""
    keys = debian_keys(12)
    keys[-1] = keys[-1][:len(keys[-1]) // 2]
    path.write_text(armor.encode(b"".join(keys[:2]) + b"\x00" * 64 + b"".join(keys[2:6]))
                    + armor.encode(b"".join(keys[6:])))


@pytest.mark.parametrize("what, stop, batches", [
    ("an armored file", "_write", 2),  # block 1 committed, block 2 not begun
    ("an armored file", "_serve_unserved", 0),
    ("a directory", "_serve_unserved", 0)])
def test_a_resumed_armored_load_says_what_an_uninterrupted_one_says(db_url, tmp_path,
                                                                    monkeypatch, what, stop,
                                                                    batches):
    """The keys and problems of an armor block read in a batch before the one
    that reads its END line are recorded with that one, so the run that
    completes a load stopped after it says the whole load's counts and
    problems and exits 1; until 2026-12-06 they were never recorded (a
    load resumed at the block's end reads them no more), and the Debian
    keyring as one block said `1 added` and `0 problems`, status 0."""
    keyring = tmp_path / "keys.asc"
    if what == "a directory":
        (tmp_path / "in").mkdir()
        (tmp_path / "in" / "a.gpg").write_bytes(b"".join(debian_keys(16)[12:]))
        armored_in_two_blocks(tmp_path / "in" / "b.asc")
        keyring = tmp_path / "in"
    else:
        armored_in_two_blocks(keyring)
    paths = sorted(keyring.iterdir()) if what == "a directory" else [keyring]
    load_killed_at(db_url, paths, monkeypatch, stop, batches, 3, queue=True)
    command = load_command(db_url, keyring, "--batch-size", "3", "--jobs", "1")
    assert_resumes_to_the_uninterrupted_result(db_url, tmp_path, command, keyring)


def test_a_completed_load_ends_every_interrupted_loads_progress(db_url, tmp_path,
                                                                 monkeypatch):
    """Until 2026-12-06 a load forgot its own files' progress alone: one left
    by an interrupted load of another file stayed, and a load of that file
    weeks later skipped what was read then (a key deleted since did not
    come back) and said the old counts as its own."""
    first = tmp_path / "first.gpg"
    first.write_bytes(b"".join(debian_keys(9)))
    load_stopped_after_first_batch(db_url, first, 3, monkeypatch)
    stored = [f for f, in run_sql(db_url, "SELECT fingerprint FROM cks_keys")]
    assert len(stored) == 3
    other = tmp_path / "other.asc"
    other.write_bytes(fixture("rsa2048"))
    assert admin(db_url, "load", "--no-sync", str(other)).returncode == 0
    assert run_sql(db_url, "SELECT count(*) FROM cks_load_progress") == [(0,)]
    assert admin(db_url, "delete", stored[0]).returncode == 0
    out = admin(db_url, "load", "--no-sync", str(first))
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode().startswith("7 added, 0 updated, 2 unchanged, 0 refused")
    assert (stored[0],) in run_sql(db_url, "SELECT fingerprint FROM cks_keys")


@pytest.mark.parametrize("batch_size", ["1", "2"])
def test_a_file_named_twice_is_read_once(db_url, tmp_path, batch_size):
    """Until 2026-12-06 the second reading went on from where the first had
    committed: its counts and problem lines depended on the batch size."""
    keyring = tmp_path / "in" / "keys.gpg"
    keyring.parent.mkdir()
    keyring.write_bytes(b"".join(debian_keys(3)))
    out = admin(db_url, "load", "--no-sync", "--batch-size", batch_size, str(keyring),
                str(keyring.parent), str(tmp_path / "in" / ".." / "in" / "keys.gpg"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode().startswith("3 added, 0 updated, 0 unchanged, 0 refused")
    assert out.stderr.decode().count("named before, read once") == 2


@pytest.mark.parametrize("phase", PHASES)
def test_resume_after_sigkill_gives_the_uninterrupted_result(db_url, tmp_path, phase):
    keyring = tmp_path / "keys.gpg"
    keyring.write_bytes(b"".join(debian_keys(150)))
    command = load_command(db_url, keyring, "--batch-size", "3", "--jobs", "1")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_in(phase, db_url, keyring, 150)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert_interrupted_in(phase, db_url, keyring, 150)
    assert_resumes_to_the_uninterrupted_result(db_url, tmp_path, command, keyring)


@contextlib.contextmanager
def own_process_group(command):
    """`command` started in a process group of its own (its standard error
    read), which is killed after the block if it is still there (it hung)."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def assert_ended_at_once_by_sigint(process):
    """Status 130 within 20 s, and no traceback from it or its workers."""
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 130, stderr
    assert b"Traceback" not in stderr, stderr.decode()


@contextlib.contextmanager
def load_half_way(db_url, tmp_path, phase, jobs="2"):
    """A load of 150 Debian keys in batches of 3 (own_process_group), half-way
    through `phase`: (its process, its command, the keyring)."""
    keyring = tmp_path / "keys.gpg"
    keyring.write_bytes(b"".join(debian_keys(150)))
    command = load_command(db_url, keyring, "--batch-size", "3", "--jobs", jobs)
    with own_process_group(command) as process:
        wait_until_in(phase, db_url, keyring, 150)
        yield process, command, keyring


GOES_ON = "run the same command again: it goes on after the last committed batch"


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("to_all, jobs", [(True, "2"), (False, "2"), (True, "1")],
                         ids=["process group", "loading process", "no workers"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_sigint_or_sigterm_ends_the_load_at_once_and_it_resumes(db_url, tmp_path, phase,
                                                                to_all, jobs, signum):
    """SIGINT to the load's process group, as Ctrl-C on its terminal sends
    it to the loading process and its workers alike, or to the loading
    process alone: status 130 at once, no traceback from any of them; run
    again, the load goes on.  SIGTERM likewise (systemd and timeout send it
    to the process group, which ends the workers), with one line and status
    143 (until 2026-12-06 it ended the load at once, and its workers printed
    tracebacks)."""
    with load_half_way(db_url, tmp_path, phase, jobs) as (process, command, keyring):
        if to_all:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
        if signum == signal.SIGINT:
            assert_ended_at_once_by_sigint(process)
        else:
            _, stderr = process.communicate(timeout=20)
            assert process.returncode == 143, stderr
            assert stderr.decode().splitlines() == [
                "cks_admin.py: error: stopped by SIGTERM; " + GOES_ON]
    assert_interrupted_in(phase, db_url, keyring, 150)
    assert_resumes_to_the_uninterrupted_result(db_url, tmp_path, command, keyring)


@pytest.mark.parametrize("also_a_file", [False, True], ids=["standard input", "and a file"])
def test_sigterm_to_a_load_of_standard_input_says_it_is_read_again(db_url, tmp_path,
                                                                    also_a_file):
    """The SIGTERM line of a load that reads standard input says that it is
    read again from the start, and that what it loaded counts as unchanged,
    as the load run again shows (until 2026-12-06 it said GOES_ON)."""
    keyring = tmp_path / "keys.gpg"
    keyring.write_bytes(b"".join(debian_keys(150)))
    other = tmp_path / "other.asc"
    other.write_bytes(fixture("rsa2048"))
    command = load_command(db_url, "-", "--batch-size", "3", "--jobs", "1") + (
        [str(other)] if also_a_file else [])
    with open(keyring, "rb") as stdin:
        process = subprocess.Popen(command, stdin=stdin, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while not 0 < run_sql(db_url, "SELECT count(*) FROM cks_keys")[0][0] < 150:
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.01)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    loaded = run_sql(db_url, "SELECT count(*) FROM cks_keys")[0][0]
    assert process.returncode == 143, stderr
    assert stderr.decode().splitlines() == [
        "cks_admin.py: error: stopped by SIGTERM; run the same command again, with the same "
        "standard input: it is read again from the start (the keys it loaded count as "
        "unchanged)" + (", and the files go on after the last committed batch"
                        if also_a_file else "")]
    with open(keyring, "rb") as stdin:
        again = subprocess.run(command, stdin=stdin, capture_output=True)
    assert again.returncode == 0, again.stderr
    assert again.stdout.decode().startswith("%d added, 0 updated, %d unchanged, 0 refused" % (
        150 + also_a_file - loaded, loaded))


def damaged_keyring(path, count):
    """`count` Debian keys in a keyring with the third's second packet
    overwritten by 50 zero bytes and the last cut short."""
    keys = debian_keys(count)
    at = read_packet(keys[2])[1]
    keys[2] = keys[2][:at] + b"\x00" * 50 + keys[2][at + 50:]
    keys[-1] = keys[-1][:len(keys[-1]) // 2]
    path.write_bytes(b"".join(keys))
    return keys


@pytest.mark.parametrize("phase, signum", [("network views", signal.SIGKILL),
                                           ("served views", signal.SIGINT)])
def test_the_run_that_completes_a_load_says_every_problem(db_url, tmp_path, phase, signum):
    """Problems are said as they are found, so a run stopped in either
    phase has said those it found, and they are recorded with the batch:
    the run that completes the load says them again with its own, once
    each and where they are, and the whole load's counts, with status 1,
    as a load never interrupted does (until 2026-12-05 a load stopped
    later than the batch said nothing of them, the next run said `0
    problems` with status 0, and a file cut at its end had its last problem
    said again at another offset)."""
    keyring = tmp_path / "keys.gpg"
    keys = damaged_keyring(keyring, 150)
    command = load_command(db_url, keyring, "--batch-size", "3", "--jobs", "1")
    with own_process_group(command) as process:
        wait_until_in(phase, db_url, keyring, 148)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=20)
    assert stderr.decode().startswith("%s: offset %d: not an OpenPGP packet (byte 0x00)" % (
        keyring, len(keys[0] + keys[1]))), stderr
    assert run_sql(db_url, "SELECT count(*) FROM cks_load_problems")[0][0] >= 1
    assert_resumes_to_the_uninterrupted_result(db_url, tmp_path, command, keyring)


def workers_of(process):
    """The process IDs of a load's worker processes."""
    out = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True)
    return [int(pid) for pid in out.stdout.split()]


def running(pid):
    """Whether the process `pid` runs (it is not gone, nor a zombie)."""
    try:
        with open("/proc/%d/stat" % pid) as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def assert_end_soon(pids):
    """The processes `pids` end within 10 s."""
    deadline = time.monotonic() + 10
    while any(running(pid) for pid in pids):
        assert time.monotonic() < deadline, [pid for pid in pids if running(pid)]
        time.sleep(0.05)


@pytest.mark.parametrize("phase", PHASES)
def test_a_worker_that_dies_ends_the_load_and_it_resumes(db_url, tmp_path, phase):
    """A worker killed (the out-of-memory killer, kill -9): the load ends at
    once with one line and status 1, and run again it goes on (until
    2026-12-06 it waited for the lost worker's results for ever)."""
    with load_half_way(db_url, tmp_path, phase) as (process, command, keyring):
        os.kill(workers_of(process)[0], signal.SIGKILL)
        _, stderr = process.communicate(timeout=20)
    assert process.returncode == 1, stderr
    assert stderr.decode().splitlines() == [
        "cks_admin.py: error: a worker process of the load died (out of memory? killed?); "
        + GOES_ON]
    assert_interrupted_in(phase, db_url, keyring, 150)
    assert_resumes_to_the_uninterrupted_result(db_url, tmp_path, command, keyring)


@pytest.mark.parametrize("phase", PHASES)
def test_the_workers_end_with_a_killed_load_and_leave_no_trace(db_url, tmp_path, phase):
    """The loading process killed (kill -9): its workers end within moments,
    quietly (until 2026-12-06 each printed a BrokenPipeError traceback, and
    a worker forked after the load took its lock could wait for a task,
    holding the lock, for ever: every later load was refused)."""
    with load_half_way(db_url, tmp_path, phase) as (process, command, keyring):
        workers = workers_of(process)
        process.send_signal(signal.SIGKILL)
        _, stderr = process.communicate(timeout=20)  # (the workers' standard error too)
        assert len(workers) == 2
        assert_end_soon(workers)
    assert b"Traceback" not in stderr, stderr.decode()
    assert_resumes_to_the_uninterrupted_result(db_url, tmp_path, command, keyring)


INTERRUPTED_AT = {
    # Groups just given to the workers, not sent yet (a KeyboardInterrupt
    # where multiprocessing.Pool, used until 2026-12-06, had noted a batch
    # and not queued its groups left it waiting for them for ever).
    "a batch given to the workers": """
sys.path.insert(0, %r)
from cks.bulk import workers

give = workers.Workers.give


def given_then_interrupted(self, *args):
    given = give(self, *args)
    interrupt()
    return given


workers.Workers.give = given_then_interrupted
""" % os.path.join(ROOT, "lib"),
    # The connection pool's lock just taken, its `with` block not begun (a
    # KeyboardInterrupt there left it taken: the next connection waited for
    # ever); the fifth time.
    "a lock just taken": """
import queue, threading


class InterruptedWhenTaken(threading.Condition):
    taken = 0

    def __enter__(self):
        entered = super().__enter__()
        InterruptedWhenTaken.taken += 1
        if InterruptedWhenTaken.taken == 5:
            interrupt()
        return entered


made = queue.LifoQueue.__init__


def made_with_it(self, *args):
    made(self, *args)
    self.not_empty = InterruptedWhenTaken(self.mutex)


queue.LifoQueue.__init__ = made_with_it
"""}


def interrupted_at(instant, command):
    """`command` (a Python script's) run with SIGINT sent to itself at `instant`
    of INTERRUPTED_AT: from outside, so short an instant is hard to hit."""
    return [sys.executable, "-c", "\n".join([
        "import os, runpy, signal, sys",
        "def interrupt():",
        "    os.kill(os.getpid(), signal.SIGINT)",
        INTERRUPTED_AT[instant],
        "sys.argv = sys.argv[1:]",
        "runpy.run_path(sys.argv[0], run_name='__main__')"])] + command[1:]


@pytest.mark.parametrize("instant", sorted(INTERRUPTED_AT))
def test_sigint_at_any_instant_stops_the_load(db_url, tmp_path, instant):
    """Also where a KeyboardInterrupt raised by it left the load hung."""
    keyring = tmp_path / "keys.gpg"
    keyring.write_bytes(b"".join(debian_keys(10)))
    command = load_command(db_url, keyring, "--batch-size", "2", "--jobs", "2")
    with own_process_group(interrupted_at(instant, command)) as process:
        assert_ended_at_once_by_sigint(process)


def test_a_load_stopped_on_a_terminal_ends_its_progress_line(db_url, tmp_path):
    """SIGINT while the progress line is shown: the line ends (its last
    state, then a newline) before the load exits with 130, so the shell's
    prompt starts a line of its own; until 2026-12-05 it came after the
    progress on the same line."""
    keyring = tmp_path / "keys.gpg"
    keyring.write_bytes(b"".join(debian_keys(30)))
    command = load_command(db_url, keyring, "--batch-size", "3", "--jobs", "2")
    shown_then_interrupted = [sys.executable, "-c", "\n".join([
        "import os, runpy, signal, sys",
        "sys.path.insert(0, %r)" % os.path.join(ROOT, "lib"),
        "from cks.bulk import progress",
        "shown = progress.ProgressLine._show",
        "def _show(self, text):",
        "    shown(self, text)",
        "    os.kill(os.getpid(), signal.SIGINT)",
        "progress.ProgressLine._show = _show",
        "sys.argv = sys.argv[1:]",
        "runpy.run_path(sys.argv[0], run_name='__main__')"])] + command[1:]
    out = subprocess.run(["script", "-qec", shlex.join(shown_then_interrupted), "/dev/null"],
                         stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    shown = out.stdout.decode()
    assert out.returncode == 130 and "Traceback" not in shown, shown
    assert re.search(r"\d+ keys, \d+ keys/s, [\d.]+% of the input[^\r\n]*\r?\n\Z", shown), shown


def _progress(url):
    rows = run_sql(url, "SELECT resume_at FROM cks_load_progress")
    return rows[0][0] if rows else 0


def _unserved(url):
    return run_sql(url, "SELECT count(*) FROM cks_keys WHERE served_crc24 = -1")[0][0]


def dumped(tmp_path, debian_count):
    """Fixture keys and the first `debian_count` Debian keys loaded into a
    SQLite database and dumped 16 keys a file: (its URL, the dump files SKS
    reads, fingerprint -> SKS hash of the keys they hold)."""
    url = "sqlite:///%s" % (tmp_path / "cks.db")
    assert admin(url, "load", "--no-sync", "-", input=b"".join(
        [fixture(n) for n in ["rsa2048", "nistp256", "certified", "alice-t1", "v6-ed25519",
                              "v5-ed25519"]] + [armor.encode(v4_key_with_a_v6_subkey()).encode()]
    )).returncode == 0
    # (apart: an input that starts armored is read for its armor blocks alone)
    assert admin(url, "load", "--no-sync", "-",
                 input=b"".join(debian_keys(debian_count))).returncode == 0
    # (three .pgp files at most: SKS 1.1.6's cleandb here dies of SIGSEGV on a
    # database built from four or more files of Debian keys, the keyring's own
    # split so as well as a dump of ours)
    out = admin(url, "dump", str(tmp_path / "dump"), "--keys-per-file", "16")
    assert out.returncode == 0, out.stderr
    assert "(3 keys SKS 1.1.6 cannot read in cks-dump-newer-*.keys)" in out.stdout.decode()
    newer = read_keys((tmp_path / "dump" / "cks-dump-newer-0000.keys").read_bytes()).keys
    assert sorted(k.public_key.version for k in newer) == [4, 5, 6]
    files = sorted(str(p) for p in (tmp_path / "dump").glob("*.pgp"))  # (as SKS is told)
    held = dict(run_sql(url, "SELECT fingerprint, sks_hash FROM cks_keys"))
    for key in newer:
        del held[key.fingerprint.hex().upper()]
    return url, files, held


def v4_key_with_a_v6_subkey():
    """Anyone's upload: stored for the peers (not served), and SKS 1.1.6
    stops a whole `sks build` at its subkey packet."""
    owner, sub = Signer.new(), Signer.new(version=6)
    uid = b"Odd Subkey <odd-subkey@example.org>"
    return keyring([Packet(6, owner.public.serialize()), Packet(13, uid),
                    Packet(2, owner.sign(0x13, owner.public, UserID(uid)).serialize()),
                    Packet(14, sub.public.serialize()),
                    Packet(2, owner.sign(0x18, owner.public, sub.public,
                                         [key_flags(0x0C)]).serialize())])


def test_sks_builds_a_database_from_the_dump(tmp_path):
    """The keys SKS 1.1.6 cannot read go to files of their own: until
    2026-12-06 one v5 or v6 key, or a v4 key with a v6 subkey, in the dump
    stopped `sks build` ("Unexpected key packet version number"), and SKS
    held no key at all."""
    url, files, held = dumped(tmp_path, 30)
    with sks_node(tmp_path / "sks", files) as sks:
        assert sks.wait_for_key_count(len(held), timeout=120) == len(held)
        for name in ["rsa2048", "certified"]:
            armored = sks.get_key(fpr(name))
            assert armored, name
            (theirs,) = read_keys(armored.encode()).keys
            assert sks_hash(theirs).hex().upper() == held[fpr(name)]


def test_hockeypuck_loads_the_dump(tmp_path):
    """hockeypuck-load reads our dump files (CKS_HOCKEYPUCK names its binary;
    skipped without it) and holds every key under our SKS hash, but for
    what its policy changes: keys it refuses (its log names them) and keys
    whose photo IDs it drops."""
    binary = hockeypuck_binary()
    url, files, held = dumped(tmp_path, 40)
    with HockeypuckNode(binary, tmp_path / "hp", keyring_files=files) as hp:
        theirs = hp.hashes()
        refused = hp.refused()
    assert set(theirs) == set(held) - refused and len(refused) < 3, refused
    for name in ["rsa2048", "nistp256", "certified", "alice-t1"]:
        assert theirs[fpr(name)] == held[fpr(name)], name
    with_photos = {r[0] for r in run_sql(url, "SELECT DISTINCT key_fingerprint FROM "
                                              "cks_userids WHERE is_attribute")}
    assert {f for f in theirs if theirs[f] != held[f]} <= with_photos


def test_the_splitter_keeps_its_place(tmp_path):
    """Resume offsets: after a binary key; an armor block's start until its
    last key."""
    keys = debian_keys(3)
    chunks = list(read_chunks(io.BytesIO(b"".join(keys)), 1 << 20))
    assert [c.resume_at for c in chunks] == [len(keys[0]), len(keys[0]) + len(keys[1]),
                                             sum(map(len, keys))]
    armored = fixture("rsa2048") + fixture("nistp256")
    chunks = list(read_chunks(io.BytesIO(armored), 1 << 20))
    assert [c.resume_at for c in chunks] == [len(fixture("rsa2048")), len(armored)]


def _after_deriving(monkeypatch, certified, change):
    """Patch the workers' derive so that `change()` runs just after a worker
    read the signers held for `certified` and derived its view; returns the
    list that gets what it gave."""
    changes = []
    derive_one = derive._Worker.derive

    def change_after_deriving(self, cursor, key, result, *args):
        derive_one(self, cursor, key, result, *args)
        if result.fingerprint == fpr_of(certified) and not changes:
            changes.append(change())
    monkeypatch.setattr(derive._Worker, "derive", change_after_deriving)
    return changes


def _signer_changes(store, certifier):
    """What cksd may do to a certifier while a load runs, each with its
    follow-up (the keys the certifier signed are derived again)."""
    def upload():
        return pipeline.submit(store, certifier, pipeline.Source.admin(queue=False)
                               ).outcomes[0].status == pipeline.ADDED

    def delete():
        deleted = rejection.delete(store, fpr_of(certifier))
        views.follow_signers(store, pipeline.Limits().serve)
        return deleted
    return {"uploaded": upload, "deleted": delete}


@pytest.mark.parametrize("change", ["uploaded", "deleted"])
def test_a_signer_changed_while_phase_2_derives_is_followed(db_url, tmp_path, monkeypatch,
                                                           change):
    """A key the second phase derived, whose certifier cksd stores or
    deletes before the load writes the view: the key ends as the pipeline
    leaves it with or without the certifier (not served yet, the key names
    no signers, so cksd's own follow-up does not find it)."""
    keys = debian_keys(30)
    certifier, certified = certifications(keys)[0]
    held = [k for i, k in enumerate(keys) if i != certifier]
    loaded, expected = (held, keys) if change == "uploaded" else (keys, held)
    (tmp_path / "keys.gpg").write_bytes(b"".join(loaded))
    store = open_store(db_url, 2)
    changes = _after_deriving(monkeypatch, keys[certified],
                              _signer_changes(store, keys[certifier])[change])
    try:
        loader(store, db_url).load([str(tmp_path / "keys.gpg")])
    finally:
        store.close()
    assert changes == [True]
    assert content(db_url)[0] == pipeline_content(tmp_path, b"".join(expected))[0]


@pytest.mark.parametrize("change", ["uploaded", "deleted"])
def test_a_signer_changed_while_phase_1_merges_is_followed(db_url, tmp_path, monkeypatch,
                                                          change):
    """A key stored before the load, merged in the first phase with a copy
    that adds a certification, whose certifier cksd stores or deletes (and
    derives the stored key again at once) before the load writes the merged
    key: the load does not write a view derived with the signers as they
    were."""
    keys = debian_keys(30)
    certifier, certified = certifications(keys)[0]
    store = open_store(db_url, 2)
    try:
        if change == "deleted":
            pipeline.submit(store, keys[certifier], pipeline.Source.admin(queue=False))
        pipeline.submit(store, without_certification(keys[certified], -1),
                        pipeline.Source.admin(queue=False))
        (tmp_path / "keys.gpg").write_bytes(keys[certified])
        changes = _after_deriving(monkeypatch, keys[certified],
                                  _signer_changes(store, keys[certifier])[change])
        summary = loader(store, db_url).load([str(tmp_path / "keys.gpg")])
    finally:
        store.close()
    assert changes == [True] and summary.counts[pipeline.UPDATED] == 1
    expected = keys[certified] + (keys[certifier] if change == "uploaded" else b"")
    assert content(db_url)[0] == pipeline_content(tmp_path, expected)[0]


def test_keys_whose_signers_keep_moving_are_left_to_the_follow_up(store, db_url, tmp_path,
                                                                  monkeypatch, caplog):
    """A worker that reads every key's signers otherwise than the loading
    process each time (its digest never the one read when writing): each
    key is derived again load.REDERIVE_ROUNDS times, then queued for the
    follow-up, and the load ends.  Until 2026-12-06 it derived them again
    without end, to a RecursionError (seen once, after the loading process
    had closed its idle SQLite connections)."""
    path = tmp_path / "keys.pgp"
    path.write_bytes(b"".join(fixture(name) for name in ("rsa2048", "ed25519", "nistp256")))
    monkeypatch.setattr(derive, "signers_digest", lambda wanted, held: b"never the same")
    caplog.set_level("WARNING", "cks.bulk")
    loader(store, db_url).load([str(path)])
    assert "3 keys' signers moved each of the %d times their views were derived; they are " \
        "left to the follow-up" % load.REDERIVE_ROUNDS in caplog.text
    served = run_sql(db_url, "SELECT fingerprint FROM cks_keys WHERE served_crc24 <> -1")
    assert sorted(f for (f,) in served) == sorted(fpr(n) for n in ("rsa2048", "ed25519",
                                                                  "nistp256"))
