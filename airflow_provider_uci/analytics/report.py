"""An offline HTML report of a warehouse's answers: one page for the fleet, or for one bot.

The numbers come from the queries behind the warehouse's views (``exhaust.warehouse.views``), narrowed to
the bot and range asked for; the charts are inline SVG (``analytics.charts``). The page needs nothing
from a network (no script, font or image fetched) and reflows on a phone.
"""

from __future__ import annotations

import html
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from airflow_provider_uci.analytics import charts
from airflow_provider_uci.exhaust.safe_files import atomic_write_text
from airflow_provider_uci.exhaust.warehouse import open_warehouse, redact_url
from airflow_provider_uci.exhaust.warehouse.views import (
    Scope,
    SqlBuilder,
    completion_sql,
    daily_sql,
    question_stats_sql,
    quoted_table,
)

DEFAULT_TABLE = "uci_responses"
WITHHELD = "(withheld: no consent)"
#: Answer types drawn as a distribution of choices; the others are counted as free text.
CHOICE_TYPES = ("mcq",)


@dataclass
class Question:
    """One question's figures: from ``_question_stats``, and its answers' distribution if a choice."""

    question_id: str
    title: str
    kind: str
    position: int
    devices: int
    answers: int
    withheld: int
    median_duration: float | None
    choices: dict[str, int] = field(default_factory=dict)


@dataclass
class Bot:
    """One bot's figures in the report's scope."""

    conversation_id: str
    name: str
    answers: int = 0
    devices: int = 0
    sessions: int = 0
    completed: int = 0
    daily: list[tuple[date, int, int, int]] = field(default_factory=list)  # day, devices, answers, new devices
    questions: list[Question] = field(default_factory=list)

    @property
    def completion_rate(self) -> float | None:
        return self.completed / self.sessions if self.sessions else None


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


def collect(warehouse: Any, table: str, scope: Scope) -> list[Bot]:
    """Every bot's figures in ``scope``, largest first."""
    backend = warehouse.backend

    def query(text: str, params: list[Any]) -> list[tuple[Any, ...]]:
        try:
            return warehouse._query(text, tuple(params))
        finally:
            warehouse._rollback()

    if backend == "postgres":  # for this session: no JIT (it costs more than it saves here), sorts in memory
        warehouse._execute("SET jit = off")
        warehouse._execute("SET work_mem = '64MB'")
        warehouse._commit()
    if not warehouse._exists(table):
        raise ValueError(f"table: the warehouse holds no table {table!r}; load an exhaust into it first")
    sql = SqlBuilder(backend)
    where = sql.where(scope)
    bots: dict[str, Bot] = {}
    devices_where = sql.where(scope)
    for conversation, name, answers, devices in query(
            f"SELECT b.conversation_id, b.name, b.answers, d.devices FROM (SELECT conversation_id, "
            f"max(conversation_name{sql.binary}) AS name, count(*) AS answers FROM {quoted_table(table)}{where} "
            f"GROUP BY conversation_id) AS b JOIN (SELECT conversation_id, count(*) AS devices FROM (SELECT DISTINCT "
            f"conversation_id, device_id FROM {quoted_table(table)}{devices_where}) AS seen GROUP BY conversation_id) AS d "
            f"ON d.conversation_id = b.conversation_id", sql.params):
        bots[conversation] = Bot(conversation, name or conversation, answers, devices)
    for conversation, day, devices, answers, new in query(*daily_sql(table, backend, scope)):
        bots[conversation].daily.append((_day(day), devices, answers, new))
    for conversation, sessions, completed, _ in query(*completion_sql(table, backend, scope)):
        bots[conversation].sessions, bots[conversation].completed = sessions, completed or 0
    by_key: dict[tuple[str, str], Question] = {}
    for (conversation, question, title, kind, _, position, devices, answers, withheld,
         median) in query(*question_stats_sql(table, backend, scope)):
        item = Question(question, title or question, kind or "", position, devices, answers, withheld or 0, median)
        bots[conversation].questions.append(item)
        by_key[(conversation, question)] = item
    sql = SqlBuilder(backend)
    where = sql.where(scope)
    kinds = ", ".join(sql.param for _ in CHOICE_TYPES)
    sql.params.extend(CHOICE_TYPES)
    for conversation, question, response, count in query(
            f"SELECT conversation_id, question_id, question_response, count(*) FROM {quoted_table(table)}"
            f"{where}{' AND' if where else ' WHERE'} lower(question_type) IN ({kinds}) "
            f"GROUP BY conversation_id, question_id, question_response", sql.params):
        choices = by_key[(conversation, question)].choices
        label = answer_label(response)
        choices[label] = choices.get(label, 0) + count
    for bot in bots.values():
        bot.daily.sort()
        bot.questions.sort(key=lambda item: item.position)
    return sorted(bots.values(), key=lambda bot: (-bot.answers, bot.conversation_id))


_CSS = """
:root{--ink:#1d2430;--muted:#5b6675;--line:#dde3ea;--tile:#f4f7fa;
--font:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","Noto Sans Devanagari","Nirmala UI",Mangal,
"Lohit Devanagari","DejaVu Sans",sans-serif}
*{box-sizing:border-box}
body{margin:0;font-family:var(--font);color:var(--ink);line-height:1.45;background:#fff}
main{max-width:960px;margin:0 auto;padding:16px}
h1{font-size:1.5rem;margin:.2em 0}h2{font-size:1.2rem;margin:1.6em 0 .4em;border-top:1px solid var(--line);
padding-top:1em}h3{font-size:1rem;margin:1.2em 0 .3em}
.muted{color:var(--muted);font-size:.9rem}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(140px,1fr));gap:8px;margin:12px 0}
.tile{background:var(--tile);border-radius:8px;padding:10px 12px}.tile b{display:block;font-size:1.4rem}
figure{margin:12px 0;overflow-x:auto}figure svg{width:100%;min-width:340px;max-width:720px;height:auto;display:block}
svg text{font-family:var(--font)!important}
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid var(--line);vertical-align:top}
td.n,th.n{text-align:right;white-space:nowrap}
@media (max-width:600px){main{padding:10px}h1{font-size:1.25rem}.tile b{font-size:1.15rem}}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _tiles(items: list[tuple[str, str]]) -> str:
    return '<div class="tiles">' + "".join(f'<div class="tile"><b>{_e(value)}</b>{_e(label)}</div>'
                                           for label, value in items) + "</div>"


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f}%"


def _figure(svg: str, caption: str) -> str:
    return f'<figure aria-label="{_e(caption)}">{svg}</figure>'


def _bot_section(bot: Bot, heading: bool) -> str:
    parts = []
    if heading:
        parts.append(f'<h2 id="bot-{_e(bot.conversation_id)}">{_e(bot.name)}</h2>'
                     f'<p class="muted">{_e(bot.conversation_id)}</p>')
    parts.append(_tiles([("devices", f"{bot.devices:,}"), ("answers", f"{bot.answers:,}"),
                         ("sessions", f"{bot.sessions:,}"), ("completion rate", _rate(bot.completion_rate))]))
    if bot.daily:
        parts.append(_figure(charts.daily_chart(
            {"devices": [(day, devices) for day, devices, _, _ in bot.daily],
             "new devices": [(day, new) for day, _, _, new in bot.daily]}, "Daily active devices"),
            "Daily active devices"))
    if bot.questions:
        parts.append(_figure(charts.funnel_chart([(q.title, q.devices) for q in bot.questions],
                                                 "Devices reaching each question, in conversation order"),
                             "Funnel of questions"))
        rows = "".join(
            f'<tr><td class="n">{q.position}</td><td>{_e(q.title)}</td><td>{_e(q.kind)}</td>'
            f'<td class="n">{q.devices:,}</td><td class="n">{q.answers:,}</td><td class="n">{q.withheld:,}</td>'
            f'<td class="n">{"–" if q.median_duration is None else f"{q.median_duration:g}"}</td></tr>'
            for q in bot.questions)
        parts.append('<h3>Questions</h3><div class="scroll"><table><thead><tr><th class="n">#</th><th>question</th>'
                     '<th>type</th><th class="n">devices</th><th class="n">answers</th><th class="n">withheld</th>'
                     f'<th class="n">median duration</th></tr></thead><tbody>{rows}</tbody></table></div>')
    for q in bot.questions:
        if q.choices:
            items = sorted(q.choices.items(), key=lambda item: (-item[1], item[0]))
            parts.append(f"<h3>{q.position}. {_e(q.title)}</h3>")
            parts.append(_figure(charts.bars_chart(items, "Answers by choice"), f"Answers to question {q.position}"))
    free = [q for q in bot.questions if not q.choices and q.kind.lower() not in CHOICE_TYPES]
    if free:
        rows = "".join(f'<tr><td>{q.position}. {_e(q.title)}</td><td class="n">{q.answers:,}</td>'
                       f'<td class="n">{q.devices:,}</td><td class="n">{q.withheld:,}</td></tr>' for q in free)
        parts.append('<h3>Free-text answers</h3><div class="scroll"><table><thead><tr><th>question</th>'
                     '<th class="n">answers</th><th class="n">devices</th><th class="n">withheld</th></tr></thead>'
                     f"<tbody>{rows}</tbody></table></div>")
    return "\n".join(parts)


def render(bots: list[Bot], scope: Scope, source: str, generated: datetime | None = None) -> str:
    """The report's HTML page for ``bots`` (one bot: its page; more: the fleet's, then each bot's)."""
    generated = generated or datetime.now(timezone.utc)
    single = scope.conversation_id is not None
    title = f"{bots[0].name}: conversation report" if single and bots else "Conversation report: all bots"
    days = sorted({day for bot in bots for day, *_ in bot.daily})
    span = f"{days[0]} to {days[-1]}" if days else "no answers"
    asked = (f"{scope.from_date or '…'} to {scope.to_date or '…'}" if scope.from_date or scope.to_date
             else "every day loaded")
    body = [f"<h1>{_e(title)}</h1>",
            f'<p class="muted">Sync days (IST): {_e(asked)}; answers found {_e(span)}. From {_e(source)}, '
            f"generated {generated:%Y-%m-%d %H:%M} UTC.</p>"]
    if not bots:
        body.append("<p>No answers in this range.</p>")
    elif single:
        body.append(_bot_section(bots[0], heading=False))
    else:
        devices_by_day: dict[date, int] = defaultdict(int)
        for bot in bots:
            for day, devices, _, _ in bot.daily:
                devices_by_day[day] += devices
        sessions = sum(bot.sessions for bot in bots)
        body.append(_tiles([("bots", f"{len(bots):,}"), ("answers", f"{sum(bot.answers for bot in bots):,}"),
                            ("sessions", f"{sessions:,}"),
                            ("completion rate", _rate(sum(b.completed for b in bots) / sessions if sessions else None))]))
        body.append(_figure(charts.daily_chart(
            {bot.name: [(day, devices) for day, devices, _, _ in bot.daily] for bot in bots[:8]},
            "Daily active devices by bot"), "Daily active devices by bot"))
        body.append(_figure(charts.bars_chart([(bot.name, bot.completion_rate or 0.0) for bot in bots],
                                              "Completion rate by bot (sessions that reached the end)", percent=True),
                            "Completion rate by bot"))
        links = "".join(f'<li><a href="#bot-{_e(bot.conversation_id)}">{_e(bot.name)}</a> '
                        f'<span class="muted">{bot.answers:,} answers</span></li>' for bot in bots)
        body.append(f"<ul>{links}</ul>")
        body.extend(_bot_section(bot, heading=True) for bot in bots)
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n<body><main>\n"
            + "\n".join(body) + "\n</main></body></html>\n")


def write_report(warehouse_url: str, out: str | Path, *, table: str = DEFAULT_TABLE,
                 conversation_id: str | None = None, from_date: str | None = None,
                 to_date: str | None = None) -> Path:
    """Write the report of ``table`` in the warehouse at ``warehouse_url`` to ``out``; return its path.

    :param conversation_id: one bot's page; ``None``: the fleet's (every bot in the range).
    :param from_date: first sync day (IST, ``YYYY-MM-DD``) of the range; ``None``: from the first.
    :param to_date: last sync day; ``None``: to the last.
    :raises ValueError: a bad date or table name, or no such table (the message names which).
    """
    scope = Scope(conversation_id, from_date or None, to_date or None)
    with open_warehouse(warehouse_url) as warehouse:
        bots = collect(warehouse, table, scope)
    page = render(bots, scope, f"{redact_url(warehouse_url).rsplit('/', 1)[-1]} / {table}")
    # whole or not at all (a reader never sees half a page), 0600 in folders made 0700, never over what is not a file
    return atomic_write_text(out, page, field="out")


def add_report_command(commands: Any) -> None:
    """Add ``uci-exhaust report`` to the CLI's subcommands."""
    report = commands.add_parser(
        "report", help="write an offline HTML report of a warehouse's answers",
        description="Write one self-contained HTML page (charts as inline SVG, nothing fetched from a network) for "
        "the fleet, or for one bot with --conversation-id: daily active devices, the funnel of questions in "
        "conversation order, the completion rate, the answers to each multiple-choice question, counts for free text.")
    report.add_argument("--warehouse", required=True, help="sqlite:///path.db or postgresql://user:password@host/db")
    report.add_argument("--table", default=DEFAULT_TABLE, help=f"the responses table (default {DEFAULT_TABLE})")
    report.add_argument("--conversation-id", help="one bot's page (default: every bot)")
    report.add_argument("--from-date", help="first sync day, YYYY-MM-DD (IST; default: the first)")
    report.add_argument("--to-date", help="last sync day, YYYY-MM-DD (default: the last)")
    report.add_argument("--out", type=Path, default=Path("report.html"), help="the page to write (default report.html)")


def run_report_command(args: Any) -> int:
    """Run ``uci-exhaust report``: write the page and print its path."""
    path = write_report(args.warehouse, args.out, table=args.table, conversation_id=args.conversation_id,
                        from_date=args.from_date, to_date=args.to_date)
    print(path)
    return 0
