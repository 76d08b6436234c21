"""Join a response exhaust to its private exhaust and load both into a warehouse, all or nothing.

Used by the DAG's load task and by ``uci-exhaust load`` for files downloaded by hand. Responses are
streamed (constant memory); users (one row per device, a few per answer at most) are held for the
join: as arrow arrays when read in C, else as records in a dict. Records that break
a rule go to a reject file with their line numbers; when there are more than ``max_rejects``, the
load fails and the warehouse is left as it was.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from airflow_provider_uci.exhaust import arrow
from airflow_provider_uci.exhaust.arrow_users import ArrowUsers
from airflow_provider_uci.exhaust.records import (
    ExhaustFormatError,
    Rejects,
    UserRecord,
    read_responses,
    read_users,
)
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
    #: how the response file was read: ``arrow`` (in C) or ``records`` (record by record)
    reader: str = "records"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _first_conversation(path: Path) -> str:
    for record in read_responses(path, Rejects()):
        return record.conversation_id
    raise ExhaustFormatError(f"{path.name}: no readable response record to take the conversation id from")


class _Users:
    """A bot's users from its private exhaust: read in C when ``fast`` (see ``exhaust.arrow_users``),
    else, or when that reader declines the file, record by record."""

    def __init__(self, path: Path | None, conversation_id: str, phone_numbers: str, rejects: Rejects,
                 fast: bool) -> None:
        self.path, self.conversation_id, self.phone_numbers, self.rejects = path, conversation_id, phone_numbers, rejects
        self._arrow: ArrowUsers | None = None
        self._records: dict[str, UserRecord] | None = None
        self.skipped = 0
        if path is None:  # no private exhaust (the service found no data): no users
            self._records = {}
            return
        if fast:
            try:
                self._arrow = ArrowUsers(path, conversation_id, phone_numbers)
                self.skipped = self._arrow.skipped
                return
            except FastPathDeclined as declined:
                log.info("Reading %s record by record: %s", path.name, declined)
        self.read_records()

    def read_records(self) -> None:
        """Read the file record by record (rejects go to ``rejects``), once."""
        if self._records is not None or self.path is None:
            return
        self._arrow, records, self.skipped = None, {}, 0
        for user in read_users(self.path, self.rejects, self.phone_numbers):
            if user.conversation_id == self.conversation_id:
                records[user.device_uuid] = user
            else:
                self.skipped += 1  # another bot's users cannot join this bot's answers
        self._records = records

    def rows(self, prepared: bool) -> ArrowUsers | Iterable[tuple[Any, ...]]:
        """What the warehouse loads: the users read in C, prepared for PostgreSQL when ``prepared``, or
        their records."""
        if self._arrow is not None:
            return self._arrow if prepared else self._arrow.records()
        return list((self._records or {}).values())

    def join(self) -> arrow.UserJoin:
        return self._arrow.join() if self._arrow is not None else arrow.UserJoin.of_records(self._records or {})

    def by_device(self) -> dict[str, tuple[str | None, str | None]]:
        if self._arrow is not None:
            return self._arrow.by_device()
        return {device: (user.phone, user.encrypted_device_id) for device, user in (self._records or {}).items()}


def load_exhaust(*, response_csv: Path | None, private: Path | None, warehouse_url: str,
                 table: str = DEFAULT_TABLE, encryption_key: str | None = None, conversation_id: str | None = None,
                 from_date: str | None = None, to_date: str | None = None, phone_numbers: str = "plain",
                 max_rejects: int = 0, reject_path: Path | None = None, audit: dict[str, Any] | None = None,
                 fast: bool = True) -> LoadSummary:
    """Load one bot's exhausts for one range in one transaction.

    :param response_csv: the response exhaust CSV; ``None`` when the service answered ``No data found``
        for it (no file exists): the bot's rows of every day of the range are then replaced by none,
        which needs ``conversation_id``, ``from_date`` and ``to_date``.
    :param private: the private exhaust CSV, or its zip (opened with ``encryption_key``); ``None`` when
        the service answered ``No data found`` for it: the responses load with no user joined.
    :param warehouse_url: ``sqlite:///path`` or ``postgresql://...``.
    :param conversation_id: the bot; taken from the response file when not given. Records of another
        bot are rejects.
    :param phone_numbers: ``plain``, ``hashed`` (SHA-256) or ``none``.
    :param max_rejects: how many rejected records to bear (default none).
    :param reject_path: JSON-lines file for rejected records, with file name, line number and reason.
    :param fast: read both files with pyarrow first (see ``exhaust.arrow`` and ``exhaust.arrow_users``;
        into PostgreSQL the rows then go in binary ``COPY``); a file that path declines is read again
        record by record.
    """
    if max_rejects < 0:
        raise ValueError(f"max_rejects: must be zero or more, got {max_rejects}")
    response_csv = None if response_csv is None else Path(response_csv)
    private = None if private is None else Path(private)
    for name, path in (("response", response_csv), ("private", private)):
        if path is not None and not path.is_file():
            raise FileNotFoundError(f"{name}: no such file {path.name!r}")
    if response_csv is None:
        for name, value in (("conversation_id", conversation_id), ("from_date", from_date), ("to_date", to_date)):
            if not value:
                raise ValueError(f"{name}: required without a response exhaust (response_csv=None, the service "
                                 "found no data), to know which bot's days the load empties")
    conversation = conversation_id or _first_conversation(response_csv)  # type: ignore[arg-type]
    rejects = Rejects(reject_path)
    with tempfile.TemporaryDirectory(prefix="uci-load-") as scratch:
        private_csv = private
        if private is not None and private.suffix.lower() == ".zip":
            from airflow_provider_uci.exhaust.download import open_private_zip

            private_csv = open_private_zip(private, encryption_key, Path(scratch))
        warehouse = open_warehouse(warehouse_url)
        try:
            postgres = warehouse.backend == "postgres"
            users = _Users(private_csv, conversation, phone_numbers, rejects, fast)
            counts = {"read": 0, "without_user": 0}

            def responses() -> Iterator[tuple[Any, ...]]:
                # join_users, counting as it goes
                read = without = 0
                by_device = users.by_device()
                try:
                    for record in read_responses(response_csv, rejects, conversation, from_date, to_date):
                        read += 1
                        user = by_device.get(record.device_id)
                        if user is None:
                            without += 1
                            yield (*record, None, None)
                        else:
                            yield (*record, *user)
                finally:
                    counts["read"], counts["without_user"] = read, without

            def check_rejects() -> None:
                rejects.close()
                if rejects.count > max_rejects:
                    where = f"; all of them are in {reject_path}" if reject_path else ""
                    raise RejectLimitExceeded(f"{rejects.count} record(s) rejected, more than "
                                              f"max_rejects={max_rejects}: {rejects.summary()}{where}; "
                                              "nothing was loaded")

            load = partial(warehouse.load, table=table, conversation_id=conversation, from_date=from_date or "",
                           to_date=to_date or "", audit={**(audit or {}), "rejected": lambda: rejects.count},
                           before_commit=check_rejects)
            result, reader = None, "records"
            if response_csv is None:  # the days are emptied, the users (if any) upserted
                try:
                    result = load(responses=(), users=users.rows(prepared=postgres))
                except FastPathDeclined as declined:
                    log.info("Reading %s record by record: %s", private_csv.name if private_csv else "", declined)
                    users.read_records()
            elif fast:
                prepared = arrow.ArrowResponses(response_csv, conversation, users.join(), from_date or None,
                                                to_date or None)
                try:
                    result = (load(responses=prepared, users=users.rows(prepared=True)) if postgres
                              else load(responses=prepared.records(), users=users.rows(prepared=False)))
                    counts["read"], counts["without_user"], reader = prepared.rows, prepared.without_user, "arrow"
                except FastPathDeclined as declined:
                    log.info("Reading %s record by record: %s", response_csv.name, declined)
                    users.read_records()  # the users too: the warehouse may have refused one of theirs
            if result is None:
                result = load(responses=responses() if response_csv is not None else (),
                              users=users.rows(prepared=False))
        finally:
            rejects.close()
            warehouse.close()
        skipped = users.skipped
    return LoadSummary(
        conversation_id=conversation, from_date=from_date, to_date=to_date, table=table,
        responses_read=counts["read"], responses_loaded=result.responses, responses_replaced=result.replaced,
        responses_without_user=counts["without_user"], users_loaded=result.users,
        users_of_other_conversations=skipped, rejected=rejects.count,
        reject_file=str(reject_path) if reject_path and rejects.count else None, reader=reader,
    )
