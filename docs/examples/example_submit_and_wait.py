"""Submit a bot's two exhaust requests and wait for their jobs, with no more than that.

``SubmitExhaustOperator`` and ``ExhaustJobSensor``: the smallest use of the provider's parts, for a
DAG that does something of its own with the jobs once they have answered (the sensor's output names
each job, its status and whether it has files). The sensor looks once, then defers to
``ExhaustJobTrigger``: the wait runs in the triggerer, sleeping until the service's nightly runs
(02:00 and 03:00 Asia/Kolkata) unless ``poll_continuously`` is set.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_uci.operators.exhaust import SubmitExhaustOperator
from airflow_provider_uci.sensors.exhaust import ExhaustJobSensor

with DAG(
    dag_id="example_uci_submit_and_wait",
    description="Submit a bot's response and private exhaust requests, then wait for both jobs",
    doc_md=__doc__,
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Kolkata"),
    catchup=False,
    tags=["uci", "example"],
    params={
        "conversation_id": Param(type="string", format="uuid", title="Bot (conversation id)"),
        "start_date": Param(type="string", format="date", title="First sync day (Asia/Kolkata)"),
        "end_date": Param(type="string", format="date", title="Last sync day, inclusive"),
        "poll_continuously": Param(False, type="boolean", title="Poll all day instead of nightly"),
        "poll_interval": Param(600, type="integer", minimum=1, title="Seconds between looks"),
    },
) as dag:
    submit = SubmitExhaustOperator(
        task_id="submit",
        conversation_id="{{ params.conversation_id }}",
        from_date="{{ params.start_date }}",
        to_date="{{ params.end_date }}",
        # datasets: both by default; the zip password: the connection's zip_password
    )
    wait = ExhaustJobSensor(
        task_id="wait",
        jobs=submit.output,  # {dataset: submitted job}
        conversation_id="{{ params.conversation_id }}",
        run_at="{{ 'continuous' if params.poll_continuously else 'nightly' }}",
        poll_interval="{{ params.poll_interval }}",
        deferrable=True,
    )
