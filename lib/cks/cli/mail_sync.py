"""cks_mail_sync.py < message: one sync mail from the MTA (.forward or procmail).

The exit status tells the MTA what to do with the mail (sysexits.h): 0 done
(only after the commit), 65 nothing usable in it, 77 not from a mail peer
(or a user's ADD while those are off), 75 try again later: whenever the
database or anything else fails for now, so no mail is ever lost.  A watchdog
turns a mail that takes longer than [mail] timeout into 75 as well, until its
keys are committed (then it cuts the forward short and exits 0); a wrong
command line (the .forward line: the operator's to fix) is 75 too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from typing import List, Sequence

from .. import pipeline
from ..config import ConfigError
from ..store import Store, StoreError, open_store
from ..store.peers import Peer, PeerStore
from ..sync.mail_in import ADD, INCREMENTAL, BrokenMail, IncomingMail, authorizing_peer, \
    forward_targets, parse_mail
from ..sync.mail_out import compose
from ..sync.mailconf import NO_ADDRESS, MailSettings, mail_settings
from ..sync.mta import HandOffError, transport_for
from ..sync.push import peer_lock
from ..views import follow_signers
from .common import base_parser, pipeline_limits, settings_from

log = logging.getLogger("cks.mail")

EX_OK, EX_DATAERR, EX_TEMPFAIL, EX_NOPERM = 0, 65, 75, 77


def build_parser():
    return base_parser("cks_mail_sync.py", "Merge the keys of one keyserver sync mail "
                       "(standard input), for the MTA; exit 0, 65, 75 or 77 (sysexits).")


def main(argv: List[str]) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # (argparse's exit: 0 after --help, 2 for a wrong option)
        if not exc.code:
            return EX_OK
        log.error("wrong command line (the .forward or procmail line); the mail stays "
                  "with the MTA")
        return EX_TEMPFAIL
    try:
        settings = settings_from(args)
        conf = mail_settings(settings)
        limits = pipeline_limits(settings)
    except ConfigError as exc:
        log.error("%s; the mail stays with the MTA", exc)
        return EX_TEMPFAIL
    done = _watchdog(conf.timeout)
    try:
        if conf.log_file:
            _log_to(conf.log_file)
        raw = _read_message(conf.max_mail_bytes)
        if raw is None:
            log.warning("refused a mail over [mail] max_mail_bytes (%d bytes)",
                        conf.max_mail_bytes)
            return EX_DATAERR
        mail = parse_mail(raw, os.environ.get("SENDER", ""))
        if mail.kind is None:
            log.warning("refused %s: not a keyserver mail (Subject: %r)", _which(mail),
                        mail.subject[:80])
            return EX_DATAERR
        if mail.kind == ADD and not conf.accept_add:
            log.warning("refused %s: ADD mails from users are off ([mail] accept_add)",
                        _which(mail))
            return EX_NOPERM
        store = open_store(settings.db_url, 1, must_exist=True)
        try:
            return _merge(store, mail, conf, limits, done)
        finally:
            store.close()
    except StoreError as exc:
        log.error("%s; the mail stays with the MTA, to be tried again", exc)
        return EX_TEMPFAIL
    except Exception as exc:  # a bug or an OS failure must not lose the mail either
        log.error("internal error (%s: %s); the mail stays with the MTA",
                  exc.__class__.__name__, exc, exc_info=args.verbose)
        return EX_TEMPFAIL


def _merge(store: Store, mail: IncomingMail, conf: MailSettings, limits: pipeline.Limits,
           done: threading.Event) -> int:
    """Store the mail's keys and forward the new ones; `done` is set once the
    keys are committed (see _watchdog)."""
    peers = PeerStore(store)
    mail_peers = [p for p in peers.list(enabled_only=True) if p.kind == "mail"]
    targets = forward_targets(mail, [p.peer for p in mail_peers], conf.address)
    if mail.kind == INCREMENTAL:
        peer = authorizing_peer(mail, [p.peer for p in mail_peers])
        if peer is None:
            log.warning("refused %s: no mail peer of this server among %s",
                        _which(mail), ", ".join(mail.senders + mail.sent_by) or "no senders")
            return EX_NOPERM
        source = pipeline.Source.peer("mail", peer, targets)
    else:
        source = pipeline.Source.user()  # queued for every peer, mail peers included
    # New keys' signatures are checked after the write transaction, not in it
    # (a SQLite node's uploads and lookups wait for its write lock), and after
    # the mail is done: until 2026-12-06 checks that outlasted [mail] timeout
    # made a mail whose keys were in 75, and the MTA delivered it again.
    try:
        keytext = mail.keytext
    except BrokenMail as exc:
        log.warning("refused %s: %s", _which(mail), exc)
        return EX_DATAERR
    report = pipeline.submit(store, keytext, source, limits, follow=False, defer_views=True,
                             armored=True)
    for problem in report.problems:
        log.warning("%s: %s", _which(mail), problem)
    for outcome in report.with_status(pipeline.REFUSED):
        log.warning("%s: key %s refused: %s", _which(mail), outcome.fingerprint,
                    outcome.reason)
    if not report.outcomes:
        log.warning("refused %s: no usable key in it", _which(mail))
        return EX_DATAERR
    new = [o.fingerprint for o in report.outcomes
           if o.status in (pipeline.ADDED, pipeline.UPDATED)]
    log.info("%s from %s: %s", _which(mail), source.tag, ", ".join(
        "%d %s" % (len(report.with_status(s)), s) for s in
        (pipeline.ADDED, pipeline.UPDATED, pipeline.UNCHANGED, pipeline.REFUSED)))
    done.set()
    if new and conf.address:
        try:
            _forward_now(store, peers, [p for p in mail_peers if p.peer in targets],
                         [p.peer for p in mail_peers], new, mail, conf)
        except StoreError as exc:  # the keys are committed and queued: still done
            log.warning("forwarding stopped (%s); cks_sync.py will send what is left", exc)
    elif new and targets:
        log.warning("%s: not forwarded to %s (%s); the keys stay owed: cks_sync.py sends "
                    "them once it is set", _which(mail), ", ".join(targets), NO_ADDRESS)
    try:
        follow_signers(store, limits.serve)
    except StoreError as exc:  # (their work stays queued, for cksd's background job)
        log.warning("served views not derived (%s); cksd derives them", exc)
    return EX_OK


def _forward_now(store: Store, peers: PeerStore, targets: Sequence[Peer],
                 mail_peers: Sequence[str], fingerprints: Sequence[str], mail: IncomingMail,
                 conf: MailSettings) -> None:
    """Send what was new to the mail peers the mail did not name, at once, as pks
    does: one mail per key to all of them, with the X-KeyServer-Sent chain, to
    which every other mail peer of this node (`mail_peers`) is added, as in
    MailPusher's mails.

    The keys are already committed and queued for those peers (in the same
    transaction), so a failure here loses nothing: cks_sync.py sends them on
    its next run.  A success settles the queue entries.  Each peer is sent to
    under its lock (peer_lock), as cksd's rapid push and cks_sync.py do, and
    only what it is still owed then; a peer another process is pushing to is
    left to it: cksd's rapid push and cks_sync.py send the peer's whole
    backlog, another mail's forward that mail's keys alone, and this mail's
    then wait for the next push (they stay owed).
    """
    with contextlib.ExitStack() as held:
        free = []
        for peer in targets:
            if held.enter_context(store.exclusive(peer_lock(peer))):
                free.append(peer)
            else:
                log.info("%s: another process is pushing to it; left to it", peer.peer)
        _forward_to(store, peers, free, mail_peers, fingerprints, mail, conf)


def _forward_to(store: Store, peers: PeerStore, targets: Sequence[Peer],
                mail_peers: Sequence[str], fingerprints: Sequence[str], mail: IncomingMail,
                conf: MailSettings) -> None:
    """_forward_now's sending to `targets`, with their locks held."""
    owed = {peer.id: peers.backlog_of(peer.id, fingerprints) for peer in targets}
    keydata = store.keydata(fingerprints)
    transport = transport_for(conf)
    for fingerprint in fingerprints:
        due = [peer for peer in targets if fingerprint in owed[peer.id]]
        if not due or fingerprint not in keydata:
            continue
        try:
            transport.send(compose(keydata[fingerprint], [p.peer for p in due], conf.address,
                                   mail.sent_by, also_sent_to=mail_peers))
        except HandOffError as exc:
            log.warning("forwarding %s failed (%s); cks_sync.py will send it", fingerprint,
                        exc)
            return
        for peer in due:
            peers.delivered(peer.id, [(fingerprint, owed[peer.id][fingerprint])],
                            int(time.time()))
        log.info("forwarded %s to %s", fingerprint, ", ".join(p.peer for p in due))


def _which(mail: IncomingMail) -> str:
    return "mail %s" % (mail.message_id or "(no Message-ID)")


def _read_message(limit: int):
    """Standard input, or None when it is over `limit` (the rest is read and
    dropped, so the MTA's write does not fail)."""
    data = sys.stdin.buffer.read(limit + 1)
    if len(data) <= limit:
        return data
    while sys.stdin.buffer.read(1 << 20):
        pass
    return None


class _LogFile(logging.FileHandler):
    """[mail] log_file.  A line it cannot write (a full disk) is one line on
    standard error, which the MTA puts in its notice, for the whole run:
    logging's own report is a traceback for every line."""

    unwritable = False

    def handleError(self, record: logging.LogRecord) -> None:
        if not self.unwritable:
            self.unwritable = True
            exc = sys.exc_info()[1]
            sys.stderr.write("cks_mail_sync.py: cannot write to the log file %s: %s (this "
                             "run's lines are lost)\n" % (
                                 self.baseFilename, getattr(exc, "strerror", None) or exc))


def _log_to(path: str) -> None:
    handler = _LogFile(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)


def _watchdog(seconds: float) -> threading.Event:
    """Exit 75 after `seconds`, whatever the main thread is waiting for (a locked
    database, a hung MTA).  What was not committed by then is rolled back.
    Once the returned event is set (the keys are committed: the mail is done),
    exit 0 instead: the forward is cut short, and what it did not mark
    delivered (a mail the MTA was still taking too) stays owed, for
    cks_sync.py; served views not derived yet stay queued, for cksd."""
    done = threading.Event()

    def give_up() -> None:
        if done.is_set():
            log.warning("cut short after %g s ([mail] timeout), the keys in: cks_sync.py "
                        "will send what is left, cksd derives what is not served yet",
                        seconds)
            os._exit(EX_OK)
        log.error("gave up after %g s ([mail] timeout); the mail stays with the MTA",
                  seconds)
        os._exit(EX_TEMPFAIL)

    timer = threading.Timer(seconds, give_up)
    timer.daemon = True
    timer.start()
    return done
