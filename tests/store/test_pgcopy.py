"""Many rows at once (Backend.insert_rows): PostgreSQL's binary COPY
(store/pgcopy.py) byte for byte, and rows of every column type it writes
reading back as written, on both backends."""

import pytest

from cks.store import pgcopy


def test_the_binary_copy_data_of_one_row_byte_for_byte():
    encoders = pgcopy.encoders_for({"a": "smallint", "b": "text", "c": "bytea"},
                                   ["a", "b", "c"])
    (data,) = pgcopy.encode_rows(encoders, [(7, "é", None)])
    assert data == (b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8    # signature, flags, extension
                    + b"\x00\x03"                           # three fields
                    + b"\x00\x00\x00\x02" + b"\x00\x07"     # smallint 7
                    + b"\x00\x00\x00\x02" + b"\xc3\xa9"     # text, UTF-8
                    + b"\xff\xff\xff\xff"                   # NULL
                    + b"\xff\xff")                          # the end


def test_rows_past_the_budget_go_to_the_next_copy_each_one_whole():
    encoders = pgcopy.encoders_for({"a": "integer", "b": "bytea"}, ["a", "b"])
    rows = [(n, bytes(10)) for n in range(5)]  # 4 + 4 + 4 + 10 = 22 bytes a row
    one = pgcopy.encode_rows(encoders, rows)
    pieces = list(pgcopy.encode_rows(encoders, rows, max_bytes=50))
    assert [len(p) for p in pieces] == [19 + 3 * 24 + 2, 19 + 2 * 24 + 2]
    assert all(p.startswith(pgcopy.HEADER) and p.endswith(pgcopy.TRAILER) for p in pieces)
    body = b"".join(p[len(pgcopy.HEADER):-len(pgcopy.TRAILER)] for p in pieces)
    assert [pgcopy.HEADER + body + pgcopy.TRAILER] == list(one)


def test_a_column_type_without_an_encoding_is_refused():
    with pytest.raises(ValueError, match="no binary COPY encoding for column.*numeric"):
        pgcopy.encoders_for({"a": "integer", "b": "numeric"}, ["a", "b"])


COLUMNS = ("s", "i", "b", "flag", "t", "data")
ROWS = [(-2, 2 ** 31 - 1, 2 ** 40, True, "Zoë <z@example.org>", bytes(range(256)) * 300),
        (0, -1, -(2 ** 63), False, "", b""),
        (None, None, None, None, None, None)]


def test_rows_of_every_type_read_back_as_written(store, monkeypatch):
    if store.backend.name == "postgresql":  # several COPYs, and rows over one's budget
        monkeypatch.setattr("cks.store.postgres.COPY_BYTES", 1000)
    with store.write() as cursor:
        cursor.execute("CREATE TABLE copied (n integer, s smallint, i integer, b bigint, "
                       "flag boolean, t text, data bytea)")
        cursor.defer("INSERT INTO copied (n) VALUES (?)", (0,))  # sent before the COPY
        store.backend.insert_rows(cursor, "copied", ("n",) + COLUMNS,
                                  [(n,) + row for n, row in enumerate(ROWS * 3, 1)])
    with store.read() as cursor:
        rows = cursor.execute("SELECT n, s, i, b, flag, t, data FROM copied "
                              "ORDER BY n").fetchall()
    assert rows[0] == (0,) + (None,) * 6
    assert [(r[1], r[2], r[3], None if r[4] is None else bool(r[4]), r[5],
             None if r[6] is None else bytes(r[6])) for r in rows[1:]] == ROWS * 3
    assert [r[0] for r in rows] == list(range(10))
