"""The SQLite warehouse: one file, written in chunks inside ``BEGIN IMMEDIATE``."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime, timezone
from itertools import islice
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

    def _insert(self, spec: TableSpec, rows: Iterator[tuple[Any, ...]]) -> int:
        insert = f"INSERT INTO {quote_name(spec.name)} ({', '.join(spec.columns)}) VALUES ({', '.join('?' for _ in spec.columns)})"
        written = 0
        while chunk := list(islice(rows, CHUNK_ROWS)):
            self._conn.executemany(insert, chunk)
            written += len(chunk)
        return written

    def _insert_returning_id(self, sql: str, params: tuple[Any, ...]) -> int:
        return self._conn.execute(sql, params).lastrowid

    def _delete(self, sql: str, params: tuple[Any, ...]) -> int:
        return self._conn.execute(sql, params).rowcount

    def _upsert(self, spec: TableSpec, rows: Iterator[tuple[Any, ...]]) -> int:
        marks = ", ".join("?" for _ in spec.columns)
        upsert = (f"INSERT INTO {quote_name(spec.name)} ({', '.join(spec.columns)}) VALUES ({marks}) "
                  f"ON CONFLICT ({', '.join(spec.key)}) DO UPDATE SET {self._update_clause(spec)}")
        # Distinct keys are counted in a temporary table, so memory stays flat whatever the row count.
        self._conn.execute("DROP TABLE IF EXISTS temp._uci_keys")
        self._conn.execute(f"CREATE TEMP TABLE _uci_keys ({', '.join(spec.key)}, PRIMARY KEY ({', '.join(spec.key)}))"
                           " WITHOUT ROWID")
        positions = [spec.columns.index(column) for column in spec.key]
        remember = f"INSERT OR IGNORE INTO temp._uci_keys VALUES ({', '.join('?' for _ in spec.key)})"
        while chunk := list(islice(rows, CHUNK_ROWS)):
            self._conn.executemany(upsert, chunk)
            self._conn.executemany(remember, [tuple(row[at] for at in positions) for row in chunk])
        written = self._conn.execute("SELECT count(*) FROM temp._uci_keys").fetchone()[0]
        self._conn.execute("DROP TABLE temp._uci_keys")
        return written

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        self._conn.execute(sql, params)

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql, params).fetchall()

    def _exists(self, name: str) -> bool:
        return bool(self._query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)))

    def _now(self) -> str:
        return datetime.now(timezone.utc).isoformat()


