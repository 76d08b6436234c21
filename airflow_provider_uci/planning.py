"""What a run of the exhaust DAGs covers: which bots and which Asia/Kolkata days, from params or the schedule.

Both DAG shapes (``uci_exhaust``: four tasks per bot; the compact example: one) plan the same way,
with the same trigger form (:func:`run_params`) and the same labels (:data:`LABEL`).
"""

from __future__ import annotations

import json
from typing import Any

import pendulum
from airflow.sdk import Param, Variable
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_uci.exhaust.names import conversation_id as checked_conversation_id
from airflow_provider_uci.schedule import DEFAULT_POLL_INTERVAL, SCHEDULE_TIMEZONE

#: Every task of a bot is labelled with its conversation id in the UI (its map index).
LABEL = "{{ task.conversation_id }}"
#: The run's ``poll_continuously`` param when given (true or false), else the Variable.
RUN_AT = (
    "{{ ('continuous' if params.poll_continuously else 'nightly') if params.poll_continuously is not none "
    "else ('continuous' if var.value.get('uci_exhaust_poll_continuously', 'false') | lower == 'true' "
    "else 'nightly') }}"
)
#: Where the copies go, the warehouse and phone-number handling: Airflow Variables, rendered per task.
DESTINATION = "{{ var.value.get('uci_exhaust_destination', '') }}"
WAREHOUSE_CONN_ID = "{{ var.value.get('uci_exhaust_warehouse_conn_id', '') }}"
PHONE_NUMBERS = "{{ var.value.get('uci_exhaust_phone_numbers', 'plain') }}"
POLL_INTERVAL = "{{ params.poll_interval }}"


def _day_param(title: str, description: str) -> Param:
    """An optional day of the form, ``YYYY-MM-DD``."""
    return Param(None, type=["null", "string"], format="date", title=title, description=description)


def run_params() -> dict[str, Param]:
    """The trigger form: bots, range, and how to wait."""
    return {
        "conversation_ids": Param(
            None,
            type=["null", "array"],
            items={"type": "string", "format": "uuid"},
            title="Bots (conversation ids)",
            description="The bots to load, one conversation id (UUID) per line. Leave empty for the bots in "
            "the Variable uci_exhaust_conversation_ids.",
        ),
        "start_date": _day_param(
            "First day (Asia/Kolkata)",
            "First sync day, YYYY-MM-DD. Empty: the run's data interval, or yesterday for a manual run.",
        ),
        "end_date": _day_param(
            "Last day (Asia/Kolkata)", "Last sync day, inclusive. Empty: as the first day."
        ),
        "poll_continuously": Param(
            None,
            type=["null", "boolean"],
            title="Poll all day",
            description="Look at the jobs every poll interval all day, instead of "
            "sleeping until the service's nightly runs (02:00 and 03:00 "
            "IST). For a service that runs its jobs continuously, such as "
            "the emulator's fast mode. Empty: the Variable "
            "uci_exhaust_poll_continuously decides (false when unset).",
        ),
        "poll_interval": Param(
            int(DEFAULT_POLL_INTERVAL),
            type="integer",
            minimum=1,
            title="Poll interval (seconds)",
            description=f"Seconds between looks at the jobs while a nightly run may be "
            f"working, or all day when polling continuously. Default "
            f"{int(DEFAULT_POLL_INTERVAL)}.",
        ),
    }


def conversation_ids(value: Any) -> list[str]:
    """The bots, each a UUID in its 36-character form (``exhaust.names``), each once, in the order given."""
    bots = json.loads(value) if isinstance(value, str) else list(value or [])
    try:
        return list(dict.fromkeys(checked_conversation_id(bot, "conversation_ids") for bot in bots))
    except ValueError as exc:
        raise AirflowFailException(str(exc)) from None


def plan_run(context: Any, max_bots: int) -> list[dict[str, Any]]:
    """``[{conversation_id, from_date, to_date}]`` per bot: params first, then the data interval, then
    yesterday (IST); at most ``max_bots`` bots (``[core] max_map_length``)."""
    params = context["params"]
    bots = conversation_ids(
        params.get("conversation_ids") or Variable.get("uci_exhaust_conversation_ids", default="[]")
    )
    if not bots:
        raise AirflowFailException(
            "conversation_ids: no bots given in the run's params, and the Variable "
            "uci_exhaust_conversation_ids is empty or unset; set it to a JSON list "
            "of conversation ids"
        )
    if len(bots) > max_bots:
        raise AirflowFailException(
            f"conversation_ids: {len(bots)} bots, more than [core] max_map_length ({max_bots}) lets one run map; "
            f"raise max_map_length (AIRFLOW__CORE__MAX_MAP_LENGTH) to at least {len(bots)}, or split the bots "
            "across runs"
        )
    start, end = params.get("start_date"), params.get("end_date")
    if not start or not end:
        interval_start = context.get("data_interval_start")
        if interval_start is not None:
            day = pendulum.instance(interval_start).in_timezone(SCHEDULE_TIMEZONE).date()
        else:  # a manual run without a logical date
            day = pendulum.now(SCHEDULE_TIMEZONE).subtract(days=1).date()
        start = start or end or day.isoformat()
        end = end or start
    if start > end:
        raise AirflowFailException(f"start_date: {start} is after end_date {end}")
    return [{"conversation_id": bot, "from_date": start, "to_date": end} for bot in bots]
