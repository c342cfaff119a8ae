"""Parsing HKP requests (query strings, form bodies, lookups) and classifying
what is searched (pure functions)."""

from __future__ import annotations

import binascii
import functools
import re
from dataclasses import dataclass, field
from typing import Callable, Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple, Union
from urllib.parse import unquote_to_bytes

from ..folding import fold_address

OPS = frozenset({"get", "index", "vindex", "stats", "hget"})
TRUE_VALUES = frozenset({"on", "yes", "true", "1"})
# The lookup variables: each may appear once in a query string.
QUERY_ONCE = frozenset({"op", "search", "options", "exact", "fingerprint", "hash"})
MAX_FIELDS = 100
QUERIES_KEPT = 1024  # parsed query strings kept (parse_query), each of at most
KEPT_QUERY_LENGTH = 256  # characters: a few hundred kilobytes in all
WordSplitter = Callable[[str], List[str]]  # text -> its words (store.rows.all_words_of)

_HEX = re.compile(r"^[0-9A-Fa-f]+$")
_EMAIL = re.compile(r"^<?([^\s<>@]+@[^\s<>@]+)>?$")
_PLAIN_EMAIL = re.compile(r"[^\s<>@]+@[^\s<>@]+")
_SEGMENT = re.compile(rb"[^&]+")  # empty segments (a&&b, a trailing &) are skipped
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_PERCENT_AS_EQUALS = bytes.maketrans(b"%", b"=")
_ABSOLUTE_FORM = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?]*")
_HEX_KINDS = {8: "short_keyid", 16: "keyid", 32: "fingerprint", 40: "fingerprint",
              64: "fingerprint"}


class HKPError(Exception):
    """An HKP request that gets an error status (400, 404, 501, ...), with
    these headers besides the usual ones."""

    def __init__(self, status: int, message: str,
                 headers: Sequence[Tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = list(headers)


@dataclass(frozen=True)
class Query:
    """What a search string asks for.

    kind: short_keyid | keyid | fingerprint (32, 40 or 64 hex) | hash (SKS
    key hash, op=hget) | email | words | exact (whole user ID, exact=on)
    words: of words and exact, every word of the search (a word too long for
    the word index is checked against the user IDs: KeyServer.find)
    plus_address: of exact, the e-mail address it may stand for (plus_address())
    """

    kind: str
    value: str
    words: tuple = ()
    plus_address: Optional[str] = None

    @property
    def names_one_key(self) -> bool:
        """True for searches by key ID, fingerprint or hash (not by text)."""
        return self.kind in ("short_keyid", "keyid", "fingerprint", "hash")


@dataclass(frozen=True)
class Lookup:
    op: str
    search: Optional[Query]
    options: FrozenSet[str]
    fingerprint: bool  # fingerprint=on: show fingerprints in HTML index
    exact: bool
    show_hash: bool

    @property
    def machine_readable(self) -> bool:
        return "mr" in self.options


@dataclass(frozen=True)
class Form:
    """The fields of a query string or form body: each name's values in order."""

    values: Mapping[str, Tuple[str, ...]] = field(default_factory=dict)

    def get(self, name: str) -> Optional[str]:
        found = self.values.get(name)
        return found[0] if found else None

    def all(self, name: str) -> Tuple[str, ...]:
        return self.values.get(name, ())

    @property
    def options(self) -> FrozenSet[str]:
        """options=mr,nm as {"mr", "nm"}."""
        return frozenset(o.strip().lower() for v in self.all("options")
                         for o in v.split(",") if o.strip())


def _malformed(reason: str) -> HKPError:
    return HKPError(400, "malformed request: " + reason)


def _decode(raw: bytes, what: str) -> str:
    """One name or value: '+' is a space, %XX a byte; the bytes must be UTF-8
    without NUL.

    Bytes are searched with find(), not `in`: on Python 3.11, `sub in data`
    first tries `sub` as an integer, and makes and drops a TypeError with its
    message before it searches; a query string's fields made 13 of them, 8%
    of the instructions a cached lookup cost (callgrind)."""
    if raw.find(b"%") >= 0 or raw.find(b"+") >= 0:  # most fields have nothing to unescape
        bad = _BAD_ESCAPE.search(raw)
        if bad:
            escape = raw[bad.start():bad.start() + 3].decode("latin-1")
            raise _malformed("bad percent-escape %r in %s: %% must be followed by two hex "
                             "digits" % (escape, what))
        raw = _unescape(raw.replace(b"+", b" "))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _malformed("%s is not UTF-8" % what) from None
    if "\0" in text:
        raise _malformed("NUL character in %s" % what)
    return text


def _unescape(raw: bytes) -> bytes:
    """unquote_to_bytes(raw) for a `raw` whose every '%' starts an escape of
    two hex digits, done in C when it holds no '=': quoted-printable's
    decoder (binascii.a2b_qp) turns =XX into its byte as unquote_to_bytes
    turns %XX, and leaves every other byte as it is.  An armored key's form
    body: 0.21 ms in unquote_to_bytes's Python loop, most of what reading
    the form took."""
    if raw.find(b"=") >= 0:
        return unquote_to_bytes(raw)
    return binascii.a2b_qp(raw.translate(_PERCENT_AS_EQUALS))


def _field(segment: bytes) -> Tuple[str, str]:
    raw_name, _, raw_value = segment.partition(b"=")
    name = _decode(raw_name, "a parameter name")
    if not name:
        raise _malformed("a parameter without a name")
    return name, _decode(raw_value, "parameter %.40r" % name)


def parse_form(data: Union[str, bytes], once: FrozenSet[str] = frozenset()) -> Form:
    """A query string or application/x-www-form-urlencoded body, strictly: fields
    split on '&' only (empty ones skipped), at most MAX_FIELDS of them, and a name
    in `once` at most once.  A str is taken as read from the wire, one character
    a byte (Latin-1).  HKPError(400) with the reason when malformed."""
    raw = data.encode("latin-1") if isinstance(data, str) else data
    if raw.find(b";") >= 0:
        raise _malformed("use & between parameters, not ;")
    values: Dict[str, List[str]] = {}
    for count, segment in enumerate(_SEGMENT.finditer(raw), 1):
        if count > MAX_FIELDS:
            raise _malformed("more than %d parameters" % MAX_FIELDS)
        name, value = _field(segment.group())
        if name in once and name in values:
            raise _malformed("parameter %.40r given twice" % name)
        values.setdefault(name, []).append(value)
    return Form({name: tuple(found) for name, found in values.items()})


def _parse_query(query: str) -> Tuple[Form, Optional[Tuple[int, str]]]:
    try:
        return parse_form(query, QUERY_ONCE), None
    except HKPError as exc:
        return Form(), (exc.status, exc.message)


_kept_query = functools.lru_cache(maxsize=QUERIES_KEPT)(_parse_query)


def parse_query(query: str) -> Tuple[Form, Optional[HKPError]]:
    """A request's query string parsed (parse_form, the lookup variables
    once each): its fields, or no fields and the 400 to answer.  The last
    QUERIES_KEPT short ones are kept parsed: lookups repeat (a refresh asks
    for the same keys again and again), and a cached answer was found only
    after its query had been parsed, a sixth of what a hit cost."""
    form, error = (_kept_query if len(query) <= KEPT_QUERY_LENGTH else _parse_query)(query)
    return form, HKPError(*error) if error else None


def split_target(target: str) -> Tuple[str, str]:
    """The path and query string of a request target, in origin form
    (/pks/lookup?op=...) or absolute form (http://host/pks/lookup?op=...).
    The path is left as sent: the routes are exact, so anything odd is a 404."""
    path, _, query = _ABSOLUTE_FORM.sub("", target, count=1).partition("?")
    return path or "/", query


def parse_lookup(query: Form, words_of: WordSplitter) -> Lookup:
    """A /pks/lookup query as a Lookup; HKPError(400/501) when it is not one."""
    op = (query.get("op") or "").lower()
    if not op:
        raise HKPError(400, "missing op: use op=get, index, vindex, stats or hget")
    if op not in OPS:
        raise HKPError(501, "op=%s is not supported here" % op)
    flag = lambda name: (query.get(name) or "").lower() in TRUE_VALUES  # noqa: E731
    exact = flag("exact")
    search_text = query.get("search")
    search = None
    if op != "stats":
        if search_text is None or not search_text.strip():
            raise HKPError(400, "missing search: op=%s needs search=..." % op)
        search = classify(search_text, exact, words_of, by_hash=(op == "hget"))
    return Lookup(op, search, query.options, flag("fingerprint"), exact, flag("hash"))


def classify(text: str, exact: bool, words_of: WordSplitter, by_hash: bool = False) -> Query:
    """What `text` asks for.  `words_of` splits text into words.  Text that
    starts with 0x is a key ID or fingerprint only when hex digits follow:
    until 2026-12-06 any other (an address 0xcafe@example.org, a nickname
    "0xAlice Hacker") was refused, 400, and GnuPG found no such key."""
    text = text.strip()
    if by_hash:
        bare = text[2:] if text.lower().startswith("0x") else text
        if len(bare) != 32 or not _HEX.match(bare):
            raise HKPError(400, "op=hget needs the 32 hex digits of an SKS key hash")
        return Query("hash", bare.upper())
    bare = text[2:].replace(" ", "")
    if is_hex_search(text):
        kind = _HEX_KINDS.get(len(bare))
        if kind is None:
            raise HKPError(501, "search by %d hex digits is not supported: use a key ID "
                                "(8 or 16) or a fingerprint (32, 40 or 64)" % len(bare))
        return Query(kind, bare.upper())
    compact = text.replace(" ", "")
    if len(compact) in (32, 40, 64) and _HEX.match(compact):
        return Query("fingerprint", compact.upper())  # a fingerprint pasted without 0x
    email = _EMAIL.match(text)
    if email:  # (is_address)
        return Query("email", fold_address(email.group(1)))
    words = tuple(sorted(set(words_of(text))))
    if not words:
        raise HKPError(400, "search %r has no words to look for" % text)
    if exact:
        return Query("exact", text, words, plus_address(text))
    return Query("words", text, words)


def is_hex_search(text: str) -> bool:
    """Whether a search is `0x` and hex digits (spaces allowed), a key ID or
    fingerprint as classify reads it (`0xAlice` is a word)."""
    text = text.strip()
    return text[:2].lower() == "0x" and _HEX.match(text[2:].replace(" ", "")) is not None


def is_address(text: str) -> bool:
    """Whether a search is an e-mail address (bare or in <>), as classify reads it."""
    return _EMAIL.match(text.strip()) is not None


def plus_address(text: str) -> Optional[str]:
    """The e-mail address (folded: fold_address) that an exact search holding spaces
    may stand for: '+' for each space, when that makes one plain address (no
    spaces, one '@'); else None.  GnuPG 2.2's dirmngr sends the address
    user+tag@example.org of --locate-keys as `user%20tag@example.org` (it
    makes a '+' a space), with exact=on; SKS finds the key, and so does cksd
    (that address, or a user ID that is the search)."""
    if " " not in text:
        return None
    address = text.replace(" ", "+")
    return fold_address(address) if _PLAIN_EMAIL.fullmatch(address) else None
