"""The report's numbers: each bot's sessions, funnel, answer shares and days, read from a warehouse.

Every number is what the queries behind the warehouse's views (``exhaust.warehouse.views``) give narrowed
to the report's :class:`Scope`, so a figure on the page is the figure in the view: on PostgreSQL from those
queries, on SQLite (which sorts the rows for each of them) from one sorted pass over the rows that computes
the same (``analytics.one_pass``). Answers are grouped here by what a person reads (:func:`answer_label`),
so two spellings of one choice count as one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from airflow_provider_uci.analytics import one_pass
from airflow_provider_uci.exhaust.warehouse.schema import check_table, quote_name
from airflow_provider_uci.exhaust.warehouse.views import (
    Scope,
    SqlBuilder,
    answer_shares_sql,
    completion_sql,
    daily_sql,
    funnel_view_sql,
    question_stats_sql,
    quoted_table,
)

WITHHELD = "(withheld: no consent)"
#: Answer types drawn as a distribution of choices; the others are counted as free text.
CHOICE_TYPES = ("mcq",)
#: Choices shown per question; the rest are summed as "other (N values)".
TOP_CHOICES = 10
#: Sample answers shown per free-text question.
SAMPLES = 3
#: What a sample answer must not look like: a phone number (6+ digits), a UUID (a device id).
_PRIVATE = re.compile(
    r"\d[\d\s().+-]{4,}\d|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I
)


@dataclass
class Question:
    """One question's figures, in conversation order."""

    question_id: str
    title: str
    kind: str
    position: int
    answers: int = 0
    withheld: int = 0
    median_duration: float | None = None
    reached: int = 0  # sessions that answered it or a later question
    answered: int = 0  # sessions that answered it
    stopped: int = 0  # sessions that did not finish and answered nothing later
    shares: list[tuple[str, int]] = field(default_factory=list)  # (label, sessions), most first
    distinct: int = 0  # distinct answers (by label)
    samples: list[str] = field(default_factory=list)

    @property
    def is_choice(self) -> bool:
        return self.kind.lower() in CHOICE_TYPES


@dataclass
class Bot:
    """One bot's figures in the report's scope."""

    conversation_id: str
    name: str
    answers: int = 0
    devices: int = 0
    sessions: int = 0
    completed: int = 0
    median_seconds: float | None = None
    p90_seconds: float | None = None
    daily: list[tuple[date, int, int, int]] = field(
        default_factory=list
    )  # day, devices, answers, new devices
    questions: list[Question] = field(default_factory=list)

    @property
    def completion_rate(self) -> float | None:
        return self.completed / self.sessions if self.sessions else None


@dataclass
class Fleet:
    """The bots of a report and what only the whole fleet has: its distinct people."""

    bots: list[Bot]
    people: int = 0


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def answer_label(response: str | None) -> str:
    """What a user chose, from the response's JSON (``[{"1": {"text": "1 Yes"}}]``, ``[{"ans1": "..."}]``)."""
    if response is None:
        return "(none)"
    if response == "":
        return WITHHELD
    try:
        parsed = json.loads(response)
    except ValueError:
        return response
    parts = []
    for item in parsed if isinstance(parsed, list) else [parsed]:
        values = item.values() if isinstance(item, dict) else [item]
        for value in values:
            if isinstance(value, dict) and "text" in value:
                parts.append(str(value["text"]))
            elif isinstance(value, (str, int, float)):
                parts.append(str(value))
            else:
                parts.append(json.dumps(value, ensure_ascii=False))
    return ", ".join(parts) or "(empty)"


def is_private(label: str) -> bool:
    """Whether an answer could identify a person: a phone-like number (or any 6+ digits), a UUID (device ids)."""
    return bool(_PRIVATE.search(label))


class _Reader:
    def __init__(self, warehouse: Any, table: str, scope: Scope) -> None:
        self.warehouse, self.table, self.scope, self.backend = warehouse, table, scope, warehouse.backend

    def query(self, text: str, params: list[Any]) -> list[tuple[Any, ...]]:
        try:
            rows: list[tuple[Any, ...]] = self.warehouse._query(text, tuple(params))
            return rows
        finally:
            self.warehouse._rollback()

    def view(self, builder: Any, **options: Any) -> list[tuple[Any, ...]]:
        return self.query(*builder(self.table, self.backend, self.scope, **options))

    def known_bots(self) -> list[str]:
        """Bots that loads wrote for days of the scope (``<table>_loads``), answers or not."""
        if not self.warehouse._exists(f"{self.table}_loads"):
            return []
        sql = SqlBuilder(self.backend)
        terms = []
        if self.scope.conversation_id is not None:
            terms.append(f"conversation_id = {sql.param}")
            sql.params.append(self.scope.conversation_id)
        if self.scope.from_date:
            terms.append(f"(to_date IS NULL OR to_date >= {sql.param})")
            sql.params.append(self.scope.from_date)
        if self.scope.to_date:
            terms.append(f"(from_date IS NULL OR from_date <= {sql.param})")
            sql.params.append(self.scope.to_date)
        where = f" WHERE {' AND '.join(terms)}" if terms else ""
        return [
            row[0]
            for row in self.query(
                f"SELECT DISTINCT conversation_id FROM {quote_name(check_table(self.table) + '_loads')}{where}",
                sql.params,
            )
        ]

    def name(self, conversation_id: str) -> str:
        """A bot's name from any of its rows, whatever the day."""
        sql = SqlBuilder(self.backend)
        rows = self.query(
            f"SELECT conversation_name FROM {quoted_table(self.table)} WHERE conversation_id = "
            f"{sql.param} AND conversation_name IS NOT NULL LIMIT 1",
            [conversation_id],
        )
        return rows[0][0] if rows and rows[0][0] else conversation_id


def collect(warehouse: Any, table: str, scope: Scope) -> list[Bot]:
    """Every bot's figures in ``scope``, largest first (bots loaded for the range but silent last, with zeros)."""
    return collect_fleet(warehouse, table, scope).bots


def collect_fleet(warehouse: Any, table: str, scope: Scope) -> Fleet:
    """The fleet's figures in ``scope``: each bot's (as :func:`collect`) and the distinct people."""
    if warehouse.backend == "postgres":
        # for this session: no JIT (it costs more than it saves here), sorts in memory
        warehouse._execute("SET jit = off")
        warehouse._execute("SET work_mem = '64MB'")
        warehouse._commit()
    if not warehouse._exists(table):
        raise ValueError(f"table: the warehouse holds no table {table!r}; load an exhaust into it first")
    read = _Reader(warehouse, table, scope)
    # SQLite sorts for every GROUP BY: there one sorted pass over the rows gives what the views' queries give
    rows = one_pass.fleet_rows(warehouse, table, scope) if warehouse.backend == "sqlite" else _view_rows(read)
    bots = {
        conversation: Bot(conversation, name or conversation, int(answers), devices)
        for conversation, name, answers, devices in rows.bots
    }
    for conversation, day, devices, answers, new in rows.daily:
        bots[conversation].daily.append((_day(day), devices, answers, new))
    for conversation, sessions, completed, _, median, p90 in rows.completion:
        bot = bots[conversation]
        bot.sessions, bot.completed = sessions, int(completed or 0)
        bot.median_seconds, bot.p90_seconds = (
            None if median is None else float(median),
            None if p90 is None else float(p90),
        )
    by_key = _questions(bots, rows)
    _shares(rows.answer_shares, by_key)
    for conversation in [*read.known_bots(), *([scope.conversation_id] if scope.conversation_id else [])]:
        if conversation not in bots:
            bots[conversation] = Bot(conversation, read.name(conversation))
    for bot in bots.values():
        bot.daily.sort()
        bot.questions.sort(key=lambda item: item.position)
    return Fleet(
        sorted(bots.values(), key=lambda bot: (-bot.sessions, -bot.answers, bot.conversation_id)), rows.people
    )


def _view_rows(read: _Reader) -> one_pass.FleetRows:
    """The rows of the views' queries narrowed to the reader's scope, and the distinct people."""
    sql, t = SqlBuilder(read.backend), quoted_table(read.table)
    bots = read.query(
        f"SELECT conversation_id, max(conversation_name{sql.binary}), sum(n), count(*) FROM (SELECT "
        f"conversation_id, device_id, max(conversation_name{sql.binary}) AS conversation_name, count(*) AS n "
        f"FROM {t}{sql.where(read.scope)} GROUP BY conversation_id, device_id) AS d GROUP BY conversation_id",
        sql.params,
    )
    people = sum(row[3] for row in bots)
    if len(bots) > 1:
        sql = SqlBuilder(read.backend)
        people = read.query(
            f"SELECT count(*) FROM (SELECT device_id FROM {t}{sql.where(read.scope)} GROUP BY device_id) AS d",
            sql.params,
        )[0][0]
    return one_pass.FleetRows(
        bots,
        people,
        read.view(daily_sql),
        read.view(completion_sql),
        read.view(question_stats_sql, devices=False),  # devices per question: not shown, a pass saved
        read.view(funnel_view_sql),
        read.view(answer_shares_sql),
    )


def _questions(bots: dict[str, Bot], rows: one_pass.FleetRows) -> dict[tuple[str, str], Question]:
    """Each bot's questions with their answers and funnel, by ``(conversation, question)``."""
    by_key: dict[tuple[str, str], Question] = {}
    for conversation, question, title, kind, _, position, _, answers, withheld, median in rows.question_stats:
        item = Question(
            question,
            title or question,
            kind or "",
            position,
            answers,
            int(withheld or 0),
            None if median is None else float(median),
        )
        bots[conversation].questions.append(item)
        by_key[(conversation, question)] = item
    for conversation, question, _, reached, answered, stopped in rows.funnel:
        item = by_key[(conversation, question)]
        item.reached, item.answered, item.stopped = reached, answered, stopped
    return by_key


def _shares(rows: list[tuple[Any, ...]], by_key: dict[tuple[str, str], Question]) -> None:
    """Each question's answers by label, most sessions first; a free-text question's few safe samples."""
    labels: dict[tuple[str, str], dict[str, int]] = {}
    for conversation, question, answer, sessions, _ in rows:
        counts = labels.setdefault((conversation, question), {})
        label = answer_label(answer)
        counts[label] = counts.get(label, 0) + sessions
    for key, counts in labels.items():
        item = by_key[key]
        ranked = sorted(counts.items(), key=lambda pair: (-pair[1], pair[0]))
        item.distinct = len(ranked)
        if item.is_choice:
            item.shares = ranked[:TOP_CHOICES]
            rest = ranked[TOP_CHOICES:]
            if rest:
                item.shares.append((f"other ({len(rest):,} values)", sum(n for _, n in rest)))
            continue
        item.samples = [
            label
            for label, _ in ranked
            if label not in (WITHHELD, "(none)", "(empty)") and not is_private(label)
        ][:SAMPLES]
