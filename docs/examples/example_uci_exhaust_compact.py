"""The compact shape: one task per bot (``ExhaustToWarehouseOperator``), for fleets of hundreds of bots.

The same run as ``uci_exhaust`` (the same trigger form, Variables and connections, the same bots, days
and table), with each bot's four steps in one task: submit, wait in the triggerer, copy, join and load.
A bot takes two task processes and one task instance instead of up to three and four, which is what
lets the scheduler keep up with large fleets; what it gives up is the grid per step and clearing a step
alone (a cleared bot submits again, reaching the same jobs, and downloads again before it reloads).

It is an example, not a shipped DAG: a deployment schedules one shape or the other over a table, never
both. To use it, copy this file into the DAGs folder instead of ``uci_exhaust.py``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, CronDataIntervalTimetable, get_current_context, task

from airflow_provider_uci.operators.load import DEFAULT_TABLE, warehouse_asset
from airflow_provider_uci.operators.to_warehouse import ExhaustToWarehouseOperator
from airflow_provider_uci.planning import (
    DESTINATION,
    LABEL,
    PHONE_NUMBERS,
    POLL_INTERVAL,
    RUN_AT,
    WAREHOUSE_CONN_ID,
    plan_run,
    run_params,
)
from airflow_provider_uci.schedule import SCHEDULE_TIMEZONE

with DAG(
    dag_id="uci_exhaust_compact",
    description="Sunbird UCI Data Exhaust per bot in one task: submit, wait, copy, join and load",
    doc_md=__doc__,
    schedule=CronDataIntervalTimetable("@daily", timezone=SCHEDULE_TIMEZONE),
    start_date=pendulum.datetime(2026, 1, 1, tz=SCHEDULE_TIMEZONE),
    catchup=False,
    max_active_runs=4,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["uci", "sunbird", "exhaust", "example"],
    params=run_params(),
) as dag:

    @task(task_id="plan")
    def plan() -> list[dict[str, Any]]:
        """Which bots, and which range (as ``uci_exhaust`` plans them)."""
        from airflow.configuration import conf

        return plan_run(get_current_context(), conf.getint("core", "max_map_length", fallback=1024))

    ExhaustToWarehouseOperator.partial(
        task_id="bot",
        run_at=RUN_AT,
        poll_interval=POLL_INTERVAL,
        destination=DESTINATION,
        warehouse_conn_id=WAREHOUSE_CONN_ID,
        table=DEFAULT_TABLE,
        phone_numbers=PHONE_NUMBERS,
        map_index_template=LABEL,
        outlets=[warehouse_asset(DEFAULT_TABLE)],  # a mapped task's outlets are read before it runs
    ).expand_kwargs(plan())
