"""The SQLite warehouse: one file, written in chunks inside ``BEGIN IMMEDIATE``."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime, timezone
from itertools import repeat
from pathlib import Path
from typing import Any

from airflow_provider_uci.exhaust.warehouse.base import Warehouse
from airflow_provider_uci.exhaust.warehouse.schema import TableSpec, quote_name

#: Rows a statement is given at a time.
CHUNK_ROWS = 5000


class SqliteWarehouse(Warehouse):
    """A SQLite file: responses inserted and users upserted in chunks, inside ``BEGIN IMMEDIATE``.

    The file is put in write-ahead-log mode (``journal_mode=WAL``, which stays with the file), so that
    readers go on reading the last committed state while a load writes, instead of finding the
    database locked once the load's changes outgrow the page cache, or while it commits.
    """

    backend = "sqlite"
    timestamps_as_text = True
    _serial = "id INTEGER PRIMARY KEY AUTOINCREMENT"
    _text = _date = _timestamp = "TEXT"
    _int = _bool = "INTEGER"

    def __init__(self, path: str, url: str) -> None:
        super().__init__(url)
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, timeout=60, isolation_level=None)
        if path != ":memory:":
            try:
                self._conn.execute("PRAGMA journal_mode=WAL")
            except BaseException:
                self._conn.close()
                raise

    def close(self) -> None:
        self._conn.close()

    def _begin(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def _commit(self) -> None:
        self._conn.execute("COMMIT")

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def _create(self, table: str) -> None:
        for statement in self._ddl(table):
            self._conn.execute(statement)

    def _lock(self, table: str, conversation_id: str) -> None:
        """``BEGIN IMMEDIATE`` already lets one writer at a time into the file."""

    def _insert_batches(self, spec: TableSpec, batches: Iterator[Any], load_id: int) -> int:
        insert = f"INSERT INTO {quote_name(spec.name)} ({', '.join(spec.columns)}) VALUES ({', '.join('?' for _ in spec.columns)})"
        written = 0
        for batch in batches:
            for start in range(0, batch.num_rows, CHUNK_ROWS):
                chunk = batch.slice(start, CHUNK_ROWS)
                self._conn.executemany(insert, zip(*(_values(chunk.column(column)) for column in spec.columns[:-1]),
                                                   repeat(load_id), strict=False))
                written += chunk.num_rows
        return written

    def _insert_returning_id(self, sql: str, params: tuple[Any, ...]) -> int:
        return self._conn.execute(sql, params).lastrowid

    def _delete(self, sql: str, params: tuple[Any, ...]) -> int:
        return self._conn.execute(sql, params).rowcount

    def _upsert_users(self, spec: TableSpec, users: Any) -> int:
        marks = ", ".join("?" for _ in spec.columns)
        columns = [_values(users.column(column)) for column in spec.columns]
        self._conn.executemany(
            f"INSERT INTO {quote_name(spec.name)} ({', '.join(spec.columns)}) VALUES ({marks}) "
            f"ON CONFLICT ({', '.join(spec.key)}) DO UPDATE SET {self._update_clause(spec)}", zip(*columns, strict=True))
        return len(set(zip(*(columns[spec.columns.index(column)] for column in spec.key), strict=True)))

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        self._conn.execute(sql, params)

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql, params).fetchall()

    def _exists(self, name: str) -> bool:
        return bool(self._query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)))

    def _now(self) -> str:
        return datetime.now(timezone.utc).isoformat()




def _values(values: Any) -> list[Any]:
    """An arrow column as SQLite stores it: dates and timestamps as ISO 8601 text, the rest as Python values."""
    import pyarrow as pa

    kind = values.type
    if pa.types.is_date(kind):
        return values.cast(pa.string()).to_pylist()
    if pa.types.is_timestamp(kind):
        return [None if moment is None else moment.isoformat() for moment in values.to_pylist()]
    return values.to_pylist()
