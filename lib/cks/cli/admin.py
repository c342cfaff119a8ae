"""cks_admin.py: operator tasks."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.parse
from typing import Callable, Iterator, List, Set

from .. import pipeline, rejection, views
from ..bulk.derive import Stopped
from ..bulk.dump import DumpRunning, DumpStopped, NothingDumped, dump
from ..bulk.load import BATCH_SIZE, Loader, LoadRunning
from ..bulk.split import standard_input
from ..bulk.workers import WorkerDied
from ..config import DEFAULT_DB, ConfigError, Settings
from ..hkp.admin import hash_password
from ..notices import NoticeError
from ..older_views import record_views_current
from ..openpgp.info import describe
from ..rejection import MAX_PENDING, NodeIdentity, RejectionError
from ..store import StoreError, open_store, ptree, ptree_rebuild, ptree_view
from ..store.rejections import drop_pending, get_notice, notices, rejected_keys
from ..wording import counted
from .common import (CommandParser, UserError, base_parser, error_line, minute,
                     node_identity, pipeline_limits, settings_from, whole_number)
from .show import format_key, read_key_file


def _read_input(path: str, size: int = -1) -> bytes:
    """The file's first `size` bytes (all of it: -1), an error as one line."""
    try:
        if path == "-":
            return standard_input().read(size)
        with open(path, "rb") as handle:
            return handle.read(size)
    except OSError as exc:
        raise UserError("cannot read %s: %s" % (path, exc.strerror)) from None


def cmd_show(args: argparse.Namespace) -> int:
    """Print each key in FILE like gpg --show-keys (or as JSON); exit 1 on any problem."""
    limits = _configured(pipeline_limits, args)
    try:
        keys, problems = read_key_file(args.file, limits)
    except OSError as exc:
        raise UserError("cannot read %s: %s" % (args.file, exc.strerror)) from None
    for problem in problems:
        print(problem, file=sys.stderr)
    infos = [describe(key) for key in keys]
    if args.json:
        json.dump([info.to_dict() for info in infos], sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        sys.stdout.write("\n".join(format_key(info) for info in infos))
    return 1 if problems else 0


# In a directory: SKS's dump metadata, and a dump file that `dump` did not
# finish (cks-dump-NNNN.pgp.part: an interrupted dump's, never a whole file).
NOT_KEYS = re.compile(r"metadata-.*\.txt\Z|.*\.part\Z")


def _open_store(args: argparse.Namespace, must_exist: bool):
    """The configured database; `must_exist`: one cksd or `load` made (a
    mistyped path, an empty database, is an error, not a new database)."""
    try:
        store = open_store(settings_from(args).db_url, 2, must_exist=must_exist)
    except (ConfigError, StoreError) as exc:
        raise UserError(str(exc), 1) from None
    try:
        store.check()  # (before a dump's directory or a lock file is made)
    except StoreError as exc:
        store.close()
        raise UserError(str(exc), 1) from None
    return store


def _files(paths: List[str]) -> List[str]:
    """The files to load: each path named, and the files of each directory
    (_directory_files); each one opened once here, so that one the load
    could not read stops it before it begins."""
    out = []
    for path in paths:
        if os.path.isdir(path):
            out.extend(_directory_files(path))
        elif os.path.isfile(path) or path == "-":
            out.append(path)
        elif os.path.exists(path):
            raise UserError("%s is not a file (a pipe's keys go in as standard input: "
                            "... | cks_admin.py load -)" % path)
        else:
            raise UserError("no such file or directory: %s" % path)
    if not out:
        raise UserError("no files to load in %s" % ", ".join(paths))
    out = _once_each(out)
    for path in out:
        _read_input(path, 0)
    return out


def _once_each(paths: List[str]) -> List[str]:
    """`paths` without a file named again (by another name, a link, or in a
    directory named too), with a line on standard error for each left
    out.  Until 2026-12-06 the second reading went on from where the first
    had committed, and the counts and problem lines depended on the batch
    size."""
    seen: Set[str] = set()
    out = []
    for path in paths:
        real = path if path == "-" else os.path.realpath(path)
        if real in seen:
            print("load: skipped %s: named before, read once" % path, file=sys.stderr)
            continue
        seen.add(real)
        out.append(path)
    return out


def _directory_files(directory: str) -> List[str]:
    """The files of `directory` but those that hold no keys of a dump
    (NOT_KEYS), in name order; a line on standard error for each other
    entry (a directory, a pipe, a symbolic link to nothing), left out."""
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        raise UserError("cannot read %s: %s" % (directory, exc.strerror)) from None
    out = []
    for path in (os.path.join(directory, name) for name in names if not NOT_KEYS.match(name)):
        if os.path.isfile(path):
            out.append(path)
        else:
            print("load: skipped %s: %s" % (path, _not_a_file(path)), file=sys.stderr)
    return out


def _not_a_file(path: str) -> str:
    if os.path.isdir(path):
        return "a directory (a load reads no subdirectory: name it to load its files)"
    if not os.path.exists(path):
        return "a symbolic link to nothing"
    return "not a regular file (a pipe, a socket, a device)"


GOES_ON = "run the same command again: it goes on after the last committed batch"
STDIN_AGAIN = "run the same command again, with the same standard input: it is read " \
    "again from the start (the keys it loaded count as unchanged)"


def _how_to_go_on(files: List[str]) -> str:
    """What to do after a load that stopped part-way: standard input, unlike
    a file, is read again from the start (until 2026-12-06 the line said
    GOES_ON whatever the input)."""
    if "-" not in files:
        return GOES_ON
    if files == ["-"]:
        return STDIN_AGAIN
    return STDIN_AGAIN + ", and the files go on after the last committed batch"


def cmd_load(args: argparse.Namespace) -> int:
    """Bulk load (the operator's keys; queued for the peers unless --no-sync):
    streaming, in batches, resumable (lib/cks/bulk/load.py)."""
    files = _files(args.paths)
    limits = _configured(pipeline_limits, args)
    db_url = _configured(lambda settings: settings.db_url, args)

    def action(store):
        loader = Loader(store, db_url, limits, pipeline.Source.admin(queue=not args.no_sync),
                        args.jobs or os.cpu_count() or 1, args.batch_size,
                        progress=sys.stderr.isatty(),
                        report=lambda line: print(line, file=sys.stderr))
        stopped_by: List[int] = []
        try:
            with _signals_stop(loader.stop, stopped_by):
                return loader.load(files)
        except LoadRunning as exc:
            raise UserError("%s; run this one when it ends" % exc, os.EX_TEMPFAIL) from None
        except WorkerDied as exc:
            raise UserError("%s; %s" % (exc, _how_to_go_on(files)), 1) from None
        except OSError as exc:  # (a file that went away, or became unreadable, since _files)
            if exc.filename is None:
                raise  # (not a file's: a fork that failed, say)
            raise UserError("cannot read %s: %s (run the load again: it goes on where it "
                            "stopped)" % (exc.filename, exc.strerror or exc), 1) from None
        except Stopped:
            if signal.SIGTERM in stopped_by:
                raise UserError("stopped by SIGTERM; " + _how_to_go_on(files),
                                128 + signal.SIGTERM) from None
            raise KeyboardInterrupt from None  # (status 130, as run() gives it)

    summary = _with_store(args, action, must_exist=False)
    if args.verbose:
        print("load: %.2f s (network views %.2f s, then served views %.2f s, then tidying "
              "%.2f s); %d signatures verified in %.2f s of the workers' time (%.0f/s)" % (
                  summary.seconds, summary.network_seconds, summary.views_seconds,
                  summary.tidy_seconds,
                  summary.signatures_verified, summary.derive_seconds,
                  summary.signatures_verified / max(summary.derive_seconds, 1e-6)),
              file=sys.stderr)
    print(summary.line())
    return 1 if summary.problems else 0


@contextlib.contextmanager
def _signals_stop(stop_soon: Callable[[], None], received: List[int]) -> Iterator[None]:
    """For the block, SIGINT (Ctrl-C) and SIGTERM (kill, timeout, systemd)
    have the load or dump stop soon (`stop_soon`: Loader.stop, say), each
    noted in `received`, instead of raising KeyboardInterrupt wherever it
    finds the load: one raised with a lock just taken (the worker pool's,
    the connection pool's) left it taken, and the clean-up after it waited
    for that lock for ever; SIGTERM ended the load at once, and its workers
    printed tracebacks.  A signal ignored from the start (SIGINT, in a background
    job) stays ignored."""
    def stop(signum: int, _frame: object) -> None:
        received.append(signum)
        stop_soon()
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    for signum, handler in previous.items():
        if handler is not signal.SIG_IGN:
            signal.signal(signum, stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def cmd_reverify(args: argparse.Namespace) -> int:
    """Recompute served views (after a [policy] change)."""
    limits = _configured(pipeline_limits, args)

    def action(store):
        named = [_fingerprint_argument(f, store) for f in args.fingerprints]
        stored = _stored(store, named)
        if stored or not named:
            changed = views.reverify(store, limits.serve, stored or None)
            if not named:
                record_views_current(store)
            print("%s changed" % counted(changed, "served view"))
        for fingerprint in named:
            if fingerprint not in stored:
                error_line(_not_stored(fingerprint))
        return 0 if len(stored) == len(named) else 1
    return _with_store(args, action)


def _stored(store, fingerprints: List[str]) -> List[str]:
    """The fingerprints of stored keys among `fingerprints`, in their order."""
    with store.read() as cursor:
        sizes = store.keydata_sizes(cursor, fingerprints)
    return [fingerprint for fingerprint in fingerprints if fingerprint in sizes]


def _not_stored(fingerprint: str) -> str:
    return "no key %s is stored here" % fingerprint


def _fingerprint_argument(text: str, store) -> str:
    """rejection.fingerprint_named, its refusal as a usage error (status 2)."""
    try:
        return rejection.fingerprint_named(store, text)
    except RejectionError as exc:
        raise UserError(str(exc)) from None


def _configured(read, args: argparse.Namespace):
    """`read(settings)` (pipeline_limits, node_identity, ...), config errors as one line."""
    try:
        return read(settings_from(args))
    except ConfigError as exc:
        raise UserError(str(exc), 1) from None


def _sign_with_gpg(store, identity: NodeIdentity, notice, gpg_key: str) -> None:
    """Have GnuPG (the operator's keyring, $GNUPGHOME) sign the notice."""
    try:
        result = subprocess.run(["gpg", "--batch", "--armor", "--detach-sign", "--local-user",
                                 gpg_key], input=notice.body.encode("utf-8"),
                                capture_output=True)
    except OSError as exc:  # (no gpg installed)
        raise UserError("cannot run gpg to sign notice %s: %s" % (
            notice.serial, exc.strerror or exc), 1) from None
    if result.returncode != 0:
        said = result.stderr.decode(errors="replace").split("\n")
        raise UserError("gpg could not sign notice %s: %s" % (
            notice.serial, "; ".join(line.strip() for line in said if line.strip())), 1)
    rejection.sign(store, notice.serial, result.stdout.decode("ascii"), identity)


def _after_notice(store, args, identity: NodeIdentity, notice) -> None:
    settings = settings_from(args)
    gpg_key = args.sign_with or settings.get("rejection", "gpg_key", "")
    if not gpg_key:
        _print_signing_commands(settings, notice)
        return
    try:
        _sign_with_gpg(store, identity, notice, gpg_key)
    except (UserError, RejectionError):
        _print_signing_commands(settings, notice)  # (to finish by hand)
        raise
    print("notice %s signed and queued for the peers" % notice.serial)


def _print_signing_commands(settings: Settings, notice) -> None:
    """Commands to copy as they are, from any directory: this tool, this
    database and configuration, this key."""
    options = _same_settings(settings)
    admin = " ".join(shlex.quote(word) for word in
                     ["python3", os.path.abspath(sys.argv[0])] + options)
    print("notice %s is not signed yet; to publish it and send it to the peers:\n"
          "  %s notice-text %s > notice.txt\n"
          "  gpg --armor --detach-sign --local-user %s notice.txt\n"
          "  %s sign-notice %s notice.txt.asc"
          % (notice.serial, admin, notice.serial,
             settings.get("rejection", "key", "") or "YOUR-REJECTION-KEY", admin,
             notice.serial))
    if "--db" in options and _without_password(settings.db_url) != settings.db_url:
        print("(the database's password is left out of --db: PostgreSQL takes it from "
              "~/.pgpass or PGPASSWORD)")


def _same_settings(settings: Settings) -> List[str]:
    """--db and --config that name the database and configuration file this
    run used, wherever they came from (the options, $CKS_DB, $CKS_CONFIG,
    ./cks.conf), from any directory and without the environment: the file
    made absolute, and the database unless the file names it as it is
    (a PostgreSQL URL or an absolute SQLite path; a password in the file's
    URL stays there), an SQLite path made absolute, a password left out
    (one in $CKS_DB was printed until 2026-12-06, found by a review)."""
    url = _absolute_sqlite(settings.db_url)
    named_by_file = url == settings.db_url == settings.get("database", "url", DEFAULT_DB)
    options = [] if named_by_file else ["--db", _without_password(url)]
    if settings.config_file:
        options += ["--config", os.path.abspath(settings.config_file)]
    return options


def _without_password(url: str) -> str:
    """A PostgreSQL URL without the password it may hold (user:PASSWORD@, or
    a password= parameter)."""
    parts = urllib.parse.urlsplit(url)
    fields = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    if not parts.scheme.startswith("postgres") or \
            parts.password is None and all(name != "password" for name, _ in fields):
        return url
    netloc = parts.netloc
    if parts.password is not None:
        credentials, _, host = netloc.rpartition("@")
        netloc = credentials.split(":", 1)[0] + "@" + host
    query = urllib.parse.urlencode([(name, value) for name, value in fields
                                    if name != "password"])
    # (not urlunsplit: it writes postgresql:///db, with no host, as postgresql:/db)
    return "%s://%s%s%s" % (parts.scheme, netloc, parts.path, query and "?" + query)


def _absolute_sqlite(url: str) -> str:
    """`url` with an SQLite database's relative path made absolute."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        return "sqlite:///" + os.path.abspath(url[len("sqlite:///"):])
    return url


def _with_store(args: argparse.Namespace, action, must_exist: bool = True) -> int:
    """`action(store)` on the configured database, its errors as one line.
    Only `load` and `stats` make the schema where there is none (the way to
    make it as the database's owner); the others work on existing keys."""
    store = _open_store(args, must_exist)
    try:
        return action(store)
    except (RejectionError, NoticeError) as exc:
        raise UserError(str(exc), 1) from None
    except StoreError as exc:
        raise UserError(str(exc), 1) from None
    finally:
        store.close()


def _follow_signers(store, args: argparse.Namespace) -> None:
    """The keys a deleted key signed are served without its signatures now."""
    views.follow_signers(store, _configured(pipeline_limits, args).serve)


def cmd_delete(args: argparse.Namespace) -> int:
    def action(store):
        fingerprint = _fingerprint_argument(args.fingerprint, store)
        if not rejection.delete(store, fingerprint):
            raise UserError(_not_stored(fingerprint), 1)
        _follow_signers(store, args)
        print("deleted %s (not rejected: it may come back)" % fingerprint)
        return 0
    return _with_store(args, action)


def cmd_reject(args: argparse.Namespace) -> int:
    identity = _configured(node_identity, args)

    def action(store):
        fingerprint = _fingerprint_argument(args.fingerprint, store)
        notice, deleted = rejection.reject(store, fingerprint, args.reason, identity)
        _follow_signers(store, args)
        print("rejected %s: %s, and refused from now on" % (
            fingerprint, "deleted" if deleted else "not stored here"))
        _after_notice(store, args, identity, notice)
        return 0
    return _with_store(args, action)


def cmd_unreject(args: argparse.Namespace) -> int:
    identity = _configured(node_identity, args)

    def action(store):
        fingerprint = _fingerprint_argument(args.fingerprint, store)
        notice = rejection.unreject(store, fingerprint, identity)
        print("unrejected %s: it may be stored again" % fingerprint)
        _after_notice(store, args, identity, notice)
        return 0
    return _with_store(args, action)


def cmd_rejected(args: argparse.Namespace) -> int:
    def action(store):
        rows = rejected_keys(store)
        if args.json:
            json.dump(rows, sys.stdout, indent=2)
            sys.stdout.write("\n")
        for row in [] if args.json else rows:
            print("%s  %s  %-28s %s" % (row["fingerprint"], minute(row["rejected_at"]),
                                       row["source"], row["reason"]))
        return 0
    return _with_store(args, action)


def cmd_notices(args: argparse.Namespace) -> int:
    statuses = ["pending"] if args.pending else ["unsigned", "issued", "applied", "pending",
                                                 "superseded"]
    if args.older_than is not None and not args.drop_pending:
        raise UserError("--older-than goes with --drop-pending")

    def action(store):
        if args.drop_pending:
            before = None if args.older_than is None else \
                int(time.time() - args.older_than * 86400)
            print("dropped %s" % counted(drop_pending(store, before), "pending notice"))
            return 0
        found = notices(store, statuses)
        if args.json:
            json.dump([n.to_dict() for n in found], sys.stdout, indent=2)
            sys.stdout.write("\n")
            return 0
        for n in found:
            print("%s  %-10s %-8s %s  %s  from %s%s" % (
                n.serial, n.status, n.action, n.fingerprint, minute(n.notice_time),
                "this node" if n.origin == "local" else "%s (sent by %s)" % (n.node, n.origin),
                ": " + n.status_reason if n.status_reason else ""))
        return 0
    return _with_store(args, action)


def cmd_notice_text(args: argparse.Namespace) -> int:
    def action(store):
        with store.read() as cursor:
            notice = get_notice(cursor, args.serial.upper())
        if notice is None:
            raise UserError("no notice %s" % args.serial, 1)
        sys.stdout.write(notice.body)
        return 0
    return _with_store(args, action)


def cmd_sign_notice(args: argparse.Namespace) -> int:
    identity = _configured(node_identity, args)
    armored = _read_input(args.signature).decode("ascii", "replace")

    def action(store):
        notice = rejection.sign(store, args.serial.upper(), armored, identity)
        print("notice %s signed and queued for the peers" % notice.serial)
        return 0
    return _with_store(args, action)


def _without_line_end(line: str) -> str:
    """`line` less its one line ending, "\n" or "\r\n" (a file saved on
    Windows): a carriage return kept was hashed, and no browser sends it."""
    if line.endswith("\r\n"):
        return line[:-2]
    return line[:-1] if line.endswith("\n") else line


def cmd_passwd(args: argparse.Namespace) -> int:
    """A password hash for [admin] password_hash (the password from standard input)."""
    if sys.stdin is None:
        raise UserError("cannot read the password: standard input is closed")
    password = getpass.getpass("admin password: ") if sys.stdin.isatty() else \
        _without_line_end(sys.stdin.readline())
    if len(password) < 8:
        raise UserError("use a password of 8 characters or more")
    print("password_hash = %s" % hash_password(password))
    return 0


def cmd_dump(args: argparse.Namespace) -> int:
    """Write every key to binary keyring files DIR/cks-dump-NNNN.pgp (as SKS dumps;
    those SKS cannot read to DIR/cks-dump-newer-NNNN.keys)."""
    def action(store):
        stopped_by: List[int] = []
        try:
            with _signals_stop(lambda: None, stopped_by):
                count, files, newer, removed = dump(store, args.directory, args.keys_per_file,
                                                    stop=lambda: bool(stopped_by))
        except OSError as exc:  # not a directory, no permission, disk full
            raise UserError("cannot write the dump in %s: %s (the files there are left as "
                            "they were)" % (args.directory, exc.strerror or exc), 1) from None
        except DumpStopped:
            if signal.SIGTERM in stopped_by:
                raise UserError("stopped by SIGTERM (the files in %s are left as they were)"
                                % args.directory, 128 + signal.SIGTERM) from None
            raise KeyboardInterrupt from None  # (status 130, as run() gives it)
        except DumpRunning:
            raise UserError("another dump of this database is under way; nothing was "
                            "written (run this one when it ends)", os.EX_TEMPFAIL) from None
        except NothingDumped as exc:
            raise UserError("the database holds no keys, so the earlier dump in %s (%s) "
                            "is kept (is it the right database? to empty the dump, remove "
                            "its files)" % (args.directory, counted(exc.files, "file")),
                            1) from None
        print("%d keys in %s in %s%s%s" % (
            count, counted(files, "file"), args.directory,
            " (%s SKS 1.1.6 cannot read in cks-dump-newer-*.keys)" % counted(newer, "key")
            if newer else "",
            "; %s of an earlier dump removed" % counted(removed, "file")
            if removed else ""))
        return 0
    return _with_store(args, action)


UNSERVED_NOTE = "(found by no lookup until their served views are derived: a load's by " \
    "the load, run again; an upload's by cksd, at once)"
"""What `stats` says of keys stored without a served view yet (rows.UNSERVED),
when there are any."""


def cmd_stats(args: argparse.Namespace) -> int:
    def action(store):
        stats = store.stats()
        if args.json:
            json.dump(stats, sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            for name, value in stats.items():
                note = " " + UNSERVED_NOTE if name == "unserved_keys" and value else ""
                print("%-18s %d%s" % (name.replace("_", " "), value, note))
        return 0
    return _with_store(args, action, must_exist=False)


PTREE_PROBLEMS_SHOWN = 50


def cmd_ptree(args: argparse.Namespace) -> int:
    """The SKS reconciliation tree: a summary, --check against cks_keys (exit 1
    on any difference), or --rebuild from cks_keys in one transaction."""
    def action(store):
        if args.rebuild:
            with store.write() as cursor:
                tree = ptree_rebuild.rebuild(cursor)
            store.tidy_after_bulk_write()
            print("rebuilt: %d elements, %d nodes, depth %d" % (tree.elements, tree.nodes,
                                                                 tree.depth))
            return 0
        with ptree_view.snapshot(store) as cursor:
            tree = ptree.summary(cursor)
            problems = ptree_rebuild.check(cursor) if args.check else []
        print("%-18s %d\n%-18s %d\n%-18s %d" % ("elements", tree.elements, "nodes",
                                                 tree.nodes, "depth", tree.depth))
        for problem in problems[:PTREE_PROBLEMS_SHOWN]:
            print("ptree: %s" % problem, file=sys.stderr)
        if len(problems) > PTREE_PROBLEMS_SHOWN:
            print("ptree: ... and %d more" % (len(problems) - PTREE_PROBLEMS_SHOWN),
                  file=sys.stderr)
        if problems:
            print("ptree: %s: the tree does not match the stored keys; "
                  "cks_admin.py ptree --rebuild repairs it"
                  % counted(len(problems), "problem"), file=sys.stderr)
            return 1
        if args.check:
            print("ptree OK: sizes, sample values and shape match the stored keys")
        return 0
    return _with_store(args, action)


MOST_JOBS = 1024
MOST_BATCH_SIZE = 1_000_000  # (a batch also ends at load.BATCH_BYTES)
MOST_KEYS_PER_FILE = 1_000_000_000


MOST_DAYS = 36_500  # (a century: what --older-than may go back)


def days(text: str) -> float:
    """argparse type: a number of days from 0 to MOST_DAYS (until 2026-12-06
    nan, inf and 1e300 ended in a traceback, and a negative number dropped
    every notice)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= MOST_DAYS:  # (nan too)
        raise argparse.ArgumentTypeError("must be a number of days from 0 to %d, not %s"
                                         % (MOST_DAYS, text))
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = base_parser("cks_admin.py", "CKS operator tasks.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND",
                                     parser_class=CommandParser)
    commands.required = True
    show = commands.add_parser("show", help="print the keys in a file (armored or binary)")
    show.add_argument("--json", action="store_true", help="JSON instead of text")
    show.add_argument("file", metavar="FILE|-", help="key file, or - for standard input")
    show.set_defaults(handler=cmd_show)
    load = commands.add_parser("load", help="add keys from files or directories")
    load.add_argument("paths", nargs="+", metavar="FILE|DIR")
    load.add_argument("--no-sync", action="store_true",
                      help="do not queue the keys for the peers (e.g. a dump from a peer)")
    load.add_argument("--jobs", type=whole_number(1, MOST_JOBS), metavar="N",
                      help="worker processes that parse keys and verify signatures "
                           "(default: one per core; at most %d)" % MOST_JOBS)
    load.add_argument("--batch-size", type=whole_number(1, MOST_BATCH_SIZE), default=BATCH_SIZE,
                      metavar="N", help="keys per transaction (default: %%(default)s; at "
                                        "most %d)" % MOST_BATCH_SIZE)
    load.set_defaults(handler=cmd_load)
    dump = commands.add_parser("dump", help="write every key to keyring files in DIR")
    dump.add_argument("directory", metavar="DIR")
    dump.add_argument("--keys-per-file", type=whole_number(1, MOST_KEYS_PER_FILE), default=10000,
                      metavar="N", help="keys per file (default: %%(default)s; at most %d)"
                                        % MOST_KEYS_PER_FILE)
    dump.set_defaults(handler=cmd_dump)
    delete = commands.add_parser("delete", help="delete a key (it may come back)")
    delete.add_argument("fingerprint", metavar="FPR")
    delete.set_defaults(handler=cmd_delete)
    reject = commands.add_parser("reject", help="delete a key and refuse it from now on")
    reject.add_argument("fingerprint", metavar="FPR")
    reject.add_argument("--reason", default="", help="why (published in the notice)")
    reject.add_argument("--sign-with", metavar="GPGKEY",
                        help="sign the notice with gpg now (default: [rejection] gpg_key)")
    reject.set_defaults(handler=cmd_reject)
    unreject = commands.add_parser("unreject", help="take a key off the rejected list")
    unreject.add_argument("fingerprint", metavar="FPR")
    unreject.add_argument("--sign-with", metavar="GPGKEY")
    unreject.set_defaults(handler=cmd_unreject)
    rejected = commands.add_parser("rejected", help="the rejected keys")
    rejected.add_argument("--json", action="store_true")
    rejected.set_defaults(handler=cmd_rejected)
    notices_parser = commands.add_parser("notices", help="rejection notices, ours and peers'")
    notices_parser.add_argument("--pending", action="store_true",
                                help="only those received and not applied (to review)")
    notices_parser.add_argument("--json", action="store_true")
    notices_parser.add_argument("--drop-pending", action="store_true",
                                help="delete the notices waiting for review (a stranger's is "
                                     "refused while %d wait)" % MAX_PENDING)
    notices_parser.add_argument("--older-than", type=days, metavar="DAYS",
                                help="with --drop-pending: only those received before")
    notices_parser.set_defaults(handler=cmd_notices)
    text = commands.add_parser("notice-text", help="print a notice's text (to sign it)")
    text.add_argument("serial", metavar="SERIAL")
    text.set_defaults(handler=cmd_notice_text)
    signed = commands.add_parser("sign-notice", help="attach your detached signature")
    signed.add_argument("serial", metavar="SERIAL")
    signed.add_argument("signature", metavar="SIGFILE|-")
    signed.set_defaults(handler=cmd_sign_notice)
    passwd = commands.add_parser("passwd", help="hash a password for the admin web page")
    passwd.set_defaults(handler=cmd_passwd)
    reverify = commands.add_parser("reverify", help="recompute what is served of stored keys")
    reverify.add_argument("fingerprints", nargs="*", metavar="FPR",
                          help="only these keys (default: every key)")
    reverify.set_defaults(handler=cmd_reverify)
    stats = commands.add_parser("stats", help="key and queue counts")
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(handler=cmd_stats)
    tree = commands.add_parser("ptree", help="the SKS reconciliation tree: summary, "
                                             "--check, --rebuild")
    what = tree.add_mutually_exclusive_group()
    what.add_argument("--check", action="store_true",
                      help="recompute sizes and sample values from the keys; exit 1 if "
                           "anything differs")
    what.add_argument("--rebuild", action="store_true",
                      help="build the tree again from the keys (one transaction)")
    tree.set_defaults(handler=cmd_ptree)
    return parser


def main(argv: List[str]) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)
