"""What both exhaust jobs share: the context they run in, failures, request checks and dates."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from airflow_provider_uci.emulator.clock import Clock
from airflow_provider_uci.emulator.config import EmulatorSettings
from airflow_provider_uci.emulator.storage import BlobStorage
from airflow_provider_uci.emulator.store import JobRow
from airflow_provider_uci.emulator.ucidb import Bot, UciDatabase
from airflow_provider_uci.exhaust.spark_csv import format_row
from airflow_provider_uci.schedule import SCHEDULE_TIMEZONE

#: The job's file-name date and "yesterday" are IST, as on the real Spark hosts' runs.
IST = ZoneInfo(SCHEDULE_TIMEZONE)


class JobFailure(Exception):
    """The request fails with this ``statusMessage``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ProcessingError(JobFailure):
    """An error while building, counting or writing the report."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"Request processing failed with {detail}")


INVALID_REQUEST = "Invalid request"
#: What PostgreSQL's uuid type accepts in the usual form (any case, with or without braces).
UUID_TEXT = re.compile(
    r"\{?[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\}?\Z"
)


@dataclass
class Timer:
    ms: int = 0


@dataclass
class JobContext:
    """What a job run reads and writes."""

    settings: EmulatorSettings
    clock: Clock
    storage: BlobStorage
    uci: UciDatabase
    extra: dict[str, Any] = field(default_factory=dict)

    def run_day(self) -> str:
        """The IST date of this run, as in the output file name (``yyyyMMdd``)."""
        return self.clock.now().astimezone(IST).strftime("%Y%m%d")

    @contextmanager
    def timer(self) -> Iterator[Timer]:
        """Measure the processing time reported as ``executionTime``."""
        timer = Timer()
        began = time.monotonic()
        try:
            yield timer
        finally:
            timer.ms = int((time.monotonic() - began) * 1000)


def conversation_of(request: JobRow) -> str:
    """The request's conversation id, checked as the real job checks it."""
    config = request.request_data
    if not isinstance(config, dict) or "conversationId" not in config:
        raise JobFailure("Request should have conversationId")
    value = config["conversationId"]
    # the pushed-down filter casts to uuid, which fails the request for anything else
    if not isinstance(value, str) or not UUID_TEXT.match(value):
        raise JobFailure(INVALID_REQUEST)
    return value


def _parse_day(value: Any) -> date:
    if not isinstance(value, str):
        raise JobFailure(INVALID_REQUEST)
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise JobFailure(INVALID_REQUEST) from None


def request_dates(request: JobRow, bot: Bot, context: JobContext) -> tuple[date, date]:
    """startDate and endDate: the request's, else the bot's, else yesterday (IST)."""
    config = request.request_data if isinstance(request.request_data, dict) else {}
    yesterday = (context.clock.now().astimezone(IST) - timedelta(days=1)).date()
    days = []
    for key, fallback in (("startDate", bot.start_date), ("endDate", bot.end_date)):
        value = config.get(key, fallback)
        if value is None:
            days.append(yesterday)
        elif isinstance(value, str) and len(value) > 10 and key not in config:
            raise JobFailure(INVALID_REQUEST)  # a bot date stored as a timestamp
        else:
            days.append(_parse_day(value))
    return days[0], days[1]


def write_report(
    context: JobContext, path: Path, columns: Sequence[str], rows: Iterable[Sequence[str | None]]
) -> int:
    """Write the report CSV in Spark's dialect; return its processing time in ms.

    :raises ProcessingError: for any error while building or writing it, as the real job reports it.
    :raises JobFailure: ``No data found`` when there are no rows (no file is left behind).
    """
    count = 0
    with context.timer() as timer:
        try:
            with path.open("w", encoding="utf-8", newline="") as handle:
                handle.write(format_row(columns))
                for row in rows:
                    handle.write(format_row(row))
                    count += 1
        except JobFailure:
            raise
        except Exception as exc:
            raise ProcessingError(str(exc)) from exc
    if count == 0:
        path.unlink(missing_ok=True)
        raise JobFailure("No data found")
    return timer.ms


def output_key(dataset: str, request_id: str, name: str) -> str:
    """``<report dir>/<requestId>/<file name>`` in the reports container."""
    return f"{dataset}/{request_id}/{name}"


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _drop_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_drop_nulls(item) for item in value]
    return value


def to_json(value: Any) -> str:
    """Spark's ``to_json`` of an inferred struct: fields sorted by name, nulls left out, UTF-8 as is."""
    text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    if b"null" in text:
        text = orjson.dumps(_drop_nulls(value), option=orjson.OPT_SORT_KEYS)
    return text.decode("utf-8")
