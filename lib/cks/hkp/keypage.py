"""The pages about keys: result lists (op=index) and key pages (op=vindex).

A key page shows the served view (served.py), so it can say for each
signature what this server knows of it: every self-signature shown was
verified here (the served view keeps no other); a certification by another
key was verified when the [policy] is `verified` and was not checked under
`all` or `attested`; a designated revoker's revocation was verified unless
the revoker's key is not held here (then it is served unverified).
"""

from __future__ import annotations

from typing import Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple
from urllib.parse import quote

from ..openpgp import algorithms as alg
from ..openpgp import packet as pk
from ..openpgp import signature as sg
from ..openpgp.info import KeyInfo, describe
from ..openpgp.keypacket import PublicKey
from ..openpgp.keys import Component, Key, SignaturePacket
from ..openpgp.userid import Image
from ..store.rows import KeyRow
from ..wording import counted
from .html import date, e, isolated, page, page_around, user_text
from .photos import photo_url, photos_of, refusal, shown_size

REVOCATION_UNVERIFIED = ("[may be revoked: a designated revoker's revocation that this "
                         "server cannot verify, since it does not hold the revoker's key]")
VERIFICATION_NOTE = (
    "This server shows a user ID, photo ID or subkey only when its self-signature "
    "verifies, and says for every signature shown whether it verified it. Your OpenPGP "
    "software checks the signatures again when it imports the key.")

_ALGORITHMS = {
    alg.RSA: "RSA", alg.RSA_ENCRYPT: "RSA (encrypt only)", alg.RSA_SIGN: "RSA (sign only)",
    alg.ELGAMAL: "ElGamal", alg.DSA: "DSA", alg.ECDH: "ECDH", alg.ECDSA: "ECDSA",
    alg.ELGAMAL_SIGN: "ElGamal (sign and encrypt)", alg.EDDSA_LEGACY: "EdDSA",
    alg.X25519: "X25519", alg.X448: "X448", alg.ED25519: "Ed25519", alg.ED448: "Ed448",
}
# Key flags (RFC 9580 5.2.3.29) and the usage they grant.
_USAGE = ((0x01, "certify"), (0x02, "sign"), (0x0C, "encrypt"), (0x20, "authenticate"))
_SIGNATURE_KINDS = {
    sg.CERT_GENERIC: "certification", sg.CERT_PERSONA: "certification (persona)",
    sg.CERT_CASUAL: "certification (casual)", sg.CERT_POSITIVE: "certification (positive)",
    sg.ATTESTATION: "attestation", sg.SUBKEY_BINDING: "subkey binding",
    sg.DIRECT_KEY: "direct-key signature", sg.KEY_REVOCATION: "key revocation",
    sg.SUBKEY_REVOCATION: "subkey revocation", sg.CERT_REVOCATION: "certification revocation",
}
_REVOCATION_REASONS = {0: "no reason given", 1: "superseded", 2: "key compromised",
                       3: "no longer used", 32: "user ID no longer valid"}
# What a certification by another key in the served view went through, by
# [policy] certifications.
_CERTIFICATION_CHECKS = {
    "verified": ("ok", "verified"),
    "attested": ("warn", "not checked: attested by the key's holder"),
}
_NOT_CHECKED = ("warn", "not checked by this server")


class Signer(NamedTuple):
    """A key held here whose primary key made a signature on a shown key."""

    fingerprint: str
    name: Optional[str]  # its first user ID; None: it has none


# --- links and small parts ----------------------------------------------------------

def _lookup(op: str, search: str, extra: str = "") -> str:
    return "/pks/lookup?op=%s%s&amp;search=%s" % (op, extra, quote(search, safe=""))


def key_page_url(fingerprint: str) -> str:
    return _lookup("vindex", "0x" + fingerprint, "&amp;fingerprint=on")


def download_url(fingerprint: str) -> str:
    return _lookup("get", "0x" + fingerprint, "&amp;options=mr")


def grouped(fingerprint: str) -> str:
    """A fingerprint in groups of four hex digits, for reading aloud."""
    return " ".join(fingerprint[i:i + 4] for i in range(0, len(fingerprint), 4))


def usage(flags: Optional[int]) -> str:
    if flags is None:
        return "not stated"
    return ", ".join(word for bit, word in _USAGE if flags & bit) or "none"


def _short_algorithm(algorithm: int, bits: int) -> str:
    if algorithm in alg.OID_ALGORITHMS:
        return "%s%d" % ({alg.ECDSA: "ecdsa", alg.ECDH: "ecdh", alg.EDDSA_LEGACY: "eddsa"}
                         [algorithm], bits)
    return alg.algorithm_name(algorithm, bits)


def _algorithm(public: PublicKey) -> str:
    curve = public.curve
    return "%s%s, %d bits" % (_ALGORITHMS.get(public.algorithm, "algorithm %d" % public.algorithm),
                              " on " + curve.name if curve else "", public.bits)


def _status(revoked: bool, expires: Optional[int], now: int) -> str:
    if revoked:
        return " <strong class=\"revoked\">[revoked]</strong>"
    if expires is None:
        return ""
    if expires <= now:
        return " <span class=\"expired\">[expired %s]</span>" % date(expires)
    return " <span class=\"dim\">[expires %s]</span>" % date(expires)


def _user_id(text: str) -> str:
    """A user ID as the pages show it: isolated (user_text), and an empty
    one as such, not as nothing."""
    return user_text(text) if text else "<span class=\"dim\">(empty user ID)</span>"


def _heading(level: int, text: str) -> str:
    return "<h%d>%s</h%d>" % (level, e(text), level)


# --- result lists ---------------------------------------------------------------------

def index_page(search: str, rows: Iterable[KeyRow], now: int, show_fpr: bool,
               show_hash: bool, truncated: bool) -> str:
    rows = list(rows)
    parts = ["<p>%s found for <code>%s</code>%s.</p>" % (
        counted(len(rows), "key"), user_text(search),
        " (only the first ones: narrow your search)" if truncated else "")]
    parts.extend(_index_entry(row, now, show_fpr, show_hash) for row in rows)
    return page("Search results for " + isolated(search), "\n".join(parts),
                "Search results for " + user_text(search))


def _index_entry(row: KeyRow, now: int, show_fpr: bool, show_hash: bool) -> str:
    """One key of a result list, under a heading of its own ("pub
    rsa4096/KEYID ..."), its links named with its key ID: a list of a
    hundred keys is a hundred such sections, not two hundred links alike."""
    link = key_page_url(row.fingerprint)
    out = ["<div class=\"key\">", "<h2 class=\"pub\"><strong>pub</strong> %s/<a href=\"%s\">"
           "%s</a> %s%s</h2>" % (e(_short_algorithm(row.algorithm, row.bits)), link,
                                 e(row.keyid), date(row.created),
                                 _status(row.revoked, row.expires, now))]
    if row.revocation_unverified:
        out.append("<p class=\"unverified\">%s</p>" % e(REVOCATION_UNVERIFIED))
    if show_fpr:
        out.append("<p><code>Fingerprint=%s</code></p>" % e(grouped(row.fingerprint)))
    if show_hash:
        out.append("<p><code>Hash=%s</code></p>" % e(row.sks_hash))
    out.append("<ul class=\"uids\">")
    for uid in row.user_ids:
        text = "photo ID" if uid.is_attribute else _user_id(uid.uid)
        out.append("<li><strong>%s</strong> <a href=\"%s\">%s</a>%s</li>" % (
            "uat" if uid.is_attribute else "uid", link, text,
            _status(uid.revoked, uid.expires, now)))
    out.append("</ul>")
    out.append("<p><a href=\"%s\">Key page of %s</a> &middot; <a href=\"%s\">Download key %s"
               "</a></p></div>" % (link, e(row.keyid), download_url(row.fingerprint),
                                   e(row.keyid)))
    return "\n".join(out)


# --- key pages ----------------------------------------------------------------------------

def signer_keyids(keys: Iterable[Key]) -> List[bytes]:
    """Key IDs of the other keys that signed something shown on these keys'
    pages: designated revokers first (their being held decides what the
    page says), each once.  Each key is let go before the next is taken."""
    revokers: Dict[bytes, None] = {}  # ordered sets
    others: Dict[bytes, None] = {}
    for key in keys:
        for entry in key.direct_sigs:
            _add_signer(revokers if entry.sig.sig_type == sg.KEY_REVOCATION else others,
                        key, entry)
        for component in key.identities:
            for entry in component.sigs:
                _add_signer(others, key, entry)
    return list(dict.fromkeys([*revokers, *others]))


def _add_signer(found: Dict[bytes, None], key: Key, entry: SignaturePacket) -> None:
    keyid = entry.sig.issuer_keyid
    if keyid is not None and not key.is_self_issued(entry.sig):
        found.setdefault(keyid)


def vindex_page(search: str, shown: Sequence[KeyRow], keys: Iterable[Tuple[Key, KeyRow]],
                signers: Dict[bytes, Signer], policy: str, now: int,
                show_hash: bool) -> Iterator[str]:
    """The page of the keys whose index rows are `shown`, in pieces: `keys`
    (served view and index row) are each rendered and let go before the next
    is taken; `signers`: the held signers by key ID; `policy`: [policy]
    certifications."""
    if len(shown) == 1:
        title, heading, level = "Key %s" % shown[0].keyid, None, 2
    else:
        title, level = "Keys found for " + isolated(search), 3
        heading = "Keys found for " + user_text(search)
    before, after = page_around(title, heading)
    yield before
    for number, (key, row) in enumerate(keys):
        yield ("\n" if number else "") + _KeyPage(key, row, signers, policy, now,
                                                  level).render(show_hash)
    yield "\n<p class=\"dim\">%s</p>" % e(VERIFICATION_NOTE) + after


class _KeyPage:
    """The section of a key page about one key; `level`: its sub-headings' level."""

    def __init__(self, key: Key, row: KeyRow, signers: Dict[bytes, Signer], policy: str,
                 now: int, level: int) -> None:
        self.key = key
        self.row = row
        self.signers = signers
        self.policy = policy
        self.now = now
        self.level = level
        self.photo_numbers: Dict[int, List[Tuple[int, Image]]] = {}
        for number, (component, image) in enumerate(photos_of(key), 1):
            self.photo_numbers.setdefault(id(component), []).append((number, image))

    def render(self, show_hash: bool) -> str:
        key, row = self.key, self.row
        info = describe(key)
        out = ["<section class=\"key\" id=\"key-%s\">" % row.fingerprint]
        if self.level > 2:
            out.append(_heading(2, "Key %s" % row.keyid))
        out.extend(self.banners())
        out.append(self.facts(info, show_hash))
        out.append("<p><a href=\"%s\">Download the key</a> (ASCII-armored)</p>"
                   % download_url(row.fingerprint))
        if key.direct_sigs:
            out.append(_heading(self.level, "Signatures on the key"))
            out.append(self.signatures(key.direct_sigs, "the key"))
        out.append(_heading(self.level, "User IDs and photo IDs"))
        out.extend(self.identities())
        if key.subkeys:
            out.append(_heading(self.level, "Subkeys"))
        for sub, component in zip(info.subkeys, key.subkeys):
            out.append("<div class=\"subkey\"><p><strong>sub</strong> %s/%s %s [%s]%s</p>"
                       "<p>Fingerprint: <code class=\"fpr\">%s</code></p>%s</div>" % (
                           e(sub.algorithm_name), sub.keyid, date(sub.created),
                           e(usage(sub.key_flags)), _status(sub.revoked, sub.expires, self.now),
                           grouped(sub.fingerprint),
                           self.signatures(component.sigs, "subkey " + sub.keyid)))
        out.append("</section>")
        return "\n".join(out)

    def facts(self, info: KeyInfo, show_hash: bool) -> str:
        row = self.row
        facts = [("Fingerprint", "<code class=\"fpr\">%s</code>" % grouped(row.fingerprint)),
                 ("Key ID", "<code>%s</code>" % row.keyid),
                 ("Algorithm", e(_algorithm(self.key.public_key))),
                 ("Created", date(row.created)),
                 ("Expires", self.expiry(row.expires)),
                 ("Usage", e(usage(info.key_flags)))]
        if info.designated_revokers:
            facts.append(("Revocable by", "<br>".join(
                "<code class=\"fpr\">%s</code>" % grouped(f) for f in info.designated_revokers)))
        if show_hash:
            facts.append(("SKS key hash", "<code>%s</code>" % e(row.sks_hash)))
        return "<dl class=\"facts\">%s</dl>" % "".join(
            "<dt>%s</dt><dd>%s</dd>" % fact for fact in facts)

    def identities(self) -> List[str]:
        """The user IDs and photo IDs with their signatures: the primary user ID
        first, revoked ones last, as in the index."""
        key = self.key
        # describe() of a key holding just this identity: its status on its own
        described = [(describe(Key(key.primary, key.public_key, [], [c])).user_ids[0], c)
                     for c in key.identities]
        described.sort(key=lambda pair: (pair[0].revoked, pair[0].is_attribute,
                                         not pair[0].primary))
        return ["<div class=\"identity\">%s%s</div>" % (
            self.identity(component, (" [primary]" if uid.primary else "")
                          + _status(uid.revoked, uid.expires, self.now)),
            self.signatures(component.sigs, self.about(component)))
            for uid, component in described]

    def banners(self) -> List[str]:
        row = self.row
        if row.revoked:
            reasons = [self.reason(entry) for entry in self.key.direct_sigs
                       if entry.sig.sig_type == sg.KEY_REVOCATION
                       and self.check(entry)[0] == "ok"]
            return ["<p class=\"banner revoked\">This key is revoked%s.</p>"
                    % "".join(reasons[:1])]
        out = []
        if row.revocation_unverified:
            out.append("<p class=\"banner unverified\">%s</p>" % e(REVOCATION_UNVERIFIED))
        if row.expires is not None and row.expires <= self.now:
            out.append("<p class=\"banner expired\">This key expired on %s.</p>"
                       % date(row.expires))
        return out

    @staticmethod
    def reason(entry: SignaturePacket) -> str:
        reason = entry.sig.revocation_reason
        if reason is None:
            return ""
        code, text = reason
        return ": %s%s" % (e(_REVOCATION_REASONS.get(code, "reason %d" % code)),
                           " (&ldquo;%s&rdquo;)" % user_text(text) if text else "")

    def expiry(self, expires: Optional[int]) -> str:
        if expires is None:
            return "never"
        return date(expires) + (" (expired)" if expires <= self.now else "")

    def identity(self, component: Component, status: str) -> str:
        """A user ID as a heading (one level below "User IDs and photo
        IDs"), a photo ID as a figure."""
        if component.packet.tag == pk.TAG_USER_ID:
            return "<h%d class=\"uid\">%s%s</h%d>" % (
                self.level + 1, _user_id(component.value.text), status, self.level + 1)
        photos = self.photo_numbers.get(id(component), [])
        if not photos:
            return "<p class=\"uid\">[a user attribute that is not a photo ID]%s</p>" % status
        return "".join(self.photo(number, image, status) for number, image in photos)

    def photo(self, number: int, image: Image, status: str) -> str:
        """A photo ID as a figure, or why it is not shown.  Loaded lazily and
        its place kept (photos.shown_size): each photo is a request that
        parses the whole key."""
        refused = refusal(image)
        if refused is not None:
            return "<p class=\"uid\">Photo ID %d is not shown: %s%s</p>" % (
                number, e(refused.message), status)
        size = shown_size(image)
        return ("<figure class=\"photo\"><img src=\"%s\" alt=\"Photo ID %d of key %s\"%s "
                "loading=\"lazy\"><figcaption>Photo ID %d%s</figcaption></figure>" % (
                    e(photo_url(self.row.fingerprint, number)), number, self.row.keyid,
                    " width=\"%d\" height=\"%d\"" % size if size else "", number, status))

    def about(self, component: Component) -> str:
        """What a user ID's or photo ID's signatures are on (HTML), for the
        caption of their table."""
        if component.packet.tag == pk.TAG_USER_ID:
            return "user ID " + _user_id(component.value.text)
        numbers = [str(number) for number, _ in self.photo_numbers.get(id(component), [])]
        return "photo ID " + ", ".join(numbers) if numbers else "a user attribute"

    def signatures(self, entries: Sequence[SignaturePacket], about: str) -> str:
        """The table of signatures on `about` (HTML: "the key", "user ID
        ...", "subkey KEYID"), which its caption names."""
        if not entries:
            return ""
        rows = []
        for entry in entries:
            sig = entry.sig
            css, verdict = self.check(entry)
            rows.append("<tr><td>%s</td><td>%s</td><td class=\"day\">%s</td>"
                        "<td class=\"day\">%s</td><td class=\"%s\">%s</td></tr>" % (
                            e(self.kind(sig)), self.signer(sig), date(sig.created),
                            date(sig.expires), css, e(verdict)))
        return ("<table class=\"sigs\"><caption>Signatures on %s</caption><tr><th>Signature</th>"
                "<th>By</th><th>Made</th><th>Expires</th><th>Checked here</th></tr>%s</table>"
                % (about, "".join(rows)))

    def kind(self, sig: sg.Signature) -> str:
        """What a signature is; a certification revocation by the key's own
        key withdraws the user ID, by another key only that key's certification."""
        if sig.sig_type == sg.CERT_REVOCATION and self.key.is_self_issued(sig):
            return "user ID revocation"
        return _SIGNATURE_KINDS.get(sig.sig_type, "type 0x%02X" % sig.sig_type)

    def signer(self, sig: sg.Signature) -> str:
        if self.key.is_self_issued(sig):
            return "self-signature"
        keyid = sig.issuer_keyid
        if keyid is None:
            return "unknown (no issuer named)"
        signer = self.signers.get(keyid)
        if signer is None:
            return "<code>%s</code> (key not held here)" % keyid.hex().upper()
        return "<a href=\"%s\">%s</a> <code>%s</code>" % (
            key_page_url(signer.fingerprint),
            "(no user ID)" if signer.name is None else _user_id(signer.name),
            keyid.hex().upper())

    def check(self, entry: SignaturePacket) -> Tuple[str, str]:
        """(CSS class, what this server did) for a signature of the served view."""
        sig = entry.sig
        if self.key.is_self_issued(sig):
            return "ok", "verified"
        if sig.sig_type == sg.KEY_REVOCATION:
            if self.row.revocation_unverified or sig.issuer_keyid not in self.signers:
                return "warn", "not verified: the revoker's key is not held here"
            return "ok", "verified"
        return _CERTIFICATION_CHECKS.get(self.policy, _NOT_CHECKED)
