"""Bulk writes inside an open transaction: ``COPY … FROM STDIN (FORMAT csv)`` and ``execute_values``.

Rows are written by the standard ``csv`` module. Every text field is quoted; NULL is the unquoted ``\\N``,
so an empty string and a NULL stay apart.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg2
from psycopg2.extras import execute_values
from psycopg2.sql import SQL, Identifier
from sqlalchemy.engine import Connection

Row = Mapping[str, Any]
PAGE_SIZE = 1000
COPY_CSV = SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv, NULL '\\N')")


class _Null(int):
    """NULL for the csv writer: numeric, so ``QUOTE_NONNUMERIC`` leaves it unquoted, and written as ``\\N``
    (Python 3.11's csv has no ``QUOTE_NOTNULL``)."""

    def __str__(self) -> str:
        return "\\N"


NULL = _Null(0)


def copy_rows(conn: Connection, table: str, columns: Sequence[str], rows: Sequence[Row]) -> None:
    """``COPY table (columns)`` of rows given by column name, inside the open transaction."""
    if not rows:
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
    writer.writerows([_csv_value(row[column]) for column in columns] for row in rows)
    buffer.seek(0)
    statement = COPY_CSV.format(Identifier(table), SQL(", ").join(map(Identifier, columns)))
    with driver_cursor(conn) as cursor:
        cursor.copy_expert(statement, buffer)


def _csv_value(value: Any) -> Any:
    if value is None:
        return NULL
    if isinstance(value, bool | int | float):
        return value
    return str(value)


def insert_values(
    conn: Connection,
    statement: str,
    rows: Sequence[tuple[Any, ...]],
    *,
    fetch: bool = False,
    template: str | None = None,
) -> list[Any]:
    """Many rows in one statement through psycopg2's ``execute_values``, inside the open transaction."""
    if not rows:
        return []
    with driver_cursor(conn) as cursor:
        found = execute_values(cursor, statement, rows, template=template, page_size=PAGE_SIZE, fetch=fetch)
    return list(found or [])


def in_order(values: Row, columns: Sequence[str]) -> tuple[Any, ...]:
    return tuple(values[column] for column in columns)


def json_text(value: Mapping[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, default=str)


@contextmanager
def driver_cursor(conn: Connection) -> Iterator[Any]:
    """psycopg2's own cursor on the transaction's connection, for COPY and ``execute_values``. SQLAlchemy does
    not see its errors, so when the connection broke it is told here (``invalidate``): the pool then drops it,
    and the retry starts on a fresh one."""
    dbapi_connection: Any = conn.connection.dbapi_connection
    cursor = dbapi_connection.cursor()
    try:
        yield cursor
    except psycopg2.Error:
        if dbapi_connection.closed:
            conn.invalidate()
        raise
    finally:
        if not cursor.closed:
            cursor.close()
