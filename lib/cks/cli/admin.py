"""cks_admin.py: operator tasks."""

from __future__ import annotations

import argparse
import json
import sys
from typing import List

import os

from .. import pipeline
from ..config import ConfigError
from ..openpgp.info import describe
from ..openpgp.keys import merge_all, read_keys
from ..store import StoreError, open_store
from .common import UserError, base_parser, pipeline_limits, settings_from
from .show import format_key


def _read_input(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise UserError("cannot read %s: %s" % (path, exc.strerror)) from None


def cmd_show(args: argparse.Namespace) -> int:
    """Print each key in FILE like gpg --show-keys (or as JSON); exit 1 on any problem."""
    result = read_keys(_read_input(args.file))
    keys = merge_all(result.keys)
    for problem in result.problems:
        print("%s: %s" % (args.file, problem), file=sys.stderr)
    infos = [describe(key) for key in keys]
    if args.json:
        json.dump([info.to_dict() for info in infos], sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        sys.stdout.write("\n".join(format_key(info) for info in infos))
    return 1 if result.problems else 0


def _open_store(args: argparse.Namespace):
    try:
        return open_store(settings_from(args).db_url, 2)
    except (ConfigError, StoreError) as exc:
        raise UserError(str(exc), 1) from None


def _files(paths: List[str]) -> List[str]:
    out = []
    for path in paths:
        if os.path.isdir(path):
            out.extend(sorted(os.path.join(path, name) for name in os.listdir(path)
                              if os.path.isfile(os.path.join(path, name))))
        elif os.path.isfile(path) or path == "-":
            out.append(path)
        else:
            raise UserError("no such file or directory: %s" % path)
    return out


def cmd_load(args: argparse.Namespace) -> int:
    """Bulk load through the key pipeline (the operator's keys; queued for the
    peers unless --no-sync)."""
    files = _files(args.paths)
    try:
        limits = pipeline_limits(settings_from(args))
    except ConfigError as exc:
        raise UserError(str(exc), 1) from None
    store = _open_store(args)
    totals = {status: 0 for status in (pipeline.ADDED, pipeline.UPDATED, pipeline.UNCHANGED,
                                       pipeline.REFUSED)}
    problems = 0
    try:
        for path in files:
            report = pipeline.submit(store, _read_input(path),
                                     pipeline.Source.admin(queue=not args.no_sync), limits)
            for outcome in report.outcomes:
                totals[outcome.status] += 1
                if outcome.status == pipeline.REFUSED:
                    problems += 1
                    print("%s: key %s refused: %s" % (path, outcome.fingerprint,
                                                     outcome.reason), file=sys.stderr)
            for problem in report.problems:
                problems += 1
                print("%s: %s" % (path, problem), file=sys.stderr)
    except StoreError as exc:
        raise UserError(str(exc), 1) from None
    finally:
        store.close()
    print("%d added, %d updated, %d unchanged, %d refused; %d problem%s" % (
        totals["added"], totals["updated"], totals["unchanged"], totals["refused"], problems,
        "" if problems == 1 else "s"))
    return 1 if problems else 0


def cmd_reverify(args: argparse.Namespace) -> int:
    """Recompute served views (after a [policy] change, or when certifiers' or
    designated revokers' keys arrived later than the keys they signed)."""
    try:
        limits = pipeline_limits(settings_from(args))
    except ConfigError as exc:
        raise UserError(str(exc), 1) from None
    fingerprints = [_fingerprint_argument(f) for f in args.fingerprints] or None
    store = _open_store(args)
    try:
        changed = pipeline.reverify(store, limits, fingerprints)
    except StoreError as exc:
        raise UserError(str(exc), 1) from None
    finally:
        store.close()
    print("%d served view%s changed" % (changed, "" if changed == 1 else "s"))
    return 0


def _fingerprint_argument(text: str) -> str:
    """A fingerprint as the operator typed it: spaces and 0x allowed."""
    bare = text.replace(" ", "").upper()
    bare = bare[2:] if bare.startswith("0X") else bare
    if len(bare) not in (32, 40, 64) or any(c not in "0123456789ABCDEF" for c in bare):
        raise UserError("%r is not a fingerprint (32, 40 or 64 hex digits)" % text)
    return bare


def cmd_dump(args: argparse.Namespace) -> int:
    """Write every key to binary keyring files DIR/cks-dump-NNNN.pgp (as SKS dumps)."""
    os.makedirs(args.directory, exist_ok=True)
    store = _open_store(args)
    count, index, handle = 0, 0, None
    try:
        for _, data in store.iter_keydata():
            if count % args.keys_per_file == 0:
                if handle:
                    handle.close()
                handle = open(os.path.join(args.directory, "cks-dump-%04d.pgp" % index), "wb")
                index += 1
            handle.write(data)
            count += 1
    except StoreError as exc:
        raise UserError(str(exc), 1) from None
    finally:
        if handle:
            handle.close()
        store.close()
    print("%d keys in %d file%s in %s" % (count, index, "" if index == 1 else "s",
                                         args.directory))
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    store = _open_store(args)
    try:
        stats = store.stats()
    except StoreError as exc:
        raise UserError(str(exc), 1) from None
    finally:
        store.close()
    if args.json:
        json.dump(stats, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for name, value in stats.items():
            print("%-18s %d" % (name.replace("_", " "), value))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = base_parser("cks_admin.py", "CKS operator tasks.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    show = commands.add_parser("show", help="print the keys in a file (armored or binary)")
    show.add_argument("--json", action="store_true", help="JSON instead of text")
    show.add_argument("file", metavar="FILE|-", help="key file, or - for standard input")
    show.set_defaults(handler=cmd_show)
    load = commands.add_parser("load", help="add keys from files or directories")
    load.add_argument("paths", nargs="+", metavar="FILE|DIR")
    load.add_argument("--no-sync", action="store_true",
                      help="do not queue the keys for the peers (e.g. a dump from a peer)")
    load.set_defaults(handler=cmd_load)
    dump = commands.add_parser("dump", help="write every key to keyring files in DIR")
    dump.add_argument("directory", metavar="DIR")
    dump.add_argument("--keys-per-file", type=int, default=10000, metavar="N")
    dump.set_defaults(handler=cmd_dump)
    reverify = commands.add_parser("reverify", help="recompute what is served of stored keys")
    reverify.add_argument("fingerprints", nargs="*", metavar="FPR",
                          help="only these keys (default: every key)")
    reverify.set_defaults(handler=cmd_reverify)
    stats = commands.add_parser("stats", help="key and queue counts")
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(handler=cmd_stats)
    return parser


def main(argv: List[str]) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)
