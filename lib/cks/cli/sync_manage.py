"""cks_sync_manage.py: manage the peer list (cks_other_servers)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional

from ..config import ConfigError
from ..store import StoreError, open_store
from ..store.peers import Peer, PeerError, PeerStore
from ..notices import NoticeError, normalize_fingerprint
from ..sync.peername import PeerNameError, parse_mail_peer, parse_peer
from ..sync.recon.rounds import DEFAULT_RECON_PORT
from ..sync.recon.wire import DEFAULT_FILTERS
from ..wording import counted
from .common import CommandParser, UserError, base_parser, minute, settings_from, \
    whole_number


def _state(peer: Peer) -> str:
    state = "enabled" if peer.enabled else "disabled"
    return state + (", catching up" if peer.catch_up else "")


def _last_round(peer: Peer) -> str:
    """A recon peer's last completed round: when, keys we lacked, keys it
    lacked, keys fetched."""
    if peer.kind != "recon":
        return "-"
    if not peer.recon_last_round:
        return "none yet"
    return "%s lacked here %d there %d, fetched %d" % (
        minute(peer.recon_last_round), peer.recon_lacked_here or 0,
        peer.recon_lacked_there or 0, peer.recon_fetched or 0)


def format_table(peers: List[Peer]) -> str:
    rows = [("PRIO", "PEER", "TYPE", "STATE", "BACKLOG", "LAST SUCCESS", "LAST ROUND",
             "LAST ERROR")]
    for p in peers:
        error = "-"
        if p.last_error and (not p.last_success or (p.last_error_at or 0) >= p.last_success):
            error = "%s: %s" % (minute(p.last_error_at), p.last_error)
        rows.append((str(p.sync_priority), p.peer, p.kind, _state(p),
                     "-" if p.kind == "recon" else str(p.backlog), minute(p.last_success),
                     _last_round(p), error))
    widths = [max(len(r[i]) for r in rows) for i in range(7)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:7], widths)) + "  " + r[7]
                     for r in rows) + "\n"


def _peer_name(text: str) -> str:
    return parse_or_fail(text, None)[1]


def _email(text: Optional[str]) -> Optional[str]:
    if text is None:
        return None
    try:
        return parse_mail_peer(text)
    except PeerNameError as exc:
        raise UserError("--email: %s" % exc) from None


def cmd_add(peers: PeerStore, args) -> int:
    kind, name = parse_or_fail(args.peer, args.type)
    if kind != "recon" and (args.recon_port is not None or args.filters is not None):
        raise UserError("--recon-port and --filters are for --type recon peers")
    # A full send to a mail peer would be one mail per stored key: only on
    # request (and a recon peer is sent no keys: refused, as by set).
    catch_up = not args.no_catch_up if kind == "hkp" else args.catch_up
    peer = peers.add(name, kind, args.priority, _email(args.email), catch_up,
                     recon_port=args.recon_port or (DEFAULT_RECON_PORT if kind == "recon"
                                                    else None),
                     filters=_filters(args.filters),
                     rejection_key=_rejection_key(args.rejection_key),
                     honour_rejections=bool(args.honour_rejections))
    print("added %s peer %s (priority %d)%s" % (
        peer.kind, peer.peer, peer.sync_priority,
        "; it will be sent the %s stored now first" % counted(peer.catch_up, "key")
        if peer.catch_up else ""))
    return 0


PRIORITIES = (-(1 << 31), (1 << 31) - 1)  # sync_priority is an SQL integer (schema.sql)


_priority = whole_number(*PRIORITIES)  # a number the column holds on both databases


def _filters(text: Optional[str]) -> Optional[str]:
    """--filters: the recon filter list this peer demands, comma-separated."""
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    # Any printable text without blanks: Hockeypuck's names hold ':' and '+'
    # (drop:UAT, versions:3+4+6+rfc9980).
    if not names or any(not n.isprintable() or any(c.isspace() for c in n) for n in names):
        raise UserError("--filters: a comma-separated list of filter names, e.g. %s"
                        % DEFAULT_FILTERS)
    return ",".join(names)


def _rejection_key(text: Optional[str]) -> Optional[str]:
    """--rejection-key: a fingerprint, or '' to clear it."""
    if not text:
        return text
    try:
        return normalize_fingerprint(text)
    except NoticeError as exc:
        raise UserError("--rejection-key: %s" % exc) from None


def parse_or_fail(text: str, kind: Optional[str]):
    try:
        return parse_peer(text, kind)
    except PeerNameError as exc:
        raise UserError(str(exc)) from None


def cmd_remove(peers: PeerStore, args) -> int:
    name = _peer_name(args.peer)
    peers.remove(name)
    print("removed %s" % name)
    return 0


def cmd_list(peers: PeerStore, args) -> int:
    found = peers.list(counted=True)
    if args.json:
        json.dump([p.to_dict() for p in found], sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif found:
        sys.stdout.write(format_table(found))
    else:
        print("no peers (add one with: cks_sync_manage.py add HOST[:PORT])")
    return 0


def cmd_set(peers: PeerStore, args) -> int:
    name = _peer_name(args.peer)
    if args.priority is None and args.enabled is None and args.email is None \
            and not args.catch_up and args.rejection_key is None \
            and args.honour_rejections is None:
        raise UserError("nothing to change: give --priority, --enable, --disable, --email, "
                        "--catch-up, --rejection-key or --[no-]honour-rejections")
    peer = peers.update(name, args.priority, args.enabled, _email(args.email), args.catch_up,
                        _rejection_key(args.rejection_key), args.honour_rejections)
    sys.stdout.write(format_table([peer]))
    return 0


def cmd_refusals(peers: PeerStore, args) -> int:
    peer = peers.get(_peer_name(args.peer))
    for fingerprint, when, message in peers.refusals(peer.id):
        print("%s  %s  %s" % (minute(when), fingerprint, message))
    return 0


def _rejection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rejection-key", metavar="FPR",
                        help="fingerprint of the key the peer's operator signs rejection "
                             "notices with ('' to clear)")
    honour = parser.add_mutually_exclusive_group()
    honour.add_argument("--honour-rejections", dest="honour_rejections",
                        action="store_const", const=True,
                        help="carry out the peer's signed rejection notices here")
    honour.add_argument("--no-honour-rejections", dest="honour_rejections",
                        action="store_const", const=False)


def build_parser() -> argparse.ArgumentParser:
    parser = base_parser("cks_sync_manage.py", "Manage the peers cks_sync.py sends keys to.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND",
                                     parser_class=CommandParser)
    commands.required = True
    add = commands.add_parser("add", help="add a peer")
    add.add_argument("peer", metavar="PEER", help="host[:port] (HKP, port 11371 by default) "
                     "or an e-mail address (mail peer)")
    add.add_argument("--priority", type=_priority, default=100,
                     help="sync_priority: lower runs first (default 100)")
    add.add_argument("--email", metavar="ADDR", help="the peer operator's contact address")
    add.add_argument("--type", choices=("hkp", "mail", "recon"),
                     help="kind of peer (default: mail if PEER has an @, else hkp)")
    add.add_argument("--recon-port", type=whole_number(1, 65535), metavar="N",
                     help="recon peers: the peer's recon port (default %d)" % DEFAULT_RECON_PORT)
    add.add_argument("--filters", metavar="LIST",
                     help="recon peers: the filters it demands in the handshake (default "
                          "SKS's %s; Hockeypuck 2.2+ wants its own longer list)"
                          % DEFAULT_FILTERS)
    catch_up = add.add_mutually_exclusive_group()
    catch_up.add_argument("--no-catch-up", action="store_true",
                          help="do not send the keys stored before the peer was added")
    catch_up.add_argument("--catch-up", action="store_true",
                          help="mail peers: send them every stored key first, one mail "
                               "per key (HKP peers get that unless --no-catch-up)")
    _rejection_options(add)
    add.set_defaults(handler=cmd_add)
    remove = commands.add_parser("remove", help="remove a peer and its backlog")
    remove.add_argument("peer", metavar="PEER")
    remove.set_defaults(handler=cmd_remove)
    listing = commands.add_parser("list", help="the peers, their state and backlog")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_list)
    change = commands.add_parser("set", help="change a peer")
    change.add_argument("peer", metavar="PEER")
    change.add_argument("--priority", type=_priority)
    state = change.add_mutually_exclusive_group()
    state.add_argument("--enable", dest="enabled", action="store_const", const=True)
    state.add_argument("--disable", dest="enabled", action="store_const", const=False)
    change.add_argument("--email", metavar="ADDR")
    change.add_argument("--catch-up", action="store_true",
                        help="send the peer every stored key again (a full send)")
    _rejection_options(change)
    change.set_defaults(handler=cmd_set)
    refusals = commands.add_parser("refusals", help="keys a peer refused for good")
    refusals.add_argument("peer", metavar="PEER")
    refusals.set_defaults(handler=cmd_refusals)
    return parser


def main(argv: List[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        store = open_store(settings_from(args).db_url, 2, must_exist=True)
        try:
            return args.handler(PeerStore(store), args)
        finally:
            store.close()
    except PeerError as exc:
        raise UserError(str(exc), 1) from None
    except (ConfigError, StoreError) as exc:
        raise UserError(str(exc), 1) from None
