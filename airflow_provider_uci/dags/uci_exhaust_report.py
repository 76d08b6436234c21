"""Refresh the conversation report after every load of the warehouse.

Scheduled on the warehouse Asset that each load of ``uci_exhaust`` emits (``operators.load.warehouse_asset``):
when loads update the table, one run writes the fleet's page ``report.html`` at the top of the
destination, and the page ``<conversation_id>/report.html`` beside its files of every bot loaded since
the last report: the bots of ``<table>_loads`` rows newer than the last one a report covered (kept in
the Variable ``uci_exhaust_report_last_load_id``), and those the triggering Asset events name. Loads
that finish together make one run (the Asset events are queued while a run is active); a bot id that
is not a UUID is never made a path: it is skipped, and the log names the field ``conversation_id``.
The DAG starts paused unless the deployment unpauses new DAGs (``dags_are_paused_at_creation``).

The same Variables as ``uci_exhaust`` say where things are:

- ``uci_exhaust_warehouse_conn_id``: the warehouse connection (PostgreSQL or SQLite); without it, the
  SQLite file under ``$AIRFLOW_HOME/uci-exhaust``;
- ``uci_exhaust_destination``: a folder, or ``wasb://<container>/<prefix>`` through ``wasb_default``;
  without it, ``$AIRFLOW_HOME/uci-exhaust/files``.
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, BaseHook, Variable, get_current_context, task

from airflow_provider_uci.exhaust.load import DEFAULT_TABLE
from airflow_provider_uci.exhaust.warehouse import warehouse_url_from_parts
from airflow_provider_uci.extras import install_line, missing
from airflow_provider_uci.operators.load import default_data_root, warehouse_asset
from airflow_provider_uci.transfers.exhaust import DEFAULT_WASB_CONN_ID, Destination

TABLE = DEFAULT_TABLE
REPORT_NAME = "report.html"
#: The Variable holding the id of the last ``<table>_loads`` row a report covered.
LAST_LOAD_VARIABLE = "uci_exhaust_report_last_load_id"
log = logging.getLogger(__name__)


def _warehouse_url() -> str:
    """The warehouse the loads write, as ``uci_exhaust`` finds it."""
    conn_id = Variable.get("uci_exhaust_warehouse_conn_id", default="")
    if not conn_id:
        return f"sqlite:///{default_data_root() / 'warehouse.db'}"
    conn = BaseHook.get_connection(conn_id)
    return warehouse_url_from_parts(
        conn.conn_type, conn.host, conn.login, conn.password, conn.schema, conn.port
    )


def bot_id(value: Any, origin: str) -> str | None:
    """``value`` if it is a bot's id (a UUID), else ``None`` with a warning: it never becomes a path."""
    try:
        if isinstance(value, str) and str(uuid.UUID(value)) == value.lower():
            return value
    except ValueError:
        pass
    log.warning("conversation_id: %r from %s is not a UUID; no page is written for it", value, origin)
    return None


def _loaded_bots(context: Any) -> list[str]:
    """The bots whose loads triggered this run (from the Asset events' extras), UUIDs only."""
    bots: list[str] = []
    for events in (context.get("triggering_asset_events") or {}).values():
        for event in events:
            extra = getattr(event, "extra", None) or {}
            if "conversation_id" not in extra:
                continue
            bot = bot_id(extra["conversation_id"], "an Asset event's extra")
            if bot and bot not in bots:
                bots.append(bot)
    return bots


def bots_loaded_since(url: str, last_load: int, named: Iterable[str] = ()) -> tuple[list[str], int]:
    """The bots of ``<table>_loads`` rows after ``last_load``, then ``named`` ones; and the last row's id."""
    from airflow_provider_uci.exhaust.warehouse import open_warehouse

    with open_warehouse(url) as warehouse:
        loads = warehouse.loads(TABLE)
    bots: list[str] = []
    for load in loads:
        if load["id"] > last_load:
            bot = bot_id(load["conversation_id"], f"{TABLE}_loads row {load['id']}")
            if bot and bot not in bots:
                bots.append(bot)
    bots += [bot for bot in named if bot not in bots]
    return bots, max([last_load, *(load["id"] for load in loads)])


def refresh(url: str, destination: Destination, bots: Iterable[str]) -> list[str]:
    """Write the fleet's page and each of ``bots``' pages; return where they went."""
    from airflow_provider_uci.analytics.report import write_report

    pages = [(REPORT_NAME, None)] + [
        (f"{bot}/{REPORT_NAME}", bot) for bot in bots if bot_id(bot, "the bots to report")
    ]
    written = []
    with tempfile.TemporaryDirectory(prefix="uci-report-") as scratch:
        for relative, bot in pages:
            local = (
                destination.local / relative if destination.local is not None else Path(scratch) / relative
            )
            write_report(url, local, table=TABLE, conversation_id=bot)
            if destination.local is None:
                from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

                WasbHook(wasb_conn_id=DEFAULT_WASB_CONN_ID).load_file(
                    str(local),
                    container_name=str(destination.container),  # a wasb destination names one
                    blob_name=destination.key(relative),
                    overwrite=True,
                    content_settings=_html_settings(),
                )
            written.append(destination.uri(relative))
    return written


#: The report draws its charts with matplotlib (the analytics extra). Without it the DAG is not defined
#: (rather than failing after every load), and the file's parse log says which extra to install.
MISSING_EXTRAS = missing(["analytics"], modules=["matplotlib"])
if MISSING_EXTRAS:
    log.warning("uci_exhaust_report is not defined: the report %s", install_line(MISSING_EXTRAS))
else:
    with DAG(
        dag_id="uci_exhaust_report",
        description="Refresh the offline conversation report after every load of the warehouse",
        schedule=[warehouse_asset(TABLE)],
        start_date=datetime(2024, 1, 1),
        catchup=False,
        max_active_runs=1,
        tags=["uci", "exhaust", "report"],
        doc_md=__doc__,
    ) as dag:

        @task
        def refresh_report() -> list[str]:
            """Write the fleet's page and the page of every bot loaded since the last report; return
            where they went."""
            context = get_current_context()
            url = _warehouse_url()
            destination = Destination.parse(Variable.get("uci_exhaust_destination", default=""))
            last_load = int(Variable.get(LAST_LOAD_VARIABLE, default="0") or 0)
            bots, newest = bots_loaded_since(url, last_load, _loaded_bots(context))
            written = refresh(url, destination, bots)
            if newest > last_load:
                Variable.set(LAST_LOAD_VARIABLE, str(newest))
            return written

        refresh_report()


def _html_settings() -> Any:
    """Blob content settings that make a browser show the page rather than download it."""
    from azure.storage.blob import ContentSettings

    return ContentSettings(content_type="text/html; charset=utf-8")
