"""The ``job_request`` table of the real service (docs/service-contract.md §3.1), in SQLite or PostgreSQL.

Timestamps are stored as the real service stores them: naive ``TIMESTAMP`` values in the service's
own time zone (the JDBC driver writes the JVM's local time). Rows come back as :class:`JobRow`.

One departure from the real table: a request's zip password is not kept in ``encryption_key`` (left
NULL) but sealed (``crypto.seal``) in the side table ``job_request_key``, so that the store's file
holds no password; the length rule of the real column still applies to it. The SQLite file is made
``0600`` in a folder made ``0700``.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from airflow_provider_uci.emulator.crypto import seal, unseal
from airflow_provider_uci.exhaust.safe_files import create_private_empty
from airflow_provider_uci.exhaust.warehouse.urls import one_line, postgres_connect_args, redact_url
from airflow_provider_uci.extras import require

ERR_MESSAGE_LIMIT = 300
#: PostgreSQL connections the store keeps open at most.
POOL_SIZE = 16

#: The real service's table (docs/service-contract.md §3.1), in each database's spelling of JSON and of the
#: URL list.
DDL = """
CREATE TABLE IF NOT EXISTS job_request (
    tag VARCHAR(100) NOT NULL,
    request_id VARCHAR(50) NOT NULL,
    job_id VARCHAR(50),
    status VARCHAR(50),
    request_data {json},
    requested_by VARCHAR(50),
    requested_channel VARCHAR(50),
    dt_job_submitted TIMESTAMP,
    download_urls {urls},
    dt_file_created TIMESTAMP,
    dt_job_completed TIMESTAMP,
    execution_time INTEGER,
    err_message VARCHAR(300),
    iteration INTEGER,
    encryption_key VARCHAR(50),
    batch_number INTEGER,
    processed_batches TEXT,
    PRIMARY KEY (tag, request_id)
)
"""
SQLITE_DDL = DDL.format(json="JSON", urls="TEXT")
POSTGRES_DDL = DDL.format(json="json", urls="text[]")
#: The sealed zip passwords (``crypto.seal``), beside the real table.
KEY_DDL = """
CREATE TABLE IF NOT EXISTS job_request_key (
    tag VARCHAR(100) NOT NULL,
    request_id VARCHAR(50) NOT NULL,
    sealed_key TEXT NOT NULL,
    PRIMARY KEY (tag, request_id)
)
"""

COLUMNS = (
    "tag, request_id, job_id, status, request_data, requested_by, requested_channel, dt_job_submitted, "
    "download_urls, dt_file_created, dt_job_completed, execution_time, err_message, iteration, "
    "coalesce((SELECT sealed_key FROM job_request_key AS k WHERE k.tag = job_request.tag "
    "AND k.request_id = job_request.request_id), encryption_key)"
)

GET_SQL = f"SELECT {COLUMNS} FROM job_request WHERE tag = ? AND request_id = ?"

#: The columns whose limits make the real service fail (with a database error) rather than truncate.
LENGTH_LIMITS = {"tag": 100, "requested_by": 50, "requested_channel": 50, "encryption_key": 50}


class StoreError(RuntimeError):
    """The database refused a write, as the real service's PostgreSQL would."""


@dataclass(frozen=True)
class JobRow:
    """One ``job_request`` row; times are timezone-aware."""

    tag: str
    request_id: str
    job_id: str
    status: str
    request_data: Any
    requested_by: str
    requested_channel: str
    dt_job_submitted: datetime
    download_urls: list[str]
    dt_file_created: datetime | None
    dt_job_completed: datetime | None
    execution_time: int | None
    err_message: str | None
    iteration: int
    encryption_key: str | None


def abbreviate(message: str, limit: int = ERR_MESSAGE_LIMIT) -> str:
    """Shorten like Commons ``StringUtils.abbreviate``: at most ``limit`` characters, ending in ``...``."""
    return message if len(message) <= limit else message[: limit - 3] + "..."


class JobStore:
    """The job table, with the real service's upsert and query rules."""

    def __init__(
        self,
        tz: ZoneInfo,
        *,
        sqlite_path: Path | None = None,
        database_url: str | None = None,
        sealing_key: bytes | None = None,
    ) -> None:
        """:param sealing_key: the key zip passwords are sealed with (``crypto.sealing_key``); by default a
        new one, so that a password outlives this store only sealed under a key nobody kept."""
        if (sqlite_path is None) == (database_url is None):
            raise ValueError("JobStore needs exactly one of sqlite_path or database_url")
        self.tz = tz
        self._sealing_key = sealing_key or secrets.token_bytes(32)
        self.is_postgres = database_url is not None
        self._local = threading.local()
        if database_url is not None:
            require(["postgres"], "a PostgreSQL job store")
            import psycopg2.pool

            try:
                self._pool = psycopg2.pool.ThreadedConnectionPool(
                    1, POOL_SIZE, **postgres_connect_args(database_url)
                )
            except (psycopg2.Error, ValueError) as exc:  # told without any piece of the URL's password
                raise StoreError(
                    f"job store: cannot connect to {redact_url(database_url)}: {one_line(exc, database_url)}"
                ) from None
            # The pool opens connections as they are needed, but closes a returned one whenever
            # ``minconn`` idle ones are kept already, so under concurrent calls nearly every call would
            # open a new PostgreSQL connection. Keep every connection it opens instead.
            self._pool.minconn = POOL_SIZE
            # The pool raises instead of waiting when all its connections are out: callers queue here.
            self._pool_slots = threading.BoundedSemaphore(POOL_SIZE)
            with self._cursor() as cur:
                cur.execute(POSTGRES_DDL)
                cur.execute(KEY_DDL)
        else:
            assert sqlite_path is not None
            create_private_empty(sqlite_path, field="job store")  # 0600, in a folder made 0700
            self._sqlite_path = str(sqlite_path)
            # The journal mode cannot change inside a transaction (SQLite ignores it there), so it is
            # set on the bare connection before the first one.
            self._sqlite().execute("PRAGMA journal_mode=WAL")
            with self._cursor() as cur:
                cur.execute(SQLITE_DDL)
                cur.execute(KEY_DDL)

    # -- connections ---------------------------------------------------------------------------

    def _sqlite(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self._sqlite_path, timeout=30, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        """A cursor inside one transaction, committed on success and rolled back on error."""
        if self.is_postgres:
            with self._pool_slots:
                conn = self._pool.getconn()
                try:
                    with conn, conn.cursor() as cur:
                        yield cur
                except Exception as exc:
                    if type(exc).__module__.startswith("psycopg2"):
                        raise StoreError(str(exc).strip()) from exc
                    raise
                finally:
                    self._pool.putconn(conn)
        else:
            conn = self._sqlite()
            cur = conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            else:
                conn.execute("COMMIT")
            finally:
                cur.close()

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.is_postgres else statement

    def close(self) -> None:
        """Release the connections."""
        if self.is_postgres:
            self._pool.closeall()
        else:
            conn = getattr(self._local, "conn", None)
            if conn is not None:
                conn.close()
                self._local.conn = None

    # -- conversions ---------------------------------------------------------------------------

    def _to_db_time(self, instant: datetime) -> Any:
        local = instant.astimezone(self.tz).replace(tzinfo=None)
        return local if self.is_postgres else local.isoformat(sep=" ", timespec="milliseconds")

    def _from_db_time(self, value: Any) -> datetime | None:
        if value is None:
            return None
        naive = value if isinstance(value, datetime) else datetime.fromisoformat(value)
        return naive.replace(tzinfo=self.tz)

    def _row(self, values: Sequence[Any]) -> JobRow:
        (
            tag,
            request_id,
            job_id,
            status,
            request_data,
            requested_by,
            requested_channel,
            submitted,
            urls,
            file_created,
            completed,
            execution_time,
            err_message,
            iteration,
            encryption_key,
        ) = values
        if isinstance(request_data, str):
            request_data = json.loads(request_data)
        if isinstance(urls, str):
            urls = json.loads(urls)
        submitted_at = self._from_db_time(submitted)
        assert submitted_at is not None
        return JobRow(
            tag=tag,
            request_id=request_id,
            job_id=job_id,
            status=status,
            request_data=request_data,
            requested_by=requested_by,
            requested_channel=requested_channel,
            dt_job_submitted=submitted_at,
            download_urls=list(urls or []),
            dt_file_created=self._from_db_time(file_created),
            dt_job_completed=self._from_db_time(completed),
            execution_time=execution_time,
            err_message=err_message,
            iteration=iteration or 0,
            encryption_key=None if encryption_key is None else unseal(encryption_key, self._sealing_key),
        )

    def _urls(self, urls: list[str]) -> Any:
        return list(urls) if self.is_postgres else json.dumps(urls)

    # -- the API's queries ---------------------------------------------------------------------

    def get(self, tag: str, request_id: str) -> JobRow | None:
        """Return the row with exactly this ``tag`` (``tag:channel``) and ``request_id``."""
        if not self.is_postgres:
            # A single SELECT is its own read transaction: it needs neither BEGIN IMMEDIATE (the write
            # lock) nor a COMMIT, which would cost a read more than the query itself.
            found = self._sqlite().execute(GET_SQL, (tag, request_id)).fetchone()
            return self._row(found) if found else None
        with self._cursor() as cur:
            cur.execute(self._sql(GET_SQL), (tag, request_id))
            found = cur.fetchone()
        return self._row(found) if found else None

    def submit(
        self,
        *,
        tag: str,
        request_id: str,
        job_id: str,
        request_data: Any,
        requested_by: str,
        requested_channel: str,
        encryption_key: str | None,
        now: datetime,
    ) -> JobRow:
        """Insert a new SUBMITTED row, or reset a FAILED one; any other existing row is left as it is."""
        self._check_lengths(
            tag=tag,
            requested_by=requested_by,
            requested_channel=requested_channel,
            encryption_key=encryption_key,
        )
        data = json.dumps(request_data, ensure_ascii=False)
        submitted = self._to_db_time(now)
        with self._cursor() as cur:
            cur.execute(
                self._sql(
                    "INSERT INTO job_request (tag, request_id, job_id, status, request_data, requested_by, "
                    "requested_channel, dt_job_submitted, download_urls, iteration, encryption_key) "
                    "VALUES (?, ?, ?, 'SUBMITTED', ?, ?, ?, ?, ?, 0, NULL) ON CONFLICT (tag, request_id) DO NOTHING"
                ),
                (tag, request_id, job_id, data, requested_by, requested_channel, submitted, self._urls([])),
            )
            written = cur.rowcount
            if written == 0:
                cur.execute(
                    self._sql(
                        "UPDATE job_request SET status = 'SUBMITTED', dt_job_submitted = ?, request_data = ?, "
                        "encryption_key = NULL, requested_by = ?, requested_channel = ?, job_id = ? "
                        "WHERE tag = ? AND request_id = ? AND upper(status) = 'FAILED'"
                    ),
                    (submitted, data, requested_by, requested_channel, job_id, tag, request_id),
                )
                written = cur.rowcount
            if written:  # the request's key, sealed, replaces any earlier one
                cur.execute(
                    self._sql("DELETE FROM job_request_key WHERE tag = ? AND request_id = ?"),
                    (tag, request_id),
                )
                if encryption_key is not None:
                    cur.execute(
                        self._sql(
                            "INSERT INTO job_request_key (tag, request_id, sealed_key) VALUES (?, ?, ?)"
                        ),
                        (tag, request_id, seal(encryption_key, self._sealing_key)),
                    )
            cur.execute(
                self._sql(f"SELECT {COLUMNS} FROM job_request WHERE tag = ? AND request_id = ?"),
                (tag, request_id),
            )
            row = cur.fetchone()
        return self._row(row)

    def list(self, tag: str, limit: int) -> list[JobRow]:
        """Return the rows under ``tag``, newest submission first, at most ``limit``."""
        if limit < 0:
            raise StoreError(f"ERROR: LIMIT must not be negative (limit {limit})")
        with self._cursor() as cur:
            cur.execute(
                self._sql(
                    f"SELECT {COLUMNS} FROM job_request WHERE tag = ? ORDER BY dt_job_submitted DESC LIMIT ?"
                ),
                (tag, limit),
            )
            rows = cur.fetchall()
        return [self._row(row) for row in rows]

    def search(self, filters: dict[str, str], limit: int) -> tuple[int, list[JobRow]]:
        """Return the number of rows matching ``filters`` and the newest ``limit`` of them."""
        clauses, params = [], []
        for key, column in (("dataset", "job_id"), ("status", "status"), ("channel", "requested_channel")):
            if key in filters:
                clauses.append(f"{column} = ?")
                params.append(filters[key])
        if "requestedDate" in filters:
            clauses.append("date(dt_job_submitted) = ?")
            params.append(filters["requestedDate"])
        where = " AND ".join(clauses) or "1=1"
        with self._cursor() as cur:
            cur.execute(self._sql(f"SELECT count(*) FROM job_request WHERE {where}"), params)
            total = cur.fetchone()[0]
            cur.execute(
                self._sql(
                    f"SELECT {COLUMNS} FROM job_request WHERE {where} ORDER BY dt_job_submitted DESC LIMIT ?"
                ),
                [*params, limit],
            )
            rows = cur.fetchall()
        return total, [self._row(row) for row in rows]

    # -- the nightly jobs' queries -------------------------------------------------------------

    def pending(self, datasets: Sequence[str], max_iterations: int) -> list[JobRow]:
        """Rows the nightly job picks: its datasets, SUBMITTED or FAILED, fewer than ``max_iterations``."""
        marks = ", ".join("?" for _ in datasets)
        with self._cursor() as cur:
            cur.execute(
                self._sql(
                    f"SELECT {COLUMNS} FROM job_request WHERE job_id IN ({marks}) AND iteration < ? "
                    "AND status IN ('SUBMITTED', 'FAILED') ORDER BY dt_job_submitted"
                ),
                (*datasets, max_iterations),
            )
            rows = cur.fetchall()
        return [self._row(row) for row in rows]

    def mark_success(
        self, tag: str, request_id: str, *, download_urls: list[str], execution_time: int, completed: datetime
    ) -> None:
        """Record a successful run; a NULL ``err_message`` becomes ``""`` and an old one is kept."""
        with self._cursor() as cur:
            cur.execute(
                self._sql(
                    "UPDATE job_request SET status = 'SUCCESS', download_urls = ?, execution_time = ?, "
                    "dt_job_completed = ?, err_message = coalesce(err_message, '') WHERE tag = ? AND request_id = ?"
                ),
                (self._urls(download_urls), execution_time, self._to_db_time(completed), tag, request_id),
            )

    def mark_failed(
        self, tag: str, request_id: str, *, message: str, completed: datetime, execution_time: int = 0
    ) -> None:
        """Record a failed run: one more iteration and the message, cut to 300 characters."""
        with self._cursor() as cur:
            cur.execute(
                self._sql(
                    "UPDATE job_request SET status = 'FAILED', dt_job_completed = ?, iteration = iteration + 1, "
                    "err_message = ?, execution_time = ? WHERE tag = ? AND request_id = ?"
                ),
                (self._to_db_time(completed), abbreviate(message), execution_time, tag, request_id),
            )

    @staticmethod
    def _check_lengths(**values: str | None) -> None:
        for column, value in values.items():
            limit = LENGTH_LIMITS[column]
            if value is not None and len(value) > limit:
                raise StoreError(f"ERROR: value too long for type character varying({limit})")
