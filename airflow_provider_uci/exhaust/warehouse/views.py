"""Analytics over a responses table, as SQL both warehouses run: views, and the same queries filtered.

Each query is built by one function here, for SQLite or PostgreSQL, over the table's own columns
(``exhaust.warehouse.schema.STORED_RESPONSE_COLUMNS``). :func:`create_views` makes them the views
``<table>_daily``, ``<table>_question_stats``, ``<table>_sessions``, ``<table>_completion``,
``<table>_funnel`` and ``<table>_answer_shares`` (the load calls it with the tables); the report runs the same text narrowed to one bot and a range of
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
- ``_completion``: per bot, sessions, those that reached the end, their ratio, and the median and
  90th percentile of the seconds from a completed session's first answer to its first answer with
  ``Eof`` true (interpolated as PostgreSQL's ``percentile_cont``; on SQLite by window functions).
- ``_funnel``: per bot and question in conversation order (``position`` as in ``_question_stats``),
  the sessions that answered it or a later question (``sessions_reached``), that answered it
  (``sessions_answered``; an answer withheld without consent is an answer), and that did not reach
  the end and answered nothing later (``sessions_stopped_here``).
- ``_answer_shares``: per bot, question and answer (``question_response`` as stored; ``""`` is an
  answer withheld), the sessions whose last answer to the question it is, and their ``share`` of the
  sessions that answered the question. A session's last answer is its latest by ``Timestamp``,
  else ``@timestamp``, the Message ID (byte order) breaking ties.

A session is the ``Session ID``, or the device and sync day where a vintage has none, in every view.

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
VIEW_SUFFIXES = ("_daily", "_question_stats", "_sessions", "_completion", "_funnel", "_answer_shares")


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
        return (
            f"coalesce(bool_or({column}), false)"
            if self.backend == "postgres"
            else f"coalesce(max({column}), 0)"
        )

    @property
    def integer(self) -> str:
        return "bigint" if self.backend == "postgres" else "INTEGER"

    def seconds(self, start: str, end: str) -> str:
        """Seconds from one :meth:`moment` to another, to the millisecond."""
        if self.backend == "postgres":
            return (
                f"CAST(round(CAST(extract(epoch FROM ({end} - {start})) AS numeric), 3) AS double precision)"
            )
        return f"round((julianday({end}) - julianday({start})) * 86400.0, 3)"


#: A session: its Session ID, or for vintages without one its device and sync day.
SESSION_KEY = "coalesce(nullif(session_id, ''), device_id || '/' || CAST(sync_date AS TEXT))"


def quoted_table(table: str) -> str:
    """``table``, checked (``schema.check_table``) and quoted for SQL."""
    return quote_name(check_table(table))


def daily_sql(table: str, backend: str, scope: Scope | None = None) -> tuple[str, list[Any]]:
    """Per bot and sync day: devices, answers, new devices (first answer to the bot ever)."""
    sql, t = SqlBuilder(backend), quoted_table(table)
    # distinct devices by grouping (hashed), not count(DISTINCT ...) (a sort of every row)
    days = (
        f"SELECT conversation_id, sync_date, count(*) AS devices, sum(n) AS answers FROM (SELECT conversation_id, "
        f"sync_date, device_id, count(*) AS n FROM {t}{sql.where(scope)} GROUP BY conversation_id, sync_date, "
        f"device_id) AS per_device GROUP BY conversation_id, sync_date"
    )
    firsts = (
        f"SELECT conversation_id, first_date, count(*) AS new_devices FROM (SELECT conversation_id, "
        f"min(sync_date) AS first_date FROM {t}{sql.where(scope, days=False)} GROUP BY conversation_id, "
        f"device_id) AS f GROUP BY conversation_id, first_date"
    )
    text = (
        f"SELECT d.conversation_id, d.sync_date, d.devices, d.answers, coalesce(n.new_devices, 0) AS new_devices "
        f"FROM ({days}) AS d LEFT JOIN ({firsts}) AS n ON n.conversation_id = d.conversation_id "
        f"AND n.first_date = d.sync_date"
    )
    return text, sql.params


def question_stats_sql(
    table: str, backend: str, scope: Scope | None = None, devices: bool = True
) -> tuple[str, list[Any]]:
    """Per bot and question: title, type, position, devices (null without ``devices``: a pass over the rows
    saved), answers, withheld, median duration.

    The median: PostgreSQL's ``percentile_cont(0.5)``; on SQLite, window functions (the middle row, or
    the mean of the two middle rows, of each question's durations in order). Both give the same value.
    """
    sql, t = SqlBuilder(backend), quoted_table(table)
    moment = sql.moment("coalesce(event_timestamp, at_timestamp)")
    questions = (
        f"SELECT conversation_id, question_id, max(question_title{sql.binary}) AS question_title, "
        f"max(question_type{sql.binary}) AS question_type, min(x_path{sql.binary}) AS x_path, "
        f"min({moment}) AS first_seen, count(*) AS answers, "
        f"sum(CASE WHEN question_response = '' THEN 1 ELSE 0 END) AS withheld "
        f"FROM {t}{sql.where(scope)} GROUP BY conversation_id, question_id"
    )
    seen = (
        f"SELECT conversation_id, question_id, count(*) AS devices FROM (SELECT DISTINCT conversation_id, "
        f"question_id, device_id FROM {t}{sql.where(scope)}) AS seen GROUP BY conversation_id, question_id"
        if devices
        else ""
    )  # its parameters are taken only when it is part of the text
    where = sql.where(scope)
    if backend == "postgres":
        # an ordered-set aggregate cannot be hashed: fed by an index scan it would visit the rows in index
        # order; OFFSET 0 keeps the narrow rows apart, to be sorted once
        medians = (
            f"SELECT conversation_id, question_id, percentile_cont(0.5) WITHIN GROUP (ORDER BY "
            f"question_duration) AS median_duration FROM (SELECT conversation_id, question_id, "
            f"question_duration FROM {t}{where} OFFSET 0) AS durations GROUP BY conversation_id, question_id"
        )
    else:
        medians = (
            f"SELECT conversation_id, question_id, avg(CAST(question_duration AS REAL)) AS median_duration "
            f"FROM (SELECT conversation_id, question_id, question_duration, row_number() OVER (PARTITION BY "
            f"conversation_id, question_id ORDER BY question_duration) AS place, count(*) OVER (PARTITION BY "
            f"conversation_id, question_id) AS n FROM {t}{where}{' AND' if where else ' WHERE'} "
            f"question_duration IS NOT NULL) AS ranked WHERE place IN ((n + 1) / 2, (n + 2) / 2) "
            f"GROUP BY conversation_id, question_id"
        )
    join_medians = (
        f" LEFT JOIN ({medians}) AS m ON m.conversation_id = q.conversation_id AND "
        f"m.question_id = q.question_id"
    )
    text = (
        f"SELECT q.conversation_id, q.question_id, q.question_title, q.question_type, q.x_path, "
        f"row_number() OVER (PARTITION BY q.conversation_id ORDER BY {_conversation_order('q.', sql.binary)}) "
        f"AS position, {'d.devices' if devices else 'NULL AS devices'}, q.answers, q.withheld, m.median_duration "
        f"FROM ({questions}) AS q"
        + (
            f" JOIN ({seen}) AS d ON d.conversation_id = q.conversation_id AND d.question_id = q.question_id"
            if devices
            else ""
        )
        + join_medians
    )
    return text, sql.params


def sessions_sql(table: str, backend: str, scope: Scope | None = None) -> tuple[str, list[Any]]:
    """Per bot and session: device, questions answered, answers, reached the end, started and ended."""
    sql, t = SqlBuilder(backend), quoted_table(table)
    base = (
        f"SELECT conversation_id, {SESSION_KEY} AS session_id, device_id, question_id, eof, sync_date, "
        f"{sql.moment('coalesce(event_timestamp, at_timestamp)')} AS moment FROM {t}{sql.where(scope)}"
    )
    text = (
        f"SELECT conversation_id, session_id, min(device_id) AS device_id, min(sync_date) AS sync_date, "
        f"count(DISTINCT question_id) AS questions_answered, count(*) AS answers, "
        f"{sql.any_true('eof')} AS reached_end, min(moment) AS started_at, max(moment) AS ended_at "
        f"FROM ({base}) AS s GROUP BY conversation_id, session_id"
    )
    return text, sql.params


def completion_sql(table: str, backend: str, scope: Scope | None = None) -> tuple[str, list[Any]]:
    """Per bot: sessions, sessions that reached the end, the completion rate (their ratio), and the median
    and 90th percentile of the seconds to complete (first answer to the first with ``Eof`` true)."""
    sql, t = SqlBuilder(backend), quoted_table(table)
    moment = sql.moment("coalesce(event_timestamp, at_timestamp)")
    ended = "eof" if backend == "postgres" else "eof = 1"
    base = f"SELECT conversation_id, {SESSION_KEY} AS session_key, eof, {moment} AS moment FROM {t}{sql.where(scope)}"
    sessions = (
        f"SELECT conversation_id, session_key, {sql.any_true('eof')} AS reached_end, min(moment) AS started, "
        f"min(CASE WHEN {ended} THEN moment END) AS finished FROM ({base}) AS b "
        f"GROUP BY conversation_id, session_key"
    )
    timed = f"SELECT conversation_id, reached_end, {sql.seconds('started', 'finished')} AS seconds FROM ({sessions}) AS s"
    reached = "CASE WHEN reached_end THEN 1 ELSE 0 END"
    counts = (
        f"SELECT conversation_id, count(*) AS sessions, sum({reached}) AS completed, CAST(sum({reached}) AS "
        f"{sql.real}) / count(*) AS completion_rate"
    )
    if backend == "postgres":
        return (
            f"{counts}, percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS median_seconds_to_complete, "
            f"percentile_cont(0.9) WITHIN GROUP (ORDER BY seconds) AS p90_seconds_to_complete "
            f"FROM ({timed}) AS d GROUP BY conversation_id"
        ), sql.params
    ranked = (
        f"SELECT conversation_id, reached_end, seconds, CASE WHEN seconds IS NULL THEN NULL ELSE row_number() "
        f"OVER (PARTITION BY conversation_id, seconds IS NULL ORDER BY seconds) END AS place, count(seconds) "
        f"OVER (PARTITION BY conversation_id) AS n FROM ({timed}) AS d"
    )
    return (
        f"{counts}, {_sqlite_percentile(0.5)} AS median_seconds_to_complete, {_sqlite_percentile(0.9)} AS "
        f"p90_seconds_to_complete FROM ({ranked}) AS r GROUP BY conversation_id"
    ), sql.params


def _sqlite_percentile(fraction: float) -> str:
    """PostgreSQL's ``percentile_cont(fraction)`` over the ``place``-numbered ``seconds`` of a group of
    ``n``: the value at ``(n - 1) * fraction``, interpolated between the rows either side."""
    row, group = (
        f"(n - 1) * {fraction!r}",
        f"(max(n) - 1) * {fraction!r}",
    )  # n: the same on every row of a group
    below = f"min(CASE WHEN place = CAST({row} AS INTEGER) + 1 THEN seconds END)"
    above = f"coalesce(min(CASE WHEN place = CAST({row} AS INTEGER) + 2 THEN seconds END), {below})"
    return f"{below} + ({group} - CAST({group} AS INTEGER)) * ({above} - {below})"


def funnel_view_sql(table: str, backend: str, scope: Scope | None = None) -> tuple[str, list[Any]]:
    """Per bot and question in conversation order: sessions reached, answered, and stopped there."""
    sql, t = SqlBuilder(backend), quoted_table(table)
    moment = sql.moment("coalesce(event_timestamp, at_timestamp)")
    # one row per session and question, the rest read from these
    pairs = (
        f"SELECT conversation_id, {SESSION_KEY} AS session_key, question_id, {sql.any_true('eof')} AS eof, "
        f"min({moment}) AS first_seen FROM {t}{sql.where(scope)} GROUP BY 1, 2, 3"
    )
    positions = (
        f"SELECT conversation_id, question_id, row_number() OVER (PARTITION BY conversation_id ORDER BY "
        f"{_conversation_order('', sql.binary)}) AS position, answered FROM (SELECT conversation_id, "
        f"question_id, min(first_seen) AS first_seen, count(*) AS answered FROM pairs GROUP BY 1, 2) AS q"
    )
    reached = "CASE WHEN s.reached_end THEN 1 ELSE 0 END"
    lasts = (
        f"SELECT conversation_id, last_position, count(*) AS sessions, sum(1 - {reached}) AS stopped FROM "
        f"(SELECT p.conversation_id, max(p.position) AS last_position, {sql.any_true('pairs.eof')} AS reached_end "
        f"FROM pairs JOIN positions AS p ON p.conversation_id = pairs.conversation_id AND p.question_id = "
        f"pairs.question_id GROUP BY p.conversation_id, pairs.session_key) AS s GROUP BY 1, 2"
    )
    text = (
        f"WITH pairs AS ({pairs}), positions AS ({positions}), lasts AS ({lasts}) "
        f"SELECT p.conversation_id, p.question_id, p.position, CAST(sum(coalesce(l.sessions, 0)) OVER (PARTITION BY "
        f"p.conversation_id ORDER BY p.position DESC ROWS UNBOUNDED PRECEDING) AS {sql.integer}) AS sessions_reached, "
        f"p.answered AS sessions_answered, CAST(coalesce(l.stopped, 0) AS {sql.integer}) AS sessions_stopped_here "
        f"FROM positions AS p LEFT JOIN lasts AS l ON l.conversation_id = p.conversation_id AND "
        f"l.last_position = p.position"
    )
    return text, sql.params


def answer_shares_sql(table: str, backend: str, scope: Scope | None = None) -> tuple[str, list[Any]]:
    """Per bot, question and answer: the sessions whose last answer to the question it is, and their share."""
    sql, t = SqlBuilder(backend), quoted_table(table)
    moment = sql.moment("coalesce(event_timestamp, at_timestamp)")
    ranked = (
        f"SELECT conversation_id, question_id, question_response AS answer, row_number() OVER (PARTITION BY "
        f"conversation_id, {SESSION_KEY}, question_id ORDER BY {moment} DESC, message_id{sql.binary} DESC) "
        f"AS place FROM {t}{sql.where(scope)}"
    )
    text = (
        f"SELECT conversation_id, question_id, answer, count(*) AS sessions, CAST(count(*) AS {sql.real}) / "
        f"CAST(sum(count(*)) OVER (PARTITION BY conversation_id, question_id) AS {sql.real}) AS share FROM ({ranked}) AS r "
        f"WHERE place = 1 GROUP BY conversation_id, question_id, answer"
    )
    return text, sql.params


def _conversation_order(prefix: str, binary: str) -> str:
    """The ``ORDER BY`` terms that place a bot's questions: first answered, then by id (a question never
    answered with a timestamp last, on both databases)."""
    return f"CASE WHEN {prefix}first_seen IS NULL THEN 1 ELSE 0 END, {prefix}first_seen, {prefix}question_id{binary}"


_BUILDERS = {
    "_daily": daily_sql,
    "_question_stats": question_stats_sql,
    "_sessions": sessions_sql,
    "_completion": completion_sql,
    "_funnel": funnel_view_sql,
    "_answer_shares": answer_shares_sql,
}


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


def create_views(warehouse: Any, table: str) -> None:
    """Create ``table``'s views where missing or made by another definition, in the warehouse's open
    transaction (the load's).

    On PostgreSQL, a view whose comment holds its definition's :func:`fingerprint` is left alone
    (replacing it would lock out its readers until the load commits); two loads that find one to make
    are serialised by an advisory lock. On SQLite a view's stored text is its definition.
    """
    names, statements = view_names(table), view_ddl(table, warehouse.backend)
    _drop_old_funnel_index(warehouse, table)
    if warehouse.backend == "sqlite":
        made = dict(
            warehouse._query(
                f"SELECT name, sql FROM sqlite_master WHERE type = 'view' AND name IN ({', '.join('?' for _ in names)})",
                tuple(names),
            )
        )
        for name, statement in zip(names, statements, strict=True):
            if made.get(name) != statement:
                if name in made:
                    warehouse._execute(f'DROP VIEW "{name}"')
                warehouse._execute(statement)
        return

    def comments() -> list[Any]:
        return list(
            warehouse._query(
                "SELECT " + ", ".join("obj_description(to_regclass(%s), 'pg_class')" for _ in names),
                tuple(f'"{name}"' for name in names),
            )[0]
        )

    wanted = [fingerprint(statement) for statement in statements]
    if comments() == wanted:
        return
    warehouse._query("SELECT pg_advisory_xact_lock(%s)", (zlib.crc32(f"uci-views:{table}".encode()),))
    for name, statement, comment, mark in zip(names, statements, comments(), wanted, strict=True):
        if comment != mark:
            _replace_view(warehouse, name, statement, mark)


def _drop_old_funnel_index(warehouse: Any, table: str) -> None:
    """Drop an index named as the ``_funnel`` view is (a table loaded by an earlier version can hold one),
    so that the view can be made under its name."""
    name = f"{table}_funnel"
    if warehouse.backend == "postgres":
        found = warehouse._query(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() AND indexname = %s", (name,)
        )
    else:
        found = warehouse._query(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = ?", (name,)
        )
    if found[0][0]:
        warehouse._execute(f'DROP INDEX "{name}"')


def _replace_view(warehouse: Any, name: str, statement: str, mark: str) -> None:
    """Make or replace one PostgreSQL view: in place where its columns allow, else dropped and made again.
    A view that cannot be dropped (another view of the user's reads it) is kept as it is, with a warning:
    the load goes on."""
    exists = warehouse._query("SELECT to_regclass(%s) IS NOT NULL", (f'"{name}"',))[0][0]
    attempts = (
        [[statement]]
        if not exists
        else [
            [statement.replace("CREATE VIEW", "CREATE OR REPLACE VIEW", 1)],
            [f'DROP VIEW "{name}"', statement],
        ]
    )
    for number, attempt in enumerate(attempts, start=1):
        warehouse._execute("SAVEPOINT uci_view")
        try:
            for text in attempt:
                warehouse._execute(text)
        except Exception as exc:
            warehouse._execute("ROLLBACK TO SAVEPOINT uci_view")
            if number == len(attempts):
                log.warning(
                    "Kept the view %s of an earlier version: it could not be replaced (%s)",
                    name,
                    str(exc).splitlines()[0],
                )
                return
            continue
        warehouse._execute("RELEASE SAVEPOINT uci_view")
        warehouse._execute(f"COMMENT ON VIEW \"{name}\" IS '{mark}'")
        return
