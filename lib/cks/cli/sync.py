"""cks_sync.py: one synchronization pass over the peers, for cron."""

from __future__ import annotations

import logging
import sys
import time
from typing import List, Optional

from ..config import ConfigError, Settings
from ..store import StoreError, open_store
from ..store.peers import Peer, PeerError, PeerStore
from ..sync.peername import PeerNameError, parse_peer
from ..sync.push import SYNC_LOCK, in_turn, push_in_run, sync_limits
from ..sync.recon.fetch import RunShare
from ..sync.recon.rounds import dial
from ..sync.runner import PeerReport, dry_run
from ..wording import counted
from .common import UserError, base_parser, pipeline_limits, settings_from

EX_TEMPFAIL = 75  # another run holds the lock


def build_parser():
    parser = base_parser("cks_sync.py", "Push the keys users added to the push peers and "
                                        "run a recon round with each recon peer, once.")
    parser.add_argument("--peer", metavar="PEER", help="only this peer")
    parser.add_argument("--dry-run", action="store_true",
                        help="show what would be sent; send and change nothing")
    parser.add_argument("--quiet", "-q", action="store_true",
                        help="print nothing when every peer was served")
    return parser


def summary(report: PeerReport, quiet: bool, dry: bool) -> List[str]:
    """Lines for standard output (the cron mail)."""
    lines = ["%s: refused %s for good: %s" % (report.peer, fingerprint, reason)
             for fingerprint, reason in report.refused]
    if quiet or not report.ok:
        return lines
    if report.removed:
        return ["%s: removed from the peer list during this run: nothing more is sent to it"
                % report.peer]
    if report.busy:
        return ["%s: another process is pushing to it (cksd's rapid push, or "
                "cks_mail_sync.py forwarding a mail's keys); left to it, what it does not "
                "send to the next run" % report.peer]
    if dry:
        return ["%s: would send %s%s%s" % (
            report.peer, counted(report.would_send, "key"),
            " (a full send)" if report.catching_up else "", _notices(report.notices_left))]
    left = ""
    if report.backlog_left or report.catching_up:
        left = "; %d more owed%s, for the next run" % (
            report.backlog_left, " and the full send goes on" if report.catching_up else "")
    return ["%s: sent %s%s%s" % (report.peer, counted(report.sent, "key"),
                                 _notices(report.notices), left)] + lines


def _kept(report: PeerReport) -> str:
    keys = counted(report.backlog_left, "key")
    if not report.notices_left:
        return keys
    return "%s and %s" % (keys, counted(report.notices_left, "rejection notice"))


def _notices(count: int) -> str:
    return ", " + counted(count, "rejection notice") if count else ""


def main(argv: List[str]) -> int:
    args = build_parser().parse_args(argv)
    if not args.verbose:
        # What the push and the fetch log as they go (a key refused for good,
        # a fetch's counts) is for cksd's log; here the summary says it, and
        # standard error (the cron mail too) is for the peers that failed.
        logging.getLogger().setLevel(logging.WARNING)
    try:
        settings = settings_from(args)
        limits = sync_limits(settings)
        store = open_store(settings.db_url, 2, must_exist=True)
        store.check()  # (before the run's lock file goes beside a mistyped SQLite path)
    except (ConfigError, StoreError) as exc:
        raise UserError(str(exc), 1) from None
    try:
        peers = PeerStore(store)
        with store.exclusive(SYNC_LOCK) as locked:
            if not locked:
                print("cks_sync.py: another run is still working on this database; "
                      "exiting", file=sys.stderr)
                return EX_TEMPFAIL
            deadline = time.monotonic() + limits.seconds_per_run
            if not args.dry_run:
                peers.drop_owed_to_none()
            failed = 0
            for peer in in_turn(_chosen_peers(peers, args.peer)):
                if peer.kind == "recon":
                    failed += not _recon(store, peer, settings, args,
                                         RunShare(deadline, limits.keys_per_peer_run))
                    continue
                report = dry_run(store, peer) if args.dry_run else \
                    push_in_run(store, peers, peer, settings, limits, deadline)
                for line in summary(report, args.quiet, args.dry_run):
                    print(line)
                if not report.ok:
                    failed += 1
                    print("%s: FAILED: %s; %s kept for the next run" % (
                        report.peer, report.error, _kept(report)), file=sys.stderr)
            return 1 if failed else 0
    except (ConfigError, PeerError, StoreError) as exc:
        raise UserError(str(exc), 1) from None
    finally:
        store.close()


def _recon(store, peer: Peer, settings: Settings, args, share: RunShare) -> bool:
    """One reconciliation round with `peer` and the fetch of what we lack
    (within this run's `share`)."""
    if args.dry_run:
        print("%s: would run a recon round" % peer.peer)
        return True
    report = dial(store, peer, settings.get_int("server", "port", 11371, least=0, most=65535),
                  pipeline_limits(settings), settings.get("server", "bind", ""),
                  share=share)
    if report.ok:
        if not args.quiet:
            print(report.summary())
    else:
        print("%s: FAILED: %s" % (peer.peer, report.outcome()), file=sys.stderr)
    return report.ok


def _chosen_peers(peers: PeerStore, only: Optional[str]) -> List[Peer]:
    if only is not None:  # ('' is a malformed name, not every peer)
        try:
            name = parse_peer(only)[1]
        except PeerNameError as exc:
            raise UserError(str(exc)) from None
        return [peers.get(name)]
    return peers.list(enabled_only=True, counted=True)
