"""An offline HTML report of a warehouse's answers: one page for the fleet, or for one bot.

Per bot: sessions started and completed, the completion rate and the time to complete, the funnel by
session with each step's drop-off and where sessions stopped, each multiple-choice question's answer
shares by session, free-text questions with counts and a few sample answers. For the fleet: its people,
sessions and completions, and every bot of the range (a silent one with zeros). The numbers come from
the warehouse's views (``analytics.figures``); the page (``analytics.page``) needs nothing from a network
and reflows on a phone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow_provider_uci.analytics.figures import (
    WITHHELD,
    Bot,
    Fleet,
    Question,
    answer_label,
    collect,
    collect_fleet,
)
from airflow_provider_uci.analytics.page import render
from airflow_provider_uci.exhaust.names import DEFAULT_TABLE
from airflow_provider_uci.exhaust.safe_files import atomic_write_text
from airflow_provider_uci.exhaust.warehouse import open_warehouse, redact_url
from airflow_provider_uci.exhaust.warehouse.views import Scope

__all__ = [
    "WITHHELD",
    "Bot",
    "Fleet",
    "Question",
    "answer_label",
    "collect",
    "collect_fleet",
    "render",
    "write_report",
]


def _existing_sqlite(warehouse_url: str) -> None:
    """Refuse a SQLite URL whose file does not exist (opening it would make an empty database)."""
    if warehouse_url.startswith("sqlite:///"):
        path = Path(warehouse_url[len("sqlite:///") :])
        if not path.is_file():
            raise ValueError(f"warehouse: no SQLite database at {str(path)!r}; load an exhaust into it first")


def write_report(
    warehouse_url: str,
    out: str | Path,
    *,
    table: str = DEFAULT_TABLE,
    conversation_id: str | None = None,
    from_date: str | None = None,
    to_date: str | None = None,
) -> Path:
    """Write the report of ``table`` in the warehouse at ``warehouse_url`` to ``out``; return its path.

    :param conversation_id: one bot's page; ``None``: the fleet's (every bot in the range).
    :param from_date: first sync day (IST, ``YYYY-MM-DD``) of the range; ``None``: from the first.
    :param to_date: last sync day; ``None``: to the last.
    :raises ValueError: a bad date or table name, or no such table (the message names which).
    """
    scope = Scope(conversation_id, from_date or None, to_date or None)
    _existing_sqlite(warehouse_url)
    with open_warehouse(warehouse_url) as warehouse:
        fleet = collect_fleet(warehouse, table, scope)
    asked = (
        f"{scope.from_date or '…'} to {scope.to_date or '…'}"
        if scope.from_date or scope.to_date
        else "every day loaded"
    )
    page = render(
        fleet,
        single=conversation_id is not None,
        asked=asked,
        source=f"{redact_url(warehouse_url).rsplit('/', 1)[-1]} / {table}",
    )
    # whole or not at all (a reader never sees half a page), 0600 in folders made 0700, never over what is not a file
    return atomic_write_text(out, page, field="out")


def add_report_command(commands: Any) -> None:
    """Add ``uci-exhaust report`` to the CLI's subcommands."""
    report = commands.add_parser(
        "report",
        help="write an offline HTML report of a warehouse's answers",
        description="Write one self-contained HTML page (charts as inline SVG, nothing fetched from a network) for "
        "the fleet, or for one bot with --conversation-id: sessions started and completed, the time to complete, the "
        "funnel by session with its drop-off, answer shares of each multiple-choice question, free-text counts and "
        "samples; each table downloadable as CSV from the page.",
    )
    report.add_argument(
        "--warehouse", required=True, help="sqlite:///path.db or postgresql://user:password@host/db"
    )
    report.add_argument(
        "--table", default=DEFAULT_TABLE, help=f"the responses table (default {DEFAULT_TABLE})"
    )
    report.add_argument("--conversation-id", help="one bot's page (default: every bot)")
    report.add_argument("--from-date", help="first sync day, YYYY-MM-DD (IST; default: the first)")
    report.add_argument("--to-date", help="last sync day, YYYY-MM-DD (default: the last)")
    report.add_argument(
        "--out", type=Path, default=Path("report.html"), help="the page to write (default report.html)"
    )


def run_report_command(args: Any) -> int:
    """Run ``uci-exhaust report``: write the page and print its path."""
    path = write_report(
        args.warehouse,
        args.out,
        table=args.table,
        conversation_id=args.conversation_id,
        from_date=args.from_date,
        to_date=args.to_date,
    )
    print(path)
    return 0
