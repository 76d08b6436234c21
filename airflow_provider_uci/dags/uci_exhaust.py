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
- Per bot, one task (labelled with the conversation id) takes four steps: it submits both requests,
  waits for both jobs in the triggerer, then resumes on a worker to copy both jobs' files and load them.
  Its log names each step, and a failure says which step failed; clearing it runs the bot again (the
  same jobs are reached, and a wait already over is not waited again). A bot with no answers in the
  range (the service's ``No data found``) ends green, recorded as loaded empty.
- Bots come in batches of at most ``[core] max_map_length`` (1,024 by default) per mapped task:
  ``plan`` hands the first batch to ``bot`` at once, ``batch_2`` to ``batch_4`` the rest to ``bot_2``
  to ``bot_4``.
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
from airflow.sdk import DAG, CronDataIntervalTimetable, Param, Variable, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_uci.operators.load import warehouse_asset
from airflow_provider_uci.operators.to_warehouse import ExhaustToWarehouseOperator
from airflow_provider_uci.schedule import DEFAULT_POLL_INTERVAL, SCHEDULE_TIMEZONE

TIMEZONE = SCHEDULE_TIMEZONE
TABLE = "uci_responses"
RESPONSE, PRIVATE = "uci-response-exhaust", "uci-private-exhaust"
#: Mapped tasks of bots; each holds at most ``[core] max_map_length`` bots.
BATCHES = 4
#: Every bot's task is labelled with its conversation id in the UI (its map index).
LABEL = "{{ task.conversation_id }}"

DOC_MD = f"""
### Sunbird UCI Data Exhaust, per bot, into the warehouse

Each run covers **Asia/Kolkata days** (the service's sync days): a scheduled run for day D asks for
D..D; a manual run may give `start_date`/`end_date` and `conversation_ids`.

Per bot, **one task** (`bot`, labelled with the bot's conversation id) takes four steps; its log
names each one, and a failure says which step failed:

| step | what it does |
|---|---|
| submit | the response and the private exhaust request (a rerun the same day reaches the same jobs) |
| wait | in the triggerer, not a worker: it sleeps to the nightly runs (02:00 response, 03:00 private, IST); the task shows *deferred* |
| copy | both jobs' files, while their signed URLs are fresh |
| load | joins answers to users on the device id and replaces the bot's rows of those days in `{TABLE}` |

Clearing a bot's task runs that bot again: it reaches the same jobs, and goes straight on to the copy
when they have answered.

A bot nobody used in the range ends **green**: the service answers `No data found`, and the load
records the range as loaded empty. Errors that no retry can mend (a bot the channel does not own,
a job failed for good, bad input, HTTP 400/401/403) fail the task **at once**; network faults are retried.

Bots: the `conversation_ids` param, else the Variable `uci_exhaust_conversation_ids`. Warehouse,
destination and phone-number handling: the Variables `uci_exhaust_warehouse_conn_id`,
`uci_exhaust_destination` and `uci_exhaust_phone_numbers`.
"""


with DAG(
    dag_id="uci_exhaust",
    description="Sunbird UCI Data Exhaust: submit, wait for the nightly run, copy, join and load, per bot "
                "(Asia/Kolkata days)",
    doc_md=DOC_MD,
    schedule=CronDataIntervalTimetable("@daily", timezone=TIMEZONE),  # one IST day per run
    start_date=pendulum.datetime(2026, 1, 1, tz=TIMEZONE),
    catchup=False,
    max_active_runs=4,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["uci", "sunbird", "exhaust"],
    params={
        "conversation_ids": Param(
            None, type=["null", "array"], items={"type": "string", "format": "uuid"}, title="Bots (conversation ids)",
            description="The bots to load, one conversation id (UUID) per line. Leave empty for the bots in "
                        "the Variable uci_exhaust_conversation_ids."),
        "start_date": Param(None, type=["null", "string"], format="date", title="First day (Asia/Kolkata)",
                            description="First sync day, YYYY-MM-DD. Empty: the run's data interval, or "
                                        "yesterday for a manual run."),
        "end_date": Param(None, type=["null", "string"], format="date", title="Last day (Asia/Kolkata)",
                          description="Last sync day, inclusive. Empty: as the first day."),
        "poll_continuously": Param(False, type="boolean", title="Poll all day",
                                   description="Look at the jobs every poll interval all day, instead of "
                                               "sleeping until the service's nightly runs (02:00 and 03:00 "
                                               "IST). For a service that runs its jobs continuously, such as "
                                               "the emulator's fast mode."),
        "poll_interval": Param(int(DEFAULT_POLL_INTERVAL), type="integer", minimum=1,
                               title="Poll interval (seconds)",
                               description=f"Seconds between looks at the jobs while a nightly run may be "
                                           f"working, or all day when polling continuously. Default "
                                           f"{int(DEFAULT_POLL_INTERVAL)}."),
    },
) as dag:

    def batch_size() -> int:
        from airflow.configuration import conf

        return conf.getint("core", "max_map_length", fallback=1024)

    @task(task_id="plan")
    def plan() -> list[dict[str, Any]]:
        """Which bots, and which range: params first, then the data interval, then yesterday (IST).

        Returns the first batch (the ``bot`` task maps over it at once); every bot goes to the XCom
        ``bots``, from which ``batch_2`` to ``batch_4`` take the rest.
        """
        context = get_current_context()
        params = context["params"]
        bots = list(params.get("conversation_ids") or [])
        if not bots:
            configured = Variable.get("uci_exhaust_conversation_ids", default="[]")
            bots = json.loads(configured) if isinstance(configured, str) else list(configured or [])
        if not bots:
            raise AirflowFailException("conversation_ids: no bots given in the run's params, and the Variable "
                                       "uci_exhaust_conversation_ids is empty or unset; set it to a JSON list "
                                       "of conversation ids")
        start, end = params.get("start_date"), params.get("end_date")
        if not start or not end:
            interval_start = context.get("data_interval_start")
            if interval_start is not None:
                day = pendulum.instance(interval_start).in_timezone(TIMEZONE).date()
            else:  # a manual run without a logical date
                day = pendulum.now(TIMEZONE).subtract(days=1).date()
            start = start or end or day.isoformat()
            end = end or start
        if start > end:
            raise AirflowFailException(f"start_date: {start} is after end_date {end}")
        planned = [{"conversation_id": bot, "from_date": start, "to_date": end} for bot in dict.fromkeys(bots)]
        size = batch_size()
        if len(planned) > BATCHES * size:
            raise AirflowFailException(
                f"conversation_ids: {len(planned)} bots, more than {BATCHES} batches of [core] max_map_length "
                f"({size}) can hold; raise max_map_length, or split the bots across runs")
        context["ti"].xcom_push(key="bots", value=planned)
        return planned[:size]

    @task(task_id="batch")
    def batch(planned: list[dict[str, Any]], number: int) -> list[dict[str, Any]]:
        """Bots of batch ``number`` (2 to ``BATCHES``): at most ``[core] max_map_length`` of them."""
        size = batch_size()
        return planned[(number - 1) * size: number * size]

    def bots(task_id: str, planned: Any) -> None:
        """One task per bot: submit both exhausts, wait for both nightly runs, copy, join and load."""
        run_at = ("{{ 'continuous' if params.poll_continuously or "
                  "var.value.get('uci_exhaust_poll_continuously', 'false') | lower == 'true' else 'nightly' }}")
        ExhaustToWarehouseOperator.partial(
            task_id=task_id, datasets=[RESPONSE, PRIVATE], run_at=run_at, poll_interval="{{ params.poll_interval }}",
            destination="{{ var.value.get('uci_exhaust_destination', '') }}",
            warehouse_conn_id="{{ var.value.get('uci_exhaust_warehouse_conn_id', '') }}", table=TABLE,
            phone_numbers="{{ var.value.get('uci_exhaust_phone_numbers', 'plain') }}", map_index_template=LABEL,
            outlets=[warehouse_asset(TABLE)],  # given here: a mapped task's outlets are read before it runs
        ).expand_kwargs(planned)

    first = plan()
    bots("bot", first)
    for number in range(2, BATCHES + 1):  # larger fleets: the batches run beside the first
        bots(f"bot_{number}", batch.override(task_id=f"batch_{number}")(first["bots"], number))
