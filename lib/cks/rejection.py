"""Deleting and rejecting keys, and rejection notices between nodes.

Locally (the delete.cgi successor): `delete` removes a key; `reject` removes
it and puts its fingerprint on the rejected list, which every path that
stores keys consults (the pipeline); `unreject` takes it off.  Each reject
and unreject makes a notice of ours, which the operator signs; signed, it is
published and delivered to the HKP peers by cks_sync.py.

A notice from a peer (`receive`) is carried out only when its signature
verifies against the key of an operator we trust for rejections (a peer
entry with that rejection key and honour_rejections on); otherwise it is
kept as received, not applied, for our operator to review.  A notice carried
out (or superseded) claims its serial: the same text again changes nothing
(replay), another text with that serial is refused.  A pending notice claims
it only against notices no listed peer's rejection key signed, if such a
key signed it; otherwise a notice delivered with its serial is judged afresh
and takes its place (anyone can read a serial at /pks/x-cks-rejections and
post another notice with it).  An older notice never undoes a newer one;
a peer can lift only a rejection its own notice made; our own rejections
are ours alone to lift, and a peer's reject leaves them as they are.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator, Optional, Tuple

from .notices import (Notice, NoticeError, check_signature, new_serial, normalize_fingerprint,
                      parse, parse_signature, received_signature, room_for_reason)
from .openpgp.keys import Key, parse_keyring
from .openpgp.verify import Verdict
from .store import Store
from .store import rejections as db
from .store.base import found_by_id
from .store.sql import Cursor

APPLIED, PENDING, SUPERSEDED, ISSUED, UNSIGNED = "applied", "pending", "superseded", "issued", \
    "unsigned"
FUTURE_SLACK = 86400  # a notice dated further ahead than this is not carried out
# Notices waiting for review past which a stranger's is refused (TooManyPending) until the
# operator deals with them (cks_admin.py notices --pending, --drop-pending)
MAX_PENDING = 1000


class RejectionError(Exception):
    """An operation the operator asked for that cannot be done, said in one line."""


class TooManyPending(Exception):
    """A stranger's notice that would wait for review, when MAX_PENDING do."""


@dataclass
class NodeIdentity:
    node: str  # this node's name, written into our notices
    key: Optional[str] = None  # fingerprint of our operator's rejection key ([rejection] key)


def fingerprint_named(store: Store, text: str) -> str:
    """A fingerprint as the operator typed it: spaces and 0x allowed.  A key ID is
    ambiguous (several keys can share one) and is refused, naming the stored
    keys that have it."""
    try:
        return normalize_fingerprint(text)
    except NoticeError as exc:
        bare = text.replace(" ", "").upper()
        bare = bare[2:] if bare.startswith("0X") else bare
        if len(bare) in (8, 16):
            column = "keyid" if len(bare) == 16 else "short_keyid"
            matches = store.find_by_id(column, bare, 20)
            raise RejectionError("a key ID is ambiguous: give the whole fingerprint%s" % (
                " (stored keys with this ID: %s)" % ", ".join(matches) if matches else "")) \
                from None
        raise RejectionError(str(exc)) from None


def delete(store: Store, fingerprint: str) -> bool:
    """Delete a key, free to come back: recon asks for its hashes again at the
    next round.  True if it was stored."""
    with store.write([fingerprint]) as cursor:
        db.forget_refused_hashes(cursor, fingerprint)
        return db.delete_key(cursor, fingerprint)


def reject(store: Store, fingerprint: str, reason: str, identity: NodeIdentity,
           now: Optional[int] = None) -> Tuple[db.StoredNotice, bool]:
    """Delete and reject a key: our (unsigned) notice saying so, and whether
    the key was stored (and is deleted)."""
    now = int(time.time()) if now is None else now
    with store.write([fingerprint]) as cursor:
        deleted = db.delete_key(cursor, fingerprint)
        db.add_rejection(cursor, fingerprint, reason, "local", now)
        return _our_notice(cursor, "reject", fingerprint, reason, identity, now), deleted


def unreject(store: Store, fingerprint: str, identity: NodeIdentity,
             now: Optional[int] = None) -> db.StoredNotice:
    now = int(time.time()) if now is None else now
    with store.write([fingerprint]) as cursor:
        if db.rejection(cursor, fingerprint) is None:
            raise RejectionError("%s is not rejected here" % fingerprint)
        db.remove_rejection(cursor, fingerprint)
        return _our_notice(cursor, "unreject", fingerprint, "", identity, now)


def _our_notice(cursor: Cursor, action: str, fingerprint: str, reason: str,
                identity: NodeIdentity, now: int) -> db.StoredNotice:
    """Our notice, dated after every notice about the key carried out here: a
    peer carries out a notice only when it is newer than those (in whole
    seconds), so an unreject in the same second as its reject was dropped."""
    newest = db.newest_applied_time(cursor, fingerprint)
    when = now if newest is None else max(now, newest + 1)
    notice = Notice(action, fingerprint, " ".join(reason.split()), when, identity.node,
                    new_serial())
    _check_room(notice)
    stored = db.StoredNotice(notice.serial, action, fingerprint, notice.reason, when,
                             identity.node, notice.render(), None, None, "local", UNSIGNED,
                             "", now, now)
    db.insert_notice(cursor, stored)
    return stored


def _check_room(notice: Notice) -> None:
    """Refuse a reason that makes a notice every peer would refuse (over
    MAX_NOTICE_BYTES); raised inside the write, it undoes the rejection too."""
    size, room = len(notice.reason.encode("utf-8")), room_for_reason(notice)
    if size > room:
        raise RejectionError("the reason is %d bytes (UTF-8): a notice has room for %d bytes "
                             "of reason at most; nothing was rejected" % (size, room))


def sign(store: Store, serial: str, armored_signature: str,
         identity: NodeIdentity) -> db.StoredNotice:
    """Attach the operator's detached signature to a notice of ours, after
    checking it against our rejection key; the notice is then published and
    owed to every HKP peer."""
    if not identity.key:
        raise RejectionError("no rejection key configured: set [rejection] key = FINGERPRINT")
    signature, armored = received_signature(armored_signature)
    with store.write() as cursor:
        # (an edit of the peer list waits for it, and it for one: store/peers.py _editing)
        cursor.backend.lock_all_keys(cursor)
        notice = db.get_notice(cursor, serial)
        if notice is None or notice.origin != "local":
            raise RejectionError("no notice of ours with serial %s" % serial)
        key = _served_key(cursor, identity.key)
        if key is None:
            raise RejectionError("our rejection key %s is not stored here: upload it first"
                                 % identity.key)
        verdict = check_signature(notice.body, signature, key)
        if verdict is None or not verdict.valid:
            raise RejectionError("the signature is not a valid signature of notice %s by %s"
                                 % (serial, identity.key))
        db.set_notice_status(cursor, serial, ISSUED, signature=armored, signer=identity.key)
        db.queue_notice(cursor, serial)
        return db.get_notice(cursor, serial)


def receive(store: Store, body: str, armored_signature: str, origin: str,
            now: Optional[int] = None, stranger: bool = False) -> Tuple[str, str]:
    """Take a notice delivered by a peer: (status, why).  Raises NoticeError for
    a notice or signature block that cannot be read at all, and for a notice
    whose serial names another notice here: carried out, ours, or one a
    listed peer's rejection key signed, waiting for review.  A `stranger`'s
    (neither a peer's nor the operator's) that would wait for review is
    refused with TooManyPending when MAX_PENDING do."""
    now = int(time.time()) if now is None else now
    notice = parse(body)
    signature, armored = received_signature(armored_signature)
    with store.write([notice.fingerprint]) as cursor:
        seen = db.get_notice(cursor, notice.serial)
        if seen is not None and seen.status != PENDING:
            if seen.body != body:
                raise NoticeError("serial %s names another notice here" % notice.serial)
            return seen.status, "already received"
        if seen is not None and seen.body != body and seen.signature \
                and _by_a_peers_key(cursor, seen.body, parse_signature(seen.signature)) \
                and not _by_a_peers_key(cursor, body, signature):
            # (anyone can read the serial at /pks/x-cks-rejections and sign
            # another notice with it: it must not take the place of a
            # notice a peer's rejection key signed, waiting for review)
            raise NoticeError("serial %s names another notice here, waiting for review"
                              % notice.serial)
        signer, status, why = _judge(cursor, notice, body, signature, now)
        if stranger and status == PENDING and seen is None \
                and db.count_notices(cursor, PENDING) >= MAX_PENDING:
            raise TooManyPending("%d notices wait for review here" % MAX_PENDING)
        if seen is not None:
            db.delete_notice(cursor, notice.serial)
        db.insert_notice(cursor, db.StoredNotice(
            notice.serial, notice.action, notice.fingerprint, notice.reason, notice.time,
            notice.node, body, armored, signer, origin, status, why,
            now, now if status == APPLIED else None))
        return status, why


def _judge(cursor: Cursor, notice: Notice, body: str, signature, now: int):
    """(signer fingerprint, status, why) of a received notice, carrying it out when
    it is trusted."""
    signer, problem = _verified_signer(cursor, body, signature)
    if problem:
        return signer, PENDING, problem
    if not _a_peers_key(cursor, signer, honoured=True):
        return signer, PENDING, "%s is not trusted for rejections here" % signer
    if notice.time > now + FUTURE_SLACK:
        return signer, PENDING, "dated in the future"
    newest = db.newest_applied_time(cursor, notice.fingerprint)
    if newest is not None and newest >= notice.time:
        return signer, SUPERSEDED, "a newer notice about this key was carried out"
    current = db.rejection(cursor, notice.fingerprint)
    ours = current is not None and not current["source"].startswith("notice:")
    if notice.action == "reject":
        db.delete_key(cursor, notice.fingerprint)
        if ours:
            return signer, APPLIED, "already rejected by this node's operator"
        db.add_rejection(cursor, notice.fingerprint, "rejected by %s: %s"
                         % (notice.node, notice.reason), "notice:" + notice.serial, now)
        return signer, APPLIED, ""
    if current is None:
        return signer, APPLIED, "was not rejected here"
    if ours:
        return signer, PENDING, "rejected by this node's operator: only they can lift it"
    origin = db.get_notice(cursor, current["source"][len("notice:"):])
    if origin is None or origin.signer != signer:
        return signer, PENDING, "rejected here on another node's notice"
    db.remove_rejection(cursor, notice.fingerprint)
    return signer, APPLIED, ""


def _verified_signer(cursor: Cursor, body: str, signature) -> Tuple[Optional[str], str]:
    """(the signer's fingerprint, '') when the signature of `body` verifies
    against a key held here; else (the signer's or None, why not).  The
    listed peers' rejection keys are asked first, then the key a lookup by
    the signature's issuer finds (a primary key before keys with a subkey
    of that ID): anyone can bind a peer's public key to a key of their own
    as a subkey that signs nothing, and until 2026-12-07 such a key whose
    fingerprint sorted first stood in for the peer's key here, so every
    notice of the peer's waited for review ("the signature does not
    verify")."""
    for key in _peers_keys(cursor):
        verdict = check_signature(body, signature, key)
        if verdict is not None:
            return _judged(key, verdict)
    key = _signer_key(cursor, signature)
    if key is None:
        return None, "the signer's key is not held here"
    return _judged(key, check_signature(body, signature, key))


def _judged(key: Key, verdict: Optional[Verdict]) -> Tuple[str, str]:
    signer = key.fingerprint.hex().upper()
    return signer, "" if verdict is not None and verdict.valid else \
        "the signature does not verify"


def _peers_keys(cursor: Cursor) -> Iterator[Key]:
    """The listed peers' rejection keys held here (served views)."""
    for (fingerprint,) in cursor.execute(
            "SELECT DISTINCT rejection_key FROM cks_other_servers "
            "WHERE rejection_key IS NOT NULL").fetchall():
        key = _served_key(cursor, fingerprint)
        if key is not None:
            yield key


def _by_a_peers_key(cursor: Cursor, body: str, signature) -> bool:
    """Whether `body`'s signature verifies by the rejection key of a listed
    peer (honoured or not)."""
    signer, problem = _verified_signer(cursor, body, signature)
    return not problem and _a_peers_key(cursor, signer, honoured=False)


def _a_peers_key(cursor: Cursor, fingerprint: str, honoured: bool) -> bool:
    """Whether `fingerprint` is the rejection key of a listed peer (`honoured`:
    one whose rejections this node carries out)."""
    sql = "SELECT count(*) FROM cks_other_servers WHERE rejection_key = ?"
    params = [fingerprint]
    if honoured:
        sql += " AND honour_rejections = ?"
        params.append(True)
    return cursor.scalar(sql, params) > 0


def _signer_key(cursor: Cursor, signature) -> Optional[Key]:
    """The stored key (served view) a lookup by the signature's issuer finds
    first (store.found_by_id)."""
    fingerprint = signature.issuer_fingerprint
    if fingerprint is not None:
        column, value = "fingerprint", fingerprint.hex().upper()
    elif signature.issuer_keyid is not None:
        column, value = "keyid", signature.issuer_keyid.hex().upper()
    else:
        return None
    found = found_by_id(cursor, column, value, 1)
    return _served_key(cursor, found[0]) if found else None


def _served_key(cursor: Cursor, fingerprint: str) -> Optional[Key]:
    row = cursor.execute("SELECT served FROM cks_keys WHERE fingerprint = ?",
                         (fingerprint,)).fetchone()
    keys = parse_keyring(bytes(row[0])).keys if row else []
    return keys[0] if keys else None


__all__ = ["NoticeError", "RejectionError", "TooManyPending", "MAX_PENDING", "NodeIdentity",
           "fingerprint_named", "delete", "reject", "unreject", "sign", "receive"]
