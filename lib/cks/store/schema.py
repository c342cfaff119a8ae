"""The database schema: schema.sql (PostgreSQL) is the one source; SQLite gets
it translated, so the two never drift apart."""

from __future__ import annotations

import os
import re

SCHEMA_VERSION = 1
SCHEMA_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           os.pardir, os.pardir, os.pardir, "schema.sql")

_SQLITE_TYPES = (
    (re.compile(r"\bbigserial PRIMARY KEY\b"), "INTEGER PRIMARY KEY AUTOINCREMENT"),
    (re.compile(r"\bserial PRIMARY KEY\b"), "INTEGER PRIMARY KEY AUTOINCREMENT"),
    (re.compile(r"\bbytea\b"), "blob"),
    (re.compile(r"^(BEGIN|COMMIT);$", re.M), ""),
)


def postgres_schema() -> str:
    with open(SCHEMA_FILE, encoding="utf-8") as handle:
        return handle.read()


def sqlite_schema() -> str:
    text = postgres_schema()
    for pattern, replacement in _SQLITE_TYPES:
        text = pattern.sub(replacement, text)
    return text
