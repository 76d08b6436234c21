"""Test DAG: submit both exhausts for one conversation, then wait for each with the deferrable sensor.

The sensors poll every second all day (``run_at=None``): the emulator under test runs its jobs every
second instead of nightly.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_uci.operators.exhaust import SubmitExhaustOperator
from airflow_provider_uci.sensors.exhaust import ExhaustJobSensor

with DAG(
    dag_id="uci_test_submit_wait",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "conversation_id": Param("00000000-0000-0000-0000-000000000000", type="string"),
        "start_date": Param("2026-01-01", type="string"),
        "end_date": Param("2026-01-01", type="string"),
    },
) as dag:
    for dataset in ("uci-response-exhaust", "uci-private-exhaust"):
        short = dataset.split("-")[1]
        submit = SubmitExhaustOperator(
            task_id=f"submit_{short}",
            conversation_id="{{ params.conversation_id }}",
            datasets=[dataset],
            from_date="{{ params.start_date }}",
            to_date="{{ params.end_date }}",
            # a secret templated from a Variable: Airflow shows the rendered field as ***
            zip_password="{{ var.value.get('uci_test_zip_password', '') }}" if short == "private" else None,
        )
        ExhaustJobSensor(
            task_id=f"wait_{short}",
            jobs=submit.output,
            run_at=None,
            poll_interval=1,
            timeout=180,
            deferrable=True,
        )
