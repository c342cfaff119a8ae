"""The errors of the storage interface (every backend raises these)."""


class StoreError(Exception):
    """A database problem that retrying will not fix."""

    writing = False  # raised by a statement of a write transaction (Store.write)


class StoreUnavailable(StoreError):
    """The database is unreachable, locked or otherwise failing for now: retry later."""
