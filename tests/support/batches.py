"""Rows written by hand, as the warehouse takes them: arrow record batches of responses, a table of users.

Tests of the warehouse state rows as tuples (``RESPONSE_TABLE_COLUMNS`` order, timestamps as ISO 8601
text); each row's sync day is that of its timestamps (``records.sync_day``), or ``single_day``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from datetime import date
from typing import Any

import pyarrow as pa

from airflow_provider_uci.exhaust.records import RESPONSE_TABLE_COLUMNS, USER_TABLE_COLUMNS, sync_day
from airflow_provider_uci.exhaust.warehouse import BATCH_COLUMNS, BOOLEAN_COLUMNS, INTEGER_COLUMNS


def _kind(column: str) -> pa.DataType:
    if column in INTEGER_COLUMNS:
        return pa.int64()
    if column in BOOLEAN_COLUMNS:
        return pa.bool_()
    return pa.date32() if column == "sync_date" else pa.string()


def response_batches(
    rows: Iterable[tuple[Any, ...] | pa.RecordBatch], single_day: str | None = None, size: int = 1000
) -> Iterator[pa.RecordBatch]:
    """Batches of ``size`` rows of ``rows``, made as they are pulled (a batch given is passed on)."""
    rows = iter(rows)
    at, event = RESPONSE_TABLE_COLUMNS.index("at_timestamp"), RESPONSE_TABLE_COLUMNS.index("event_timestamp")
    while True:
        chunk = list(itertools.islice(rows, size))
        if not chunk:
            return
        given = [row for row in chunk if isinstance(row, pa.RecordBatch)]
        chunk = [row for row in chunk if not isinstance(row, pa.RecordBatch)]
        if chunk:
            days = [sync_day(row[at], row[event]) or single_day for row in chunk]
            columns = [
                *zip(*chunk, strict=True),
                [None if day is None else date.fromisoformat(day) for day in days],
            ]
            yield pa.RecordBatch.from_arrays(
                [
                    pa.array(values, _kind(column))
                    for column, values in zip(BATCH_COLUMNS, columns, strict=True)
                ],
                names=list(BATCH_COLUMNS),
            )
        yield from given


def user_table(users: Iterable[tuple[Any, ...]]) -> pa.Table:
    """Users (``UserRecord`` tuples) as a table of ``USER_TABLE_COLUMNS``."""
    users = list(users)
    columns = list(zip(*users, strict=True)) if users else [[] for _ in USER_TABLE_COLUMNS]
    return pa.table(
        [pa.array(values, _kind(column)) for column, values in zip(USER_TABLE_COLUMNS, columns, strict=True)],
        names=list(USER_TABLE_COLUMNS),
    )
