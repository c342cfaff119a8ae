"""Writing sync mails (cks.sync.mail_out) and handing them to the MTA
(cks.sync.mta): the SKS format, sendmail commands and SMTP."""

import email
import time

import pytest

from cks.openpgp.keys import read_keys
from cks.sync.hkp_push import FAILED_ALONE, OK, RETRY
from cks.sync.mail_in import INCREMENTAL, parse_mail
from cks.sync.mail_out import MailPusher, compose
from cks.sync.mta import SMTP, HandOffError, Sendmail
from support import fixture
from support.mails import SKS, US, fake_sendmail, sent_mails
from support.smtpsink import SMTPSink

KEY = read_keys(fixture("rsa2048")).keys[0]


def test_compose_writes_what_sks_writes():
    message = compose(KEY.serialize(), ["a@a.example", "b@b.example"], US, [SKS])
    raw = message.as_bytes()
    names = [name for name, _ in message.items()]
    assert names == ["To", "From", "Reply-To", "Errors-To", "Subject", "Precedence", "Date",
                     "Message-ID", "MIME-Version", "Content-Type", "X-KeyServer-Sent",
                     "X-KeyServer-Sent"]
    assert message["To"] == "a@a.example, b@b.example"
    assert message["From"] == message["Reply-To"] == message["Errors-To"] == US
    assert message["Subject"] == "incremental" and message["Precedence"] == "list"
    assert message["Content-Type"] == "application/pgp-keys"
    assert message.get_all("X-KeyServer-Sent") == [SKS, US]
    assert message["Message-ID"].endswith("@keys.cks.example>")
    assert b"\r" not in raw and b"\n\n-----BEGIN PGP PUBLIC KEY BLOCK-----\n" in raw
    back = parse_mail(raw)
    assert back.kind == INCREMENTAL and read_keys(back.keytext).keys[0].serialize() == \
        KEY.serialize()


def test_own_address_is_added_once():
    message = compose(KEY.serialize(), ["a@a.example"], US, [SKS, US])
    assert message.get_all("X-KeyServer-Sent") == [SKS, US]


class Recorder:
    def __init__(self, fail=None, refused=False):
        self.sent, self.fail, self.refused = [], fail, refused

    def send(self, message):
        if self.fail:
            raise HandOffError(self.fail, self.refused)
        self.sent.append(message)


def test_mail_pusher_one_mail_per_key_and_retry_on_failure():
    recorder = Recorder()
    pusher = MailPusher("peer@p.example", US, recorder)
    assert pusher.keys_per_request == 1
    assert pusher.push([("F", KEY.serialize())]).action == OK
    assert recorder.sent[0]["To"] == "peer@p.example"
    assert recorder.sent[0].get_all("X-KeyServer-Sent") == [US]
    failed = MailPusher("peer@p.example", US, Recorder("MTA down")).push([("F", b"x")])
    assert (failed.action, failed.message) == (RETRY, "MTA down")
    refused = MailPusher("peer@p.example", US, Recorder("552 too big", refused=True))
    assert refused.push([("F", b"x")]).action == FAILED_ALONE
    naming = MailPusher("peer@p.example", US, recorder, ["b@b.example", "Peer@P.example"])
    assert naming.push([("F", KEY.serialize())]).action == OK
    assert recorder.sent[-1].get_all("X-KeyServer-Sent") == [US, "b@b.example"]
    unset = MailPusher("peer@p.example", "", recorder).push([("F", b"x")])
    assert unset.action == RETRY and "[mail] address" in unset.message


def test_sendmail_command(tmp_path):
    command = fake_sendmail(tmp_path).split()
    Sendmail(command, 10).send(compose(KEY.serialize(), ["a@a.example"], US))
    (raw,) = sent_mails(tmp_path)
    assert email.message_from_bytes(raw)["To"] == "a@a.example"
    with pytest.raises(HandOffError, match="exited with status 75: sendmail: fatal: queue") \
            as later:
        Sendmail(fake_sendmail(tmp_path, fail=True).split(), 10).send(compose(b"", [US], US))
    assert not later.value.refused  # EX_TEMPFAIL
    with pytest.raises(HandOffError, match="exited with status 69: .* message file too big") \
            as too_big:
        Sendmail(fake_sendmail(tmp_path, max_bytes=100).split(), 10).send(
            compose(KEY.serialize(), [US], US))
    assert too_big.value.refused  # any other status: that mail is refused for good
    for command, said in ((["/nonexistent/sendmail", "-t"], "cannot run /nonexistent/sendmail"),
                          (["sleep", "5"], "sleep timed out after 0.5 s"),
                          (["sh", "-c", "kill -9 $$"], "sh was killed by signal 9 (SIGKILL)")):
        with pytest.raises(HandOffError) as failed:
            Sendmail(command, 0.5).send(compose(b"", [US], US))
        assert str(failed.value).startswith(said)  # (until 2026-12-05: "status -9")
        assert not failed.value.refused, command


def test_a_sendmail_that_times_out_is_killed_with_what_it_started(tmp_path):
    """Until 2026-12-06 only the command was killed: a shell script's own
    commands stayed behind, one more at each hand-off that timed out."""
    started = tmp_path / "started"
    script = tmp_path / "sendmail"
    script.write_text("#!/bin/sh\nsleep 30 &\necho $! > %s\nwait\n" % started)
    script.chmod(0o755)
    with pytest.raises(HandOffError, match="timed out after 0.5 s"):
        Sendmail([str(script), "-t"], 0.5).send(compose(b"", [US], US))
    pid = int(started.read_text())
    for _ in range(50):
        if not _running(pid):
            break
        time.sleep(0.1)
    assert not _running(pid)


def _running(pid):
    """Whether process `pid` runs (a zombie waiting to be reaped does not)."""
    try:
        with open("/proc/%d/stat" % pid) as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_smtp():
    with SMTPSink(refuse={"gone@p.example"}) as sink:
        SMTP("127.0.0.1", sink.port, 10).send(compose(KEY.serialize(), ["a@a.example"], US))
        ((sender, recipients, data),) = sink.messages
        assert (sender, recipients) == (US, ["a@a.example"])
        assert b"\r\nSubject: incremental\r\n" in data
        assert read_keys(parse_mail(data).keytext).keys[0].fingerprint == KEY.fingerprint
        with pytest.raises(HandOffError) as gone:
            SMTP("127.0.0.1", sink.port, 10).send(
                compose(KEY.serialize(), ["a@a.example", "gone@p.example"], US))
        assert str(gone.value) == "SMTP 127.0.0.1:%d refused gone@p.example (550 5.1.1 " \
            "no such user)" % sink.port
        assert not gone.value.refused  # about the peer's address, not this mail
        with pytest.raises(HandOffError) as all_gone:
            SMTP("127.0.0.1", sink.port, 10).send(
                compose(KEY.serialize(), ["gone@p.example"], US))
        assert str(all_gone.value) == "SMTP 127.0.0.1:%d: refused gone@p.example (550 " \
            "5.1.1 no such user)" % sink.port  # (until 2026-12-05: a dict's repr)
        sink.max_size = 100
        with pytest.raises(HandOffError) as too_big:
            SMTP("127.0.0.1", sink.port, 10).send(compose(KEY.serialize(), ["a@a.example"], US))
        assert str(too_big.value) == "SMTP 127.0.0.1:%d: 552 5.3.4 Message size exceeds " \
            "fixed limit" % sink.port  # (until 2026-12-05: a tuple's repr)
        assert too_big.value.refused
        port = sink.port
    with pytest.raises(HandOffError, match="SMTP 127.0.0.1:%d" % port):
        SMTP("127.0.0.1", port, 2).send(compose(b"", [US], US))
