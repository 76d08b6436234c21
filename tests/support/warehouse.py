"""Reading a warehouse's rows back in a form both backends give alike, to compare them."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from airflow_provider_uci.exhaust.records import RESPONSE_TABLE_COLUMNS
from airflow_provider_uci.exhaust.warehouse.base import Warehouse
from airflow_provider_uci.exhaust.warehouse.schema import BOOLEAN_COLUMNS, TIMESTAMP_COLUMNS


def utc_iso(value: datetime | str) -> str:
    """A timestamp as UTC ISO text with milliseconds (microseconds when it has them) and ``Z``."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    value = value.astimezone(timezone.utc)
    fraction = (
        f"{value.microsecond // 1000:03d}" if value.microsecond % 1000 == 0 else f"{value.microsecond:06d}"
    )
    return f"{value:%Y-%m-%dT%H:%M:%S}.{fraction}Z"


def fetch_normalised(warehouse: Warehouse, table: str) -> list[tuple[Any, ...]]:
    """The response rows of ``table`` as :meth:`Warehouse.fetch` gives them, with values both backends
    give alike: booleans, UTC ISO timestamps."""
    converters = [
        (index, utc_iso if column in TIMESTAMP_COLUMNS else bool)
        for index, column in enumerate(RESPONSE_TABLE_COLUMNS)
        if column in TIMESTAMP_COLUMNS or column in BOOLEAN_COLUMNS
    ]
    result = []
    for row in warehouse.fetch(table):
        values = list(row)
        for index, convert in converters:
            if values[index] is not None:
                values[index] = convert(values[index])
        result.append(tuple(values))
    return result
