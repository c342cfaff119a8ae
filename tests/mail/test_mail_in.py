"""Reading sync mails (cks.sync.mail_in): SKS and pks formats, MIME variants,
CRLF, senders and the forwarding rule; no database."""

import tracemalloc

import pytest

from cks.openpgp.keys import read_armored, read_keys
from cks.sync.mail_in import ADD, INCREMENTAL, BrokenMail, authorizing_peer, \
    forward_targets, mail_kind, parse_mail
from support import fixture
from support.mails import PKS, SKS, US, base64_mail, crlf, many_parts_mail, multipart_mail, \
    pks_mail, quoted_printable_mail, sks_mail


def fprs(mail):
    return [k.fingerprint.hex().upper() for k in read_armored(mail.keytext).keys]


def fpr(name):
    return read_keys(fixture(name)).keys[0].fingerprint.hex().upper()


VARIANTS = {
    "sks": lambda key: sks_mail(key),
    "pks": lambda key: pks_mail(key, sender=SKS, sent_by=[SKS]),
    "quoted-printable": quoted_printable_mail,
    "base64": base64_mail,
    "multipart-armored": lambda key: multipart_mail([key]),
    "multipart-binary": lambda key: multipart_mail([key], binary=True),
    "sks-crlf": lambda key: crlf(sks_mail(key)),
    "multipart-crlf": lambda key: crlf(multipart_mail([key])),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant_yields_the_key(variant):
    mail = parse_mail(VARIANTS[variant](fixture("rsa2048")))
    assert mail.kind == INCREMENTAL
    assert fprs(mail) == [fpr("rsa2048")]
    assert SKS in mail.senders and mail.sent_by == [SKS]
    assert read_armored(mail.keytext).problems == []


def test_the_sks_mail_in_detail():
    mail = parse_mail(sks_mail(fixture("nistp256"), to=[US, "other@keys.example"]))
    assert mail.senders == [SKS, "debian-sks@sks.example.net"]  # From:, then Return-Path
    assert mail.recipients == [US, "other@keys.example"]
    assert mail.message_id == "<20261128100000.4242@sks.example.net>"
    assert mail.subject == "incremental"


def test_several_blocks_and_several_keys_per_block():
    mail = parse_mail(multipart_mail([fixture("two-keys"), fixture("two-blocks")]))
    assert sorted(fprs(mail)) == sorted(
        [fpr("rsa2048"), fpr("ed25519"), fpr("rsa1024"), fpr("nistp256")])


def test_envelope_sender_sources():
    raw = pks_mail(fixture("rsa2048"))
    assert parse_mail(raw).senders == [PKS]  # From: equals the Return-Path here
    assert parse_mail(raw, "Bounce@Relay.Example").senders == [PKS, "bounce@relay.example"]
    no_return_path = b"\n".join(line for line in raw.split(b"\n")
                                if not line.startswith(b"Return-Path"))
    assert parse_mail(no_return_path.replace(b"From " + PKS.encode(), b"From x@y.example")
                      ).senders == [PKS, "x@y.example"]  # the mbox From line


@pytest.mark.parametrize("subject, kind", [
    ("incremental", INCREMENTAL), ("INCREMENTAL", INCREMENTAL),
    ("[keys] Re: incremental", INCREMENTAL), ("ADD", ADD), ("add my key", ADD),
    ("", None), ("hello", None), ("incrementally", None), ("ADDRESS change", None),
    ("=?utf-8?q?incremental?=", INCREMENTAL)])
def test_subjects(subject, kind):
    assert mail_kind(parse_mail(b"Subject: " + subject.encode() + b"\n\n").subject) == kind


def test_authorization_by_sender_envelope_or_keyserver_sent():
    peers = ["Pgp-Public-Keys@sks.example.net", "pgp-keys@b.example"]
    assert authorizing_peer(parse_mail(sks_mail(fixture("rsa2048"))), peers) == peers[0]
    forged = parse_mail(sks_mail(fixture("rsa2048"), sender="mallory@evil.example",
                                 sent_by=["mallory@evil.example"], envelope="m@evil.example"))
    assert authorizing_peer(forged, peers) is None
    relayed = parse_mail(sks_mail(fixture("rsa2048"), sender="list@relay.example",
                                  sent_by=["pgp-keys@b.example", "list@relay.example"]))
    assert authorizing_peer(relayed, peers) == "pgp-keys@b.example"
    assert authorizing_peer(parse_mail(b""), peers) is None


def test_forward_targets_skip_everyone_the_mail_names():
    mail = parse_mail(sks_mail(fixture("rsa2048"), to=[US, "c@c.example"],
                               sent_by=["b@b.example", SKS]))
    peers = [SKS, "b@b.example", "c@c.example", "d@d.example", "E@E.example"]
    assert forward_targets(mail, peers, US) == ["d@d.example", "E@E.example"]
    assert forward_targets(mail, peers + [US], US) == ["d@d.example", "E@E.example"]


def test_a_peer_listed_with_the_domains_final_dot_is_the_same_mailbox():
    """As an older CKS listed it (keys@x.test.): its mails are vouched for,
    and it is not forwarded what it sent (until 2026-12-05 they were refused,
    77, and a key it sent went back to it)."""
    dotted = "B@b.example."
    mail = parse_mail(sks_mail(fixture("rsa2048"), sender="b@b.example",
                               sent_by=["b@b.example"]))
    assert authorizing_peer(mail, [dotted]) == dotted
    assert forward_targets(mail, [dotted, "d@d.example"], US + ".") == ["d@d.example"]


def test_empty_and_garbage_mails():
    assert parse_mail(b"").kind is None and parse_mail(b"").keytext == b""
    mail = parse_mail(b"\xff\xfe\x00garbage\n\nSubject: incremental\n")
    assert fprs(mail) == []
    other = parse_mail(multipart_mail([], extra=[b"-----BEGIN PGP PUBLIC KEY BLOCK-----"]))
    assert other.keytext == b"Keys attached.\n"  # octet-stream parts are not read


def test_the_x_keyserver_sent_list_is_its_first_50_well_formed_addresses():
    """The list is copied into every forward of the mail's keys: until
    2026-12-07 a mail naming 100,000 addresses made forwards of 4.9 MB each.
    A peer named after the first 50 vouches for nothing."""
    spam = ["k%d@spam%d.example.org" % (n, n) for n in range(10_000)]
    too_long = "x" * 250 + "@a.example"
    mail = parse_mail(sks_mail(fixture("rsa2048"), sender="list@relay.example",
                               sent_by=["no address", too_long] + spam + [SKS]))
    assert mail.sent_by == spam[:50]
    assert authorizing_peer(mail, [SKS]) is None
    assert parse_mail(sks_mail(fixture("rsa2048"), sent_by=spam[:49] + [SKS])).sent_by == \
        spam[:49] + [SKS]


def peak_of(work):
    """The peak of Python's allocations while `work()` runs, bytes."""
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_body_of_100_000_parts_costs_little_to_refuse():
    """The headers are read from the mail's head alone, and the body's parse
    stops after 1,000 parts: until 2026-12-07 a stranger's mail of 600,000
    parts cost 316 MB to refuse from its headers, a peer's 459 MB and 14 s to
    read."""
    raw = many_parts_mail(fixture("rsa2048"), 100_000)
    assert len(raw) > 3_000_000
    assert peak_of(lambda: parse_mail(raw)) < 100_000
    mail = parse_mail(raw)

    def refusal():
        with pytest.raises(BrokenMail, match="it has over 1000 MIME parts"):
            mail.keytext

    assert peak_of(refusal) < 2_000_000
    assert fprs(parse_mail(many_parts_mail(fixture("rsa2048"), 1000))) == [fpr("rsa2048")]
