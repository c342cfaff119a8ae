"""Rows of CKS's key tables as Python values, and the SQL that maps between
them: what a key's row and index rows hold (written by Store), and the
index rows that lookups read back (KeyRow) without parsing keys."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Sequence, Set, Tuple

from ..folding import fold
from ..openpgp.info import KeyInfo
from ..openpgp.keypacket import PublicKey

WORD_RE = re.compile(r"[^\W_]+", re.UNICODE)  # (ASCII text: a run of letters and digits)
MAX_WORD_LENGTH = 64
MAX_WORDS_PER_USER_ID = 32
MAX_WORDS_PER_KEY = 1_000
"""The word index keeps the first MAX_WORDS_PER_USER_ID words of each user ID
of a key, MAX_WORDS_PER_KEY in all (the Debian keyring's user IDs have 17
words at most, its keys 44).  Until 2026-12-06 it kept every word: a key
whose four self-signed user IDs of 1 MB were made of distinct words wrote
674,662 rows, 140 MB on PostgreSQL (found by a review of abuse at scale)."""


def all_words_of(text: str) -> List[str]:
    """Every word of a user ID or search, case-folded: a search by words
    finds the keys whose user IDs hold each word of the search.  A word is
    a run of letters and digits, with the combining marks that follow them
    (the vowel signs of Devanagari, an accent written apart), of the text
    folded (folding.fold), so that `José` typed in either form, `WEISS` and
    `Weiß`, `ΟΔΥΣΣΕΑΣ` and `οδυσσεας` are the same words.
    Until 2026-12-06 marks ended a word and case was only lower()ed."""
    folded = fold(text)
    if folded.isascii():
        return WORD_RE.findall(folded)
    words: List[str] = []
    start = -1
    for at, char in enumerate(folded):
        if char.isalnum() or start >= 0 and unicodedata.category(char).startswith("M"):
            if start < 0:
                start = at
        elif start >= 0:
            words.append(folded[start:at])
            start = -1
    if start >= 0:
        words.append(folded[start:])
    return words


def is_indexed(word: str) -> bool:
    """Whether the word index (cks_words) keeps `word`: one of up to
    MAX_WORD_LENGTH characters.  A search's longer words are checked against
    the user IDs of the keys its indexed words find (hkp/app.py)."""
    return len(word) <= MAX_WORD_LENGTH


def words_of(text: str) -> List[str]:
    """The words of a user ID that the word index keeps."""
    return [w for w in all_words_of(text) if is_indexed(w)]


@dataclass
class UserIDRow:
    uid: str
    email: Optional[str]
    is_attribute: bool
    created: Optional[int]
    expires: Optional[int]
    revoked: bool


@dataclass
class KeyRow:
    """What the index pages need of one key, without parsing it."""

    fingerprint: str
    version: int
    keyid: str
    algorithm: int
    bits: int
    created: int
    expires: Optional[int]
    revoked: bool
    sks_hash: str
    size: int
    first_seen: int
    last_changed: int
    user_ids: List[UserIDRow] = field(default_factory=list)
    revocation_unverified: bool = False  # see KeyInfo


@dataclass
class NetworkView:
    """A new key's network view, to store before its served view exists."""

    key: PublicKey  # the primary key
    keydata: bytes
    sks_hash: str

    @property
    def keyid(self) -> str:
        return self.key.keyid.hex().upper()


class ServedState(NamedTuple):
    """What a writer of a stored key's served view reads of it
    (Store.served_states)."""

    served: bytes  # b"": not served yet (UNSERVED)
    revoked: bool
    unverified_revocation: bool
    source: str
    sks_hash: str  # of the network view the served one was derived from


@dataclass
class StoredKey:
    """What merging with a stored key needs of it (Store.stored_keys)."""

    keydata: bytes
    first_seen: int
    sks_hash: str


@dataclass
class ServedView:
    """A served view derived for a key stored without one (Store.serve_unserved)."""

    info: KeyInfo
    served: bytes
    verdicts: Dict[bytes, Tuple[str, bool, str]]  # new signature verdicts
    signers: Set[bytes]  # key IDs of the other keys that signed it
    missing: Sequence[str]  # signers it needs that are not held


@dataclass
class ViewWork:
    """A row of cks_view_work (schema.sql)."""

    id: int
    fingerprint: str
    keyid: str
    signed: bool
    missing: str
    unserved: bool = False  # its key is stored without a served view yet (read with it)


UNSERVED = -1
"""cks_keys.served_crc24 of a key stored without its served view yet (a bulk
load's first phase): no lookup finds it until save_key() writes the view."""
DESCRIBED_COLUMNS = ("version", "keyid", "short_keyid", "algorithm", "bits", "created",
                     "expires", "revoked", "unverified_revocation")
"""cks_keys' columns that describe the served view (KeyInfo)."""
SUBKEY_COLUMNS = ("key_fingerprint", "fingerprint", "keyid", "short_keyid", "version",
                  "algorithm", "bits", "created", "expires", "revoked")
USERID_COLUMNS = ("key_fingerprint", "position", "uid", "email", "is_attribute", "created",
                  "expires", "revoked")
WORD_COLUMNS = ("word", "key_fingerprint")
INDEX_TABLES = ("cks_subkeys", "cks_userids", "cks_words")
INDEX_COLUMNS = (SUBKEY_COLUMNS, USERID_COLUMNS, WORD_COLUMNS)
SIGNER_COLUMNS = ("signer_keyid", "key_fingerprint")
VIEW_WORK_COLUMNS = ("fingerprint", "keyid", "signed", "missing")
SAVE_VERDICTS = ("INSERT INTO cks_sig_verdicts (cache_key, key_fingerprint, status, "
                 "weak_hash, reason) VALUES (?, ?, ?, ?, ?) ON CONFLICT (cache_key) DO NOTHING")


def described(info: KeyInfo) -> tuple:
    """DESCRIBED_COLUMNS' values for a key."""
    return (info.version, info.keyid, info.keyid[-8:], info.algorithm, info.bits,
            info.created, info.expires, info.revoked, info.revocation_unverified)


def index_rows(info: KeyInfo) -> Tuple[List[tuple], List[tuple], List[tuple]]:
    """A key's rows of cks_subkeys, cks_userids and cks_words (their columns above)."""
    fpr = info.fingerprint
    subkeys = [(fpr, s.fingerprint, s.keyid, s.keyid[-8:], s.version, s.algorithm, s.bits,
                s.created, s.expires, s.revoked)
               for s in {s.fingerprint: s for s in info.subkeys}.values()]
    userids = [(fpr, n, u.text, u.email, u.is_attribute, u.created, u.expires, u.revoked)
               for n, u in enumerate(info.user_ids)]
    texts = [u.text for u in info.user_ids if not u.is_attribute]
    return subkeys, userids, [(w, fpr) for w in indexed_words(texts)]


def indexed_words(texts: Iterable[str]) -> List[str]:
    """The words the word index keeps of a key whose user IDs (not
    attributes) are `texts`, in the order the served view lists them:
    MAX_WORDS_PER_USER_ID of each, MAX_WORDS_PER_KEY in all; sorted."""
    words: Dict[str, None] = {}  # (an ordered set)
    for text in texts:
        own = dict.fromkeys(words_of(text))
        words.update(dict.fromkeys(list(own)[:MAX_WORDS_PER_USER_ID]))
        if len(words) >= MAX_WORDS_PER_KEY:
            break
    return sorted(list(words)[:MAX_WORDS_PER_KEY])


def signer_rows(fingerprint: str, keyids: Iterable[bytes]) -> List[tuple]:
    return [(k.hex().upper(), fingerprint) for k in sorted(set(keyids))]


def verdict_rows(fingerprint: str, verdicts: Dict[bytes, Tuple[str, bool, str]]) -> List[tuple]:
    return [(k.hex(), fingerprint, v[0], v[1], v[2]) for k, v in verdicts.items()]


_KEY_ROWS = (
    "SELECT k.fingerprint, k.served_crc24, k.version, k.keyid, k.algorithm, k.bits, k.created, "
    "k.expires, k.revoked, k.sks_hash, k.size, k.first_seen, k.last_changed, "
    "k.unverified_revocation, u.position, u.uid, u.email, u.is_attribute, u.created, "
    "u.expires, u.revoked%s "
    "FROM (%%s) m JOIN cks_keys k ON k.fingerprint = m.fingerprint "
    "LEFT JOIN cks_userids u ON u.key_fingerprint = k.fingerprint "
    "ORDER BY %s, u.position")
KEY_ROWS_OF_MATCHES = _KEY_ROWS % ("", "k.fingerprint")
"""The keys a query matches (its column `fingerprint`) with their user IDs,
one row per user ID (key_rows_of reads them)."""
KEY_ROWS_OF_ID_MATCHES = _KEY_ROWS % (", m.by_subkey", "m.first_seen, k.fingerprint")
"""The same of a lookup by key ID or fingerprint (its columns fingerprint,
by_subkey and first_seen), in its order, each row ending with by_subkey."""


NETWORK_VIEW_COLUMNS = (
    "version", "keyid", "short_keyid", "algorithm", "bits", "created", "sks_hash", "keydata",
    "served", "served_crc24", "size", "first_seen", "last_changed", "source", "fingerprint")


def network_view_row(view: NetworkView, source: str, now: int) -> tuple:
    """A cks_keys row of a key without its served view (UNSERVED)."""
    key, keyid = view.key, view.keyid
    return (key.version, keyid, keyid[-8:], key.algorithm, key.bits, key.created,
            view.sks_hash, view.keydata, b"", UNSERVED, len(view.keydata), now, now, source,
            key.fingerprint.hex().upper())


def first_key_rows(rows: Sequence[Sequence[Any]], limit: int) -> Tuple[List[KeyRow], bool]:
    """The index rows of the first `limit` keys of KEY_ROWS_OF_MATCHES' rows
    (of up to limit + 1 keys) that are served, and whether there were more."""
    found, by_fpr = key_rows_of(rows)
    return [by_fpr[f] for f in found[:limit] if f in by_fpr], len(found) > limit


def key_rows_of(rows: Sequence[Sequence[Any]]) -> Tuple[List[str], Dict[str, KeyRow]]:
    """The keys of KEY_ROWS_OF_MATCHES' rows in their order, and the index
    rows of those that are served."""
    found: List[str] = []
    by_fpr: Dict[str, KeyRow] = {}
    for r in rows:
        if not found or found[-1] != r[0]:
            found.append(r[0])
        if r[1] == UNSERVED:
            continue
        row = by_fpr.get(r[0])
        if row is None:
            row = by_fpr[r[0]] = KeyRow(r[0], r[2], r[3], r[4], r[5], r[6], r[7], bool(r[8]),
                                        r[9], r[10], r[11], r[12],
                                        revocation_unverified=bool(r[13]))
        if r[14] is not None:  # a key without user IDs has one row of NULLs
            row.user_ids.append(UserIDRow(r[15], r[16], bool(r[17]), r[18], r[19],
                                          bool(r[20])))
    return found, by_fpr
