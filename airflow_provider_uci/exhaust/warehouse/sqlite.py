"""The SQLite warehouse: one file, written in chunks inside ``BEGIN IMMEDIATE``."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime, timezone
from itertools import repeat
from typing import Any, cast

from airflow_provider_uci.exhaust.safe_files import create_private_empty
from airflow_provider_uci.exhaust.warehouse.base import Warehouse
from airflow_provider_uci.exhaust.warehouse.schema import TableSpec, quote_name

#: Rows a statement is given at a time.
CHUNK_ROWS = 5000
#: The page size of a new file: wide rows written in bulk fill fewer, fuller pages, and the load writes
#: and checkpoints about a fifth less than with SQLite's 4 KiB. A file keeps the size it was made with.
PAGE_BYTES = 16384


class SqliteWarehouse(Warehouse):
    """A SQLite file: responses inserted and users upserted in chunks, inside ``BEGIN IMMEDIATE``.

    The file is put in write-ahead-log mode (``journal_mode=WAL``, which stays with the file), so that
    readers go on reading the last committed state while a load writes, instead of finding the
    database locked once the load's changes outgrow the page cache, or while it commits.

    A responses table that a load creates gets its day index once its rows are in (one sort, instead
    of an index entry per row), and has nothing of an earlier load to replace. Users are upserted in
    key order, so that each lands beside the last instead of anywhere in the key's B-tree.
    """

    backend = "sqlite"
    timestamps_as_text = True
    _serial = "id INTEGER PRIMARY KEY AUTOINCREMENT"
    _text = _date = _timestamp = "TEXT"
    _int = _bool = "INTEGER"

    def __init__(self, path: str, url: str) -> None:
        super().__init__(url)
        if path != ":memory:":
            # it holds phone numbers: a new file is made 0600 (SQLite gives its -wal and -shm files the same
            # mode) in folders made 0700, never through a link; an existing file keeps its mode
            create_private_empty(path, field="warehouse")
        self._conn = sqlite3.connect(path, timeout=60, isolation_level=None)
        self._created: str | None = None  # a responses table this load created: its index made after its rows
        if path != ":memory:":
            try:
                self._conn.execute(
                    f"PRAGMA page_size={PAGE_BYTES}"
                )  # a new file only: before its first table
                self._conn.execute("PRAGMA journal_mode=WAL")
            except BaseException:
                self._conn.close()
                raise

    def close(self) -> None:
        self._conn.close()

    def _begin(self) -> None:
        self._created = None
        self._conn.execute("BEGIN IMMEDIATE")

    def _commit(self) -> None:
        self._conn.execute("COMMIT")

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def _create(self, table: str) -> None:
        if not self._exists(table):
            self._created = table
        index = self._index_ddl(table)
        for statement in self._ddl(table):
            if statement != index or self._created is None:
                self._conn.execute(statement)

    def _lock(self, table: str, conversation_id: str) -> None:
        """``BEGIN IMMEDIATE`` already lets one writer at a time into the file."""

    def _insert_batches(self, spec: TableSpec, batches: Iterator[Any], load_id: int) -> int:
        insert = f"INSERT INTO {quote_name(spec.name)} ({', '.join(spec.columns)}) VALUES ({', '.join('?' for _ in spec.columns)})"
        written = 0
        for batch in batches:
            for start in range(0, batch.num_rows, CHUNK_ROWS):
                chunk = batch.slice(start, CHUNK_ROWS)
                self._conn.executemany(
                    insert,
                    zip(
                        *(_values(chunk.column(column)) for column in spec.columns[:-1]),
                        repeat(load_id),
                        strict=False,
                    ),
                )
                written += chunk.num_rows
        if self._created == spec.name:
            self._conn.execute(self._index_ddl(spec.name))
        return written

    def _replace(self, table: str, conversation_id: str, low: str, high: str, load_id: int) -> int:
        if table == self._created:
            return 0  # created by this load: nothing of an earlier one to replace
        return super()._replace(table, conversation_id, low, high, load_id)

    def _insert_returning_id(self, sql: str, params: tuple[Any, ...]) -> int:
        return cast(int, self._conn.execute(sql, params).lastrowid)  # an INSERT's; None only before one

    def _delete(self, sql: str, params: tuple[Any, ...]) -> int:
        return self._conn.execute(sql, params).rowcount

    def _upsert_users(self, spec: TableSpec, users: Any) -> int:
        import pyarrow.compute as pc

        upsert = (
            f"INSERT INTO {quote_name(spec.name)} ({', '.join(spec.columns)}) "
            f"VALUES ({', '.join('?' for _ in spec.columns)}) "
            f"ON CONFLICT ({', '.join(spec.key)}) DO UPDATE SET {self._update_clause(spec)}"
        )
        # a stable sort: of rows with the same key, the last is still written last, and wins
        order = pc.sort_indices(users, [(column, "ascending") for column in spec.key])
        for start in range(0, len(order), CHUNK_ROWS):
            chunk = users.take(order[start : start + CHUNK_ROWS])
            self._conn.executemany(
                upsert, zip(*(_values(chunk.column(column)) for column in spec.columns), strict=True)
            )
        return int(users.group_by(list(spec.key)).aggregate([]).num_rows)

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        self._conn.execute(sql, params)

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = self._conn.execute(sql, params).fetchall()
        return rows

    def _exists(self, name: str) -> bool:
        return bool(self._query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)))

    def _columns(self, name: str) -> set[str]:
        return {row[1] for row in self._query(f"PRAGMA table_info({quote_name(name)})")}

    def _now(self) -> str:
        return datetime.now(timezone.utc).isoformat()


def _values(values: Any) -> list[Any]:
    """An arrow column as SQLite stores it: dates and timestamps as ISO 8601 text, the rest as Python values."""
    import pyarrow as pa

    kind = values.type
    stored: list[Any]
    if pa.types.is_date(kind):
        stored = values.cast(pa.string()).to_pylist()
    elif pa.types.is_timestamp(kind):
        stored = [None if moment is None else moment.isoformat() for moment in values.to_pylist()]
    else:
        stored = values.to_pylist()
    return stored
