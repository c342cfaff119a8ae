"""cks_admin.py: operator tasks."""

from __future__ import annotations

import argparse
import json
import sys
from typing import List

from ..openpgp.info import describe
from ..openpgp.keys import merge_all, read_keys
from .common import UserError, base_parser
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


def build_parser() -> argparse.ArgumentParser:
    parser = base_parser("cks_admin.py", "CKS operator tasks.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    show = commands.add_parser("show", help="print the keys in a file (armored or binary)")
    show.add_argument("--json", action="store_true", help="JSON instead of text")
    show.add_argument("file", metavar="FILE|-", help="key file, or - for standard input")
    show.set_defaults(handler=cmd_show)
    return parser


def main(argv: List[str]) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)
