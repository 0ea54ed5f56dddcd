"""Bulk writes for the high-rate tables (request records, samples): many rows, idempotent, fast.

On PostgreSQL a batch is first `COPY`ed straight into the table inside a savepoint: the common case
(new rows) then costs no more than a raw COPY. When a row clashes with a unique key (a resent batch),
the savepoint is rolled back and the rows go through `COPY` into a temporary table and one
`INSERT ... SELECT ... ON CONFLICT DO NOTHING`, so nothing is inserted twice. Elsewhere (SQLite, the
embedded default) it is batched `INSERT ... ON CONFLICT DO NOTHING` with executemany.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from django.db import connection, models, transaction


def insert_ignoring_conflicts(model: type[models.Model], columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
    """Insert `rows` (values in `columns` order, by column name); rows that clash with a unique key are skipped.

    Returns how many rows were inserted. Runs in one transaction: all of the batch or none.
    """
    if not rows:
        return 0
    # No savepoint of its own: the batch is all or nothing within the caller's transaction anyway.
    with transaction.atomic(savepoint=False):
        if connection.vendor == "postgresql":
            return _copy_insert(model, columns, rows)
        return _executemany_insert(model, columns, rows)


def _copy_insert(model: type[models.Model], columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
    table = model._meta.db_table
    quoted = ", ".join(connection.ops.quote_name(column) for column in columns)
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            _copy(cursor, table, quoted, rows)
        return len(rows)
    except psycopg.errors.UniqueViolation:
        pass  # some rows are stored already: the savepoint is rolled back; insert the others via staging below
    staging = f"staging_{table}"
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} (LIKE {table} INCLUDING DEFAULTS INCLUDING IDENTITY) ON COMMIT DELETE ROWS"
        )
        _copy(cursor, staging, quoted, rows)
        cursor.execute(f"INSERT INTO {table} ({quoted}) SELECT {quoted} FROM {staging} ON CONFLICT DO NOTHING")
        inserted: int = cursor.rowcount
        cursor.execute(f"TRUNCATE {staging}")
    return inserted


def _copy(cursor: Any, table: str, quoted_columns: str, rows: Sequence[Sequence[Any]]) -> None:
    with cursor.cursor.copy(f"COPY {table} ({quoted_columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _executemany_insert(model: type[models.Model], columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
    fields = [model._meta.get_field(column) for column in columns]
    quoted = ", ".join(connection.ops.quote_name(column) for column in columns)
    placeholders = ", ".join(["%s"] * len(columns))
    prepared = [
        [field.get_db_prep_save(value, connection) for field, value in zip(fields, row, strict=True)]  # type: ignore[union-attr]
        for row in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {model._meta.db_table} ({quoted}) VALUES ({placeholders}) ON CONFLICT DO NOTHING", prepared
        )
        inserted: int = cursor.rowcount
    return inserted
