"""The PostgreSQL warehouse: every row goes in through binary ``COPY ... FROM STDIN``.

Responses are copied straight into the responses table (a load replaces whole days, so there is no
conflict to resolve), their batches encoded in C (``pg_binary``) by threads, produced on a thread of
their own, so that reading and checking the next rows overlaps with the server's work on the last.
The responses table's index is a BRIN index (see :meth:`PostgresWarehouse._index_ddl`). Users go to
a temporary staging table and one
``INSERT ... SELECT DISTINCT ON ... ON CONFLICT`` upserts them; a users table a load creates is
filled first and then given its primary key (one sorted build instead of an entry per row).
"""

from __future__ import annotations

import queue
import threading
import zlib
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from airflow_provider_uci.exhaust.pipeline import in_order
from airflow_provider_uci.exhaust.warehouse.base import Warehouse
from airflow_provider_uci.exhaust.warehouse.pg_binary import (
    PG_BINARY_HEADER,
    PG_BINARY_TRAILER,
    pg_binary_rows,
)
from airflow_provider_uci.exhaust.warehouse.schema import (
    TIMESTAMP_COLUMNS,
    USER_KEY,
    TableSpec,
    day_index_name,
    quote_name,
    table_specs,
)
from airflow_provider_uci.exhaust.warehouse.urls import postgres_connect_args

#: Chunks of ``COPY`` data made ahead of the server.
PREFETCH_DEPTH = 4
#: Bytes psycopg2 reads from a ``COPY`` stream at a time: fewer, larger reads cost less.
COPY_READ = 1 << 20
#: Threads that encode response batches at once.
ENCODERS = 2
#: Users encoded at a time.
USER_ROWS = 20_000


def _typed(values: Any, column: str) -> Any:
    """A batch's column as ``COPY`` takes it: a timestamp given as text is typed (ISO 8601)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if column in TIMESTAMP_COLUMNS and not pa.types.is_timestamp(values.type):
        try:
            return pc.cast(values, pa.timestamp("us", "UTC"))
        except pa.ArrowInvalid:
            raise ValueError(
                f"responses: {column} holds text that is not an ISO 8601 timestamp with its zone"
            ) from None
    return values


class _Prefetched:
    """A file-like object over byte chunks that a thread produces ahead of the reader (a few at most).

    An error in the producer is raised by :meth:`read`, and kept in ``error`` (psycopg2 replaces it).
    """

    def __init__(self, chunks: Iterator[bytes | memoryview], depth: int | None = None) -> None:
        self._queue: queue.Queue[tuple[bytes | memoryview | None, BaseException | None]] = queue.Queue(
            depth or PREFETCH_DEPTH
        )
        self._stop = threading.Event()
        self._buffer = memoryview(b"")
        self.error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._produce, args=(chunks,), name="uci-copy-reader", daemon=True
        )
        self._thread.start()

    def _produce(self, chunks: Iterator[bytes | memoryview]) -> None:
        try:
            for chunk in chunks:
                while not self._stop.is_set():
                    try:
                        self._queue.put((chunk, None), timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
            self._queue.put((None, None))
        except BaseException as exc:
            self._queue.put((None, exc))

    def read(self, size: int = -1) -> bytes:
        if self.error is not None:  # read again after an error: the producer is gone
            raise self.error
        while not self._buffer:
            chunk, error = self._queue.get()
            if error is not None:
                self.error = error
                raise error
            if chunk is None:
                self._queue.put((None, None))  # a later read finds the end again
                return b""
            self._buffer = memoryview(chunk)
        size = len(self._buffer) if size is None or size < 0 else size
        piece, self._buffer = self._buffer[:size], self._buffer[size:]
        return bytes(piece)

    def close(self) -> None:
        """Stop the producer (if the copy ended early) and wait for it."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.1)
            except queue.Empty:
                pass
        self._thread.join()


class PostgresWarehouse(Warehouse):
    """PostgreSQL through psycopg2; ``COPY`` for every row (see the module)."""

    backend = "postgres"
    param = "%s"
    _binary_order = ' COLLATE "C"'
    _serial = "id bigserial PRIMARY KEY"
    _text = "text"
    _date = "date"
    _int = "bigint"
    _bool = "boolean"
    _timestamp = "timestamptz"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        import psycopg2

        self._psycopg2 = psycopg2
        # a server that does not answer fails the load in seconds, not at the system's TCP timeout
        args = postgres_connect_args(url)  # read as it is shown redacted: no piece of the password is misread
        self._conn = psycopg2.connect(**{"connect_timeout": "15", **args})
        self._conn.set_client_encoding("UTF8")
        with self._conn.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")
        self._conn.commit()
        self._fresh: dict[
            str, TableSpec
        ] = {}  # tables created by this load, still without their key or index

    def close(self) -> None:
        self._conn.close()

    def _begin(self) -> None:
        self._conn.rollback()  # psycopg2 opens the transaction with the first statement
        self._fresh = {}

    def _commit(self) -> None:
        for spec in list(self._fresh.values()):
            if spec.key == USER_KEY:
                self._index(spec)  # a created users table that got no rows still gets its key
        self._conn.commit()

    def _rollback(self) -> None:
        self._fresh = {}
        self._conn.rollback()

    def _exist(self, names: list[str]) -> list[bool]:
        found = self._query(
            "SELECT " + ", ".join("to_regclass(%s)" for _ in names), tuple(map(quote_name, names))
        )[0]
        return [value is not None for value in found]

    def _create(self, table: str) -> None:
        specs = table_specs(table)
        names = [spec.name for spec in specs] + [f"{table}_loads"]
        if all(self._exist(names)):
            return
        # Two first loads into one table at once must not both create it: the second waits, then sees it.
        self._query("SELECT pg_advisory_xact_lock(%s)", (zlib.crc32(f"uci-warehouse:{table}".encode()),))
        # Read the catalog itself: to_regclass may still answer from this session's cache, from before
        # the lock was granted. A table is made where CREATE TABLE would make it (the current schema).
        here = {
            row[0]
            for row in self._query(
                "SELECT relname FROM pg_catalog.pg_class WHERE relname = ANY(%s) AND relnamespace = "
                "(SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = current_schema())",
                (names,),
            )
        }
        for spec in specs:
            if spec.name not in here:
                self._execute(self._table_ddl(spec, with_key=False))
                self._fresh[spec.name] = spec
        self._execute(self._index_ddl(table))
        self._execute(self._loads_ddl(table))

    def _type(self, column: str) -> str:
        kind = super()._type(column)
        # identifiers compare byte by byte, as SQLite compares them: faster to sort, index and join on
        return (
            f'{kind} COLLATE "C"'
            if column in ("conversation_id", "message_id", "device_id", "question_id", "device_uuid")
            else kind
        )

    def _index(self, spec: TableSpec) -> int:
        """Give a users table this load created its primary key; a repeated key keeps its last row.
        Return the rows removed."""
        key = ", ".join(spec.key)
        removed = 0
        with self._conn.cursor() as cur:
            cur.execute("SAVEPOINT uci_key")
            try:
                cur.execute(f"ALTER TABLE {quote_name(spec.name)} ADD PRIMARY KEY ({key})")
            except self._psycopg2.errors.UniqueViolation:
                cur.execute("ROLLBACK TO SAVEPOINT uci_key")
                # rows went in by one COPY into a new table, so their physical order is the order they came in
                same = " AND ".join(f"older.{column} = newer.{column}" for column in spec.key)
                cur.execute(
                    f"DELETE FROM {quote_name(spec.name)} AS older USING {quote_name(spec.name)} AS newer "
                    f"WHERE {same} AND older.ctid < newer.ctid"
                )
                removed = cur.rowcount
                cur.execute(f"ALTER TABLE {quote_name(spec.name)} ADD PRIMARY KEY ({key})")
            cur.execute("RELEASE SAVEPOINT uci_key")
        del self._fresh[spec.name]
        return removed

    def _index_ddl(self, table: str) -> str:
        """A BRIN index: a load appends a bot's days together, so block ranges find them; it costs next to
        nothing to build or keep up, where a B-tree entry per row would cost the load a tenth of its time."""
        return (
            f"CREATE INDEX IF NOT EXISTS {day_index_name(table)} ON {quote_name(table)} USING brin (conversation_id, sync_date)"
            " WITH (autosummarize = on)"
        )

    def _lock(self, table: str, conversation_id: str) -> None:
        """One load of a bot into a table at a time: each replaces what the other would see."""
        self._query(
            "SELECT pg_advisory_xact_lock(%s)", (zlib.crc32(f"uci-load:{table}:{conversation_id}".encode()),)
        )

    def _copy(
        self, spec: TableSpec, stream: Any, columns: tuple[str, ...], target: str | None = None
    ) -> None:
        with self._conn.cursor() as cur:
            try:
                cur.copy_expert(
                    f"COPY {target or quote_name(spec.name)} ({', '.join(columns)}) FROM STDIN "
                    "WITH (FORMAT binary)",
                    stream,
                    size=COPY_READ,
                )
            except self._psycopg2.Error as exc:
                if stream.error is not None:
                    raise stream.error from exc
                raise

    def _insert_batches(self, spec: TableSpec, batches: Iterator[Any], load_id: int) -> int:
        import pyarrow as pa

        rows = [0]

        def encode(batch: Any) -> memoryview | bytes:
            columns = [_typed(batch.column(column), column) for column in spec.columns[:-1]]
            return pg_binary_rows([*columns, pa.repeat(pa.scalar(load_id, pa.int64()), batch.num_rows)])

        def chunks() -> Iterator[memoryview | bytes]:
            yield PG_BINARY_HEADER
            for batch, chunk in in_order(lambda batch: (batch, encode(batch)), batches, ENCODERS):
                rows[0] += batch.num_rows
                yield chunk
            yield PG_BINARY_TRAILER

        stream = _Prefetched(chunks())
        try:
            self._copy(spec, stream, spec.columns)
        finally:
            stream.close()
        return rows[0]

    def _replace(self, table: str, conversation_id: str, low: str, high: str, load_id: int) -> int:
        if table in self._fresh:
            return 0  # created by this load: nothing of an earlier one to replace
        return super()._replace(table, conversation_id, low, high, load_id)

    def _upsert_users(self, spec: TableSpec, users: Any) -> int:
        import pyarrow as pa

        ordinal = spec.name not in self._fresh

        def chunks() -> Iterator[memoryview | bytes]:
            yield PG_BINARY_HEADER
            for start in range(0, users.num_rows, USER_ROWS):
                part = users.slice(start, USER_ROWS)
                columns = [part.column(column).combine_chunks() for column in spec.columns]
                if ordinal:
                    columns.append(pa.array(range(start + 1, start + part.num_rows + 1), pa.int64()))
                yield pg_binary_rows(columns)
            yield PG_BINARY_TRAILER

        stream = _Prefetched(chunks())
        try:
            return self._upsert_from(spec, stream, users.num_rows)
        finally:
            stream.close()

    def _upsert_from(self, spec: TableSpec, stream: Any, copied: int) -> int:
        """Copy users from ``stream`` into a users table this load created, then give it its key; or into a
        staging table (with each row's ordinal last), then upsert them. ``copied`` is how many rows come."""
        columns = ", ".join(spec.columns)
        if spec.name in self._fresh:
            self._copy(spec, stream, spec.columns)
            return copied - self._index(spec)
        with self._conn.cursor() as cur:
            target = "_uci_stage_users"
            definitions = ", ".join(f"{column} {self._type(column)}" for column in spec.columns)
            cur.execute(
                f"CREATE TEMPORARY TABLE {target} ({definitions}, _ordinal bigint NOT NULL) ON COMMIT DROP"
            )
        self._copy(spec, stream, (*spec.columns, "_ordinal"), target=target)
        with self._conn.cursor() as cur:
            key = ", ".join(spec.key)
            values = [column for column in spec.columns if column not in spec.key]
            # a row that would not change is left alone (a rerun writes nothing), so the rows written
            # are the keys only when every row was new or changed; otherwise the keys are counted
            cur.execute(
                f"INSERT INTO {quote_name(spec.name)} AS target ({columns}) SELECT DISTINCT ON ({key}) {columns} "
                f"FROM {target} ORDER BY {key}, _ordinal DESC "
                f"ON CONFLICT ({key}) DO UPDATE SET {self._update_clause(spec)} "
                f"WHERE ({', '.join(f'target.{column}' for column in values)}) IS DISTINCT FROM "
                f"({', '.join(f'excluded.{column}' for column in values)})"
            )
            written: int = cur.rowcount
            if written != copied:
                cur.execute(f"SELECT count(*) FROM (SELECT DISTINCT {key} FROM {target}) AS keys")
                written = cur.fetchone()[0]
            cur.execute(f"DROP TABLE {target}")
        return written

    def _insert_returning_id(self, sql: str, params: tuple[Any, ...]) -> int:
        return int(self._query(sql + " RETURNING id", params)[0][0])

    def _delete(self, sql: str, params: tuple[Any, ...]) -> int:
        with self._conn.cursor() as cur:
            cur.execute(sql, params)
            return int(cur.rowcount)

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        with self._conn.cursor() as cur:
            cur.execute(sql, params or None)

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._conn.cursor() as cur:
            cur.execute(sql, params or None)
            rows: list[tuple[Any, ...]] = cur.fetchall()
            return rows

    def _exists(self, name: str) -> bool:
        return bool(self._query("SELECT to_regclass(%s) IS NOT NULL", (quote_name(name),))[0][0])

    def _columns(self, name: str) -> set[str]:
        return {
            row[0]
            for row in self._query(
                "SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 "
                "AND NOT attisdropped",
                (quote_name(name),),
            )
        }

    def _now(self) -> datetime:
        return datetime.now(timezone.utc)
