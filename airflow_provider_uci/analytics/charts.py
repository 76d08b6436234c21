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
from datetime import date, timedelta
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


def daily_chart(series: dict[str, list[tuple[date, int]]], title: str) -> str:
    """Lines of a value per day, one per named series."""
    plt = _pyplot()
    import matplotlib.dates as mdates

    figure, axes = plt.subplots(figsize=(5.2, 3))
    days = sorted({day for points in series.values() for day, _ in points})
    for name, points in series.items():
        points = sorted(points)
        axes.plot([day for day, _ in points], [value for _, value in points], marker="o" if len(points) < 40 else None,
                  markersize=3, linewidth=1.6, label=short(name, 32))
    axes.set_title(title, loc="left")
    axes.set_ylim(bottom=0)
    axes.yaxis.get_major_locator().set_params(integer=True)
    if days and (days[-1] - days[0]).days < 6:  # a short range: a week around it, not years
        middle = days[0] + (days[-1] - days[0]) / 2
        axes.set_xlim(middle - timedelta(days=3.5), middle + timedelta(days=3.5))
    locator = mdates.AutoDateLocator(maxticks=7)
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    axes.grid(axis="y", alpha=0.3)
    if len(series) > 1:
        axes.legend(fontsize=8, frameon=False, ncols=min(3, len(series)), loc="upper left",
                    bbox_to_anchor=(0, -0.18))
    return _svg(figure)


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
        if row and values[row - 1] and value <= values[row - 1]:
            note += f"  (−{(1 - value / values[row - 1]) * 100:.0f}%)"
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
