"""What every warehouse does: one load in one transaction, and reading back what loads wrote.

A load is one bot and one range of sync days, in one transaction. Responses are replaced by day:
every row of the bot synced on a day of the range that an earlier load wrote is deleted, and the
rows of this load take their place, so a rerun, or a backfill whose range overlaps earlier ones,
leaves each answer exactly once (the service's rows for a day are all in every exhaust over that day,
docs/service-contract.md §3.2). Rows are kept as the exhaust holds them; their key (conversation, Message ID,
device, question) is unique in what the service writes, because the pipeline de-duplicates events
by ``mid`` before the job reads them. Users (one row per device) are upserted on
``(conversation_id, device_uuid)``. An audit row in ``<table>_loads`` says what each load did. Any
error rolls all of it back, so a failed load leaves every table as it was.

This is the abstract base of ``SqliteWarehouse`` (``exhaust.warehouse.sqlite``) and
``PostgresWarehouse`` (``exhaust.warehouse.postgres``), which provide the SQL spellings and the
statement primitives (the abstract methods at the end of :class:`Warehouse`).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, timezone
from typing import Any

from airflow_provider_uci.exhaust.records import RESPONSE_TABLE_COLUMNS, USER_TABLE_COLUMNS
from airflow_provider_uci.exhaust.warehouse import phones
from airflow_provider_uci.exhaust.warehouse.schema import (
    AUDIT_FIELDS,
    BATCH_COLUMNS,
    STORED_RESPONSE_COLUMNS,
    USER_KEY,
    LoadResult,
    TableSpec,
    check_table,
    day_index_name,
    logical_type,
    quote_name,
    table_specs,
)
from airflow_provider_uci.exhaust.warehouse.urls import redact_url
from airflow_provider_uci.exhaust.warehouse.views import create_views

log = logging.getLogger(__name__)


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


def _load_range(
    conversation_id: str,
    from_date: date | str | None,
    to_date: date | str | None,
    audit: dict[str, Any],
    users: Any,
) -> tuple[str | None, str | None]:
    """The load's first and last sync day as ``YYYY-MM-DD`` (``None``: open), once its arguments are checked."""
    if not conversation_id or not isinstance(conversation_id, str):
        raise ValueError(f"conversation_id: must be a non-empty string, got {conversation_id!r}")
    first, last = _day("from_date", from_date), _day("to_date", to_date)
    if first is not None and last is not None and first > last:
        raise ValueError(f"from_date: {first} is after to_date {last}")
    _audit(audit, resolve=False)
    missing = [column for column in USER_TABLE_COLUMNS if column not in users.column_names]
    if missing:
        raise ValueError(f"users: no column {', '.join(missing)}")
    return first, last


class _Days:
    """Checks that each batch a load writes is of its bot and synced on days of its range; keeps the first
    and last day seen."""

    def __init__(self, conversation_id: str, first: str | None, last: str | None) -> None:
        self.conversation_id = conversation_id
        self.first, self.last = first, last
        self.low: str | None = None
        self.high: str | None = None

    def batches(self, batches: Iterable[Any]) -> Iterator[Any]:
        """The batches, in :data:`BATCH_COLUMNS` order, once checked."""
        import pyarrow.compute as pc

        for number, batch in enumerate(batches, start=1):
            missing = [column for column in BATCH_COLUMNS if column not in batch.schema.names]
            if missing:
                raise ValueError(f"responses: batch {number} has no column {', '.join(missing)}")
            batch = batch.select(list(BATCH_COLUMNS))
            if batch.num_rows == 0:
                continue
            bots = batch.column("conversation_id")
            if bots.null_count or not pc.all(pc.equal(bots, self.conversation_id)).as_py():
                raise ValueError(
                    f"responses: batch {number} holds rows of a conversation other than the load's "
                    f"{self.conversation_id!r}"
                )
            days = batch.column("sync_date")
            if days.null_count:
                raise ValueError(f"responses: batch {number} has a row with no sync_date")
            bounds = pc.min_max(days).as_py()
            for day in (bounds["min"].isoformat(), bounds["max"].isoformat()):
                self.check(day)
                self.low = day if self.low is None or day < self.low else self.low
                self.high = day if self.high is None or day > self.high else self.high
            yield batch

    def check(self, day: str | None) -> None:
        """Raise unless ``day`` lies in the load's range (either end may be open)."""
        if day is not None and (
            (self.first is not None and day < self.first) or (self.last is not None and day > self.last)
        ):
            raise ValueError(
                f"responses: a row synced on {day} is outside the load's range "
                f"{self.first or '...'}..{self.last or '...'}"
            )


class Warehouse(ABC):
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

    def load(
        self,
        *,
        table: str,
        conversation_id: str,
        from_date: date | str | None,
        to_date: date | str | None,
        responses: Iterable[Any],
        users: Any,
        audit: dict[str, Any],
        before_commit: Callable[[], None] | None = None,
        phone_numbers: str | None = None,
    ) -> LoadResult:
        """Write one bot's users and responses for one range of sync days, all or nothing.

        :param table: the responses table; ``<table>_users`` and ``<table>_loads`` go with it.
        :param conversation_id: the bot; every response row must be of it.
        :param from_date: first sync day of the range (date or ``YYYY-MM-DD``; ``None`` if unknown).
        :param to_date: last sync day of the range. An end that is not given is taken from the rows:
            the days replaced are those from the first to the last day of the range, or of the rows.
        :param responses: arrow record batches with :data:`BATCH_COLUMNS` (more are left out), streamed
            (any number of rows): as ``exhaust.reader`` reads them, joined to the users. The timestamps
            typed, or as ISO 8601 text where :attr:`timestamps_as_text`.
        :param users: an arrow table of ``USER_TABLE_COLUMNS``, one row per device (``exhaust.users``).
        :param audit: ``response_request_id``, ``private_request_id``, ``rejected`` (count of rejects, or a
            callable giving it, called after ``before_commit`` once every row has been read).
        :param before_commit: called after every user and response is written, before the audit row is
            completed and the load committed; raising rolls everything back.
        :param phone_numbers: how the users' phones are stored (``exhaust.phone_hash.phone_scheme``), recorded
            in ``<table>_loads``; a table keeps one way (``exhaust.warehouse.phones``). ``None``: not told.
        """
        specs = table_specs(table)
        first, last = _load_range(conversation_id, from_date, to_date, audit, users)
        self._begin()
        self._loading = True
        try:
            load_id = self._open_load(table, conversation_id, first, last, audit, users, phone_numbers)
            result = self._write(table, specs, conversation_id, first, last, responses, users, load_id)
            if before_commit is not None:
                before_commit()
            p = self.param
            self._execute(
                f"UPDATE {quote_name(table + '_loads')} SET responses = {p}, users = {p}, replaced = {p}, "
                f"rejected = {p}, loaded_at = {p} WHERE id = {p}",
                (*result, _audit(audit, resolve=True)[2], self._now(), load_id),
            )
            self._commit()
        except BaseException:
            try:
                self._rollback()
            except Exception:
                log.warning("Rolling back the load into %s failed as well", table, exc_info=True)
            raise
        finally:
            self._loading = False
        return result

    def _open_load(
        self,
        table: str,
        conversation_id: str,
        first: str | None,
        last: str | None,
        audit: dict[str, Any],
        users: Any,
        phone_numbers: str | None,
    ) -> int:
        """Make the tables and views, lock the bot's rows, and write the load's audit row; its id."""
        self._create(table)
        create_views(self, table)  # the analytics views, made with the tables
        self._lock(table, conversation_id)
        phones.ensure_column(self, table)
        if phone_numbers is not None and not phones.stores_phones(users):
            phone_numbers = "none"  # no phone to store (no user, or none consented): mixes with anything
        if phone_numbers is not None:
            phones.check_scheme(self, table, phone_numbers)
        response_request_id, private_request_id, _ = _audit(audit, resolve=False)
        p = self.param
        return self._insert_returning_id(
            f"INSERT INTO {quote_name(table + '_loads')} (conversation_id, from_date, to_date, response_request_id, "
            f"private_request_id, responses, users, replaced, rejected, loaded_at, {phones.COLUMN}) "
            f"VALUES ({p}, {p}, {p}, {p}, {p}, 0, 0, 0, 0, {p}, {p})",
            (
                conversation_id,
                first,
                last,
                response_request_id,
                private_request_id,
                self._now(),
                phone_numbers,
            ),
        )

    def _write(
        self,
        table: str,
        specs: tuple[TableSpec, TableSpec],
        conversation_id: str,
        first: str | None,
        last: str | None,
        responses: Iterable[Any],
        users: Any,
        load_id: int,
    ) -> LoadResult:
        """Upsert the users, insert the responses, and delete the rows of earlier loads they replace."""
        responses_table, users_table = specs
        user_count = (
            self._upsert_users(users_table, users.select(list(USER_TABLE_COLUMNS))) if users.num_rows else 0
        )
        days = _Days(conversation_id, first, last)
        response_count = self._insert_batches(responses_table, days.batches(responses), load_id)
        low, high = first or days.low, last or days.high
        replaced = 0
        if low is not None and high is not None:
            replaced = self._replace(table, conversation_id, low, high, load_id)
        return LoadResult(response_count, user_count, replaced)

    def fetch(self, table: str) -> list[tuple[Any, ...]]:
        """All response rows ordered by key, as the backend gives them (``[]`` if the table does not exist)."""
        return self._select(table_specs(table)[0])

    def fetch_users(self, table: str) -> list[tuple[Any, ...]]:
        """All user rows of ``<table>_users`` ordered by key, ``consented`` as a boolean."""
        at = USER_TABLE_COLUMNS.index("consented")
        return [
            (*row[:at], None if row[at] is None else bool(row[at]), *row[at + 1 :])
            for row in self._select(table_specs(table)[1])
        ]

    def count(self, table: str) -> int:
        """How many response rows ``table`` holds (0 if it does not exist)."""
        check_table(table)
        rows = self._read(table, f"SELECT count(*) FROM {quote_name(table)}")
        return rows[0][0] if rows else 0

    def loads(self, table: str) -> list[dict[str, Any]]:
        """The audit rows of ``<table>_loads`` in load order; dates as ``YYYY-MM-DD``, ``loaded_at`` in UTC."""
        check_table(table)
        names = (
            "id",
            "conversation_id",
            "from_date",
            "to_date",
            "response_request_id",
            "private_request_id",
            "responses",
            "users",
            "replaced",
            "rejected",
            "loaded_at",
        )
        rows = self._read(
            f"{table}_loads", f"SELECT {', '.join(names)} FROM {quote_name(table + '_loads')} ORDER BY id"
        )
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

    @abstractmethod
    def close(self) -> None:
        """Close the connection."""

    def _replace(self, table: str, conversation_id: str, low: str, high: str, load_id: int) -> int:
        """Delete the bot's rows of days ``low``..``high`` that earlier loads wrote; return how many."""
        p = self.param
        return self._delete(
            f"DELETE FROM {quote_name(table)} WHERE conversation_id = {p} AND sync_date BETWEEN {p} "
            f"AND {p} AND load_id <> {p}",
            (conversation_id, low, high, load_id),
        )

    def _select(self, spec: TableSpec) -> list[tuple[Any, ...]]:
        order = ", ".join(f"{column}{self._binary_order}" for column in spec.key)
        columns = RESPONSE_TABLE_COLUMNS if spec.columns == STORED_RESPONSE_COLUMNS else spec.columns
        if spec.columns == STORED_RESPONSE_COLUMNS:
            order += ", sync_date, load_id"
        return self._read(
            spec.name, f"SELECT {', '.join(columns)} FROM {quote_name(spec.name)} ORDER BY {order}"
        )

    def _read(self, name: str, sql: str) -> list[tuple[Any, ...]]:
        """Run a query on table ``name``; no rows if it does not exist. Inside a load it sees the load's writes."""
        try:
            return self._query(sql) if self._exists(name) else []
        finally:
            if not self._loading:
                self._rollback()  # a read outside a load leaves no transaction open

    def _ddl(self, table: str) -> list[str]:
        responses, users = table_specs(table)
        return [
            self._table_ddl(responses),
            self._index_ddl(table),
            self._table_ddl(users),
            self._loads_ddl(table),
        ]

    def _table_ddl(self, spec: TableSpec, with_key: bool = True) -> str:
        """Responses have no primary key (a load replaces days, see the module); users have theirs."""
        required = set(spec.key) | {"sync_date", "load_id"}
        columns = [
            f"{column} {self._type(column)}{' NOT NULL' if column in required else ''}"
            for column in spec.columns
        ]
        key = f", PRIMARY KEY ({', '.join(spec.key)})" if with_key and spec.key == USER_KEY else ""
        return f"CREATE TABLE IF NOT EXISTS {quote_name(spec.name)} ({', '.join(columns)}{key})"

    def _index_ddl(self, table: str) -> str:
        """The index a load finds the days it replaces by."""
        return f"CREATE INDEX IF NOT EXISTS {day_index_name(table)} ON {quote_name(table)} (conversation_id, sync_date)"

    def _loads_ddl(self, table: str) -> str:
        return (
            f"CREATE TABLE IF NOT EXISTS {quote_name(table + '_loads')} ({self._serial}, "
            f"conversation_id {self._text} NOT NULL, from_date {self._date}, "
            f"to_date {self._date}, response_request_id {self._text}, private_request_id {self._text}, "
            f"responses {self._int} NOT NULL, users {self._int} NOT NULL, replaced {self._int} NOT NULL, "
            f"rejected {self._int} NOT NULL, loaded_at {self._timestamp} NOT NULL, {phones.COLUMN} {self._text})"
        )

    def _update_clause(self, spec: TableSpec) -> str:
        return ", ".join(f"{column} = excluded.{column}" for column in spec.columns if column not in spec.key)

    def _type(self, column: str) -> str:
        return {
            "integer": self._int,
            "date": self._date,
            "boolean": self._bool,
            "timestamp": self._timestamp,
            "text": self._text,
        }[logical_type(column)]

    # What each backend provides: SQL spellings, then the transaction and statement primitives.
    #: How a statement marks a parameter, as the backend's driver wants it (``?``, ``%s``).
    param = "?"
    #: Whether the backend stores timestamps as the files write them (text), so wants them so in batches.
    timestamps_as_text = False
    _binary_order = ""
    _serial = _text = _date = _int = _bool = _timestamp = ""

    @abstractmethod
    def _begin(self) -> None:
        """Open the load's transaction."""

    @abstractmethod
    def _commit(self) -> None: ...

    @abstractmethod
    def _rollback(self) -> None:
        """Roll back the open transaction, if any."""

    @abstractmethod
    def _create(self, table: str) -> None:
        """Create ``table``, its side tables and index where missing (:meth:`_ddl`)."""

    @abstractmethod
    def _lock(self, table: str, conversation_id: str) -> None:
        """Keep other loads of the bot into ``table`` out until this one ends."""

    @abstractmethod
    def _insert_batches(self, spec: TableSpec, batches: Iterator[Any], load_id: int) -> int:
        """Insert response batches (:data:`BATCH_COLUMNS`), each row with ``load_id``; return how many rows."""

    @abstractmethod
    def _upsert_users(self, spec: TableSpec, users: Any) -> int:
        """Insert or update users (an arrow table, one row per key) on the table's key; return how many."""

    @abstractmethod
    def _insert_returning_id(self, sql: str, params: tuple[Any, ...]) -> int: ...

    @abstractmethod
    def _delete(self, sql: str, params: tuple[Any, ...]) -> int:
        """Run a ``DELETE``; return how many rows it deleted."""

    @abstractmethod
    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        """Run one statement (:attr:`param` marks its parameters)."""

    @abstractmethod
    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one query (:attr:`param` marks its parameters); return its rows."""

    @abstractmethod
    def _exists(self, name: str) -> bool:
        """Whether table ``name`` exists."""

    @abstractmethod
    def _columns(self, name: str) -> set[str]:
        """The column names of table ``name``."""

    @abstractmethod
    def _now(self) -> Any:
        """The time now, as the backend stores ``loaded_at``."""
