"""Parsing HKP lookup requests and classifying what is searched (pure functions)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, FrozenSet, List, Optional
from urllib.parse import parse_qs

OPS = frozenset({"get", "index", "vindex", "stats", "hget"})
TRUE_VALUES = frozenset({"on", "yes", "true", "1"})

_HEX = re.compile(r"^[0-9A-Fa-f]+$")
_EMAIL = re.compile(r"^<?([^\s<>@]+@[^\s<>@]+)>?$")
_HEX_KINDS = {8: "short_keyid", 16: "keyid", 32: "fingerprint", 40: "fingerprint",
              64: "fingerprint"}


class HKPError(Exception):
    """An HKP request that gets an error status (400, 404, 501, ...)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Query:
    """What a search string asks for.

    kind: short_keyid | keyid | fingerprint (32, 40 or 64 hex) | hash (SKS
    key hash, op=hget) | email | words | exact (whole user ID, exact=on)
    """

    kind: str
    value: str
    words: tuple = ()

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


def form_values(query: str) -> Dict[str, List[str]]:
    """Form variables of a query string or form body ('+' means space)."""
    try:
        return parse_qs(query, keep_blank_values=True, strict_parsing=False,
                        errors="strict", max_num_fields=100)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HKPError(400, "malformed request: %s" % exc) from None


def _first(values: Dict[str, List[str]], name: str) -> Optional[str]:
    found = values.get(name)
    return found[0] if found else None


def options_of(values: Dict[str, List[str]]) -> FrozenSet[str]:
    return frozenset(o.strip().lower() for v in values.get("options", [])
                     for o in v.split(",") if o.strip())


def parse_lookup(query: str, words_of) -> Lookup:
    """A /pks/lookup query string as a Lookup; HKPError(400/501) when it is not one."""
    values = form_values(query)
    op = (_first(values, "op") or "").lower()
    if not op:
        raise HKPError(400, "missing op: use op=get, index, vindex, stats or hget")
    if op not in OPS:
        raise HKPError(501, "op=%s is not supported here" % op)
    flag = lambda name: (_first(values, name) or "").lower() in TRUE_VALUES  # noqa: E731
    exact = flag("exact")
    search_text = _first(values, "search")
    search = None
    if op != "stats":
        if search_text is None or not search_text.strip():
            raise HKPError(400, "missing search: op=%s needs search=..." % op)
        search = classify(search_text, exact, words_of, by_hash=(op == "hget"))
    return Lookup(op, search, options_of(values), flag("fingerprint"), exact, flag("hash"))


def classify(text: str, exact: bool, words_of, by_hash: bool = False) -> Query:
    """What `text` asks for.  `words_of` splits text into index words."""
    text = text.strip()
    if by_hash:
        bare = text[2:] if text.lower().startswith("0x") else text
        if len(bare) != 32 or not _HEX.match(bare):
            raise HKPError(400, "op=hget needs the 32 hex digits of an SKS key hash")
        return Query("hash", bare.upper())
    if text.lower().startswith("0x"):
        bare = text[2:].replace(" ", "")
        if not _HEX.match(bare):
            raise HKPError(400, "%r is not a hexadecimal key ID or fingerprint" % text)
        kind = _HEX_KINDS.get(len(bare))
        if kind is None:
            raise HKPError(501, "search by %d hex digits is not supported: use a key ID "
                                "(8 or 16) or a fingerprint (32, 40 or 64)" % len(bare))
        return Query(kind, bare.upper())
    compact = text.replace(" ", "")
    if len(compact) in (32, 40, 64) and _HEX.match(compact):
        return Query("fingerprint", compact.upper())  # a fingerprint pasted without 0x
    email = _EMAIL.match(text)
    if email:
        return Query("email", email.group(1).lower())
    words = tuple(sorted(set(words_of(text))))
    if not words:
        raise HKPError(400, "search %r has no words to look for" % text)
    if exact:
        return Query("exact", text, words)
    return Query("words", text, words)
