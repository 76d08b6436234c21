"""Load joined responses and users into a warehouse table: SQLite file or PostgreSQL (COPY fast path).

A load is one transaction per bot and range: the tables are created if missing, every user and response
is upserted on its key (a key seen again takes the new values, the last of a batch wins), an audit row
is added to ``<table>_loads``, and only then is it committed. Any error rolls all of it back, so a
rerun of the same files gives the same table.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import zlib
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, timezone
from itertools import islice
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

from airflow_provider_uci.exhaust.records import KEY_FIELDS, RESPONSE_TABLE_COLUMNS, USER_TABLE_COLUMNS

log = logging.getLogger(__name__)

TABLE_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,50}$")
URL_FORMS = ("sqlite:///relative/path.db, sqlite:////absolute/path.db or "
             "postgresql://user:password@host:port/database (or postgres://...)")
AUDIT_FIELDS = ("response_request_id", "private_request_id", "rejected")
USER_KEY = ("conversation_id", "device_uuid")
INTEGER_COLUMNS = frozenset({"question_duration", "question_score", "question_max_score"})
BOOLEAN_COLUMNS = frozenset({"eof", "consented"})
TIMESTAMP_COLUMNS = frozenset({"event_timestamp", "at_timestamp"})
CHUNK_ROWS = 5000


class LoadResult(NamedTuple):
    """What one load wrote: distinct response keys and distinct users."""

    responses: int
    users: int


class _Table(NamedTuple):
    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]


def check_table(table: str) -> str:
    """Return ``table`` if it is a plain identifier a warehouse table may be named after, else raise."""
    if not isinstance(table, str) or not TABLE_PATTERN.match(table):
        raise ValueError(f"table: must match {TABLE_PATTERN.pattern} (a letter or _, then up to 50 letters, "
                         f"digits or _), got {table!r}")
    return table


def _tables(table: str) -> tuple[_Table, _Table]:
    check_table(table)
    return (_Table(table, RESPONSE_TABLE_COLUMNS, KEY_FIELDS),
            _Table(f"{table}_users", USER_TABLE_COLUMNS, USER_KEY))


def _q(name: str) -> str:
    return f'"{name}"'


def _day(name: str, value: date | str | None) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        raise ValueError(f"{name}: expected a date, got a datetime {value!r}")
    if isinstance(value, date):
        return value.isoformat()
    try:
        return date.fromisoformat(value).isoformat()
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a date as YYYY-MM-DD, got {value!r}") from None


def _audit(audit: dict[str, Any], resolve: bool) -> tuple[str | None, str | None, int]:
    """The audit fields; ``rejected`` may be a callable, called (``resolve``) once every row is read."""
    unknown = sorted(set(audit) - set(AUDIT_FIELDS))
    if unknown:
        raise ValueError(f"audit: unknown keys {', '.join(unknown)}; accepted: {', '.join(AUDIT_FIELDS)}")
    rejected = audit.get("rejected", 0)
    if callable(rejected):
        rejected = rejected() if resolve else 0
    if isinstance(rejected, bool) or not isinstance(rejected, int) or rejected < 0:
        raise ValueError(f"audit: rejected must be a whole number >= 0, got {rejected!r}")
    return audit.get("response_request_id"), audit.get("private_request_id"), rejected


def _utc_iso(value: datetime | str) -> str:
    """A timestamp as UTC ISO text with milliseconds (microseconds when it has them) and ``Z``."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    value = value.astimezone(timezone.utc)
    fraction = f"{value.microsecond // 1000:03d}" if value.microsecond % 1000 == 0 else f"{value.microsecond:06d}"
    return f"{value:%Y-%m-%dT%H:%M:%S}.{fraction}Z"


def _rows(rows: Iterable[tuple[Any, ...]], width: int, what: str) -> Iterator[tuple[Any, ...]]:
    for number, row in enumerate(rows, start=1):
        if len(row) != width:
            raise ValueError(f"{what}: row {number} has {len(row)} values, expected {width}")
        yield row


def redact_url(url: str) -> str:
    """``url`` with any password (``user:password@`` or a ``password=`` parameter) replaced by ``***``."""
    url = re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:/@?#]*:)[^?#]*@", r"\1***@", url)
    return re.sub(r"(?i)([?&]password=)[^&#]*", r"\1***", url)


def warehouse_url_from_parts(conn_type: str | None, host: str | None, login: str | None, password: str | None,
                             schema: str | None, port: int | str | None) -> str:
    """Build a warehouse URL from an Airflow connection's fields.

    :param conn_type: ``sqlite`` (``host`` is the file path; a ``sqlite:///path`` URI puts it in ``schema``)
        or ``postgres`` / ``postgresql``
        (``schema`` is the database, as in Airflow's Postgres connection).
    """
    kind = (conn_type or "").lower()
    if kind == "sqlite":
        host = host or schema
        if not host:
            raise ValueError("host: a sqlite warehouse connection needs the database file path as its host")
        return f"sqlite:///{host}"
    if kind in ("postgres", "postgresql"):
        user = quote(login or "", safe="")
        credentials = f"{user}:{quote(password, safe='')}@" if password else (f"{user}@" if user else "")
        where = host or ""
        if ":" in where and not where.startswith("["):
            where = f"[{where}]"
        if port not in (None, ""):
            if not str(port).isdigit():
                raise ValueError(f"port: expected a number, got {port!r}")
            where = f"{where}:{port}"
        return f"postgresql://{credentials}{where}/{quote(schema or '', safe='')}"
    raise ValueError(f"conn_type: a warehouse connection must be of type sqlite, postgres or postgresql, "
                     f"got {conn_type!r}")


def open_warehouse(url: str) -> Warehouse:
    """Connect to the warehouse at ``url`` (see :data:`URL_FORMS`); a SQLite file is created if missing."""
    if isinstance(url, str) and url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        return SqliteWarehouse(url[len("sqlite:///"):], url)
    if isinstance(url, str) and url.startswith(("postgresql://", "postgres://")):
        return PostgresWarehouse(url)
    shown = redact_url(url) if isinstance(url, str) else repr(url)
    raise ValueError(f"warehouse: expected {URL_FORMS}, got {shown!r}")


class Warehouse:
    """A connection to the warehouse; one :meth:`load` is one transaction. Use as a context manager."""

    backend = ""

    def __init__(self, url: str) -> None:
        self._url = redact_url(url)
        self._loading = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._url}>"

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def load(self, *, table: str, conversation_id: str, from_date: date | str | None, to_date: date | str | None,
             responses: Iterable[tuple[Any, ...]], users: Iterable[tuple[Any, ...]], audit: dict[str, Any],
             before_commit: Callable[[], None] | None = None) -> LoadResult:
        """Upsert one bot's users and responses for one range, all or nothing.

        :param table: the responses table; ``<table>_users`` and ``<table>_loads`` go with it.
        :param conversation_id: the bot, for the audit row.
        :param from_date: first day of the range (date or ``YYYY-MM-DD``; ``None`` if unknown), for the audit row.
        :param to_date: last day of the range, for the audit row.
        :param responses: tuples in ``RESPONSE_TABLE_COLUMNS`` order, streamed (any number of rows).
        :param users: ``UserRecord`` tuples.
        :param audit: ``response_request_id``, ``private_request_id``, ``rejected`` (count of rejects, or a
            callable giving it, called after ``before_commit`` once every row has been read).
        :param before_commit: called after every user and response is written, before the audit row and the
            commit; raising rolls everything back.
        """
        responses_table, users_table = _tables(table)
        if not conversation_id or not isinstance(conversation_id, str):
            raise ValueError(f"conversation_id: must be a non-empty string, got {conversation_id!r}")
        first, last = _day("from_date", from_date), _day("to_date", to_date)
        if first is not None and last is not None and first > last:
            raise ValueError(f"from_date: {first} is after to_date {last}")
        _audit(audit, resolve=False)
        self._begin()
        self._loading = True
        try:
            self._create(table)
            user_count = self._upsert(users_table, _rows(users, len(USER_TABLE_COLUMNS), "users"))
            response_count = self._upsert(
                responses_table, _rows(responses, len(RESPONSE_TABLE_COLUMNS), "responses"))
            if before_commit is not None:
                before_commit()
            response_request_id, private_request_id, rejected = _audit(audit, resolve=True)
            self._execute(
                f"INSERT INTO {_q(table + '_loads')} (conversation_id, from_date, to_date, response_request_id, "
                "private_request_id, responses, users, rejected, loaded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (conversation_id, first, last, response_request_id, private_request_id, response_count,
                 user_count, rejected, self._now()))
            self._commit()
        except BaseException:
            try:
                self._rollback()
            except Exception:  # noqa: BLE001 - the first error is the one to report
                log.warning("Rolling back the load into %s failed as well", table, exc_info=True)
            raise
        finally:
            self._loading = False
        return LoadResult(response_count, user_count)

    def fetch(self, table: str) -> list[tuple[Any, ...]]:
        """All response rows ordered by key, as the backend gives them (``[]`` if the table does not exist)."""
        return self._select(_tables(table)[0])

    def fetch_normalised(self, table: str) -> list[tuple[Any, ...]]:
        """Like :meth:`fetch`, with values both backends give alike: booleans, UTC ISO timestamps."""
        converters = [(index, _utc_iso if column in TIMESTAMP_COLUMNS else bool)
                      for index, column in enumerate(RESPONSE_TABLE_COLUMNS)
                      if column in TIMESTAMP_COLUMNS or column in BOOLEAN_COLUMNS]
        result = []
        for row in self.fetch(table):
            values = list(row)
            for index, convert in converters:
                if values[index] is not None:
                    values[index] = convert(values[index])
            result.append(tuple(values))
        return result

    def fetch_users(self, table: str) -> list[tuple[Any, ...]]:
        """All user rows of ``<table>_users`` ordered by key, ``consented`` as a boolean."""
        at = USER_TABLE_COLUMNS.index("consented")
        return [(*row[:at], None if row[at] is None else bool(row[at]), *row[at + 1:])
                for row in self._select(_tables(table)[1])]

    def count(self, table: str) -> int:
        """How many response rows ``table`` holds (0 if it does not exist)."""
        check_table(table)
        rows = self._read(table, f"SELECT count(*) FROM {_q(table)}")
        return rows[0][0] if rows else 0

    def loads(self, table: str) -> list[dict[str, Any]]:
        """The audit rows of ``<table>_loads`` in load order; dates as ``YYYY-MM-DD``, ``loaded_at`` in UTC."""
        check_table(table)
        names = ("id", "conversation_id", "from_date", "to_date", "response_request_id", "private_request_id",
                 "responses", "users", "rejected", "loaded_at")
        rows = self._read(f"{table}_loads", f"SELECT {', '.join(names)} FROM {_q(table + '_loads')} ORDER BY id")
        result = []
        for row in rows:
            entry = dict(zip(names, row, strict=True))
            for day in ("from_date", "to_date"):
                entry[day] = None if entry[day] is None else str(entry[day])
            loaded = entry["loaded_at"]
            loaded = datetime.fromisoformat(loaded) if isinstance(loaded, str) else loaded
            entry["loaded_at"] = loaded.astimezone(timezone.utc)
            result.append(entry)
        return result

    def close(self) -> None:
        """Close the connection."""
        raise NotImplementedError

    def _select(self, spec: _Table) -> list[tuple[Any, ...]]:
        order = ", ".join(f"{column}{self._binary_order}" for column in spec.key)
        return self._read(spec.name, f"SELECT {', '.join(spec.columns)} FROM {_q(spec.name)} ORDER BY {order}")

    def _read(self, name: str, sql: str) -> list[tuple[Any, ...]]:
        """Run a query on table ``name``; no rows if it does not exist. Inside a load it sees the load's writes."""
        try:
            return self._query(sql) if self._exists(name) else []
        finally:
            if not self._loading:
                self._rollback()  # a read outside a load leaves no transaction open

    def _ddl(self, table: str) -> list[str]:
        statements = [self._table_ddl(spec) for spec in _tables(table)]
        statements.append(self._loads_ddl(table))
        return statements

    def _table_ddl(self, spec: _Table, with_key: bool = True) -> str:
        columns = [f"{column} {self._type(column)}{' NOT NULL' if column in spec.key else ''}"
                   for column in spec.columns]
        key = f", PRIMARY KEY ({', '.join(spec.key)})" if with_key else ""
        return f"CREATE TABLE IF NOT EXISTS {_q(spec.name)} ({', '.join(columns)}{key})"

    def _loads_ddl(self, table: str) -> str:
        return (f"CREATE TABLE IF NOT EXISTS {_q(table + '_loads')} ({self._serial}, "
                f"conversation_id {self._text} NOT NULL, from_date {self._date}, "
                f"to_date {self._date}, response_request_id {self._text}, private_request_id {self._text}, "
                f"responses {self._int} NOT NULL, users {self._int} NOT NULL, rejected {self._int} NOT NULL, "
                f"loaded_at {self._timestamp} NOT NULL)")

    def _update_clause(self, spec: _Table) -> str:
        return ", ".join(f"{column} = excluded.{column}" for column in spec.columns if column not in spec.key)

    def _type(self, column: str) -> str:
        if column in INTEGER_COLUMNS:
            return self._int
        if column in BOOLEAN_COLUMNS:
            return self._bool
        return self._timestamp if column in TIMESTAMP_COLUMNS else self._text

    # What each backend provides: SQL spellings, then the transaction and statement primitives.
    _binary_order = ""
    _serial = _text = _date = _int = _bool = _timestamp = ""
    _begin: Callable[[], None]
    _commit: Callable[[], None]
    _rollback: Callable[[], None]
    _create: Callable[[str], None]
    _upsert: Callable[[_Table, Iterator[tuple[Any, ...]]], int]
    _execute: Callable[..., None]
    _query: Callable[..., list[tuple[Any, ...]]]
    _exists: Callable[[str], bool]
    _now: Callable[[], Any]


class SqliteWarehouse(Warehouse):
    """A SQLite file: ``INSERT ... ON CONFLICT DO UPDATE`` in chunks inside ``BEGIN IMMEDIATE``."""

    backend = "sqlite"
    _serial = "id INTEGER PRIMARY KEY AUTOINCREMENT"
    _text = _date = _timestamp = "TEXT"
    _int = _bool = "INTEGER"

    def __init__(self, path: str, url: str) -> None:
        super().__init__(url)
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, timeout=60, isolation_level=None)

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

    def _upsert(self, spec: _Table, rows: Iterator[tuple[Any, ...]]) -> int:
        marks = ", ".join("?" for _ in spec.columns)
        upsert = (f"INSERT INTO {_q(spec.name)} ({', '.join(spec.columns)}) VALUES ({marks}) "
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


class _CsvStream:
    """A file-like object for ``COPY ... FROM STDIN (FORMAT csv)`` that formats rows as they are read.

    Strings are always quoted, so ``""`` is the empty string and an unquoted empty field is null. With
    ``ordinal``, each line ends with the row's ordinal. An error raised while reading is kept, because
    psycopg2 replaces it.
    """

    def __init__(self, rows: Iterator[tuple[Any, ...]], columns: tuple[str, ...], ordinal: bool = True) -> None:
        self._rows = rows
        self._columns = columns
        self._with_ordinal = ordinal
        self.ordinal = 0
        self.error: BaseException | None = None

    def _value(self, index: int, value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, str):
            if "\x00" in value:
                raise ValueError(f"{self._columns[index]}: row {self.ordinal} contains a NUL character, "
                                 "which PostgreSQL text cannot hold")
            return '"' + value.replace('"', '""') + '"'
        if value is True or value is False:
            return "t" if value else "f"
        if isinstance(value, (int, date)):
            return value.isoformat() if isinstance(value, date) else str(value)
        raise TypeError(f"{self._columns[index]}: row {self.ordinal} has a {type(value).__name__}, "
                        "expected a string, number, boolean or null")

    def _line(self, row: tuple[Any, ...]) -> str:
        """The row as CSV; strings, null and integers inline, anything else (and any NUL) by :meth:`_value`."""
        line = ",".join([('"' + value.replace('"', '""') + '"') if value.__class__ is str
                         else "" if value is None else _SIMPLE.get(value.__class__, _other)(value) for value in row])
        if "\x00" in line:
            line = ",".join([self._value(index, value) for index, value in enumerate(row)])
        return line

    def read(self, size: int = -1) -> str:
        size = size if size and size > 0 else 1 << 16
        lines: list[str] = []
        length = 0
        line_of = self._line
        try:
            for row in self._rows:
                self.ordinal += 1
                line = line_of(row)
                line = f"{line},{self.ordinal}\n" if self._with_ordinal else line + "\n"
                lines.append(line)
                length += len(line)
                if length >= size:
                    break
        except BaseException as exc:
            self.error = exc
            raise
        return "".join(lines)


def _other(value: Any) -> str:
    """A NUL, which no text may hold: :meth:`_CsvStream._line` then formats the row value by value."""
    return "\x00"


_SIMPLE: dict[type, Callable[[Any], str]] = {int: str, bool: lambda value: "t" if value else "f"}


class PostgresWarehouse(Warehouse):
    """PostgreSQL: COPY into a temporary staging table, then one ``INSERT ... SELECT DISTINCT ON ... ON CONFLICT``.

    A table this load creates is filled by COPY directly and given its primary key afterwards (one
    sorted index build instead of an index entry per row): it is empty and nobody else sees it until
    the commit, so there is nothing to conflict with but the load's own repeated keys, of which the
    last is kept as the upsert would keep it.
    """

    backend = "postgres"
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
        self._conn = psycopg2.connect(url)
        self._conn.set_client_encoding("UTF8")
        with self._conn.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")
        self._conn.commit()
        self._fresh: dict[str, _Table] = {}  # tables created by this load, still without their primary key

    def close(self) -> None:
        self._conn.close()

    def _begin(self) -> None:
        self._conn.rollback()  # psycopg2 opens the transaction with the first statement
        self._fresh = {}

    def _commit(self) -> None:
        for spec in list(self._fresh.values()):
            self._add_key(spec)  # a created table that got no rows still gets its key
        self._conn.commit()

    def _rollback(self) -> None:
        self._fresh = {}
        self._conn.rollback()

    def _exist(self, names: list[str]) -> list[bool]:
        found = self._query("SELECT " + ", ".join("to_regclass(%s)" for _ in names), tuple(map(_q, names)))[0]
        return [value is not None for value in found]

    def _create(self, table: str) -> None:
        specs = _tables(table)
        names = [spec.name for spec in specs] + [f"{table}_loads"]
        if all(self._exist(names)):
            return
        # Two first loads into one table at once must not both create it: the second waits, then sees it.
        self._query("SELECT pg_advisory_xact_lock(%s)", (zlib.crc32(f"uci-warehouse:{table}".encode()),))
        # Read the catalog itself: to_regclass may still answer from this session's cache, from before
        # the lock was granted. A table is made where CREATE TABLE would make it (the current schema).
        here = {row[0] for row in self._query(
            "SELECT relname FROM pg_catalog.pg_class WHERE relname = ANY(%s) AND relnamespace = "
            "(SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = current_schema())", (names,))}
        for spec in specs:
            if spec.name not in here:
                self._execute(self._table_ddl(spec, with_key=False))
                self._fresh[spec.name] = spec
        self._execute(self._loads_ddl(table))

    def _add_key(self, spec: _Table) -> int:
        """Give a table this load created its primary key; a repeated key keeps its last row. Return rows removed."""
        key = ", ".join(spec.key)
        removed = 0
        with self._conn.cursor() as cur:
            cur.execute("SAVEPOINT uci_key")
            try:
                cur.execute(f"ALTER TABLE {_q(spec.name)} ADD PRIMARY KEY ({key})")
            except self._psycopg2.errors.UniqueViolation:
                cur.execute("ROLLBACK TO SAVEPOINT uci_key")
                # rows went in by one COPY into a new table, so their physical order is the order they came in
                same = " AND ".join(f"older.{column} = newer.{column}" for column in spec.key)
                cur.execute(f"DELETE FROM {_q(spec.name)} AS older USING {_q(spec.name)} AS newer "
                            f"WHERE {same} AND older.ctid < newer.ctid")
                removed = cur.rowcount
                cur.execute(f"ALTER TABLE {_q(spec.name)} ADD PRIMARY KEY ({key})")
            cur.execute("RELEASE SAVEPOINT uci_key")
        del self._fresh[spec.name]
        return removed

    def _upsert(self, spec: _Table, rows: Iterator[tuple[Any, ...]]) -> int:
        columns = ", ".join(spec.columns)
        fresh = spec.name in self._fresh
        stream = _CsvStream(rows, spec.columns, ordinal=not fresh)
        with self._conn.cursor() as cur:
            if fresh:
                target = _q(spec.name)
            else:
                target = f"pg_temp._uci_stage_{'users' if spec.key == USER_KEY else 'responses'}"
                definitions = ", ".join(f"{column} {self._type(column)}" for column in spec.columns)
                cur.execute(f"CREATE TEMPORARY TABLE {target.removeprefix('pg_temp.')} ({definitions}, "
                            "_ordinal bigint NOT NULL) ON COMMIT DROP")
            try:
                cur.copy_expert(f"COPY {target} ({columns}{'' if fresh else ', _ordinal'}) FROM STDIN "
                                "WITH (FORMAT csv)", stream, size=1 << 16)
            except self._psycopg2.Error as exc:
                if stream.error is not None:
                    raise stream.error from exc
                raise
            if fresh:
                return stream.ordinal - self._add_key(spec)
            key = ", ".join(spec.key)
            values = [column for column in spec.columns if column not in spec.key]
            # a row that would not change is left alone (a rerun writes nothing), so the rows written
            # are the keys only when every row was new or changed; otherwise the keys are counted
            cur.execute(f"INSERT INTO {_q(spec.name)} AS target ({columns}) SELECT DISTINCT ON ({key}) {columns} "
                        f"FROM {target} ORDER BY {key}, _ordinal DESC "
                        f"ON CONFLICT ({key}) DO UPDATE SET {self._update_clause(spec)} "
                        f"WHERE ({', '.join(f'target.{column}' for column in values)}) IS DISTINCT FROM "
                        f"({', '.join(f'excluded.{column}' for column in values)})")
            written = cur.rowcount
            if written != stream.ordinal:
                cur.execute(f"SELECT count(*) FROM (SELECT DISTINCT {key} FROM {target}) AS keys")
                written = cur.fetchone()[0]
            cur.execute(f"DROP TABLE {target}")
        return written

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        with self._conn.cursor() as cur:
            cur.execute(sql.replace("?", "%s"), params or None)

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._conn.cursor() as cur:
            cur.execute(sql.replace("?", "%s"), params or None)
            return cur.fetchall()

    def _exists(self, name: str) -> bool:
        return self._query("SELECT to_regclass(%s) IS NOT NULL", (_q(name),))[0][0]

    def _now(self) -> datetime:
        return datetime.now(timezone.utc)
