"""Analytics over a responses table, as SQL both warehouses run: views, and the same queries filtered.

Each query is built by one function here, for SQLite or PostgreSQL, over the table's own columns
(``exhaust.warehouse.schema.STORED_RESPONSE_COLUMNS``). :func:`create_views` makes them the views
``<table>_daily``, ``<table>_question_stats``, ``<table>_sessions`` and ``<table>_completion`` (the
load calls it with the tables); the report runs the same text narrowed to one bot and a range of
sync days (:class:`Scope`), so a number reads the same in a view and on the page.

- ``_daily``: per bot and sync day, the distinct devices that answered, the answers, and the devices
  whose first answer to the bot ever was that day (``new_devices``).
- ``_question_stats``: per bot and question, its ``position`` in the conversation, devices, answers,
  answers withheld without consent (``""``), and the median ``question_duration``. Questions are
  placed in the order they were first answered (``Timestamp``, else ``@timestamp``), the question id
  (byte order) breaking ties. ``X Path`` is shown beside, but as text it is not the conversation's
  order: a form's groups sort by name (``/data/end_note[1]/submit[1]`` before
  ``/data/enter_details[1]/...``).
  SQLite has no median: there it is computed with window functions (the middle row, or the mean of
  the two middle rows, of each question's durations in order), on PostgreSQL by ``percentile_cont``.
- ``_sessions``: per bot and session (``Session ID``; for vintages without one, the device and sync
  day), the questions answered, the answers, whether it reached the end (an answer with ``Eof`` true),
  and when it started and ended (UTC; SQLite gives ISO text ending in ``Z``).
- ``_completion``: per bot, sessions, those that reached the end, and their ratio.

The index ``<table>_funnel`` (bot, question, device and both timestamps), from which a bot's
funnel (:func:`funnel_sql`) is read without the table's rows, is made on request
(:func:`create_funnel_index`).

Each view carries its definition's fingerprint (PostgreSQL: the view's comment; SQLite: its stored
text), so a load after an upgrade replaces a view whose definition changed, and leaves the rest alone.
"""

from __future__ import annotations

import hashlib
import logging
import zlib
from dataclasses import dataclass
from datetime import date
from typing import Any

from airflow_provider_uci.exhaust.warehouse.schema import check_table, quote_name

log = logging.getLogger(__name__)

#: The views made for a responses table, by suffix.
VIEW_SUFFIXES = ("_daily", "_question_stats", "_sessions", "_completion")


@dataclass(frozen=True)
class Scope:
    """Which rows a query reads: a bot (or all), and a range of sync days (either end may be open)."""

    conversation_id: str | None = None
    from_date: str | None = None
    to_date: str | None = None

    def __post_init__(self) -> None:
        for name in ("from_date", "to_date"):
            value = getattr(self, name)
            if value is not None:
                try:
                    date.fromisoformat(value)
                except (TypeError, ValueError):
                    raise ValueError(f"{name}: expected a date as YYYY-MM-DD, got {value!r}") from None
        if self.from_date and self.to_date and self.from_date > self.to_date:
            raise ValueError(f"from_date: {self.from_date} is after to_date {self.to_date}")


class SqlBuilder:
    """SQL text with its parameters, in order, built piece by piece; :attr:`param` marks one as the
    backend's driver wants it (``?`` for SQLite, ``%s`` for PostgreSQL)."""

    def __init__(self, backend: str) -> None:
        if backend not in ("sqlite", "postgres"):
            raise ValueError(f"backend: must be sqlite or postgres, got {backend!r}")
        self.backend = backend
        self.param = "%s" if backend == "postgres" else "?"
        self.params: list[Any] = []

    def where(self, scope: Scope | None, days: bool = True) -> str:
        """A ``WHERE`` clause for ``scope`` (the bot only, unless ``days``), its parameters kept."""
        if scope is None:
            return ""
        terms = []
        if scope.conversation_id is not None:
            terms.append(f"conversation_id = {self.param}")
            self.params.append(scope.conversation_id)
        if days and scope.from_date:
            terms.append(f"sync_date >= {self.param}")
            self.params.append(scope.from_date)
        if days and scope.to_date:
            terms.append(f"sync_date <= {self.param}")
            self.params.append(scope.to_date)
        return f" WHERE {' AND '.join(terms)}" if terms else ""

    @property
    def binary(self) -> str:
        """Byte order for text, as SQLite compares it."""
        return ' COLLATE "C"' if self.backend == "postgres" else ""

    @property
    def real(self) -> str:
        return "double precision" if self.backend == "postgres" else "REAL"

    def moment(self, column: str) -> str:
        """A timestamp column in a form that orders as time: UTC ISO text on SQLite (stored as written)."""
        return column if self.backend == "postgres" else f"strftime('%Y-%m-%dT%H:%M:%fZ', {column})"

    def any_true(self, column: str) -> str:
        return f"coalesce(bool_or({column}), false)" if self.backend == "postgres" else f"coalesce(max({column}), 0)"


def quoted_table(table: str) -> str:
    """``table``, checked (``schema.check_table``) and quoted for SQL."""
    return quote_name(check_table(table))


def daily_sql(table: str, backend: str, scope: Scope | None = None) -> tuple[str, list[Any]]:
    """Per bot and sync day: devices, answers, new devices (first answer to the bot ever)."""
    sql, t = SqlBuilder(backend), quoted_table(table)
    # distinct devices by grouping (hashed), not count(DISTINCT ...) (a sort of every row)
    days = (f"SELECT conversation_id, sync_date, count(*) AS devices, sum(n) AS answers FROM (SELECT conversation_id, "
            f"sync_date, device_id, count(*) AS n FROM {t}{sql.where(scope)} GROUP BY conversation_id, sync_date, "
            f"device_id) AS per_device GROUP BY conversation_id, sync_date")
    firsts = (f"SELECT conversation_id, first_date, count(*) AS new_devices FROM (SELECT conversation_id, "
              f"min(sync_date) AS first_date FROM {t}{sql.where(scope, days=False)} GROUP BY conversation_id, "
              f"device_id) AS f GROUP BY conversation_id, first_date")
    text = (f"SELECT d.conversation_id, d.sync_date, d.devices, d.answers, coalesce(n.new_devices, 0) AS new_devices "
            f"FROM ({days}) AS d LEFT JOIN ({firsts}) AS n ON n.conversation_id = d.conversation_id "
            f"AND n.first_date = d.sync_date")
    return text, sql.params


def question_stats_sql(table: str, backend: str, scope: Scope | None = None) -> tuple[str, list[Any]]:
    """Per bot and question: title, type, position, devices, answers, withheld, median duration.

    The median: PostgreSQL's ``percentile_cont(0.5)``; on SQLite, window functions (the middle row, or
    the mean of the two middle rows, of each question's durations in order). Both give the same value.
    """
    sql, t = SqlBuilder(backend), quoted_table(table)
    moment = sql.moment("coalesce(event_timestamp, at_timestamp)")
    questions = (f"SELECT conversation_id, question_id, max(question_title{sql.binary}) AS question_title, "
                 f"max(question_type{sql.binary}) AS question_type, min(x_path{sql.binary}) AS x_path, "
                 f"min({moment}) AS first_seen, count(*) AS answers, "
                 f"sum(CASE WHEN question_response = '' THEN 1 ELSE 0 END) AS withheld "
                 f"FROM {t}{sql.where(scope)} GROUP BY conversation_id, question_id")
    devices = (f"SELECT conversation_id, question_id, count(*) AS devices FROM (SELECT DISTINCT conversation_id, "
               f"question_id, device_id FROM {t}{sql.where(scope)}) AS seen GROUP BY conversation_id, question_id")
    where = sql.where(scope)
    if backend == "postgres":
        # an ordered-set aggregate cannot be hashed: fed by an index scan it would visit the rows in index
        # order; OFFSET 0 keeps the narrow rows apart, to be sorted once
        medians = (f"SELECT conversation_id, question_id, percentile_cont(0.5) WITHIN GROUP (ORDER BY "
                   f"question_duration) AS median_duration FROM (SELECT conversation_id, question_id, "
                   f"question_duration FROM {t}{where} OFFSET 0) AS durations GROUP BY conversation_id, question_id")
    else:
        medians = (f"SELECT conversation_id, question_id, avg(CAST(question_duration AS REAL)) AS median_duration "
                   f"FROM (SELECT conversation_id, question_id, question_duration, row_number() OVER (PARTITION BY "
                   f"conversation_id, question_id ORDER BY question_duration) AS place, count(*) OVER (PARTITION BY "
                   f"conversation_id, question_id) AS n FROM {t}{where}{' AND' if where else ' WHERE'} "
                   f"question_duration IS NOT NULL) AS ranked WHERE place IN ((n + 1) / 2, (n + 2) / 2) "
                   f"GROUP BY conversation_id, question_id")
    join_medians = (f" LEFT JOIN ({medians}) AS m ON m.conversation_id = q.conversation_id AND "
                    f"m.question_id = q.question_id")
    text = (
        f"SELECT q.conversation_id, q.question_id, q.question_title, q.question_type, q.x_path, "
        f"row_number() OVER (PARTITION BY q.conversation_id ORDER BY {_conversation_order('q.', sql.binary)}) "
        f"AS position, d.devices, q.answers, q.withheld, m.median_duration "
        f"FROM ({questions}) AS q JOIN ({devices}) AS d ON d.conversation_id = q.conversation_id AND "
        f"d.question_id = q.question_id{join_medians}")
    return text, sql.params


def sessions_sql(table: str, backend: str, scope: Scope | None = None) -> tuple[str, list[Any]]:
    """Per bot and session: device, questions answered, answers, reached the end, started and ended."""
    sql, t = SqlBuilder(backend), quoted_table(table)
    base = (f"SELECT conversation_id, coalesce(nullif(session_id, ''), device_id || '/' || CAST(sync_date AS TEXT)) "
            f"AS session_id, device_id, question_id, eof, sync_date, "
            f"{sql.moment('coalesce(event_timestamp, at_timestamp)')} AS moment FROM {t}{sql.where(scope)}")
    text = (f"SELECT conversation_id, session_id, min(device_id) AS device_id, min(sync_date) AS sync_date, "
            f"count(DISTINCT question_id) AS questions_answered, count(*) AS answers, "
            f"{sql.any_true('eof')} AS reached_end, min(moment) AS started_at, max(moment) AS ended_at "
            f"FROM ({base}) AS s GROUP BY conversation_id, session_id")
    return text, sql.params


def completion_sql(table: str, backend: str, scope: Scope | None = None) -> tuple[str, list[Any]]:
    """Per bot: sessions, sessions that reached the end, and the completion rate (their ratio)."""
    sessions, params = sessions_sql(table, backend, scope)
    real = SqlBuilder(backend).real
    reached = "CASE WHEN reached_end THEN 1 ELSE 0 END"
    return (f"SELECT conversation_id, count(*) AS sessions, sum({reached}) AS completed, "
            f"CAST(sum({reached}) AS {real}) / count(*) AS completion_rate FROM ({sessions}) AS s "
            f"GROUP BY conversation_id"), params


def _conversation_order(prefix: str, binary: str) -> str:
    """The ``ORDER BY`` terms that place a bot's questions: first answered, then by id (a question never
    answered with a timestamp last, on both databases)."""
    return f"CASE WHEN {prefix}first_seen IS NULL THEN 1 ELSE 0 END, {prefix}first_seen, {prefix}question_id{binary}"


def funnel_sql(table: str, backend: str, scope: Scope) -> tuple[str, list[Any]]:
    """One bot's questions in conversation order with the devices that answered each: the lighter
    query behind the report's funnel, positions as in ``_question_stats``. It reads only the columns
    of the index ``<table>_funnel`` (an index-only scan on PostgreSQL once the table is vacuumed)."""
    sql, t = SqlBuilder(backend), quoted_table(table)
    moment = sql.moment("coalesce(event_timestamp, at_timestamp)")
    per_device = (f"SELECT conversation_id, question_id, device_id, min({moment}) AS first_seen FROM "
                  f"{t}{sql.where(scope)} GROUP BY conversation_id, question_id, device_id")
    questions = (f"SELECT conversation_id, question_id, min(first_seen) AS first_seen, count(*) AS devices FROM "
                 f"({per_device}) AS per_device GROUP BY conversation_id, question_id")
    text = (f"SELECT conversation_id, question_id, row_number() OVER (PARTITION BY conversation_id ORDER BY "
            f"{_conversation_order('', sql.binary)}) AS position, devices FROM ({questions}) AS q ORDER BY 1, 3")
    return text, sql.params


_BUILDERS = {"_daily": daily_sql, "_question_stats": question_stats_sql, "_sessions": sessions_sql,
             "_completion": completion_sql}


def view_names(table: str) -> list[str]:
    """The names of ``table``'s views."""
    return [f"{table}{suffix}" for suffix in VIEW_SUFFIXES]


def view_ddl(table: str, backend: str) -> list[str]:
    """``CREATE VIEW`` statements of ``table``'s views, in the order of :data:`VIEW_SUFFIXES`."""
    statements = []
    for suffix in VIEW_SUFFIXES:
        text, params = _BUILDERS[suffix](table, backend)
        assert not params
        statements.append(f'CREATE VIEW "{table}{suffix}" AS {text}')
    return statements


def fingerprint(statement: str) -> str:
    """What a view's PostgreSQL comment says: which definition made it."""
    return f"airflow-provider-uci view {hashlib.sha256(statement.encode()).hexdigest()[:16]}"


#: The columns of ``<table>_funnel``: what :func:`funnel_sql` reads.
FUNNEL_INDEX_COLUMNS = ("conversation_id", "question_id", "device_id", "event_timestamp", "at_timestamp")


def funnel_index_ddl(table: str) -> str:
    """The index a bot's funnel is read from: per bot and question, its devices (in order: counted as the
    index is read, with no sort) and when they answered."""
    return f'CREATE INDEX IF NOT EXISTS "{table}_funnel" ON {quoted_table(table)} ({", ".join(FUNNEL_INDEX_COLUMNS)})'


def create_funnel_index(warehouse: Any, table: str) -> None:
    """Create the index ``<table>_funnel`` (if missing) and commit: a bot's funnel is then read from it alone.

    Not made by loads: keeping it up to date about doubles the database's share of a load (500k rows
    inserted in 9-10 s instead of 4-5 on PostgreSQL), so it is for warehouses that are read more than
    loaded.
    """
    name = f"{table}_funnel"
    if warehouse.backend == "postgres":
        found = warehouse._query("SELECT pg_get_indexdef(to_regclass(%s))", (quote_name(name),))
    else:
        found = warehouse._query("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", (name,))
    made = found[0][0] if found else None
    if made is not None and not all(column in made for column in FUNNEL_INDEX_COLUMNS):
        warehouse._execute(f'DROP INDEX "{name}"')  # an earlier version's, without the timestamps
    warehouse._execute(funnel_index_ddl(table))
    if warehouse.backend == "postgres":  # SQLite's statement committed itself (no transaction was open)
        warehouse._commit()


def create_views(warehouse: Any, table: str) -> None:
    """Create ``table``'s views where missing or made by another definition, in the warehouse's open
    transaction (the load's).

    On PostgreSQL, a view whose comment holds its definition's :func:`fingerprint` is left alone
    (replacing it would lock out its readers until the load commits); two loads that find one to make
    are serialised by an advisory lock. On SQLite a view's stored text is its definition.
    """
    names, statements = view_names(table), view_ddl(table, warehouse.backend)
    if warehouse.backend == "sqlite":
        made = dict(warehouse._query(
            f"SELECT name, sql FROM sqlite_master WHERE type = 'view' AND name IN ({', '.join('?' for _ in names)})",
            tuple(names)))
        for name, statement in zip(names, statements, strict=True):
            if made.get(name) != statement:
                if name in made:
                    warehouse._execute(f'DROP VIEW "{name}"')
                warehouse._execute(statement)
        return

    def comments() -> list[Any]:
        return list(warehouse._query("SELECT " + ", ".join("obj_description(to_regclass(%s), 'pg_class')" for _ in names),
                                     tuple(f'"{name}"' for name in names))[0])

    wanted = [fingerprint(statement) for statement in statements]
    if comments() == wanted:
        return
    warehouse._query("SELECT pg_advisory_xact_lock(%s)", (zlib.crc32(f"uci-views:{table}".encode()),))
    for name, statement, comment, mark in zip(names, statements, comments(), wanted, strict=True):
        if comment != mark:
            _replace_view(warehouse, name, statement, mark)


def _replace_view(warehouse: Any, name: str, statement: str, mark: str) -> None:
    """Make or replace one PostgreSQL view: in place where its columns allow, else dropped and made again.
    A view that cannot be dropped (another view of the user's reads it) is kept as it is, with a warning:
    the load goes on."""
    exists = warehouse._query("SELECT to_regclass(%s) IS NOT NULL", (f'"{name}"',))[0][0]
    attempts = [[statement]] if not exists else [
        [statement.replace("CREATE VIEW", "CREATE OR REPLACE VIEW", 1)], [f'DROP VIEW "{name}"', statement]]
    for number, attempt in enumerate(attempts, start=1):
        warehouse._execute("SAVEPOINT uci_view")
        try:
            for text in attempt:
                warehouse._execute(text)
        except Exception as exc:  # noqa: BLE001 - told below, or by the next attempt
            warehouse._execute("ROLLBACK TO SAVEPOINT uci_view")
            if number == len(attempts):
                log.warning("Kept the view %s of an earlier version: it could not be replaced (%s)", name,
                            str(exc).splitlines()[0])
                return
            continue
        warehouse._execute("RELEASE SAVEPOINT uci_view")
        warehouse._execute(f'COMMENT ON VIEW "{name}" IS \'{mark}\'')
        return
