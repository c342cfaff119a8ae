"""Whether signatures are checked while a write transaction is open: on
SQLite one holds the database's one write lock, which every upload and
lookup's settling waits for."""

import contextlib
from typing import List

from cks.openpgp import cryptocheck
from cks.store.base import Store


def checks_in_writes(monkeypatch) -> List[bool]:
    """From now on, for each signature check, whether a write transaction
    (Store.write, any store) was open in this process."""
    writing: List[bool] = []
    checked: List[bool] = []
    write, verify = Store.write, cryptocheck.verify

    @contextlib.contextmanager
    def tracked_write(self, *args, **kwargs):
        with write(self, *args, **kwargs) as cursor:
            writing.append(True)
            try:
                yield cursor
            finally:
                writing.pop()

    def tracked_verify(*args, **kwargs):
        checked.append(bool(writing))
        return verify(*args, **kwargs)

    monkeypatch.setattr(Store, "write", tracked_write)
    monkeypatch.setattr(cryptocheck, "verify", tracked_verify)
    return checked
