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
  list of conversation ids). At most ``[core] max_map_length`` bots per run (1,024 by default).
- Per bot, a task group labelled with the conversation id: ``submit`` (both requests), ``wait`` (both
  jobs, deferred to the triggerer, ending there), ``copy`` (both files) and ``join_and_load``. Each can
  be cleared alone and resumes from there: clearing ``join_and_load`` reloads the copies without calling
  the service; clearing ``wait`` or ``copy`` reaches the same jobs by their request ids.
- Connections: ``uci_exhaust_default`` (the API); the warehouse connection named by the Variable
  ``uci_exhaust_warehouse_conn_id`` (PostgreSQL or SQLite; without it, a SQLite file under
  ``$AIRFLOW_HOME/uci-exhaust``); files go to ``$AIRFLOW_HOME/uci-exhaust/files`` or to the
  destination in the Variable ``uci_exhaust_destination`` (a folder, or ``wasb://<container>/<prefix>``).
- ``params.poll_continuously`` (when left empty, the Variable ``uci_exhaust_poll_continuously``): poll
  every ``poll_interval`` seconds all day instead of sleeping to the nightly runs, for a service that
  runs its jobs continuously (the emulator's fast mode).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, CronDataIntervalTimetable, get_current_context, task, task_group

from airflow_provider_uci.exhaust.names import DEFAULT_TABLE
from airflow_provider_uci.operators.exhaust import SubmitExhaustOperator
from airflow_provider_uci.operators.load import LoadExhaustOperator
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
from airflow_provider_uci.sensors.exhaust import ExhaustJobSensor
from airflow_provider_uci.transfers.exhaust import CopyExhaustFilesOperator

TABLE = DEFAULT_TABLE

DOC_MD = f"""
### Sunbird UCI Data Exhaust, per bot, into the warehouse

Each run covers **Asia/Kolkata days** (the service's sync days): a scheduled run for day D asks for
D..D; a manual run may give `start_date`/`end_date` and `conversation_ids`.

`plan` picks the bots and the range; then per bot a task group **`bot`**, labelled with the bot's
conversation id, of four tasks:

| task | what it does | cleared alone |
|---|---|---|
| `submit` | the response and the private exhaust request | submits again (the same day: the same jobs) |
| `wait` | both jobs, in the triggerer, not a worker: it sleeps to the nightly runs (02:00 response, 03:00 private, IST) and shows *deferred* | reads the same jobs by their request ids; no new submission |
| `copy` | both jobs' files to the destination, while their signed URLs are fresh | reads the same jobs for fresh URLs and copies again |
| `join_and_load` | joins answers to users on the device id and replaces the bot's rows of those days in `{TABLE}` | reloads the copies, without calling the service |

A bot nobody used in the range ends **green**: the service answers `No data found`, and the load
records the range as loaded empty. Errors that no retry can mend (a bot the channel does not own,
a job failed for good, bad input, HTTP 400/401/403) fail the task **at once**; network faults are retried.

Bots: the `conversation_ids` param, else the Variable `uci_exhaust_conversation_ids`, at most
`[core] max_map_length` per run. Warehouse, destination and phone-number handling: the Variables
`uci_exhaust_warehouse_conn_id`, `uci_exhaust_destination` and `uci_exhaust_phone_numbers`.
"""


with DAG(
    dag_id="uci_exhaust",
    description="Sunbird UCI Data Exhaust: submit, wait for the nightly run, copy, join and load, per bot "
    "(Asia/Kolkata days)",
    doc_md=DOC_MD,
    schedule=CronDataIntervalTimetable("@daily", timezone=SCHEDULE_TIMEZONE),  # one IST day per run
    start_date=pendulum.datetime(2026, 1, 1, tz=SCHEDULE_TIMEZONE),
    catchup=False,
    max_active_runs=4,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["uci", "sunbird", "exhaust"],
    params=run_params(),
) as dag:

    @task(task_id="plan")
    def plan() -> list[dict[str, Any]]:
        """Which bots, and which range: params first, then the data interval, then yesterday (IST)."""
        from airflow.configuration import conf

        return plan_run(get_current_context(), conf.getint("core", "max_map_length", fallback=1024))

    @task_group(group_id="bot")
    def bot(conversation_id: str, from_date: str, to_date: str) -> None:
        """One bot: submit both requests, wait for both nightly runs, copy both files, join and load."""
        submit = SubmitExhaustOperator(
            task_id="submit",
            conversation_id=conversation_id,
            from_date=from_date,
            to_date=to_date,
            map_index_template=LABEL,
        )
        wait = ExhaustJobSensor(
            task_id="wait",
            jobs=submit.output,
            conversation_id=conversation_id,
            run_at=RUN_AT,
            poll_interval=POLL_INTERVAL,
            deferrable=True,
            map_index_template=LABEL,
        )
        copy = CopyExhaustFilesOperator(
            task_id="copy",
            jobs=wait.output,
            conversation_id=conversation_id,
            destination=DESTINATION,
            map_index_template=LABEL,
        )
        LoadExhaustOperator(
            task_id="join_and_load",
            copies=copy.output,
            conversation_id=conversation_id,
            from_date=from_date,
            to_date=to_date,
            warehouse_conn_id=WAREHOUSE_CONN_ID,
            table=TABLE,
            phone_numbers=PHONE_NUMBERS,
            map_index_template=LABEL,
        )

    bot.expand_kwargs(plan())
