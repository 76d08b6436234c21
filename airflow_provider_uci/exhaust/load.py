"""Join a response exhaust to its private exhaust and load both into a warehouse, all or nothing.

Used by the DAG's load task and by ``uci-exhaust load`` for files downloaded by hand. Responses are
streamed (constant memory); users (one row per device, a few per answer at most) are held in a dict
for the join. Records that break a rule go to a reject file with their line numbers; when there are
more than ``max_rejects``, the load fails and the warehouse is left as it was.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from airflow_provider_uci.exhaust.records import (
    ExhaustFormatError,
    Rejects,
    read_responses,
    read_users,
)
from airflow_provider_uci.exhaust import arrow
from airflow_provider_uci.exhaust.postgres import FastPathDeclined
from airflow_provider_uci.exhaust.warehouse import open_warehouse

log = logging.getLogger(__name__)

DEFAULT_TABLE = "uci_responses"


class RejectLimitExceeded(ValueError):
    """More records were rejected than allowed; nothing was loaded."""


@dataclass(frozen=True)
class LoadSummary:
    """What one load did."""

    conversation_id: str
    from_date: str | None
    to_date: str | None
    table: str
    responses_read: int
    responses_loaded: int
    responses_replaced: int
    responses_without_user: int
    users_loaded: int
    users_of_other_conversations: int
    rejected: int
    reject_file: str | None
    #: how the response file was read: ``arrow`` (in C, PostgreSQL only) or ``records`` (record by record)
    reader: str = "records"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _first_conversation(path: Path) -> str:
    for record in read_responses(path, Rejects()):
        return record.conversation_id
    raise ExhaustFormatError(f"{path.name}: no readable response record to take the conversation id from")


def load_exhaust(*, response_csv: Path, private: Path, warehouse_url: str, table: str = DEFAULT_TABLE,
                 encryption_key: str | None = None, conversation_id: str | None = None, from_date: str | None = None,
                 to_date: str | None = None, phone_numbers: str = "plain", max_rejects: int = 0,
                 reject_path: Path | None = None, audit: dict[str, Any] | None = None, fast: bool = True) -> LoadSummary:
    """Load one bot's exhausts for one range in one transaction.

    :param response_csv: the response exhaust CSV.
    :param private: the private exhaust CSV, or its zip (opened with ``encryption_key``).
    :param warehouse_url: ``sqlite:///path`` or ``postgresql://...``.
    :param conversation_id: the bot; taken from the response file when not given. Records of another
        bot are rejects.
    :param phone_numbers: ``plain``, ``hashed`` (SHA-256) or ``none``.
    :param max_rejects: how many rejected records to bear (default none).
    :param reject_path: JSON-lines file for rejected records, with file name, line number and reason.
    :param fast: into PostgreSQL, read the response file with pyarrow first (see ``exhaust.arrow``);
        a file that path declines is read again record by record, as it always is into SQLite.
    """
    if max_rejects < 0:
        raise ValueError(f"max_rejects: must be zero or more, got {max_rejects}")
    response_csv, private = Path(response_csv), Path(private)
    for name, path in (("response", response_csv), ("private", private)):
        if not path.is_file():
            raise FileNotFoundError(f"{name}: no such file {path.name!r}")
    conversation = conversation_id or _first_conversation(response_csv)
    rejects = Rejects(reject_path)
    with tempfile.TemporaryDirectory(prefix="uci-load-") as scratch:
        private_csv = private
        if private.suffix.lower() == ".zip":
            from airflow_provider_uci.exhaust.download import open_private_zip

            private_csv = open_private_zip(private, encryption_key, Path(scratch))
        users, skipped = {}, 0
        for user in read_users(private_csv, rejects, phone_numbers):
            if user.conversation_id == conversation:
                users[user.device_uuid] = user
            else:
                skipped += 1  # another bot's users cannot join this bot's answers
        counts = {"read": 0, "without_user": 0}

        def responses() -> Iterator[tuple[Any, ...]]:
            # join_users, counting as it goes
            read = without = 0
            try:
                for record in read_responses(response_csv, rejects, conversation, from_date, to_date):
                    read += 1
                    user = users.get(record.device_id)
                    if user is None:
                        without += 1
                        yield (*record, None, None)
                    else:
                        yield (*record, user.phone, user.encrypted_device_id)
            finally:
                counts["read"], counts["without_user"] = read, without

        def check_rejects() -> None:
            rejects.close()
            if rejects.count > max_rejects:
                where = f"; all of them are in {reject_path}" if reject_path else ""
                raise RejectLimitExceeded(f"{rejects.count} record(s) rejected, more than max_rejects={max_rejects}: "
                                          f"{rejects.summary()}{where}; nothing was loaded")

        warehouse = open_warehouse(warehouse_url)
        try:
            load = partial(warehouse.load, table=table, conversation_id=conversation, from_date=from_date or "",
                           to_date=to_date or "", users=list(users.values()),
                           audit={**(audit or {}), "rejected": lambda: rejects.count}, before_commit=check_rejects)
            result, reader = None, "records"
            if warehouse.backend == "postgres" and fast:
                prepared = arrow.ArrowResponses(response_csv, conversation, users, from_date or None, to_date or None)
                try:
                    result = load(responses=prepared)
                    counts["read"], counts["without_user"], reader = prepared.rows, prepared.without_user, "arrow"
                except FastPathDeclined as declined:
                    log.info("Reading %s record by record: %s", response_csv.name, declined)
            if result is None:
                result = load(responses=responses())
        finally:
            rejects.close()
            warehouse.close()
    return LoadSummary(
        conversation_id=conversation, from_date=from_date, to_date=to_date, table=table,
        responses_read=counts["read"], responses_loaded=result.responses, responses_replaced=result.replaced,
        responses_without_user=counts["without_user"], users_loaded=result.users,
        users_of_other_conversations=skipped, rejected=rejects.count,
        reject_file=str(reject_path) if reject_path and rejects.count else None, reader=reader,
    )
