"""A CKS installation for the mail tests: a database, a cks.conf with a [mail]
section and a fake sendmail, and the tools run on them as processes."""

from cks.openpgp.keys import read_keys
from . import fixture
from .db import run_sql
from .mails import US, fake_sendmail, sent_mails
from .procs import tool


def fpr(name):
    return read_keys(fixture(name)).keys[0].fingerprint.hex().upper()


class Node:
    """One CKS installation: its database, its cks.conf, its outgoing mail."""

    def __init__(self, db_url, directory, address=US, **mail):
        self.db_url = db_url
        self.directory = directory
        directory.mkdir(exist_ok=True)
        self.mail = dict({"address": address, "sendmail": fake_sendmail(directory)}, **mail)
        self.config = directory / "cks.conf"
        self.write_config()

    def write_config(self, extra="", **changes):
        """[mail] with `changes`, then `extra` (more sections, as INI text)."""
        self.mail.update(changes)
        self.config.write_text("[mail]\n" + "".join(
            "%s = %s\n" % item for item in self.mail.items() if item[1] is not None) + extra)

    def run(self, name, args, **kwargs):
        return tool(name, ["--db", self.db_url, "--config", str(self.config)] + list(args),
                    **kwargs)

    def mail_sync(self, raw, env=None):
        return self.run("cks_mail_sync.py", [], input=raw, env=env)

    def manage(self, *args):
        result = self.run("cks_sync_manage.py", args)
        assert result.returncode == 0, result.stderr
        return result

    def sync(self, *args):
        return self.run("cks_sync.py", args)

    def sent(self):
        return sent_mails(self.directory)

    def query(self, sql, params=()):
        return run_sql(self.db_url, sql, params)

    def execute(self, sql, params=()):
        run_sql(self.db_url, sql, params, write=True)

    def keys(self):
        return dict(self.query("SELECT fingerprint, source FROM cks_keys"))

    def snapshot(self):
        """Everything a mail may change, to compare before and after."""
        return {table: sorted(map(tuple, self.query("SELECT * FROM %s" % table)), key=repr)
                for table in ("cks_keys", "cks_subkeys", "cks_userids", "cks_words",
                              "cks_pending_sync", "cks_sync_backlog", "cks_other_servers")}
