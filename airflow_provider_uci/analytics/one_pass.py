"""The report's figures from a SQLite table in one pass over its rows.

SQLite groups by sorting: each view's query behind a page (``exhaust.warehouse.views``) is one or two
sorts of every row in the scope, about ten in all for a fleet's page. Here the rows are sorted once, by
bot, session, question and time, and read once; every figure is computed from them as the views define
it: the same sessions (``SESSION_KEY``), moments (UTC ISO text, as the views order time), conversation
order, last answers, medians and interpolated percentiles, so the page reads what the views hold. The
tests hold the two to each other on both databases.

Memory stays small: a session's rows are done with when the next session starts; what is kept is per
bot, day and device, per question, and per distinct answer.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from airflow_provider_uci.exhaust.warehouse.views import SESSION_KEY, Scope, SqlBuilder, quoted_table

#: Each row's columns, in the order :func:`_read` unpacks them (the Message ID only orders them).
_COLUMNS = (
    "conversation_id",
    f"{SESSION_KEY} AS session_key",
    "question_id",
    "strftime('%Y-%m-%dT%H:%M:%fZ', coalesce(event_timestamp, at_timestamp)) AS moment",
    "device_id",
    "sync_date",
    "eof",
    "question_response",
    "question_duration",
    "conversation_name",
    "question_title",
    "question_type",
    "x_path",
)


class FleetRows(NamedTuple):
    """The rows of the views' queries a page reads (each as its view's columns), and the fleet's people."""

    bots: list[tuple[Any, ...]]  # conversation_id, name, answers, devices
    people: int
    daily: list[tuple[Any, ...]]
    completion: list[tuple[Any, ...]]
    question_stats: list[tuple[Any, ...]]
    funnel: list[tuple[Any, ...]]
    answer_shares: list[tuple[Any, ...]]


@dataclass(slots=True)
class _Question:
    title: str | None = None
    kind: str | None = None
    x_path: str | None = None
    first_seen: str | None = None
    answers: int = 0
    withheld: int = 0
    durations: Counter[Any] = field(default_factory=Counter)


@dataclass(slots=True)
class _Bot:
    name: str | None = None
    answers: int = 0
    days: dict[Any, tuple[set[str], list[int]]] = field(default_factory=dict)  # devices, [answers]
    firsts: dict[str, Any] = field(default_factory=dict)  # device: first sync day
    questions: dict[str, _Question] = field(default_factory=dict)
    paths: Counter[tuple[tuple[str, ...], bool]] = field(default_factory=Counter)  # questions, finished
    shares: Counter[tuple[str, Any]] = field(default_factory=Counter)  # question, last answer
    seconds: list[float] = field(default_factory=list)  # of completed sessions, where timed
    sessions: int = 0
    completed: int = 0


class _Session:
    """One session's rows as they are read (they come by question, then time)."""

    __slots__ = ("answers", "day", "device", "finished", "questions", "reached", "run", "started")

    def __init__(self) -> None:
        self.questions: list[str] = []
        self.answers: dict[str, Any] = {}  # question: its latest answer so far
        self.reached = False
        self.started: str | None = None
        self.finished: str | None = None
        self.day: Any = None  # the sync day and device of the latest rows, and how many rows in a row
        self.device: Any = None
        self.run = 0

    def count_run(self, bot: _Bot) -> None:
        """Count the rows of one day and device (a session's rows are mostly one run)."""
        if self.run:
            seen = bot.days.get(self.day)
            if seen is None:
                seen = bot.days[self.day] = (set(), [0])
            seen[0].add(self.device)
            seen[1][0] += self.run
            first = bot.firsts.get(self.device)
            if first is None or self.day < first:
                bot.firsts[self.device] = self.day
            self.run = 0

    def close(self, bot: _Bot) -> None:
        self.count_run(bot)
        bot.sessions += 1
        bot.completed += self.reached
        bot.paths[(tuple(self.questions), self.reached)] += 1
        for question, answer in self.answers.items():
            bot.shares[(question, answer)] += 1
        if self.started is not None and self.finished is not None:
            bot.seconds.append(_seconds(self.started, self.finished))


def _seconds(start: str, end: str) -> float:
    """Seconds between two moments, to the millisecond (the views' ``round(..., 3)`` of the difference)."""
    elapsed = datetime.fromisoformat(end.replace("Z", "+00:00")) - datetime.fromisoformat(
        start.replace("Z", "+00:00")
    )
    return (elapsed.days * 86_400_000 + elapsed.seconds * 1000 + elapsed.microseconds // 1000) / 1000


def fleet_rows(warehouse: Any, table: str, scope: Scope) -> FleetRows:
    """What the views' queries give for ``scope``, from one sorted pass over a SQLite table's rows."""
    sql = SqlBuilder("sqlite")
    text = (
        f"SELECT {', '.join(_COLUMNS)} FROM {quoted_table(table)}{sql.where(scope)} "
        f"ORDER BY conversation_id, session_key, question_id, moment, message_id"
    )
    cursor = warehouse._conn.execute(text, sql.params)
    try:
        bots, people = _read(cursor)
    finally:
        cursor.close()
        warehouse._rollback()
    if scope.from_date or scope.to_date:  # a device's first day is its first of any day
        _first_days(warehouse, table, scope, bots)
    return FleetRows(
        [(bot_id, bot.name, bot.answers, len(bot.firsts)) for bot_id, bot in bots.items()],
        people,
        [row for bot_id, bot in bots.items() for row in _daily(bot_id, bot)],
        [_completion(bot_id, bot) for bot_id, bot in bots.items()],
        [row for bot_id, bot in bots.items() for row in _question_stats(bot_id, bot)],
        [row for bot_id, bot in bots.items() for row in _funnel(bot_id, bot)],
        [row for bot_id, bot in bots.items() for row in _answer_shares(bot_id, bot)],
    )


def _read(cursor: Any) -> tuple[dict[str, _Bot], int]:
    """Every row once: each bot's figures, and the distinct devices of all bots."""
    bots: dict[str, _Bot] = {}
    bot, session, bot_id, session_key = _Bot(), _Session(), None, None
    for row in cursor:
        (
            conversation,
            key,
            question,
            moment,
            device,
            day,
            eof,
            response,
            duration,
            name,
            title,
            kind,
            path,
        ) = row
        if conversation != bot_id or key != session_key:
            if session_key is not None:
                session.close(bot)
            if conversation != bot_id:
                bot = bots[conversation] = _Bot()
                bot_id = conversation
            session, session_key = _Session(), key
        if day != session.day or device != session.device:
            session.count_run(bot)
            session.day, session.device = day, device
        session.run += 1
        bot.answers += 1
        if name is not None and (bot.name is None or name > bot.name):
            bot.name = name
        _count_question(bot, question, moment, response, duration, (title, kind, path))
        if not session.questions or session.questions[-1] != question:
            session.questions.append(question)
        session.answers[question] = response
        if moment is not None and (session.started is None or moment < session.started):
            session.started = moment
        if eof:
            session.reached = True
            if eof == 1 and moment is not None and (session.finished is None or moment < session.finished):
                session.finished = moment
    if session_key is not None:
        session.close(bot)
    return bots, len(set().union(*(bot.firsts for bot in bots.values())))


def _count_question(
    bot: _Bot, question: str, moment: str | None, response: Any, duration: Any, texts: tuple[Any, ...]
) -> None:
    item = bot.questions.get(question)
    if item is None:
        item = bot.questions[question] = _Question()
    item.answers += 1
    if response == "":
        item.withheld += 1
    if duration is not None:
        item.durations[duration] += 1
    if moment is not None and (item.first_seen is None or moment < item.first_seen):
        item.first_seen = moment
    title, kind, x_path = texts
    if title is not None and (item.title is None or title > item.title):
        item.title = title
    if kind is not None and (item.kind is None or kind > item.kind):
        item.kind = kind
    if x_path is not None and (item.x_path is None or x_path < item.x_path):
        item.x_path = x_path


def _first_days(warehouse: Any, table: str, scope: Scope, bots: dict[str, _Bot]) -> None:
    """Each device's first sync day of any day (the scope's bot only), for a range's new devices."""
    sql = SqlBuilder("sqlite")
    where = sql.where(Scope(scope.conversation_id))
    try:
        rows = warehouse._query(
            f"SELECT conversation_id, device_id, min(sync_date) FROM {quoted_table(table)}{where} GROUP BY 1, 2",
            tuple(sql.params),
        )
    finally:
        warehouse._rollback()
    for conversation, device, first in rows:
        if conversation in bots and device in bots[conversation].firsts:
            bots[conversation].firsts[device] = first


def _daily(bot_id: str, bot: _Bot) -> list[tuple[Any, ...]]:
    new = Counter(bot.firsts.values())
    return [
        (bot_id, day, len(seen), answers[0], new.get(day, 0)) for day, (seen, answers) in bot.days.items()
    ]


def _percentile(ordered: list[float], fraction: float) -> float | None:
    """``views._sqlite_percentile``: interpolated between the values either side of ``(n - 1) * fraction``."""
    if not ordered:
        return None
    at = (len(ordered) - 1) * fraction
    below = ordered[int(at)]
    above = ordered[int(at) + 1] if int(at) + 1 < len(ordered) else below
    return below + (at - int(at)) * (above - below)


def _completion(bot_id: str, bot: _Bot) -> tuple[Any, ...]:
    ordered = sorted(bot.seconds)
    return (
        bot_id,
        bot.sessions,
        bot.completed,
        bot.completed / bot.sessions,
        _percentile(ordered, 0.5),
        _percentile(ordered, 0.9),
    )


def _median(durations: Counter[Any]) -> float | None:
    """The middle duration, or the mean of the two middle ones."""
    count = sum(durations.values())
    if not count:
        return None
    wanted, seen = {(count + 1) // 2, (count + 2) // 2}, 0
    middle: list[float] = []
    for value in sorted(durations):
        upto = seen + durations[value]
        middle.extend(float(value) for place in wanted if seen < place <= upto)
        seen = upto
    return sum(middle) / len(middle)


def _positions(bot: _Bot) -> dict[str, int]:
    """A bot's questions in conversation order: first answered, then by id, never timed last."""
    order = sorted(
        bot.questions,
        key=lambda question: (
            bot.questions[question].first_seen is None,
            bot.questions[question].first_seen or "",
            question,
        ),
    )
    return {question: number for number, question in enumerate(order, start=1)}


def _question_stats(bot_id: str, bot: _Bot) -> list[tuple[Any, ...]]:
    positions = _positions(bot)
    return [
        (
            bot_id,
            question,
            item.title,
            item.kind,
            item.x_path,
            positions[question],
            None,
            item.answers,
            item.withheld,
            _median(item.durations),
        )
        for question, item in bot.questions.items()
    ]


def _funnel(bot_id: str, bot: _Bot) -> list[tuple[Any, ...]]:
    positions = _positions(bot)
    answered: Counter[str] = Counter()
    ended: Counter[int] = Counter()  # sessions by the position of their last question
    stopped: Counter[int] = Counter()
    for (questions, reached), sessions in bot.paths.items():
        answered.update(dict.fromkeys(questions, sessions))
        last = max(positions[question] for question in questions)
        ended[last] += sessions
        stopped[last] += 0 if reached else sessions
    rows, reached_here = [], 0
    for question in sorted(positions, key=positions.__getitem__, reverse=True):
        reached_here += ended[positions[question]]
        rows.append(
            (
                bot_id,
                question,
                positions[question],
                reached_here,
                answered[question],
                stopped[positions[question]],
            )
        )
    return rows


def _answer_shares(bot_id: str, bot: _Bot) -> list[tuple[Any, ...]]:
    answering: Counter[str] = Counter()
    for (question, _), sessions in bot.shares.items():
        answering[question] += sessions
    return [
        (bot_id, question, answer, sessions, sessions / answering[question])
        for (question, answer), sessions in bot.shares.items()
    ]
