"""Sunbird UCI Data Exhaust -> warehouse, per bot.

For each conversation (bot): submit a response exhaust and a private exhaust request, wait (in the
triggerer, not a worker) until the service's nightly runs (02:00 and 03:00 Asia/Kolkata) have made
them, copy the files while their signed URLs are fresh, join answers to users on the device id, and
load the warehouse idempotently.

- Scheduled daily over a one-day data interval (Asia/Kolkata days, the service's sync days): the
  run for day D asks for D..D; ``airflow backfill create`` covers any range.
- Manual runs may carry their own ``start_date``/``end_date`` and ``conversation_ids`` in ``params``,
  and need no logical date.
- Bots: ``params.conversation_ids``, else the Airflow Variable ``uci_exhaust_conversation_ids`` (a JSON
  list of conversation ids).
- Connections: ``uci_exhaust_default`` (the API); the warehouse connection named by the Variable
  ``uci_exhaust_warehouse_conn_id`` (PostgreSQL or SQLite; without it, a SQLite file under
  ``$AIRFLOW_HOME/uci-exhaust``); files go to ``$AIRFLOW_HOME/uci-exhaust/files`` or to the
  destination in the Variable ``uci_exhaust_destination`` (a folder, or ``wasb://<container>/<prefix>``).
- ``params.poll_continuously`` (or the Variable ``uci_exhaust_poll_continuously``): poll every
  ``poll_interval`` seconds all day instead of sleeping to the nightly runs, for a service that runs
  its jobs continuously (the emulator's fast mode).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, Variable, get_current_context, task, task_group
from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_uci.operators.exhaust import SubmitExhaustOperator
from airflow_provider_uci.operators.load import LoadExhaustOperator
from airflow_provider_uci.sensors.exhaust import ExhaustJobSensor
from airflow_provider_uci.transfers.exhaust import CopyExhaustFilesOperator

TIMEZONE = "Asia/Kolkata"
GROUP = "bot"
TABLE = "uci_responses"
RESPONSE, PRIVATE = "uci-response-exhaust", "uci-private-exhaust"


with DAG(
    dag_id="uci_exhaust",
    description="Sunbird UCI Data Exhaust: submit, wait for the nightly run, copy, join and load, per bot",
    schedule=CronDataIntervalTimetable("@daily", timezone=TIMEZONE),  # one IST day per run
    start_date=pendulum.datetime(2026, 1, 1, tz=TIMEZONE),
    catchup=False,
    max_active_runs=4,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["uci", "sunbird", "exhaust"],
    params={
        "conversation_ids": Param(
            [], type="array", items={"type": "string", "format": "uuid"},
            description="Bots (conversation ids); empty: the Variable uci_exhaust_conversation_ids."),
        "start_date": Param(None, type=["null", "string"], format="date",
                            description="First sync day (YYYY-MM-DD); empty: the run's data interval."),
        "end_date": Param(None, type=["null", "string"], format="date",
                          description="Last sync day, inclusive; empty: the run's data interval."),
        "poll_continuously": Param(False, type="boolean",
                                   description="Poll all day instead of sleeping to the nightly runs."),
        "poll_interval": Param(600, type="integer", minimum=1, description="Seconds between polls."),
    },
) as dag:

    @task(task_id="plan")
    def plan() -> list[dict[str, Any]]:
        """Which bots, and which range: params first, then the data interval, then yesterday (IST)."""
        context = get_current_context()
        params = context["params"]
        bots = list(params.get("conversation_ids") or [])
        if not bots:
            configured = Variable.get("uci_exhaust_conversation_ids", default="[]")
            bots = json.loads(configured) if isinstance(configured, str) else list(configured)
        if not bots:
            raise ValueError("conversation_ids: none given in params and the Variable "
                             "uci_exhaust_conversation_ids is empty")
        start, end = params.get("start_date"), params.get("end_date")
        if not start or not end:
            interval_start = context.get("data_interval_start")
            if interval_start is not None:
                day = pendulum.instance(interval_start).in_timezone(TIMEZONE).date()
            else:  # a manual run without a logical date
                day = pendulum.now(TIMEZONE).subtract(days=1).date()
            start = start or day.isoformat()
            end = end or day.isoformat()
        if start > end:
            raise ValueError(f"start_date: {start} is after end_date {end}")
        return [{"conversation_id": bot, "from_date": start, "to_date": end} for bot in dict.fromkeys(bots)]

    @task_group(group_id=GROUP)
    def per_bot(conversation_id: str, from_date: str, to_date: str) -> None:
        """Submit both exhausts, wait for both nightly runs, copy, then join and load."""
        run_at = ("{{ 'continuous' if params.poll_continuously or "
                  "var.value.get('uci_exhaust_poll_continuously', 'false') | lower == 'true' else 'nightly' }}")
        copies = {}
        for dataset, short in ((RESPONSE, "response"), (PRIVATE, "private")):
            submit = SubmitExhaustOperator(
                task_id=f"submit_{short}", conversation_id=conversation_id, dataset=dataset, from_date=from_date,
                to_date=to_date, max_active_tis_per_dagrun=4, map_index_template="{{ task.conversation_id }}",
            )
            wait = ExhaustJobSensor(
                task_id=f"wait_{short}", submit_task_id=f"{GROUP}.submit_{short}", dataset=dataset,
                run_at=run_at, poll_interval="{{ params.poll_interval }}", max_active_tis_per_dagrun=8,
            )
            copy = CopyExhaustFilesOperator(
                task_id=f"copy_{short}", job_task_id=f"{GROUP}.wait_{short}",
                destination="{{ var.value.get('uci_exhaust_destination', '') }}", max_active_tis_per_dagrun=4,
            )
            submit >> wait >> copy
            copies[short] = copy
        load = LoadExhaustOperator(
            task_id="load", response_copy_task_id=f"{GROUP}.copy_response",
            private_copy_task_id=f"{GROUP}.copy_private",
            warehouse_conn_id="{{ var.value.get('uci_exhaust_warehouse_conn_id', '') }}", table=TABLE,
            phone_numbers="{{ var.value.get('uci_exhaust_phone_numbers', 'plain') }}",
        )
        [copies["response"], copies["private"]] >> load

    per_bot.expand_kwargs(plan())
