"""One bot, step by step: submit, wait, copy the files, join and load them into the warehouse.

The four operators of the ``uci_exhaust`` DAG's task group, for one bot given in the run's params:
``SubmitExhaustOperator``, ``ExhaustJobSensor``, ``CopyExhaustFilesOperator`` and
``LoadExhaustOperator``. Each hands the next its output (``submit.output``, ...), and each step can be
cleared alone: clearing ``load`` reloads the copies without calling the service.

``destination`` is a folder or ``wasb://<container>/<prefix>`` (empty: ``$AIRFLOW_HOME/uci-exhaust/files``);
``warehouse_conn_id`` a connection of type ``postgres`` or ``sqlite`` (empty: a SQLite file under
``$AIRFLOW_HOME/uci-exhaust``).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_uci.operators.exhaust import SubmitExhaustOperator
from airflow_provider_uci.operators.load import LoadExhaustOperator
from airflow_provider_uci.sensors.exhaust import ExhaustJobSensor
from airflow_provider_uci.transfers.exhaust import CopyExhaustFilesOperator

with DAG(
    dag_id="example_uci_copy_and_load",
    description="One bot: submit, wait, copy the files, join and load the warehouse",
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
        "destination": Param("", type="string", title="Where the files go"),
        "warehouse_conn_id": Param("", type="string", title="The warehouse connection"),
    },
) as dag:
    submit = SubmitExhaustOperator(
        task_id="submit",
        conversation_id="{{ params.conversation_id }}",
        from_date="{{ params.start_date }}",
        to_date="{{ params.end_date }}",
    )
    wait = ExhaustJobSensor(
        task_id="wait",
        jobs=submit.output,  # {dataset: submitted job}
        conversation_id="{{ params.conversation_id }}",
        run_at="{{ 'continuous' if params.poll_continuously else 'nightly' }}",
        poll_interval="{{ params.poll_interval }}",
        deferrable=True,
    )
    copy = CopyExhaustFilesOperator(
        task_id="copy",
        jobs=wait.output,  # {dataset: answered job}
        conversation_id="{{ params.conversation_id }}",
        destination="{{ params.destination }}",
    )
    LoadExhaustOperator(
        task_id="load",
        copies=copy.output,  # {dataset: copied files}
        warehouse_conn_id="{{ params.warehouse_conn_id }}",
        phone_numbers="plain",  # or "hashed" (keyed with the Variable uci_exhaust_phone_hash_secret), "none"
    )
