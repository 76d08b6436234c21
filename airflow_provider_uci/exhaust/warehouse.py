"""Load joined responses and users into a warehouse table: SQLite file or PostgreSQL (COPY).

A load is one bot and one range of sync days, in one transaction. Responses are replaced by day:
every row of the bot synced on a day of the range that an earlier load wrote is deleted, and the
rows of this load take their place, so a rerun, or a backfill whose range overlaps earlier ones,
leaves each answer exactly once (the service's rows for a day are all in every exhaust over that day,
contract 3.2). Rows are kept as the exhaust holds them; their key (conversation, Message ID,
device, question) is unique in what the service writes, because the pipeline de-duplicates events
by ``mid`` before the job reads them. Users (one row per device) are upserted on
``(conversation_id, device_uuid)``. An audit row in ``<table>_loads`` says what each load did. Any
error rolls all of it back, so a failed load leaves every table as it was.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, timezone
from itertools import islice
from pathlib import Path
from typing import Any, NamedTuple, Protocol, runtime_checkable
from urllib.parse import quote

from airflow_provider_uci.exhaust.records import KEY_FIELDS, RESPONSE_TABLE_COLUMNS, USER_TABLE_COLUMNS, sync_day

log = logging.getLogger(__name__)

TABLE_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,47}$")
#: Prefixes of the databases' own tables: SQLite's ``sqlite_master``..., PostgreSQL's ``pg_catalog``...
RESERVED_PREFIXES = ("sqlite_", "pg_")
#: What a responses table's side tables and index are named with, or reserved for: ``<table>_users``...
SIDE_SUFFIXES = ("_users", "_loads", "_bot_day", "_daily", "_question_stats", "_sessions", "_completion", "_funnel")
URL_FORMS = ("sqlite:///relative/path.db, sqlite:////absolute/path.db or "
             "postgresql://user:password@host:port/database (or postgres://...)")
AUDIT_FIELDS = ("response_request_id", "private_request_id", "rejected")
USER_KEY = ("conversation_id", "device_uuid")
INTEGER_COLUMNS = frozenset({"question_duration", "question_score", "question_max_score"})
BOOLEAN_COLUMNS = frozenset({"eof", "consented"})
TIMESTAMP_COLUMNS = frozenset({"event_timestamp", "at_timestamp"})
DATE_COLUMNS = frozenset({"sync_date"})
#: The responses table: the joined columns, then the IST sync day of the row and the load that wrote it.
STORED_RESPONSE_COLUMNS = (*RESPONSE_TABLE_COLUMNS, "sync_date", "load_id")


def logical_type(column: str) -> str:
    """A column's type, as each backend then spells it: integer, date, boolean, timestamp or text."""
    if column in INTEGER_COLUMNS or column == "load_id":
        return "integer"
    if column in DATE_COLUMNS:
        return "date"
    if column in BOOLEAN_COLUMNS:
        return "boolean"
    return "timestamp" if column in TIMESTAMP_COLUMNS else "text"


#: The response table's columns and their types (lineage shows them as the table's schema).
RESPONSE_SCHEMA = tuple((column, logical_type(column)) for column in STORED_RESPONSE_COLUMNS)
CHUNK_ROWS = 5000


class LoadResult(NamedTuple):
    """What one load did: response rows written, distinct users written, rows of earlier loads replaced."""

    responses: int
    users: int
    replaced: int = 0


@runtime_checkable
class PreparedResponses(Protocol):
    """Response rows already checked, joined and encoded for PostgreSQL (see ``exhaust.arrow``).

    :meth:`copy_chunks` gives ``COPY ... FROM STDIN (FORMAT binary)`` data of the rows in
    :data:`STORED_RESPONSE_COLUMNS` order, with ``load_id`` in the last column; once it is all read,
    ``rows``, ``first_day`` and ``last_day`` say what it held.
    """

    rows: int
    first_day: str | None
    last_day: str | None

    def copy_chunks(self, load_id: int) -> Iterator[bytes | memoryview]: ...


@runtime_checkable
class PreparedUsers(Protocol):
    """User rows already checked and encoded for PostgreSQL (see ``exhaust.arrow_users``): one per device.

    :meth:`copy_chunks` gives ``COPY ... FROM STDIN (FORMAT binary)`` data of the rows in
    :data:`USER_TABLE_COLUMNS` order, then (with ``ordinal``) each row's ordinal from 1; ``rows`` says
    how many there are.
    """

    rows: int

    def copy_chunks(self, ordinal: bool = False) -> Iterator[bytes | memoryview]: ...


class _Table(NamedTuple):
    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]


def check_table(table: str) -> str:
    """Return ``table`` if a load may write to it and its side tables, else raise naming the rule.

    The rule: a plain identifier (a letter or ``_``, then letters, digits or ``_``) of at most 48
    characters, so that ``<table>_question_stats`` fits PostgreSQL's 63; not named like the databases'
    own tables (``sqlite_...``, ``pg_...``); and not ending like the project's side tables and index
    (:data:`SIDE_SUFFIXES`), which would make it one of another table's.
    """
    if not isinstance(table, str) or not TABLE_PATTERN.match(table):
        raise ValueError(f"table: must be a plain identifier (a letter or _, then up to 47 letters, digits or _), "
                         f"got {table!r}")
    lowered = table.lower()
    if lowered.startswith(RESERVED_PREFIXES):
        raise ValueError(f"table: must not start with {' or '.join(RESERVED_PREFIXES)}, which name the databases' "
                         f"own tables, got {table!r}")
    if lowered.endswith(SIDE_SUFFIXES):
        suffix = next(end for end in SIDE_SUFFIXES if lowered.endswith(end))
        raise ValueError(f"table: must not end in {', '.join(SIDE_SUFFIXES)}, the names of another table's side "
                         f"tables (here {table[:-len(suffix)]!r}'s {suffix}), got {table!r}")
    return table


def _tables(table: str) -> tuple[_Table, _Table]:
    check_table(table)
    return (_Table(table, STORED_RESPONSE_COLUMNS, KEY_FIELDS),
            _Table(f"{table}_users", USER_TABLE_COLUMNS, USER_KEY))


def _day_index(table: str) -> str:
    return _q(f"{table}_bot_day")


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


class _Days:
    """Gives each response row its sync day and load id, checking that the load may write it.

    A row must be of the load's bot and synced on a day of its range (a row with no timestamp at all
    belongs to the range's day when it is one day). The first and last day seen are kept.
    """

    def __init__(self, conversation_id: str, first: str | None, last: str | None) -> None:
        self.conversation_id = conversation_id
        self.first, self.last = first, last
        self.single = first if first is not None and first == last else None
        self.low: str | None = None
        self.high: str | None = None

    def rows(self, rows: Iterable[tuple[Any, ...]], load_id: int) -> Iterator[tuple[Any, ...]]:
        at, event = RESPONSE_TABLE_COLUMNS.index("at_timestamp"), RESPONSE_TABLE_COLUMNS.index("event_timestamp")
        low = high = None
        try:
            for number, row in enumerate(_rows(rows, len(RESPONSE_TABLE_COLUMNS), "responses"), start=1):
                if row[0] != self.conversation_id:
                    raise ValueError(f"responses: row {number} is of conversation {row[0]!r}, "
                                     f"not of the load's {self.conversation_id!r}")
                try:
                    day = sync_day(row[at], row[event]) or self.single
                except (TypeError, ValueError):
                    raise ValueError(f"responses: row {number} has a timestamp that is not ISO 8601") from None
                if day is None:
                    raise ValueError(f"responses: row {number} has no @timestamp or Timestamp to place it in a sync "
                                     "day, and the load is not for one day")
                if low is None or day < low:
                    low = day
                    self.check(low)
                if high is None or day > high:
                    high = day
                    self.check(high)
                yield (*row, day, load_id)
        finally:
            self.low, self.high = low, high

    def check(self, day: str | None) -> None:
        """Raise unless ``day`` lies in the load's range (either end may be open)."""
        if day is not None and ((self.first is not None and day < self.first)
                                or (self.last is not None and day > self.last)):
            raise ValueError(f"responses: a row synced on {day} is outside the load's range "
                             f"{self.first or '...'}..{self.last or '...'}")


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


class WarehouseUnavailable(RuntimeError):
    """The warehouse could not be reached or opened; the message names it without its password."""


def open_warehouse(url: str) -> Warehouse:
    """Connect to the warehouse at ``url`` (see :data:`URL_FORMS`); a SQLite file is created if missing.

    :raises WarehouseUnavailable: the server refused or did not answer, or the file cannot be opened.
    """
    if isinstance(url, str) and url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        try:
            return SqliteWarehouse(url[len("sqlite:///"):], url)
        except (sqlite3.Error, OSError) as exc:
            raise WarehouseUnavailable(f"warehouse: cannot open {redact_url(url)}: {_one_line(exc, url)}") from None
    if isinstance(url, str) and url.startswith(("postgresql://", "postgres://")):
        from airflow_provider_uci.exhaust.postgres import PostgresWarehouse

        import psycopg2

        try:
            return PostgresWarehouse(url)
        except psycopg2.OperationalError as exc:  # told in one line, without the password
            raise WarehouseUnavailable(f"warehouse: cannot connect to {redact_url(url)}: "
                                       f"{_one_line(exc, url)}") from None
        except psycopg2.ProgrammingError as exc:  # an invalid connection string
            raise ValueError(f"warehouse: {redact_url(url)} is not a valid PostgreSQL URL: "
                             f"{_one_line(exc, url)}") from None
    shown = redact_url(url) if isinstance(url, str) else repr(url)
    raise ValueError(f"warehouse: expected {URL_FORMS}, got {shown!r}")


def _one_line(exc: BaseException, url: str) -> str:
    """An error's text on one line, with the URL and its password (if any) left out."""
    text = "; ".join(part.strip() for part in str(exc).splitlines() if part.strip()) or type(exc).__name__
    text = text.replace(url, redact_url(url))
    password = re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://[^:/@?#]*:([^@/?#]+)@", url)
    if password:
        text = text.replace(password.group(1), "***")
    return text


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
             responses: Iterable[tuple[Any, ...]] | PreparedResponses,
             users: Iterable[tuple[Any, ...]] | PreparedUsers,
             audit: dict[str, Any], before_commit: Callable[[], None] | None = None) -> LoadResult:
        """Write one bot's users and responses for one range of sync days, all or nothing.

        :param table: the responses table; ``<table>_users`` and ``<table>_loads`` go with it.
        :param conversation_id: the bot; every response row must be of it.
        :param from_date: first sync day of the range (date or ``YYYY-MM-DD``; ``None`` if unknown).
        :param to_date: last sync day of the range. An end that is not given is taken from the rows:
            the days replaced are those from the first to the last day of the range, or of the rows.
        :param responses: tuples in ``RESPONSE_TABLE_COLUMNS`` order, streamed (any number of rows), or
            (PostgreSQL only) :class:`PreparedResponses`.
        :param users: ``UserRecord`` tuples, or (PostgreSQL only) :class:`PreparedUsers`.
        :param audit: ``response_request_id``, ``private_request_id``, ``rejected`` (count of rejects, or a
            callable giving it, called after ``before_commit`` once every row has been read).
        :param before_commit: called after every user and response is written, before the audit row is
            completed and the load committed; raising rolls everything back.
        """
        responses_table, users_table = _tables(table)
        if not conversation_id or not isinstance(conversation_id, str):
            raise ValueError(f"conversation_id: must be a non-empty string, got {conversation_id!r}")
        first, last = _day("from_date", from_date), _day("to_date", to_date)
        if first is not None and last is not None and first > last:
            raise ValueError(f"from_date: {first} is after to_date {last}")
        response_request_id, private_request_id, _ = _audit(audit, resolve=False)
        prepared = isinstance(responses, PreparedResponses)
        for name, value in (("responses", responses), ("users", users)):
            if isinstance(value, (PreparedResponses, PreparedUsers)) and self.backend != "postgres":
                raise TypeError(f"{name}: rows prepared for PostgreSQL cannot be loaded into {self.backend}")
        self._begin()
        self._loading = True
        try:
            self._create(table)
            from airflow_provider_uci.analytics.views import create_views

            create_views(self, table)  # the analytics views, made with the tables
            self._lock(table, conversation_id)
            load_id = self._insert_returning_id(
                f"INSERT INTO {_q(table + '_loads')} (conversation_id, from_date, to_date, response_request_id, "
                "private_request_id, responses, users, replaced, rejected, loaded_at) "
                "VALUES (?, ?, ?, ?, ?, 0, 0, 0, 0, ?)",
                (conversation_id, first, last, response_request_id, private_request_id, self._now()))
            if isinstance(users, PreparedUsers):
                user_count = self._upsert_prepared(users_table, users)
            else:
                user_count = self._upsert(users_table, _rows(users, len(USER_TABLE_COLUMNS), "users"))
            days = _Days(conversation_id, first, last)
            if prepared:
                response_count = self._copy_prepared(responses_table, responses, load_id)
                low, high = responses.first_day, responses.last_day
                days.check(low)
                days.check(high)
            else:
                response_count = self._insert(responses_table, days.rows(responses, load_id))
                low, high = days.low, days.high
            low, high = first or low, last or high
            replaced = 0
            if low is not None and high is not None:
                replaced = self._replace(table, conversation_id, low, high, load_id)
            if before_commit is not None:
                before_commit()
            rejected = _audit(audit, resolve=True)[2]
            self._execute(f"UPDATE {_q(table + '_loads')} SET responses = ?, users = ?, replaced = ?, rejected = ?, "
                          "loaded_at = ? WHERE id = ?",
                          (response_count, user_count, replaced, rejected, self._now(), load_id))
            self._commit()
        except BaseException:
            try:
                self._rollback()
            except Exception:  # noqa: BLE001 - the first error is the one to report
                log.warning("Rolling back the load into %s failed as well", table, exc_info=True)
            raise
        finally:
            self._loading = False
        return LoadResult(response_count, user_count, replaced)

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
                 "responses", "users", "replaced", "rejected", "loaded_at")
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

    def _replace(self, table: str, conversation_id: str, low: str, high: str, load_id: int) -> int:
        """Delete the bot's rows of days ``low``..``high`` that earlier loads wrote; return how many."""
        return self._delete(f"DELETE FROM {_q(table)} WHERE conversation_id = ? AND sync_date BETWEEN ? AND ? "
                            "AND load_id <> ?", (conversation_id, low, high, load_id))

    def _select(self, spec: _Table) -> list[tuple[Any, ...]]:
        order = ", ".join(f"{column}{self._binary_order}" for column in spec.key)
        columns = RESPONSE_TABLE_COLUMNS if spec.columns == STORED_RESPONSE_COLUMNS else spec.columns
        if spec.columns == STORED_RESPONSE_COLUMNS:
            order += ", sync_date, load_id"
        return self._read(spec.name, f"SELECT {', '.join(columns)} FROM {_q(spec.name)} ORDER BY {order}")

    def _read(self, name: str, sql: str) -> list[tuple[Any, ...]]:
        """Run a query on table ``name``; no rows if it does not exist. Inside a load it sees the load's writes."""
        try:
            return self._query(sql) if self._exists(name) else []
        finally:
            if not self._loading:
                self._rollback()  # a read outside a load leaves no transaction open

    def _ddl(self, table: str) -> list[str]:
        responses, users = _tables(table)
        return [self._table_ddl(responses), self._index_ddl(table), self._table_ddl(users), self._loads_ddl(table)]

    def _table_ddl(self, spec: _Table, with_key: bool = True) -> str:
        """Responses have no primary key (a load replaces days, see the module); users have theirs."""
        required = set(spec.key) | {"sync_date", "load_id"}
        columns = [f"{column} {self._type(column)}{' NOT NULL' if column in required else ''}"
                   for column in spec.columns]
        key = f", PRIMARY KEY ({', '.join(spec.key)})" if with_key and spec.key == USER_KEY else ""
        return f"CREATE TABLE IF NOT EXISTS {_q(spec.name)} ({', '.join(columns)}{key})"

    def _index_ddl(self, table: str) -> str:
        """The index a load finds the days it replaces by."""
        return f"CREATE INDEX IF NOT EXISTS {_day_index(table)} ON {_q(table)} (conversation_id, sync_date)"

    def _loads_ddl(self, table: str) -> str:
        return (f"CREATE TABLE IF NOT EXISTS {_q(table + '_loads')} ({self._serial}, "
                f"conversation_id {self._text} NOT NULL, from_date {self._date}, "
                f"to_date {self._date}, response_request_id {self._text}, private_request_id {self._text}, "
                f"responses {self._int} NOT NULL, users {self._int} NOT NULL, replaced {self._int} NOT NULL, "
                f"rejected {self._int} NOT NULL, loaded_at {self._timestamp} NOT NULL)")

    def _update_clause(self, spec: _Table) -> str:
        return ", ".join(f"{column} = excluded.{column}" for column in spec.columns if column not in spec.key)

    def _type(self, column: str) -> str:
        return {"integer": self._int, "date": self._date, "boolean": self._bool, "timestamp": self._timestamp,
                "text": self._text}[logical_type(column)]

    # What each backend provides: SQL spellings, then the transaction and statement primitives.
    _binary_order = ""
    _serial = _text = _date = _int = _bool = _timestamp = ""
    _begin: Callable[[], None]
    _commit: Callable[[], None]
    _rollback: Callable[[], None]
    _create: Callable[[str], None]
    _lock: Callable[[str, str], None]
    _upsert: Callable[[_Table, Iterator[tuple[Any, ...]]], int]
    _insert: Callable[[_Table, Iterator[tuple[Any, ...]]], int]
    _copy_prepared: Callable[[_Table, PreparedResponses, int], int]
    _upsert_prepared: Callable[[_Table, PreparedUsers], int]
    _insert_returning_id: Callable[[str, tuple[Any, ...]], int]
    _delete: Callable[[str, tuple[Any, ...]], int]
    _execute: Callable[..., None]
    _query: Callable[..., list[tuple[Any, ...]]]
    _exists: Callable[[str], bool]
    _now: Callable[[], Any]


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

    def _insert(self, spec: _Table, rows: Iterator[tuple[Any, ...]]) -> int:
        insert = f"INSERT INTO {_q(spec.name)} ({', '.join(spec.columns)}) VALUES ({', '.join('?' for _ in spec.columns)})"
        written = 0
        while chunk := list(islice(rows, CHUNK_ROWS)):
            self._conn.executemany(insert, chunk)
            written += len(chunk)
        return written

    def _insert_returning_id(self, sql: str, params: tuple[Any, ...]) -> int:
        return self._conn.execute(sql, params).lastrowid

    def _delete(self, sql: str, params: tuple[Any, ...]) -> int:
        return self._conn.execute(sql, params).rowcount

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


