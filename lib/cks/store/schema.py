"""The database schema: schema.sql (PostgreSQL) is the one source; SQLite gets
it translated, so the two never drift apart."""

from __future__ import annotations

import os
import re
from typing import List

SCHEMA_VERSION = 9
SCHEMA_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           os.pardir, os.pardir, os.pardir, "schema.sql")

STORAGE_STATEMENT = re.compile(r"^ALTER TABLE \w+ ALTER COLUMN [^;]* SET STORAGE [^;]*;", re.M)

_SQLITE_TYPES = (
    (re.compile(r"\bbigserial PRIMARY KEY\b"), "INTEGER PRIMARY KEY AUTOINCREMENT"),
    (re.compile(r"\bserial PRIMARY KEY\b"), "INTEGER PRIMARY KEY AUTOINCREMENT"),
    (re.compile(r"\bbytea\b"), "blob"),
    (re.compile(r"^(BEGIN|COMMIT);$", re.M), ""),
    (STORAGE_STATEMENT, ""),  # how PostgreSQL keeps a column's values
)
_COMMENT = re.compile(r"--[^\n]*")


def postgres_schema() -> str:
    with open(SCHEMA_FILE, encoding="utf-8") as handle:
        return handle.read()


def to_sqlite(sql: str) -> str:
    for pattern, replacement in _SQLITE_TYPES:
        sql = pattern.sub(replacement, sql)
    return sql


def sqlite_schema() -> str:
    return to_sqlite(postgres_schema())


def table_statements(table: str) -> List[str]:
    """schema.sql's CREATE TABLE and CREATE INDEX statements for `table` (in
    PostgreSQL's dialect), so a migration creates a new table exactly as a new
    database gets it."""
    return [s for s in _statements()
            if re.match(r"CREATE TABLE %s \(" % table, s)
            or re.match(r"CREATE INDEX \w+ ON %s \(" % table, s)]


def table_names() -> List[str]:
    """The tables schema.sql makes, in its order."""
    return [match.group(1) for match in (re.match(r"CREATE TABLE (\w+) \(", s)
                                         for s in _statements()) if match]


def index_statement(name: str) -> str:
    """schema.sql's CREATE INDEX statement of the index `name`."""
    (statement,) = [s for s in _statements() if s.startswith("CREATE INDEX %s ON " % name)]
    return statement


def storage_statements() -> List[str]:
    """schema.sql's statements that set how PostgreSQL stores columns."""
    return [s + ";" for s in _statements() if STORAGE_STATEMENT.match(s + ";")]


def _statements() -> List[str]:
    """schema.sql's statements, each on one line, without comments."""
    return [" ".join(s.split()) for s in _COMMENT.sub("", postgres_schema()).split(";")]
