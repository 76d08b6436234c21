"""The rules of the API's fields that the ``job_request`` table and its queries impose.

The real service leaves these to PostgreSQL, which refuses an over-long value or a malformed date
with an error the client sees as an HTTP 500. The emulator checks them first and answers 400 naming
the field and its limit; with ``play_errors`` it leaves the lengths to the database, as the real one does.
"""

from __future__ import annotations

import re
from datetime import date

from airflow_provider_uci.emulator.inputs import check_text
from airflow_provider_uci.emulator.protocol import ClientInputError
from airflow_provider_uci.emulator.store import LENGTH_LIMITS

#: The filters the internal search supports (docs/service-contract.md §1.9).
SEARCH_FILTERS = ("dataset", "status", "channel", "requestedDate")
DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
#: ``job_id`` is a VARCHAR(50) too.
DATASET_LIMIT = 50


def check_submission(
    *,
    tag: str,
    dataset: str,
    requested_by: str,
    channel: str,
    encryption_key: str | None,
    lengths: bool = True,
) -> None:
    """Refuse a submission's values that no ``job_request`` column can hold.

    :param lengths: check the columns' lengths too (off under ``play_errors``: the database refuses them).
    """
    values = {
        "tag": tag,
        "dataset": dataset,
        "requestedBy": requested_by,
        "X-Channel-ID": channel,
        "encryptionKey": encryption_key,
    }
    for name, value in values.items():
        if value is not None:
            check_text(value, name)
    if not lengths:
        return
    limits = {
        "dataset": DATASET_LIMIT,
        "requestedBy": LENGTH_LIMITS["requested_by"],
        "X-Channel-ID": LENGTH_LIMITS["requested_channel"],
        "encryptionKey": LENGTH_LIMITS["encryption_key"],
    }
    for name, limit in limits.items():
        value = values[name]
        if value is not None and len(value) > limit:
            raise ClientInputError(400, f"{name}: must be at most {limit} characters, got {len(value)}")
    stored = len(tag) + 1 + len(channel)
    if stored > LENGTH_LIMITS["tag"]:
        raise ClientInputError(
            400,
            f"tag: '<tag>:<X-Channel-ID>' must be at most {LENGTH_LIMITS['tag']} characters, got {stored}",
        )


def check_day(value: str | None) -> None:
    """A ``requestedDate`` filter is ``yyyy-MM-dd`` (PostgreSQL's date cast refuses anything else)."""
    if value is None:
        return
    try:
        if not DAY.fullmatch(value):
            raise ValueError(value)
        date.fromisoformat(value)
    except ValueError:
        raise ClientInputError(
            400, f"filters.requestedDate: expected yyyy-MM-dd, got {value[:40]!r}"
        ) from None
