"""The report's charts: matplotlib figures as inline SVG that scale to the page and keep text as text.

Every label is drawn as plain text: math parsing is off (``text.parse_math``), so a ``$`` in a bot's
name or an answer is a dollar sign, and :func:`plain` removes control characters and bounds the length.

Text stays text (``svg.fonttype = none``), so the reader's browser draws it with its own fonts:
Hindi and other scripts render wherever the device has a font for them, with no font file in the
page. The root's fixed size is replaced by its ``viewBox`` alone, so CSS sizes each chart to its column.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Sequence
from datetime import date
from typing import Any

from airflow_provider_uci.extras import require

#: Colours of the series, in order (colour-blind safe): a bot keeps its colour in every chart.
PALETTE = (
    "#1b6ca8",
    "#e07b39",
    "#3a9d5d",
    "#b54a6b",
    "#7d5ba6",
    "#c9a227",
    "#4a8c8c",
    "#8c6d4a",
    "#d46fa8",
    "#5f6b7a",
)
#: Bots drawn in one chart at most (one colour each); the rest are named as a count.
MAX_SERIES = len(PALETTE)
LABEL_CHARS = 48
#: Characters never drawn or written: C0/C1 controls, and the marks that reorder text (bidi overrides).
_HIDDEN = dict.fromkeys(
    [
        *range(0x00, 0x20),
        *range(0x7F, 0xA0),
        0x2028,
        0x2029,
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
        0xFEFF,
        0xFFFE,
        0xFFFF,
    ],
    " ",
)


def plain(text: object, limit: int | None = None) -> str:
    """``text`` on one line with no control characters, cut to ``limit`` characters (with an ellipsis)."""
    flat = " ".join(str("" if text is None else text).translate(_HIDDEN).split())
    flat = "".join(char for char in flat if not 0xD800 <= ord(char) <= 0xDFFF)  # lone surrogates
    if limit is not None and len(flat) > limit:
        flat = flat[: limit - 1].rstrip() + "…"
    return flat


def _pyplot() -> Any:
    require(["analytics"], "the report", modules=["matplotlib"])
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.rcsetup import cycler  # matplotlib.cycler, which its stubs do not export

    plt.rcParams.update(
        {
            "svg.fonttype": "none",
            "svg.hashsalt": "uci-report",
            "font.size": 10,
            "text.parse_math": False,
            "text.usetex": False,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.titlesize": 11,
            "axes.prop_cycle": cycler(color=PALETTE),
        }
    )
    return plt


def short(text: str | None, limit: int = LABEL_CHARS) -> str:
    """A label drawn as plain text: one line, cut to ``limit`` characters; never hidden from a legend."""
    label = plain(text, limit)
    return "\u2009" + label if label.startswith("_") else label  # matplotlib leaves "_..." out of legends


def _svg(figure: Any) -> str:
    plt = _pyplot()
    buffer = io.StringIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from")  # the browser draws those glyphs
        figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(figure)
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    # the viewBox alone: CSS gives the width, the height follows
    return re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1 role="img"', text, count=1)


#: Up to this many days a daily chart is grouped bars (every day and every series seen); beyond, lines.
BAR_DAYS = 14
#: Line styles of the series, so lines that coincide still show each series.
LINE_STYLES = ("-", "--", ":", "-.")
#: One series of a daily chart: its label, its colour, and its value per day.
Series = tuple[str, str, list[tuple[date, int]]]


def daily_chart(series: Sequence[Series], title: str) -> str:
    """A value per day, one series each: grouped bars over a few days, lines over more."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(5.2, 3))
    days = sorted({day for _, _, points in series for day, _ in points})
    if len(days) <= BAR_DAYS:
        _daily_bars(axes, series, days)
    else:
        _daily_lines(axes, series, days)
    axes.set_title(plain(title), loc="left")
    axes.set_ylim(bottom=0)
    axes.yaxis.get_major_locator().set_params(integer=True)
    axes.grid(axis="y", alpha=0.3)
    if len(series) > 1:
        axes.legend(
            fontsize=8, frameon=False, ncols=min(2, len(series)), loc="upper left", bbox_to_anchor=(0, -0.14)
        )
    return _svg(figure)


def _day_label(day: date) -> str:
    return f"{day.day} {day:%b}"


def _daily_bars(axes: Any, series: Sequence[Series], days: list[date]) -> None:
    """Bars side by side per day, each series in its colour, each bar with its value."""
    width = 0.8 / max(len(series), 1)
    for number, (name, colour, points) in enumerate(series):
        values = dict(points)
        offsets = [row - 0.4 + width * (number + 0.5) for row in range(len(days))]
        bars = axes.bar(
            offsets,
            [values.get(day, 0) for day in days],
            width=width * 0.92,
            label=short(name, 32),
            color=colour,
        )
        if len(series) * len(days) <= 24:
            axes.bar_label(bars, fontsize=7, padding=1)
    axes.set_xticks(range(len(days)), [_day_label(day) for day in days])
    axes.set_xlim(-0.6, len(days) - 0.4)


def _daily_lines(axes: Any, series: Sequence[Series], days: list[date]) -> None:
    """Lines over the days, the first series widest, so one drawn over another still shows both."""
    import matplotlib.dates as mdates

    count = len(series)
    for number, (name, colour, points) in enumerate(series):
        points = sorted(points)
        axes.plot(
            [day for day, _ in points],
            [value for _, value in points],
            label=short(name, 32),
            color=colour,
            linestyle=LINE_STYLES[number % len(LINE_STYLES)],
            linewidth=1.2 + 1.6 * (count - number) / count,
            marker="o" if len(points) < 40 else None,
            markersize=3,
        )
    axes.set_xlim(days[0], days[-1])
    axes.xaxis.set_major_locator(mdates.AutoDateLocator())
    axes.xaxis.set_major_formatter(
        mdates.DateFormatter("%d %b\n%Y" if days[0].year != days[-1].year else "%d %b")
    )


def _labelled_bars(
    axes: Any,
    labels: Sequence[str],
    values: Sequence[float],
    notes: Sequence[str],
    colours: Sequence[str],
    top: float,
) -> None:
    """Horizontal bars, each with its label above it (labels of any length fit a phone's width)."""
    rows = range(len(values))
    axes.barh(rows, values, color=list(colours), height=0.42)
    for row, (label, value, note) in enumerate(zip(labels, values, notes, strict=True)):
        axes.text(0, row - 0.3, label, va="bottom", ha="left", fontsize=10, clip_on=True)
        axes.text(value + top * 0.01, row, note, va="center", fontsize=8, color="#333333")
    axes.set_yticks([])
    axes.spines["left"].set_visible(False)
    axes.set_ylim(len(values) - 0.5, -0.95)
    axes.set_xlim(0, top * 1.3)
    axes.grid(axis="x", alpha=0.3)


def funnel_chart(steps: Sequence[tuple[str, int, int]], title: str) -> str:
    """Bars of the sessions reaching each question, in order: the drop from the step before, and how many
    sessions stopped there."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(5.2, 0.7 + 0.5 * max(len(steps), 1)))
    values = [reached for _, reached, _ in steps]
    notes = []
    for row, (_, reached, stopped) in enumerate(steps):
        note = f"{reached:,}"
        drop = round((1 - reached / values[row - 1]) * 100) if row and values[row - 1] else 0
        if drop > 0:  # a drop that rounds to nothing is not shown ("−0%")
            note += f" (−{drop}%)"
        if stopped:
            note += f", {stopped:,} stopped"
        notes.append(note)
    _labelled_bars(
        axes,
        [f"{number}. {short(name, 52)}" for number, (name, _, _) in enumerate(steps, start=1)],
        values,
        notes,
        [PALETTE[0]] * len(values),
        max(values, default=0) or 1,
    )
    axes.set_title(plain(title), loc="left")
    return _svg(figure)


def bars_chart(items: Sequence[tuple[str, float, str]], title: str, percent: bool = False) -> str:
    """Bars by label, each in its colour: counts, or fractions shown as percentages."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(5.2, 0.7 + 0.5 * max(len(items), 1)))
    values = [value * 100 if percent else value for _, value, _ in items]
    notes = [f"{value:.0f}%" if percent else f"{value:,.0f}" for value in values]
    _labelled_bars(
        axes,
        [short(label, 52) for label, _, _ in items],
        values,
        notes,
        [colour for _, _, colour in items],
        100 if percent else (max(values, default=0) or 1),
    )
    if percent:
        axes.set_xticks([0, 25, 50, 75, 100])
    axes.set_title(plain(title), loc="left")
    return _svg(figure)
