"""The report's charts: matplotlib figures as inline SVG that scale to the page and keep text as text.

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

#: Colours of the series, in order (colour-blind safe).
PALETTE = ("#1b6ca8", "#e07b39", "#3a9d5d", "#b54a6b", "#7d5ba6", "#c9a227", "#4a8c8c", "#8c6d4a")
LABEL_CHARS = 48


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    plt.rcParams.update({
        "svg.fonttype": "none", "svg.hashsalt": "uci-report", "font.size": 10,
        "axes.spines.top": False, "axes.spines.right": False, "axes.titlesize": 11,
        "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
    })
    return plt


def short(text: str | None, limit: int = LABEL_CHARS) -> str:
    """A label on one line, cut to ``limit`` characters."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[:limit - 1].rstrip() + "…"


def _svg(figure: Any) -> str:
    plt = _pyplot()
    buffer = io.StringIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from")  # the browser draws those glyphs
        figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(figure)
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    # the viewBox alone: CSS gives the width, the height follows
    return re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1 role="img"', text, count=1)


#: Up to this many days a daily chart is grouped bars (every day and every series seen); beyond, lines.
BAR_DAYS = 14
#: Line styles of the series, so lines that coincide still show each series.
LINE_STYLES = ("-", "--", ":", "-.")


def daily_chart(series: dict[str, list[tuple[date, int]]], title: str) -> str:
    """A value per day, one series per name: grouped bars over a few days, lines over more."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(5.2, 3))
    days = sorted({day for points in series.values() for day, _ in points})
    if len(days) <= BAR_DAYS:
        _daily_bars(axes, series, days)
    else:
        _daily_lines(axes, series, days)
    axes.set_title(title, loc="left")
    axes.set_ylim(bottom=0)
    axes.yaxis.get_major_locator().set_params(integer=True)
    axes.grid(axis="y", alpha=0.3)
    if len(series) > 1:
        axes.legend(fontsize=8, frameon=False, ncols=min(3, len(series)), loc="upper left",
                    bbox_to_anchor=(0, -0.14))
    return _svg(figure)


def _day_label(day: date) -> str:
    return f"{day.day} {day:%b}"


def _daily_bars(axes: Any, series: dict[str, list[tuple[date, int]]], days: list[date]) -> None:
    """Bars side by side per day, each series in its colour, each bar with its value."""
    width = 0.8 / max(len(series), 1)
    for number, (name, points) in enumerate(series.items()):
        values = dict(points)
        offsets = [row - 0.4 + width * (number + 0.5) for row in range(len(days))]
        bars = axes.bar(offsets, [values.get(day, 0) for day in days], width=width * 0.92, label=short(name, 32))
        if len(series) * len(days) <= 24:
            axes.bar_label(bars, fontsize=7, padding=1)
    axes.set_xticks(range(len(days)), [_day_label(day) for day in days])
    axes.set_xlim(-0.6, len(days) - 0.4)


def _daily_lines(axes: Any, series: dict[str, list[tuple[date, int]]], days: list[date]) -> None:
    """Lines over the days, the first series widest, so one drawn over another still shows both."""
    import matplotlib.dates as mdates

    count = len(series)
    for number, (name, points) in enumerate(series.items()):
        points = sorted(points)
        axes.plot([day for day, _ in points], [value for _, value in points], label=short(name, 32),
                  linestyle=LINE_STYLES[number % len(LINE_STYLES)], linewidth=1.2 + 1.6 * (count - number) / count,
                  marker="o" if len(points) < 40 else None, markersize=3)
    axes.set_xlim(days[0], days[-1])
    locator = mdates.AutoDateLocator()
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(mdates.DateFormatter("%d %b\n%Y" if days[0].year != days[-1].year else "%d %b"))


def _labelled_bars(axes: Any, labels: Sequence[str], values: Sequence[float], notes: Sequence[str], colour: str,
                   top: float) -> None:
    """Horizontal bars, each with its label above it (labels of any length fit a phone's width)."""
    rows = range(len(values))
    axes.barh(rows, values, color=colour, height=0.42)
    for row, (label, value, note) in enumerate(zip(labels, values, notes, strict=True)):
        axes.text(0, row - 0.3, label, va="bottom", ha="left", fontsize=10, clip_on=True)
        axes.text(value + top * 0.01, row, note, va="center", fontsize=8, color="#333333")
    axes.set_yticks([])
    axes.spines["left"].set_visible(False)
    axes.set_ylim(len(values) - 0.5, -0.95)
    axes.set_xlim(0, top * 1.18)
    axes.grid(axis="x", alpha=0.3)


def funnel_chart(steps: Sequence[tuple[str, int]], title: str) -> str:
    """Bars of the devices reaching each question, in order, with the drop-off from the one before."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(5.2, 0.7 + 0.5 * max(len(steps), 1)))
    values = [value for _, value in steps]
    notes = []
    for row, value in enumerate(values):
        note = f"{value:,}"
        drop = round((1 - value / values[row - 1]) * 100) if row and values[row - 1] else 0
        if drop > 0:  # a drop that rounds to nothing is not shown ("−0%")
            note += f"  (−{drop}%)"
        notes.append(note)
    _labelled_bars(axes, [f"{number}. {short(name, 52)}" for number, (name, _) in enumerate(steps, start=1)],
                   values, notes, PALETTE[0], max(values, default=0) or 1)
    axes.set_title(title, loc="left")
    return _svg(figure)


def bars_chart(items: Sequence[tuple[str, float]], title: str, percent: bool = False) -> str:
    """Bars of counts (or of fractions, shown as percentages) by label."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(5.2, 0.7 + 0.5 * max(len(items), 1)))
    values = [value * 100 if percent else value for _, value in items]
    notes = [f"{value:.0f}%" if percent else f"{value:,.0f}" for value in values]
    _labelled_bars(axes, [short(label, 52) for label, _ in items], values, notes,
                   PALETTE[1] if percent else PALETTE[2], 100 if percent else (max(values, default=0) or 1))
    axes.set_title(title, loc="left")
    return _svg(figure)
