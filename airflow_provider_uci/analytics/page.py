"""The report's HTML: one self-contained page (no script, nothing fetched), each table downloadable as CSV.

Every text from the warehouse goes through :func:`charts.plain` (no control characters) and is escaped;
the page forbids scripts and remote content in its own Content-Security-Policy. Each table carries its
CSV as a ``data:`` link, so the page stays one offline file.
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

from airflow_provider_uci.analytics import charts
from airflow_provider_uci.analytics.figures import Bot, Fleet, Question

IST = timezone(timedelta(hours=5, minutes=30), "IST")
#: A CSV cell that a spreadsheet would read as a formula starts with one of these: it is written quoted.
_FORMULA = ("=", "+", "-", "@", "\t", "\r")
_CSS = """
:root{--ink:#1d2430;--muted:#5b6675;--line:#dde3ea;--tile:#f4f7fa;
--font:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","Noto Sans Devanagari","Nirmala UI",Mangal,
"Lohit Devanagari","DejaVu Sans",sans-serif}
*{box-sizing:border-box}
body{margin:0;font-family:var(--font);color:var(--ink);line-height:1.45;background:#fff}
main{max-width:980px;margin:0 auto;padding:16px}
h1{font-size:1.5rem;margin:.2em 0;overflow-wrap:anywhere}h2{font-size:1.25rem;margin:1.8em 0 .3em;
border-top:2px solid var(--line);padding-top:1em;overflow-wrap:anywhere}h3{font-size:1rem;margin:1.4em 0 .3em;
overflow-wrap:anywhere}
.muted{color:var(--muted);font-size:.9rem;overflow-wrap:anywhere}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(130px,1fr));gap:8px;margin:12px 0}
.tile{background:var(--tile);border-radius:8px;padding:10px 12px}.tile b{display:block;font-size:1.4rem}
figure{margin:12px 0;overflow-x:auto}figure svg{width:100%;min-width:320px;max-width:720px;height:auto;display:block}
figcaption{color:var(--muted);font-size:.85rem}
svg text{font-family:var(--font)!important}
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:top;overflow-wrap:break-word}
td.n,th.n,td.k{text-align:right;white-space:nowrap}td.k{text-align:left}td.t{min-width:8em}
.bar{position:relative;min-width:120px}.bar span{position:absolute;left:0;top:4px;bottom:4px;background:#dbe8f3;
border-radius:3px}.bar b{position:relative;font-weight:600}
.swatch{display:inline-block;width:.8em;height:.8em;border-radius:2px;margin-right:.4em;vertical-align:baseline}
a.csv{font-size:.8rem;margin-left:.6em;white-space:nowrap}
.empty{color:var(--muted);font-style:italic}
@media (max-width:600px){main{padding:10px}h1{font-size:1.25rem}.tile b{font-size:1.15rem}th,td{padding:4px 5px}}
"""
#: No script, no remote font, image or style: only this page's own CSS, and images inlined.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"


def _e(value: Any) -> str:
    return html.escape(charts.plain(value), quote=True)


def _n(value: int | None) -> str:
    return "–" if value is None else f"{value:,}"


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f}%"


def _minutes(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds / 60:.1f} min"


def percents(counts: Sequence[int]) -> list[int]:
    """Whole percentages of ``counts`` that add to exactly 100 (largest remainders round up)."""
    total = sum(counts)
    if not total:
        return [0] * len(counts)
    exact = [count * 100 / total for count in counts]
    whole = [int(value) for value in exact]
    for index in sorted(range(len(counts)), key=lambda i: (whole[i] - exact[i], i))[: 100 - sum(whole)]:
        whole[index] += 1
    return whole


def _csv_cell(value: Any) -> Any:
    if isinstance(value, str):
        value = charts.plain(value)
        return "'" + value if value.startswith(_FORMULA) else value
    return value


def _csv_link(name: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([[_csv_cell(value) for value in row] for row in rows])
    return (
        f'<a class="csv" download="{_e(name)}" href="data:text/csv;charset=utf-8,'
        f'{quote(chr(0xFEFF) + buffer.getvalue(), safe="")}">Download CSV</a>'
    )


def _table(
    name: str,
    header: Sequence[str],
    cells: Sequence[Sequence[str]],
    rows: Sequence[Sequence[Any]],
    numeric: set[int],
) -> str:
    """An HTML table of ready ``cells``, and its CSV of the plain ``rows`` (same columns)."""
    kinds = [
        "n" if number in numeric else "k" if title == "type" else "t" for number, title in enumerate(header)
    ]
    head = "".join(
        f"<th{' class=n' if kind == 'n' else ''}>{_e(title)}</th>"
        for kind, title in zip(kinds, header, strict=False)
    )
    body = "".join(
        "<tr>"
        + "".join(f"<td class={kind}>{cell}</td>" for kind, cell in zip(kinds, row, strict=False))
        + "</tr>"
        for row in cells
    )
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
        f"<p>{_csv_link(name, header, rows)}</p>"
    )


def _tiles(items: list[tuple[str, str]]) -> str:
    return (
        '<div class="tiles">'
        + "".join(f'<div class="tile"><b>{_e(value)}</b>{_e(label)}</div>' for label, value in items)
        + "</div>"
    )


def _figure(svg: str, caption: str) -> str:
    return f'<figure aria-label="{_e(caption)}">{svg}<figcaption>{_e(caption)}</figcaption></figure>'


def _bar(share: int, text: str) -> str:
    return f'<div class="bar"><span style="width:{share}%"></span><b>{_e(text)}</b></div>'


def _file_id(bot: Bot) -> str:
    return "".join(char for char in bot.conversation_id if char.isalnum() or char == "-")[:40] or "bot"


def _funnel(bot: Bot, charts_too: bool) -> str:
    parts = []
    steps = list(bot.questions)
    if charts_too and steps:
        parts.append(
            _figure(
                charts.funnel_chart(
                    [(q.title, q.reached, q.stopped) for q in steps], "Sessions reaching each question"
                ),
                "Sessions that answered each question or a later one, in conversation order; "
                "the drop from the step before; sessions that stopped there",
            )
        )
    header = [
        "#",
        "question",
        "type",
        "sessions reached",
        "drop-off",
        "answered",
        "stopped here",
        "withheld",
        "median seconds to answer",
    ]
    rows, cells = [], []
    for number, q in enumerate(steps):
        before = steps[number - 1].reached if number else None
        drop = None if not before else (1 - q.reached / before)
        row = [
            q.position,
            q.title,
            q.kind,
            q.reached,
            "" if drop is None else f"{drop * 100:.0f}%",
            q.answered,
            q.stopped,
            q.withheld,
            "" if q.median_duration is None else round(q.median_duration, 1),
        ]
        rows.append(row)
        cells.append([_e(value) for value in row])
    parts.append(
        f"<h3>Funnel by session</h3>{_table(f'funnel-{_file_id(bot)}.csv', header, cells, rows, {0, 3, 4, 5, 6, 7, 8})}"
    )
    return "".join(parts)


def _shares(bot: Bot, q: Question) -> str:
    counts = [n for _, n in q.shares]
    shares = percents(counts)
    header = ["answer", "sessions", "share"]
    rows = [[label, n, f"{share}%"] for (label, n), share in zip(q.shares, shares, strict=True)]
    cells = [
        [_bar(share, label), _n(n), f"{share}%"] for (label, n), share in zip(q.shares, shares, strict=True)
    ]
    note = f" · {q.distinct:,} distinct answers" if q.distinct > len(q.shares) else ""
    return (
        f"<h3>{q.position}. {_e(charts.plain(q.title, 200))}</h3><p class=muted>{_n(sum(counts))} sessions "
        f"answered (their last answer){_e(note)}</p>"
        + _table(f"answers-{_file_id(bot)}-{q.position}.csv", header, cells, rows, {1, 2})
    )


def _free_text(bot: Bot, free: list[Question]) -> str:
    header = ["#", "question", "sessions answered", "withheld", "distinct answers", "sample answers"]
    rows = [[q.position, q.title, q.answered, q.withheld, q.distinct, " | ".join(q.samples)] for q in free]
    cells = [
        [
            _e(q.position),
            _e(charts.plain(q.title, 200)),
            _n(q.answered),
            _n(q.withheld),
            _n(q.distinct),
            "<br>".join(_e(charts.plain(sample, 80)) for sample in q.samples)
            or '<span class="empty">–</span>',
        ]
        for q in free
    ]
    return f"<h3>Free-text answers</h3>{_table(f'free-text-{_file_id(bot)}.csv', header, cells, rows, {0, 2, 3, 4})}"


def bot_section(bot: Bot, colour: str | None, heading: bool, charts_too: bool) -> str:
    """One bot's figures: tiles, its people per day, its funnel, its answers."""
    parts = []
    if heading:
        swatch = f'<span class="swatch" style="background:{colour}"></span>' if colour else ""
        parts.append(
            f'<h2 id="bot-{_e(_file_id(bot))}">{swatch}{_e(bot.name)}</h2>'
            f'<p class="muted">{_e(bot.conversation_id)}</p>'
        )
    if not bot.answers:
        parts.append('<p class="empty">No answers in range.</p>')
        return "\n".join(parts)
    parts.append(
        _tiles(
            [
                ("people (devices)", _n(bot.devices)),
                ("sessions started", _n(bot.sessions)),
                ("sessions completed", _n(bot.completed)),
                ("completion rate", _rate(bot.completion_rate)),
                ("median time to complete", _minutes(bot.median_seconds)),
                ("90% completed within", _minutes(bot.p90_seconds)),
                ("answers", _n(bot.answers)),
            ]
        )
    )
    if charts_too and bot.daily:
        parts.append(
            _figure(
                charts.daily_chart(
                    [
                        (
                            "people",
                            colour or charts.PALETTE[0],
                            [(day, devices) for day, devices, _, _ in bot.daily],
                        ),
                        ("new people", "#9aa5b1", [(day, new) for day, _, _, new in bot.daily]),
                    ],
                    "People per day (IST)",
                ),
                "Distinct devices that answered each sync day, and those answering the bot for the first time",
            )
        )
    parts.append(_funnel(bot, charts_too))
    for q in bot.questions:
        if q.is_choice and q.shares:
            parts.append(_shares(bot, q))
    free = [q for q in bot.questions if not q.is_choice]
    if free:
        parts.append(_free_text(bot, free))
    return "\n".join(parts)


def fleet_sections(fleet: Fleet, colours: dict[str, str]) -> list[str]:
    """The fleet's tiles, charts of its largest bots (naming how many are left out), and its table of bots."""
    bots = fleet.bots
    sessions = sum(bot.sessions for bot in bots)
    completed = sum(bot.completed for bot in bots)
    body = [
        _tiles(
            [
                ("bots", _n(len(bots))),
                ("people (devices)", _n(fleet.people)),
                ("sessions", _n(sessions)),
                ("completed", _n(completed)),
                ("completion rate", _rate(completed / sessions if sessions else None)),
                ("answers", _n(sum(bot.answers for bot in bots))),
            ]
        )
    ]
    body += _fleet_charts(bots, colours)
    body.append(_bots_table(bots, colours))
    return body


def _fleet_charts(bots: list[Bot], colours: dict[str, str]) -> list[str]:
    """Charts of the bots that have a colour (the largest) and answers, naming how many are left out."""
    body: list[str] = []
    drawn = [bot for bot in bots if bot.conversation_id in colours and bot.answers]
    left = len(bots) - len(drawn)
    more = (
        f"; {left:,} more bot{'s' if left != 1 else ''} not drawn (every bot is in the table below)"
        if left
        else ""
    )
    if drawn:
        body.append(
            _figure(
                charts.daily_chart(
                    [
                        (
                            bot.name,
                            colours[bot.conversation_id],
                            [(day, devices) for day, devices, _, _ in bot.daily],
                        )
                        for bot in drawn
                    ],
                    "People per day by bot (IST)",
                ),
                f"People per day, {len(drawn)} largest bots{more}",
            )
        )
        body.append(
            _figure(
                charts.bars_chart(
                    [(bot.name, bot.completion_rate or 0.0, colours[bot.conversation_id]) for bot in drawn],
                    "Completion rate by bot",
                    percent=True,
                ),
                f"Sessions that reached the end, {len(drawn)} largest bots{more}",
            )
        )
    return body


def _bots_table(bots: list[Bot], colours: dict[str, str]) -> str:
    """The table of every bot, each linked to its own page, with its CSV."""
    header = [
        "bot",
        "conversation id",
        "people",
        "sessions",
        "completed",
        "completion rate",
        "median time to complete",
        "answers",
    ]
    rows, cells = [], []
    for bot in bots:
        swatch = (
            f'<span class="swatch" style="background:{colours[bot.conversation_id]}"></span>'
            if bot.conversation_id in colours
            else ""
        )
        note = "" if bot.answers else ' <span class="empty">no answers in range</span>'
        rows.append(
            [
                bot.name,
                bot.conversation_id,
                bot.devices,
                bot.sessions,
                bot.completed,
                _rate(bot.completion_rate),
                _minutes(bot.median_seconds),
                bot.answers,
            ]
        )
        cells.append(
            [
                f'{swatch}<a href="#bot-{_e(_file_id(bot))}">{_e(charts.plain(bot.name, 80))}</a>{note}',
                _e(bot.conversation_id),
                _n(bot.devices),
                _n(bot.sessions),
                _n(bot.completed),
                _rate(bot.completion_rate),
                _minutes(bot.median_seconds),
                _n(bot.answers),
            ]
        )
    return f"<h2>Bots</h2>{_table('bots.csv', header, cells, rows, {2, 3, 4, 5, 6, 7})}"


def render(
    fleet: Fleet,
    *,
    single: bool,
    asked: str,
    source: str,
    generated: datetime | None = None,
    chart_bots: int = charts.MAX_SERIES,
) -> str:
    """The report's HTML page: one bot's (``single``), or the fleet's and then each bot's."""
    generated = (generated or datetime.now(timezone.utc)).astimezone(IST)
    bots = fleet.bots
    title = (
        f"{charts.plain(bots[0].name, 120)}: conversation report"
        if single and bots
        else "Conversation report: all bots"
    )
    days = sorted({day for bot in bots for day, *_ in bot.daily})
    span = f"{days[0]} to {days[-1]}" if days else "no answers"
    body = [
        f"<h1>{_e(title)}</h1>",
        f'<p class="muted">Sync days (IST): {_e(asked)}; answers found {_e(span)}. From {_e(source)}, '
        f"generated {generated:%Y-%m-%d %H:%M} IST. A session is a Session ID (or a device's sync day "
        f"where the exhaust has none).</p>",
    ]
    colours: dict[str, str] = {}
    for bot in bots:
        if bot.answers and len(colours) < min(chart_bots, len(charts.PALETTE)):
            colours[bot.conversation_id] = charts.PALETTE[len(colours)]
    if not bots:
        body.append('<p class="empty">No answers in range.</p>')
    elif single:
        body.append(bot_section(bots[0], charts.PALETTE[0], heading=False, charts_too=True))
    else:
        body.extend(fleet_sections(fleet, colours))
        if len(bots) > len(colours):
            body.append(
                f'<p class="muted">Charts are drawn for the {len(colours)} largest bots; the others have '
                f"their tables here, and their charts on their own page.</p>"
            )
        body.extend(
            bot_section(
                bot, colours.get(bot.conversation_id), heading=True, charts_too=bot.conversation_id in colours
            )
            for bot in bots
        )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n<body><main>\n"
        + "\n".join(body)
        + "\n</main></body></html>\n"
    )
