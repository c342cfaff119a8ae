"""cksd's background job that copies SQLite's write-ahead log into the
database (Store.take_over_checkpoints), every CHECKPOINT_EVERY seconds.

A failure (a full disk, say) is logged once when it starts and once when
it ends, not at every round: SQLite's writers copy the log themselves once
it grows past sqlite.BACKGROUND_CHECKPOINT_PAGES, so nothing is lost
meanwhile but speed."""

from __future__ import annotations

import logging

from .base import Store
from .errors import StoreError

log = logging.getLogger("cks.store")

CHECKPOINT_EVERY = 0.1
"""Seconds between a serving process's checkpoints (one that finds nothing
new to copy costs microseconds)."""


class BackgroundCheckpoints:
    """The job: call it every CHECKPOINT_EVERY seconds."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.failing = False

    def __call__(self) -> None:
        try:
            self.store.checkpoint()
        except StoreError as exc:
            if not self.failing:
                log.warning("the database's log is not copied into it: %s (tried again "
                            "every %g s)", exc, CHECKPOINT_EVERY)
            self.failing = True
        else:
            if self.failing:
                log.info("the database's log is copied into it again")
            self.failing = False
