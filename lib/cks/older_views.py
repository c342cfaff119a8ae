"""Served views derived under older rules, derived again by cksd itself.

What is served of a key changes between releases (served.py, views.py),
sometimes without a schema step: the database records the rules its views
were derived under (Store.served_views_made, served.SERVED_VIEWS_VERSION).
While they are older, one serving process at a time (OLDER_VIEWS_LOCK)
derives every stored key's view again in the background (views.reverify,
KEYS_PER_ROUND keys at a time, outside write transactions), recording the
last key done after each run so that a restart goes on from there; the
keys stay served with their old views meanwhile.  Then it records the
current rules.  `cks_admin.py reverify` of every key records them too.
"""

from __future__ import annotations

import logging
from typing import Optional

from .served import SERVED_VIEWS_VERSION, ServePolicy
from .store import Store
from .views import reverify

log = logging.getLogger("cks.views")

OLDER_VIEWS_LOCK = "cks_older_views"
KEYS_PER_ROUND = 1000


def views_current(store: Store) -> bool:
    """Whether the stored served views were derived under the current rules."""
    with store.read() as cursor:
        return store.served_views_made(cursor)[0] == SERVED_VIEWS_VERSION


def record_views_current(store: Store) -> None:
    """Every stored key's served view was derived under the current rules."""
    with store.write() as cursor:
        store.set_served_views_made(cursor, SERVED_VIEWS_VERSION, None)


def derive_older_views(store: Store, policy: ServePolicy) -> Optional[int]:
    """Derive the served views made under older rules again, from where the
    last run stopped; returns how many changed, or None when another
    process holds the lock (it does them)."""
    with store.exclusive(OLDER_VIEWS_LOCK) as ours:
        if not ours:
            return None
        with store.read() as cursor:
            made, after = store.served_views_made(cursor)
            if made == SERVED_VIEWS_VERSION:
                return 0  # (another process finished them)
            owed = store.keys_after(cursor, after)
        log.warning("served views made by an older CKS: deriving %d again in the background",
                    owed)
        changed = 0
        while True:
            with store.read() as cursor:
                fingerprints = store.fingerprints_after(cursor, after, KEYS_PER_ROUND)
            if not fingerprints:
                break
            changed += reverify(store, policy, fingerprints)
            after = fingerprints[-1]
            with store.write() as cursor:
                store.set_served_views_made(cursor, made, after)
        record_views_current(store)
        log.warning("served views derived again under the current rules: %d of %d changed",
                    changed, owed)
        return changed


class OlderViews:
    """cksd's background job (a Periodic): derive_older_views until the
    views are current, then nothing (the rules do not change while it runs)."""

    def __init__(self, store: Store, policy: ServePolicy) -> None:
        self.store = store
        self.policy = policy
        self._current = False

    def run(self) -> None:
        if self._current:
            return
        if views_current(self.store):
            self._current = True
            return
        self._current = derive_older_views(self.store, self.policy) is not None
