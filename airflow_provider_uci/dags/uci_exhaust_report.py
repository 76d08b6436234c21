"""Refresh the conversation report after every load of the warehouse.

Scheduled on the warehouse Asset that each load of ``uci_exhaust`` emits (``operators.load.warehouse_asset``):
when loads update the table, one run writes the fleet's page ``report.html`` at the top of the
destination, and each loaded bot's page ``<conversation_id>/report.html`` beside its files (see
``analytics.report``). The same Variables as ``uci_exhaust`` say where things are:

- ``uci_exhaust_warehouse_conn_id``: the warehouse connection (PostgreSQL or SQLite); without it, the
  SQLite file under ``$AIRFLOW_HOME/uci-exhaust``;
- ``uci_exhaust_destination``: a folder, or ``wasb://<container>/<prefix>`` through ``wasb_default``;
  without it, ``$AIRFLOW_HOME/uci-exhaust/files``.
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, BaseHook, Variable, get_current_context, task

from airflow_provider_uci.exhaust.load import DEFAULT_TABLE
from airflow_provider_uci.exhaust.warehouse import warehouse_url_from_parts
from airflow_provider_uci.operators.load import default_data_root, warehouse_asset
from airflow_provider_uci.transfers.exhaust import DEFAULT_WASB_CONN_ID, Destination

TABLE = DEFAULT_TABLE
REPORT_NAME = "report.html"


def _warehouse_url() -> str:
    """The warehouse the loads write, as ``uci_exhaust`` finds it."""
    conn_id = Variable.get("uci_exhaust_warehouse_conn_id", default="")
    if not conn_id:
        return f"sqlite:///{default_data_root() / 'warehouse.db'}"
    conn = BaseHook.get_connection(conn_id)
    return warehouse_url_from_parts(conn.conn_type, conn.host, conn.login, conn.password, conn.schema, conn.port)


def _loaded_bots(context: Any) -> list[str]:
    """The bots whose loads triggered this run (from the Asset events' extras)."""
    bots: list[str] = []
    for events in (context.get("triggering_asset_events") or {}).values():
        for event in events:
            bot = (getattr(event, "extra", None) or {}).get("conversation_id")
            if bot and bot not in bots:
                bots.append(bot)
    return bots


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
        """Write the fleet's page and each loaded bot's; return where they went."""
        from airflow_provider_uci.analytics.report import write_report

        context = get_current_context()
        url = _warehouse_url()
        destination = Destination.parse(Variable.get("uci_exhaust_destination", default=""))
        pages = [(REPORT_NAME, None)] + [(f"{bot}/{REPORT_NAME}", bot) for bot in _loaded_bots(context)]
        written = []
        with tempfile.TemporaryDirectory(prefix="uci-report-") as scratch:
            for relative, bot in pages:
                local = destination.local / relative if destination.local is not None else Path(scratch) / relative
                write_report(url, local, table=TABLE, conversation_id=bot)
                if destination.local is None:
                    from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

                    WasbHook(wasb_conn_id=DEFAULT_WASB_CONN_ID).load_file(
                        str(local), container_name=destination.container, blob_name=destination.key(relative),
                        overwrite=True, content_settings=_html_settings())
                written.append(destination.uri(relative))
        return written

    refresh_report()


def _html_settings() -> Any:
    """Blob content settings that make a browser show the page rather than download it."""
    from azure.storage.blob import ContentSettings

    return ContentSettings(content_type="text/html; charset=utf-8")
