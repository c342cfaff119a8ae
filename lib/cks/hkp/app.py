"""The keyserver application: HKP requests in, responses out.

No sockets here: `KeyServer.handle(request)` takes a parsed HTTP request and
returns a Response, so every HKP rule is testable without a network.  The
HTTP plumbing is in server.py.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import math
import re
import time
from dataclasses import dataclass, field
from typing import (Callable, Dict, FrozenSet, Generic, Iterable, Iterator, List, Optional,
                    Sequence, Set, Tuple, TypeVar, Union)

from .. import pipeline
from ..folding import fold
from ..openpgp import algorithms as alg, armor
from ..openpgp.crc24 import crc24
from ..openpgp.keys import Key, parse_keyring
from ..openpgp.packet import holds_packet_beyond
from ..rejection import NodeIdentity
from ..runs import in_runs
from ..store import Store, StoreError, StoreUnavailable
from ..store.replica import ReplicaReads
from ..store.rows import MAX_WORD_LENGTH, KeyRow, all_words_of, is_indexed
from ..sync.recon import hashquery
from ..views import ID_KINDS, NewKeyIds
from . import html, keypage, mr, photos, rejections, stats_page
from .admin import AdminSettings, Logins
from .answer_cache import AnswerCache
from .bodies import Body, Spool, spooled
from .cksd_metrics import (ANSWER_SECONDS, DEFAULT_METRICS_ALLOW, METRICS_PATH, CksdMetrics,
                           metrics_page)
from .outage import DatabaseOutage
from .ratelimit import (DEFAULT_TRUSTED_PROXIES, IPAddress, Network, Rate, RateLimiter,
                        client_address, ip_of, is_operators_own, parse_networks)
from .request import (Form, HKPError, Lookup, Query, parse_form, parse_lookup, parse_query,
                      split_target)
from .stats import Statistics
from .upload_cost import CHECKS_PER_TOKEN, tokens_beyond_the_first
from .views_owed import (LOOKUP_WAIT_SECONDS, ViewsOwed, follow_views, serve_views,
                         serve_views_with_id)

log = logging.getLogger("cks.hkp")
Item = TypeVar("Item")
Stored = TypeVar("Stored")

SYNC_HEADER = "X-CKS-Sync"  # set by a peer's cks_sync: store, but do not queue again
TRUNCATED_HEADER = "X-HKP-Results-Truncated"
# Signers looked up for a key page (their names, whether they are held here).
MAX_SIGNER_LOOKUPS = 200
# An answer of keys (get, hget, vindex) stops growing past this many bytes
# of them, its first key always in: max_results keys of up to max_key_bytes
# each must not become one answer of hundreds of megabytes.
KEYS_ANSWER_BYTES = 16 << 20
# A hashquery from an enabled peer answers every key asked for that is held,
# whatever their size (SKS and Hockeypuck do not ask again for keys an answer
# left out); anyone else's stops at KEYS_ANSWER_BYTES.  The keys are read
# this many bytes at a time (at least one key) and written to a Spool.
HASHQUERY_READ_BYTES = 1 << 20
# An index stops past this many bytes of user IDs, its first key always in
# (the Debian keyring's largest index of 100 keys would take about 12 KB).
INDEX_ANSWER_BYTES = 1 << 20
# What an op=stats costs a client's bucket of lookups, beside the token of
# its request: its counts read whole indexes (at a million keys 0.1 to 0.3 s
# of the database's time), and until 2026-12-07 one client asking again and
# again kept PostgreSQL on 1.6 of 2 cores (a review found it).  At the
# default rate (20 a second) a client gets one every 5 s once its burst is
# spent.
STATS_TOKENS = 100
# A search by text whose answer is filtered (exact=on; GnuPG's, without v5/v6
# keys) reads the index rows of at most this many times max_results keys.
FILTERED_SEARCH_READS = 10
# A search by words asks the word index for this many of its words at most
# (the store finds the keys of the rarest of them), its longest; the keys
# they find must hold the others too (_text_search_filter), as for a word
# too long for the index.  Until 2026-12-06 it asked for every word: a
# search of 1,001 words failed in SQLite ("Expression tree is too large")
# and of 1,665 in PostgreSQL (503, logged as a database outage).
SEARCHED_WORDS = 32


@dataclass
class Request:
    """One HTTP request.  Its query string is parsed once, here: `query` holds
    the fields, or nothing when the query is malformed, and `malformed` then
    holds the 400 answer (raised by KeyServer.handle)."""

    method: str
    target: str  # path and query, as on the request line (Latin-1: a character a byte)
    headers: Dict[str, str] = field(default_factory=dict)  # names lower-cased
    body: bytes = b""
    client: str = ""
    # Answered in the server loop's thread (server.py), which must not wait:
    # a lookup then does not derive owed served views first (views_owed.py).
    in_loop: bool = False
    tls: bool = False  # it came over cksd's own TLS
    path: str = field(init=False)
    query: Form = field(init=False)
    malformed: Optional[HKPError] = field(init=False)

    def __post_init__(self) -> None:
        self.path, query = split_target(self.target)
        self.query, self.malformed = parse_query(query)

    def header(self, name: str) -> str:
        """The header's value ("" when the request has none)."""
        return self.headers.get(name.lower(), "")


@dataclass
class Response:
    status: int
    body: Body = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: List[Tuple[str, str]] = field(default_factory=list)


@dataclass
class ServerSettings:
    hostname: str = "localhost"
    port: int = 11371
    tls_port: Optional[int] = None  # hkps, when cksd serves TLS
    public_address: str = ""  # the keyserver address the front page gives, e.g. behind a proxy
    recon_port: Optional[int] = None  # when cksd serves SKS reconciliation
    contact: str = ""  # [server] contact: how to reach the operator (the stats page)
    max_upload_bytes: int = 5 << 20
    max_results: int = 100
    limits: pipeline.Limits = field(default_factory=pipeline.Limits)
    lookup_rate: Rate = field(default_factory=lambda: Rate(20.0, 2000.0))
    upload_rate: Rate = field(default_factory=lambda: Rate(1.0, 20.0))
    upload_checks_per_token: int = CHECKS_PER_TOKEN  # an upload's cost (upload_cost.py)
    trusted_proxies: List[Network] = field(
        default_factory=lambda: parse_networks(DEFAULT_TRUSTED_PROXIES))
    rate_exempt: List[Network] = field(default_factory=list)
    identity: NodeIdentity = field(default_factory=lambda: NodeIdentity("localhost"))
    admin: AdminSettings = field(default_factory=AdminSettings)
    metrics_allow: List[Network] = field(
        default_factory=lambda: parse_networks(DEFAULT_METRICS_ALLOW))


_GNUPG_AGENT = re.compile(r"GnuPG/(\d+)\.(\d+)")

GNUPG_UNREADABLE_ALGORITHMS = frozenset(alg.NATIVE_BITS)
"""RFC 9580's own X25519, X448, Ed25519 and Ed448 (25-28): GnuPG 2.4.7 as
Debian 13 builds it stopped importing a whole answer at a key of one of
them ("Unknown algorithm"), 2.2 skips that key; a text search leaves such
keys out for GnuPG (until 2026-12-06 a v4 key of algorithm 27 with
someone's user ID kept GnuPG 2.4 from that person's key)."""


def newest_version_read(request: Request) -> Optional[int]:
    """The newest key and packet version a search by text may hand the
    client, or None for every version.  GnuPG fails on a whole answer that
    holds one packet of a version it cannot read: 2.2 reads v4 and older,
    2.4 and later v5 (LibrePGP) as well, none of them v6.  A client that
    sends no User-Agent is taken for GnuPG 2.2 (the dirmngr of 2.2 and of
    2.4 send none, so they look alike), but gets the v5 keys a search by
    text or subkey ID finds where it finds none of v4 (KeyServer.find,
    _gnupg_readable); one whose
    User-Agent names GnuPG 2.4 or later (2.5.9's dirmngr sends "GnuPG/2.6")
    gets v5 keys (until 2026-12-06 none did, though GnuPG 2.4 makes and
    reads them)."""
    agent = request.header("user-agent")
    if not agent:
        return 4
    if not agent.startswith("GnuPG/"):
        return None
    match = _GNUPG_AGENT.match(agent)
    return 5 if match and (int(match.group(1)), int(match.group(2))) >= (2, 4) else 4


def _text_search_filter(query: Query, asked: Sequence[str], newest: Optional[int]
                        ) -> Optional[Callable[[KeyRow], bool]]:
    """Which of the keys a search by text found go in the answer, when not
    all (None): those whose user IDs hold the words the word index was not
    `asked` for (too long for it, or past SEARCHED_WORDS: the index found
    the keys by the others); with exact=on,
    those with the whole user ID, compared folded as the words are
    (folding.fold: until 2026-12-06 only lower()ed, so that `WEISS` or a
    decomposed `ü` found keys by their words that exact=on then dropped),
    or with the address it may stand for
    (Query.plus_address: the words of the search, which found the keys, are
    that address's); for GnuPG (`newest`: newest_version_read), the keys of
    versions it reads: a search by text must not hand it a key it cannot
    read (those are served by key ID or fingerprint)."""
    tests: List[Callable[[KeyRow], bool]] = []
    unasked = set(query.words) - set(asked)
    if unasked:
        tests.append(lambda r: unasked <= _words_of_user_ids(r))
    if query.kind == "exact":
        wanted, address = fold(query.value), query.plus_address
        tests.append(lambda r: any(fold(u.uid) == wanted or
                                   address is not None and u.email == address
                                   for u in r.user_ids))
    if newest is not None:
        tests.append(lambda r: _gnupg_reads(r, newest))
    if not tests:
        return None
    return lambda row: all(test(row) for test in tests)


def _gnupg_reads(row: KeyRow, newest: int) -> bool:
    """Whether GnuPG, reading versions up to `newest`, reads this key."""
    return row.version <= newest and row.algorithm not in GNUPG_UNREADABLE_ALGORITHMS


def _gnupg_readable(found: List[Item], newest: int,
                    reads: Callable[[Item, int], bool]) -> List[Item]:
    """What GnuPG reading versions up to `newest` reads of the keys a lookup
    by subkey ID found (`reads`: whether it reads one); for a client that
    may be GnuPG 2.4 (`newest` 4: 2.2 and 2.4 look alike), where it reads
    none, what 2.4 reads (2.2 would read no answer either way; until
    2026-12-06 GnuPG 2.4 found no v5 key by its v4 subkey's ID)."""
    kept = [item for item in found if reads(item, newest)]
    if not kept and newest == 4:
        kept = [item for item in found if reads(item, 5)]
    return kept


def _words_of_user_ids(row: KeyRow) -> Set[str]:
    return {word for u in row.user_ids if not u.is_attribute for word in all_words_of(u.uid)}


def _asked_words(query: Query) -> List[str]:
    """The words of a search by words that the word index is asked for: of
    those it holds, the SEARCHED_WORDS longest; HKPError(400) when it holds
    none."""
    indexed = sorted((word for word in query.words if is_indexed(word)),
                     key=lambda word: (-len(word), word))[:SEARCHED_WORDS]
    if not indexed:
        raise HKPError(400, "every word of this search is longer than %d characters, the "
                            "longest the word index holds (a longer word only narrows a "
                            "search by shorter ones): add a shorter word of the user ID, or "
                            "search by e-mail address, key ID or fingerprint"
                       % MAX_WORD_LENGTH)
    return indexed


def _filtered(search: Callable[[int], Tuple[List[KeyRow], bool]],
              keep: Callable[[KeyRow], bool], limit: int,
              instead: Optional[Callable[[KeyRow], bool]] = None) -> Tuple[List[KeyRow], bool]:
    """The first `limit` keys `search` finds that `keep` keeps, and whether
    there were more: the search is asked for more keys (four times as many
    each time) until more than `limit` are kept, none are left, or the keys
    read reach FILTERED_SEARCH_READS times `limit` (then the answer is said
    to be cut, as more may have been kept).  Where `keep` keeps none of the
    keys found, those `instead` keeps."""
    wanted = limit + 1
    while True:
        found, more = search(wanted)
        kept = [row for row in found if keep(row)]
        if not kept and instead is not None:
            kept = [row for row in found if instead(row)]
        if len(kept) > limit or not more or wanted >= limit * FILTERED_SEARCH_READS:
            return kept[:limit], len(kept) > limit or more
        wanted = min(wanted * 4, limit * FILTERED_SEARCH_READS)


class KeyServer:
    """`store` takes the uploads and everything else; lookups read
    `lookup_store`, a streaming replica when cksd has one (cli/cksd.py)."""

    def __init__(self, store: Store, settings: ServerSettings,
                 lookup_store: Union[Store, ReplicaReads, None] = None) -> None:
        self.store = store
        self.lookup_store = lookup_store or store
        self.settings = settings
        self.cache: Optional[AnswerCache] = None  # lookup answers (cli/cksd.py sets one)
        # Uploads' served views (views_owed.py); cli/cksd.py shares the counts
        # among its processes and has its background job start at `views_due`.
        self.views_owed = ViewsOwed()
        self.new_key_ids = NewKeyIds()  # (this process's reading of their IDs)
        self.views_due: Callable[[], None] = lambda: None
        self.statistics = Statistics()  # op=stats
        self.metrics = CksdMetrics.alone()  # cli/cksd.py shares one among its processes
        self.lookup_limiter = RateLimiter(settings.lookup_rate, settings.rate_exempt)
        self.upload_limiter = RateLimiter(settings.upload_rate, settings.rate_exempt)
        self.admin_logins = Logins()  # the admin page's password tries
        self.peer_addresses: FrozenSet[IPAddress] = frozenset()
        # The requests answered 503 for it: logged when the outage starts, every
        # 10 minutes while it lasts (with their count), and when it ends (a
        # line each would be hundreds a second).
        self.outage = DatabaseOutage(log)
        if store is not None:  # (None: tests of what needs no database)
            store.on_success = self.outage.succeeded

    @property
    def replica(self) -> Optional[ReplicaReads]:
        """The lookups' reads on a read replica, when cksd has one."""
        return self.lookup_store if isinstance(self.lookup_store, ReplicaReads) else None

    def exempt_peers(self, addresses: FrozenSet[IPAddress]) -> None:
        """Swap in the enabled peers' addresses (from the PeerRefresher's thread):
        exempt from the rate limits, and the only ones whose X-CKS-Sync counts."""
        self.lookup_limiter.exempt_addresses = addresses
        self.upload_limiter.exempt_addresses = addresses
        self.peer_addresses = addresses

    def _rate_limited(self, request: Request) -> Optional[Response]:
        """Sets `request.client` to the real client (the one a trusted proxy
        names); a 429 answer when that client is over its limit."""
        forwarded_for = request.header("x-forwarded-for")
        own = is_operators_own(request.client, forwarded_for)
        request.client = client_address(request.client, forwarded_for,
                                        self.settings.trusted_proxies)
        if own:
            return None
        limiter = self.upload_limiter if request.method == "POST" else self.lookup_limiter
        wait = limiter.check(request.client)
        if not wait:
            return None
        return self.too_many(request, "too many requests from %s: slow down" % request.client,
                             wait)

    def too_many(self, request: Request, message: str, wait: float) -> Response:
        """429, with Retry-After: `wait` seconds, rounded up to whole ones."""
        response = self.error(request, 429, message)
        response.headers.append(("Retry-After", str(max(1, math.ceil(wait)))))
        return response

    # --- dispatch -------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """The answer to one request.  `request.client` is replaced by the real
        client's address when the request came through a trusted proxy."""
        path = request.path
        limited = self._rate_limited(request)
        if limited is not None:
            return limited
        try:
            if request.malformed is not None:
                raise request.malformed
            if request.method == "OPTIONS":
                return Response(204, headers=[("Access-Control-Allow-Methods",
                                               "GET, POST, OPTIONS"),
                                              ("Access-Control-Allow-Headers", "Content-Type"),
                                              ("Access-Control-Max-Age", "86400")])
            route = _ROUTES.get(path)
            if route is None:
                raise HKPError(404, "no such page: %s" % path)
            methods, endpoint = route
            if request.method not in methods:
                return self._wrong_method(request, methods)
            return endpoint(self, request)
        except HKPError as exc:
            return self.error(request, exc.status, exc.message, exc.headers)
        except StoreUnavailable as exc:
            self.outage.failed(exc)
            response = self.error(request, 503, "the key database is unavailable; "
                                                "try again later")
            response.headers.append(("Retry-After", "30"))
            return response

    def _wrong_method(self, request: Request, methods: Tuple[str, ...]) -> Response:
        """405, with the methods the path takes in Allow (RFC 9110 15.5.6): its
        own, and OPTIONS, which every path answers (a CORS preflight)."""
        response = self.error(request, 405, "use %s for %s" % (" or ".join(methods),
                                                                request.path))
        response.headers.append(("Allow", ", ".join(methods + ("OPTIONS",))))
        return response

    def error(self, request: Request, status: int, message: str,
              headers: Sequence[Tuple[str, str]] = ()) -> Response:
        """The error answer; it parses nothing, so it cannot fail."""
        if "mr" in request.query.options or "text/html" not in request.header("accept"):
            return Response(status, (message + "\n").encode(), headers=list(headers))
        return _html(status, html.error_page(status, message), list(headers))

    def front_page(self, request: Request) -> Response:
        """GET /: how to use this keyserver, with its addresses for GnuPG."""
        return _html(200, html.front_page(html.gnupg_addresses(
            self.settings.hostname, self.settings.port, self.settings.tls_port,
            self.settings.public_address)))

    # --- lookups -----------------------------------------------------------------

    def serve_views(self) -> bool:
        """Derive the served views owed to answered uploads (views_owed.py);
        False on a database error."""
        return serve_views(self.store, self.settings.limits.serve)

    def follow_views(self) -> bool:
        """Derive the served views queued (views_owed.py); False on a database error."""
        return follow_views(self.store, self.settings.limits.serve)

    def serve_owed(self, search: Optional[Query], signers: bool = False) -> None:
        """First derive the served views owed to answered uploads that an
        answer may show (views_owed.py): for a search by key ID or
        fingerprint, those of the new keys with that ID, and with `signers`
        (a key page, which names the signers from their own views) those of
        the new keys among their signers; for any other (None: stats), all."""
        if search is not None and search.kind in ID_KINDS:
            self.views_owed.serve_some(lambda: serve_views_with_id(
                self.store, self.settings.limits.serve, self.new_key_ids, search.kind,
                search.value, signers))
        else:
            self.views_owed.settle(self.serve_views, wait=LOOKUP_WAIT_SECONDS)

    def lookup(self, request: Request) -> Response:
        if request.in_loop or self.views_owed.settled:
            return self._lookup(None, request)
        lookup = parse_lookup(request.query, all_words_of)
        # What an answered upload stored is found (on a replica that has not
        # replayed the views derived for it, not there: replica.py).
        self.serve_owed(lookup.search, signers=lookup.op == "vindex")
        return self._lookup(lookup, request)

    def _lookup(self, lookup: Optional[Lookup], request: Request) -> Response:
        """The answer to a lookup (`lookup`: its query, when parsed already)."""
        cache = self.cache
        newest = newest_version_read(request)
        if cache is not None:
            key = (request.target, newest, "text/html" in request.header("accept"))
            generation = cache.generation()  # before the database is read
            answer = cache.get(key, generation)
            if answer is not None:  # (only lookups that parsed are kept; stats never is)
                return answer
        lookup = lookup or parse_lookup(request.query, all_words_of)
        if lookup.op == "stats":
            self._charge(self.lookup_limiter, request, lambda: STATS_TOKENS - 1)
            return self.stats(lookup)
        if cache is None:
            return self._answer(lookup, newest)
        try:
            answer = self._answer(lookup, newest)
        except HKPError as exc:
            if exc.status != 404:
                raise
            answer = self.error(request, 404, exc.message, exc.headers)
        if isinstance(answer.body, bytes):  # (not one in a file: it is read once)
            cache.put(key, generation, answer, len(answer.body) + len(request.target))
        return answer

    def _answer(self, lookup: Lookup, newest: Optional[int]) -> Response:
        """The answer to a get, hget, index or vindex lookup, from the database
        (`newest`: the newest version the client reads, newest_version_read)."""
        assert lookup.search is not None
        if lookup.op == "get" and lookup.search.names_one_key:
            parts, truncated, by_subkey = self.lookup_store.served_parts_by_id(
                lookup.search.kind, lookup.search.value, self.settings.max_results)
            if by_subkey and newest is not None:
                parts = _gnupg_readable(parts, newest, lambda part, version: not (
                    holds_packet_beyond(part[0], version, GNUPG_UNREADABLE_ALGORITHMS)))
            held = _Within(((p, len(p[0])) for p in parts), KEYS_ANSWER_BYTES)
            return self._armored(lookup, held, lambda: truncated or held.cut)
        fingerprints, rows, truncated = self.find(lookup.search, newest)
        if newest is not None and rows and not lookup.search.names_one_key:
            newest = max(newest, max(row.version for row in rows))  # (v5 keys instead: find)
        if not fingerprints and truncated:
            raise HKPError(404, "no keys found among those a search reads: more keys hold "
                                "every word of this search than it reads (add a rarer "
                                "word)", [(TRUNCATED_HEADER, "true")])
        if not fingerprints:
            raise HKPError(404, "no keys found")
        now = int(time.time())
        if lookup.op in ("get", "hget"):
            return self._get(lookup, fingerprints, truncated, newest)
        rows, cut = _within([(r, sum(len(u.uid) for u in r.user_ids)) for r in rows],
                            INDEX_ANSWER_BYTES)
        truncated = truncated or cut
        extra = _truncated_header(truncated)
        if lookup.op == "vindex" and not lookup.machine_readable:
            return self._vindex(lookup, rows, now, extra)
        if lookup.machine_readable:
            return Response(200, mr.index(rows, now, self._user_id_values(rows)).encode(),
                            headers=extra)
        return _html(200, keypage.index_page(lookup.search.value, rows, now,
                                             lookup.fingerprint, lookup.show_hash, truncated),
                     extra)

    def _user_id_values(self, rows: List[KeyRow]) -> Dict[str, List[bytes]]:
        """The bodies of the user ID and attribute packets of the served views
        of those keys whose stored user ID text may not be the user IDs' bytes
        (mr.may_differ_from_text: rare), in the order of their rows."""
        served = self.lookup_store.served([r.fingerprint for r in rows
                                           if mr.may_differ_from_text(r)])
        return {fingerprint: [c.packet.body for key in parse_keyring(data).keys[:1]
                              for c in key.identities]
                for fingerprint, data in served.items()}

    def find(self, query: Query, newest: Optional[int]
             ) -> Tuple[List[str], List[KeyRow], bool]:
        """Fingerprints of the keys `query` matches (capped), their index rows
        (none for a search by SKS hash), and whether the answer was capped.
        Each kind of search is one query (a round trip on PostgreSQL), but
        for several words: their counts first (Store.key_rows_by_words)."""
        limit = self.settings.max_results
        store = self.lookup_store
        if query.kind == "hash":
            found = store.find_by_hash(query.value)
            return found[:limit], [], len(found) > limit
        if query.names_one_key:
            rows, truncated, by_subkey = store.key_rows_by_id(query.kind, query.value, limit)
            if by_subkey and newest is not None:
                rows = _gnupg_readable(rows, newest, _gnupg_reads)
            return [r.fingerprint for r in rows], rows, truncated
        if query.kind == "email":
            asked, search = [], functools.partial(store.key_rows_by_email, query.value)
        else:
            asked = _asked_words(query)
            search = functools.partial(store.key_rows_by_words, asked)
        keep = _text_search_filter(query, asked, newest)
        # (GnuPG 2.4 and 2.2 look alike: v5 keys where no key 2.2 reads is
        # found, which 2.4 reads and 2.2 would not have read either way)
        instead = _text_search_filter(query, asked, 5) if newest == 4 else None
        rows, truncated = search(limit) if keep is None else \
            _filtered(search, keep, limit, instead)
        return [r.fingerprint for r in rows], rows, truncated

    def _get(self, lookup: Lookup, fingerprints: List[str], truncated: bool,
             newest: Optional[int]) -> Response:
        """Armored keys: the served (verified) view; for op=hget, which SKS peers
        use to fetch by key hash, the stored network view that hash is of.
        For GnuPG (`newest`: the newest version it reads) a search by text
        leaves out a key whose served view holds a newer packet (a v4 key's
        revocation by a designated revoker whose key is v6) or a subkey of
        GNUPG_UNREADABLE_ALGORITHMS, as it leaves out newer keys and keys of
        those algorithms: GnuPG would read no key of the answer (until
        2026-12-06 anyone's such key with another's user ID hid that one from
        gpg --locate-keys)."""
        if lookup.op == "hget":
            stored = _Within(self._read_keys(fingerprints, self.lookup_store.keydata, len),
                             KEYS_ANSWER_BYTES)
            parts: Iterable[Tuple[bytes, int]] = ((data, crc24(data)) for _, data in stored)
        else:
            stored = _Within(self._read_keys(fingerprints, self.lookup_store.served_parts,
                                             lambda part: len(part[0])), KEYS_ANSWER_BYTES)
            parts = (part for _, part in stored
                     if newest is None or not holds_packet_beyond(
                         part[0], newest, GNUPG_UNREADABLE_ALGORITHMS))
        return self._armored(lookup, parts, lambda: truncated or stored.cut)

    def _armored(self, lookup: Lookup, parts: Iterable[Tuple[bytes, int]],
                 truncated: Callable[[], bool]) -> Response:
        """One armor block per key, each with its checksum as stored, written
        to a Spool a key at a time as `parts` gives them (an answer of 100 keys
        may be megabytes); `truncated`, asked once they are all written:
        whether the answer left keys out."""
        comment = [("Comment", "Hostname: " + self.settings.hostname)]
        blocks = (armor.encode(data, headers=comment, checksum=checksum)
                  for data, checksum in parts)
        first = list(itertools.islice(blocks, 2))  # (a page's title says key or keys)
        if not first:
            raise HKPError(404, "no keys found")
        blocks = itertools.chain(first, blocks)
        if lookup.machine_readable:
            body = spooled(block.encode() for block in blocks)
            return Response(200, body, "application/pgp-keys; charset=utf-8",
                            _truncated_header(truncated()) + [
                                ("Content-Disposition", "attachment; filename=gpgkey.asc")])
        before, after = html.armored_page_around(several=len(first) > 1)
        body = spooled(itertools.chain([before.encode()],
                                       (html.e(block).encode() for block in blocks),
                                       [after.encode()]))
        return _html(200, body, _truncated_header(truncated()))

    def _vindex(self, lookup: Lookup, rows: List[KeyRow], now: int, extra) -> Response:
        """Each key is read from the database twice, ten at a time, and parsed
        when its turn comes: first for its signers, then for its section
        (100 keys of the Debian keyring parsed at once held 70 MB; the page
        made whole, 3 MB of text and its bytes, until 2026-12-06)."""
        assert lookup.search is not None
        stored = _Within(self._read_keys([r.fingerprint for r in rows],
                                         self.lookup_store.served, len), KEYS_ANSWER_BYTES)
        shown: List[str] = []

        def parsed() -> Iterator[Key]:
            for fingerprint, data in stored:
                shown.append(fingerprint)
                yield parse_keyring(data).keys[0]

        signers = self._signers(keypage.signer_keyids(parsed()))
        if stored.cut:
            extra = _truncated_header(True)
        row_of = {row.fingerprint: row for row in rows}
        # (a key deleted since the first reading is left out of the second)
        keys = ((parse_keyring(data).keys[0], row_of[fingerprint])
                for (fingerprint, data), _ in self._read_keys(shown, self.lookup_store.served,
                                                              len))
        page = keypage.vindex_page(lookup.search.value, [row_of[f] for f in shown], keys,
                                   signers, self.settings.limits.serve.certifications, now,
                                   lookup.show_hash)
        return _html(200, spooled(piece.encode() for piece in page), extra)

    def _signers(self, keyids: List[bytes]) -> Dict[bytes, keypage.Signer]:
        """The held keys whose primary key has one of these key IDs (the first
        MAX_SIGNER_LOOKUPS key IDs are looked up: a page stays cheap)."""
        wanted = keyids[:MAX_SIGNER_LOOKUPS]
        found = [f for keyid in wanted
                 for f in self.lookup_store.find_by_id("keyid", keyid.hex().upper(), 4)]
        signers: Dict[bytes, keypage.Signer] = {}
        for row in self.lookup_store.key_rows(sorted(set(found))):
            names = [u.uid for u in row.user_ids if not u.is_attribute]
            signers.setdefault(bytes.fromhex(row.keyid),
                               keypage.Signer(row.fingerprint, names[0] if names else None))
        return {keyid: signers[keyid] for keyid in wanted if keyid in signers}

    def photo(self, request: Request) -> Response:
        """GET /pks/photo?fingerprint=FPR&n=N: a photo ID of a key's served view
        (photos.py).  A browser's request for another site's page (its
        `Sec-Fetch-Site: cross-site`) is refused before the key is read:
        each photo costs a read and a parse of the whole key, and
        Cross-Origin-Resource-Policy keeps the photo off that page only
        after it was made (until 2026-12-07 another site's page of 600
        photos of one key cost this server 21 s a visit)."""
        if request.header("sec-fetch-site") == "cross-site":
            raise HKPError(403, "photo IDs are shown on this server's pages only")
        fingerprint, number = photos.parse_query(request.query)
        self.serve_owed(Query("fingerprint", fingerprint))
        served = self.lookup_store.served([fingerprint]).get(fingerprint)
        if served is None:
            raise HKPError(404, "no key with fingerprint %s is held here" % fingerprint)
        return Response(200, photos.jpeg(served, fingerprint, number), "image/jpeg",
                        photos.HEADERS)

    def stats(self, lookup: Lookup) -> Response:
        report = self.statistics.report(self)
        if lookup.machine_readable:
            return Response(200, json.dumps(report, indent=2).encode() + b"\n",
                            "application/json")
        return _html(200, stats_page.render(report))

    # --- uploads -----------------------------------------------------------------

    def add(self, request: Request) -> Response:
        content_type = request.header("content-type").split(";")[0].strip().lower()
        options = request.query.options
        if content_type == "application/x-www-form-urlencoded":
            form = parse_form(request.body, frozenset({"options"}))
            texts = form.all("keytext")
            if not texts:
                raise HKPError(400, "missing form field keytext")
            data = "\n".join(texts).encode("utf-8")
            options |= form.options
        elif content_type == "multipart/form-data":
            raise HKPError(415, "send the key as application/x-www-form-urlencoded "
                                "(keytext=...) or as an application/pgp-keys body")
        else:
            data = request.body
        if not data.strip():
            raise HKPError(400, "empty submission: no key data")
        peer = request.header(SYNC_HEADER).strip() if self.sent_by_a_peer(request) else ""
        source = pipeline.Source.peer("hkp-sync", peer) if peer else pipeline.Source.user()
        # The served views of new keys and of the keys that depend on them follow
        # the answer (views_owed.py), not in this request: it tells none of them.
        report = pipeline.submit(self.store, data, source, self.settings.limits, follow=False,
                                 defer_views=True)
        within_budget = self._charged(request, report)
        if report.views_queued:
            self.views_owed.owe(awaited=within_budget)
            self.views_due()
        self.metrics.uploaded(report)
        return self._add_response(request, report, "mr" in options)

    def _charged(self, request: Request, report: pipeline.Report) -> bool:
        """Charge the client's upload bucket for what the stored upload
        costs beyond the token its request took (upload_cost.py); whether
        the bucket is still out of debt."""
        return self._charge(self.upload_limiter, request, lambda: tokens_beyond_the_first(
            report, self.settings.upload_checks_per_token, self._held_keyids))

    @staticmethod
    def _charge(limiter: RateLimiter, request: Request, tokens: Callable[[], float]) -> bool:
        """Take `tokens()` more from the client's bucket of `limiter`, for a
        request that costs more than the token it took; whether the bucket
        is still out of debt.  The operator's own tools (never limited,
        _rate_limited), peers and exempt networks are never charged, and
        for them `tokens` is not counted."""
        if is_operators_own(request.client, request.header("x-forwarded-for")):
            return True
        return limiter.charge(request.client, tokens())

    def _held_keyids(self, keyids: List[str]) -> Set[str]:
        with self.store.read() as cursor:
            return self.store.held_keyids(cursor, keyids)

    def sent_by_a_peer(self, request: Request) -> bool:
        """Whether an upload's X-CKS-Sync counts (the key then queued for no
        peer), a rejection notice's (hkp/rejections.py), and whether a
        hashquery gets every key it asks for: only from an enabled peer's
        address (`request.client`, the one a trusted proxy names) or the
        operator's own tools (loopback without X-Forwarded-For).  From anyone
        else it is a user's upload: the header would let a stranger keep a
        key's update from reaching the peers."""
        return ip_of(request.client) in self.peer_addresses or \
            is_operators_own(request.client, request.header("x-forwarded-for"))

    def _add_response(self, request: Request, report: pipeline.Report, mr_out: bool) -> Response:
        status = _add_status(report)
        if mr_out:
            body = json.dumps({
                **{kind: [o.fingerprint for o in report.with_status(kind)]
                   for kind in (pipeline.ADDED, pipeline.UPDATED, pipeline.UNCHANGED)},
                "refused": [{"fingerprint": o.fingerprint, "reason": o.reason}
                            for o in report.with_status(pipeline.REFUSED)],
                "problems": [str(p) for p in report.problems],
            }, indent=2).encode() + b"\n"
            return Response(status, body, "application/json")
        lines = ["%s %s%s" % (o.status, o.fingerprint, ": " + o.reason if o.reason else "")
                 for o in report.outcomes]
        lines += ["problem: %s" % p for p in report.problems]
        if "text/html" in request.header("accept"):
            return _html(status, html.add_page(status, lines))
        return Response(status, ("\n".join(lines) + "\n").encode())

    # --- operations ------------------------------------------------------------------

    def health(self, request: Request) -> Response:
        """GET /health, for load balancers and systemd: 200 when the database
        (the primary, which takes uploads) answers, else 503; /health?lookups:
        200 when lookups can be answered (by the read replica, or the primary
        while it cannot: ReplicaReads).  A database that does not answer
        within ANSWER_SECONDS is down.  Why goes to the log, not to whoever
        asked (it names hosts, users, paths)."""
        try:
            store = self.lookup_store if "lookups" in request.query.values else self.store
            store.check(within=ANSWER_SECONDS)
        except StoreError as exc:
            log.warning("health check: %s", exc)
            return Response(503, b"database unavailable\n", headers=[("Retry-After", "30")])
        return Response(200, b"ok\n")

    # --- reconciliation ------------------------------------------------------------

    def hash_query(self, request: Request) -> Response:
        """POST /pks/hashquery: the keys an SKS peer's reconciliation found it
        lacks, by SKS key hash.  Each is the stored network view (what the
        hash names, as for op=hget); hashes not held are left out.  SKS asks
        with HTTP/1.0, a Content-Length and nothing else.  For an enabled
        peer (`sent_by_a_peer`) every held key is in the answer, whatever
        their size (SKS and Hockeypuck do not ask again for what an answer
        leaves out); anyone else's stops at KEYS_ANSWER_BYTES, with
        X-HKP-Results-Truncated (until 2026-12-06 a stranger's 16 KB made
        an answer of up to 8 GB).  It is written to a file as the keys are
        read, and sent from there (bodies.py), so its size costs no memory.
        Read on the primary, never a replica: a round finds the differences
        in the primary's recon tree, and a replica behind it answered none
        of the keys that had just come (found by a review, 2026-12-06)."""
        try:
            hashes = hashquery.decode_request(request.body)
        except hashquery.HashQueryError as exc:
            raise HKPError(400, "malformed hashquery: %s" % exc) from None
        held = self.store.sizes_by_hash([digest.hex() for digest in hashes])
        cut = False
        if not self.sent_by_a_peer(request):
            held, cut = _within([(key, key[1]) for key in held], KEYS_ANSWER_BYTES)
        spool = Spool()
        try:
            hashquery.write_answer(spool, self._keys_in_runs(held))  # type: ignore[arg-type]
        except BaseException:
            spool.close()
            raise
        return Response(200, spool.body(), hashquery.CONTENT_TYPE,
                        _truncated_header(cut))

    def _keys_in_runs(self, held: List[Tuple[str, int]]) -> Iterator[bytes]:
        """The stored network views of these keys ((fingerprint, size)), in
        order, read HASHQUERY_READ_BYTES at a time (a key deleted meanwhile
        is left out)."""
        for run in in_runs(held, HASHQUERY_READ_BYTES):
            found = self.store.keydata(run)
            yield from (found[f] for f in run if f in found)

    @staticmethod
    def _read_keys(fingerprints: List[str], read: Callable[[List[str]], Dict[str, Stored]],
                   size: Callable[[Stored], int]) -> Iterator[Tuple[Tuple[str, Stored], int]]:
        """((fingerprint, what `read` gives of the key), its size) of the keys
        held among `fingerprints`, in their order, read ten at a time as they
        are taken (_within: an answer cut short reads no more)."""
        for start in range(0, len(fingerprints), 10):
            chunk = fingerprints[start:start + 10]
            found = read(chunk)
            for fingerprint in chunk:
                if fingerprint in found:
                    yield (fingerprint, found[fingerprint]), size(found[fingerprint])


_ROUTES = {  # path: (the methods it takes, what answers them)
    "/pks/lookup": (("GET", "HEAD"), KeyServer.lookup),
    "/pks/add": (("POST",), KeyServer.add),
    "/": (("GET", "HEAD"), KeyServer.front_page),
    "/index.html": (("GET", "HEAD"), KeyServer.front_page),
    "/health": (("GET", "HEAD"), KeyServer.health),
    photos.PATH: (("GET", "HEAD"), KeyServer.photo),
    hashquery.PATH: (("POST",), KeyServer.hash_query),
    rejections.NOTICE_PATH: (("POST",), rejections.receive_notice),
    rejections.AUDIT_PATH: (("GET", "HEAD"), rejections.audit),
    rejections.ADMIN_PATH: (("GET", "POST"), rejections.admin_page),
    METRICS_PATH: (("GET", "HEAD"), metrics_page),
}


def _add_status(report: pipeline.Report) -> int:
    """200 when something was stored (or already was); otherwise the most specific error."""
    if report.stored:
        return 200
    refused = report.with_status(pipeline.REFUSED)
    if any(o.refusal == pipeline.REJECTED for o in refused):
        return 403
    if any(o.refusal == pipeline.CONFLICT for o in refused):
        return 409
    if refused:
        return 413
    return 422


class _Within(Generic[Item]):
    """The items of (item, size) pairs, in order as they are taken, until
    their sizes would pass `limit` (the first always goes in); `cut`, once
    they are all taken: whether some were left out."""

    def __init__(self, sized: Iterable[Tuple[Item, int]], limit: int) -> None:
        self._sized = sized
        self._limit = limit
        self.cut = False

    def __iter__(self) -> Iterator[Item]:
        taken, total = 0, 0
        for item, size in self._sized:
            if taken and total + size > self._limit:
                self.cut = True
                return
            yield item
            taken, total = taken + 1, total + size


def _within(sized: Iterable[Tuple[Item, int]], limit: int) -> Tuple[List[Item], bool]:
    """_Within's items, all taken, and whether some were left out."""
    within = _Within(sized, limit)
    return list(within), within.cut


def _truncated_header(truncated: bool) -> List[Tuple[str, str]]:
    return [(TRUNCATED_HEADER, "true")] if truncated else []


def _html(status: int, page: Union[str, Body], headers=None) -> Response:
    """An HTML answer: a page's text, or its body already encoded."""
    body = page.encode("utf-8") if isinstance(page, str) else page
    return Response(status, body, "text/html; charset=utf-8",
                    list(headers or []) + [("Content-Security-Policy",
                                            html.CONTENT_SECURITY_POLICY)])
