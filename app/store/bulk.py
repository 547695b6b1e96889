"""Bulk writes straight to the database driver, for the event-log commit.

The commit of every order batch writes a few rows into several tables. Going
through SQLAlchemy's compiled inserts costs more per row than the database
itself (statement compilation, per-column bind processors, RETURNING
handling), so this hot path sends plain ``INSERT``, ``INSERT ... ON CONFLICT
DO UPDATE`` and ``UPDATE`` statements — the same SQL on SQLite and PostgreSQL,
but for the placeholders — through the driver's ``executemany`` with values
already in their stored form. Everything
else (reads, migrations, auth) still uses SQLAlchemy.

Stored forms match what the SQLAlchemy column types in ``tables.py`` write
and read back: decimals as their exact text, timestamps as naive UTC text on
SQLite (SQLAlchemy's DATETIME format) and as aware datetimes on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from typing import Any

import sqlalchemy as sa


class StatementBatch:
    """Statements and their rows (tuples in column order), built first and executed
    later, in one go: the rows can be built on one thread (the engine's, which owns the
    state they come from) and written on another."""

    def __init__(self, dialect: str):
        self.sqlite = dialect == "sqlite"
        self._stored_timestamp = _sqlite_timestamp if self.sqlite else _aware_utc
        self._timestamps: dict[datetime, Any] = {}
        self.statements: list[tuple[str, list[tuple]]] = []

    def timestamp(self, value: datetime | None) -> Any:
        """``value`` in its stored form. A batch's events mostly share one engine
        clock reading, so each distinct instant is rendered once."""
        if value is None:
            return None
        stored = self._timestamps.get(value)
        if stored is None:
            stored = self._timestamps[value] = self._stored_timestamp(value)
        return stored

    def insert(self, table: str, columns: tuple[str, ...], rows: Sequence[tuple],
               json_columns: frozenset[str] = frozenset()) -> None:
        if rows:
            sql = _insert_sql(table, columns, None, self.sqlite, json_columns)
            self.statements.append((sql, list(rows)))

    def upsert(self, table: str, columns: tuple[str, ...], keys: tuple[str, ...],
               rows: Sequence[tuple]) -> None:
        """Insert ``rows``, or update the other columns where the key already exists."""
        if rows:
            sql = _insert_sql(table, columns, keys, self.sqlite, frozenset())
            self.statements.append((sql, list(rows)))

    def update(self, table: str, columns: tuple[str, ...], keys: tuple[str, ...],
               rows: Sequence[tuple]) -> None:
        """Set ``columns`` (each row: their values, then the keys') on existing rows."""
        if rows:
            self.statements.append((_update_sql(table, columns, keys, self.sqlite),
                                    list(rows)))

    def execute(self, conn: sa.Connection) -> None:
        for sql, rows in self.statements:
            conn.exec_driver_sql(sql, rows)


def text(value: Decimal | None) -> str | None:
    """A decimal in its stored (exact text) form."""
    return None if value is None else str(value)


@cache
def _insert_sql(table: str, columns: tuple[str, ...], keys: tuple[str, ...] | None,
                sqlite: bool, json_columns: frozenset[str]) -> str:
    mark = "?" if sqlite else "%s"
    values = ", ".join(mark if sqlite or c not in json_columns else "%s::json"
                       for c in columns)
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values})"
    if keys:
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in keys)
        sql += f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
    return sql


@cache
def _update_sql(table: str, columns: tuple[str, ...], keys: tuple[str, ...],
                sqlite: bool) -> str:
    mark = "?" if sqlite else "%s"
    sets = ", ".join(f"{c} = {mark}" for c in columns)
    where = " AND ".join(f"{k} = {mark}" for k in keys)
    return f"UPDATE {table} SET {sets} WHERE {where}"


def _sqlite_timestamp(value: datetime) -> str:
    # SQLAlchemy's SQLite DATETIME storage: naive UTC, always with microseconds.
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _aware_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)
