"""Join a response exhaust to its private exhaust and load both into a warehouse, all or nothing.

Used by the DAG's load task and by ``uci-exhaust load`` for files downloaded by hand. Responses are
streamed (constant memory); users (one row per device, a few per answer at most) are held for the
join: as arrow arrays when read in C, else as records in a dict. Records that break
a rule go to a reject file with their line numbers; when there are more than ``max_rejects``, the
load fails and the warehouse is left as it was.

Files that are not as the service writes them are refused as a whole (:class:`ExhaustRefused`, a
``ValueError``; nothing is loaded): a private exhaust with no user of the bot (another bot's, or a
header and nothing else: the service answers ``No data found`` rather than write an empty file), and a
response exhaust that holds one answer's key twice (``exhaust.keys``). The private zip is unzipped
into a scratch folder removed however the load ends (``exhaust.at_rest``), within a size limit
(``exhaust.download.unzip_limit``).
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
from airflow_provider_uci.exhaust.arrow_users import OTHERS_NAMED, ArrowUsers
from airflow_provider_uci.exhaust.at_rest import sigterm_unwinds
from airflow_provider_uci.exhaust.keys import KeyHashes, find_duplicate
from airflow_provider_uci.exhaust.records import (
    ExhaustFormatError,
    ExhaustRefused,
    Rejects,
    UserRecord,
    read_response_lines,
    read_responses,
    read_users,
)
from airflow_provider_uci.exhaust.arrow_csv import FastPathDeclined
from airflow_provider_uci.exhaust.warehouse import check_table, open_warehouse

log = logging.getLogger(__name__)

DEFAULT_TABLE = "uci_responses"
#: Files (response and private together) of at least this size are read with pyarrow by default.
#: Below it the record reader finishes first: it reads about 27,000 rows (14 MB) a second and starts
#: at once, where starting pyarrow and pandas costs about half a CPU-second (measured here: 10,000 rows,
#: 5.5 MB, 0.5 CPU-s record by record against 0.74 to 0.98 with pyarrow).
ARROW_FROM_BYTES = 8 * 1024 * 1024
__all__ = ["DEFAULT_TABLE", "ExhaustRefused", "LoadSummary", "RejectLimitExceeded", "load_exhaust"]


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
        self.others: list[str] = []
        if path is None:  # no private exhaust (the service found no data): no users
            self._records = {}
            return
        if fast:
            try:
                self._arrow = ArrowUsers(path, conversation_id, phone_numbers)
                self.skipped, self.others = self._arrow.skipped, self._arrow.others
                return
            except FastPathDeclined as declined:
                log.info("Reading %s record by record: %s", path.name, declined)
        self.read_records()

    def read_records(self) -> None:
        """Read the file record by record (rejects go to ``rejects``), once."""
        if self._records is not None or self.path is None:
            return
        self._arrow, records, self.skipped, self.others = None, {}, 0, []
        for user in read_users(self.path, self.rejects, self.phone_numbers):
            if user.conversation_id == self.conversation_id:
                records[user.device_uuid] = user
            else:
                self.skipped += 1  # another bot's users cannot join this bot's answers
                if user.conversation_id not in self.others and len(self.others) < OTHERS_NAMED:
                    self.others.append(user.conversation_id)
        self._records = records

    def check(self, name: str) -> None:
        """Refuse a private exhaust with no user of the bot, unless its records were rejected (which the
        reject limit then judges)."""
        if self.path is None or self.rejects.count:
            return
        if (self._arrow.rows if self._arrow is not None else len(self._records or {})):
            return
        if self.skipped:
            more = f" and {self.skipped - len(self.others)} more" if self.skipped > len(self.others) else ""
            raise ExhaustRefused(
                f"private: {name} holds no user of conversation {self.conversation_id} (the bot whose responses "
                f"are loaded): its {self.skipped} user(s) are of conversation(s) {', '.join(self.others)}"
                f"{' and others' if more and len(self.others) >= OTHERS_NAMED else ''}; give the private exhaust "
                f"requested for {self.conversation_id}, or none if the service found no data for it; "
                "nothing was loaded")
        raise ExhaustRefused(
            f"private: {name} holds a header and no user; the service never writes an empty exhaust (it answers "
            f"'No data found'), so this is not one of its files; load without a private exhaust if the service "
            "found no users; nothing was loaded")

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
                 fast: bool | None = True, max_unzipped_bytes: int | None = None) -> LoadSummary:
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
        record by record. ``None``: with pyarrow when the files hold at least
        :data:`ARROW_FROM_BYTES`, record by record below that, where starting pyarrow (and the pandas it
        loads) would cost more than reading the file.
    :param max_unzipped_bytes: the most bytes the private zip's CSV may unzip to (default
        ``exhaust.download.unzip_limit`` of the zip's size).
    :raises ExhaustRefused: a private exhaust with no user of the bot, or a response exhaust with an
        answer twice.
    :raises LoadTerminated: SIGTERM arrived (in the main thread): rolled back, scratch files removed.
    """
    with sigterm_unwinds():
        return _load(response_csv=response_csv, private=private, warehouse_url=warehouse_url, table=table,
                     encryption_key=encryption_key, conversation_id=conversation_id, from_date=from_date,
                     to_date=to_date, phone_numbers=phone_numbers, max_rejects=max_rejects, reject_path=reject_path,
                     audit=audit, fast=fast, max_unzipped_bytes=max_unzipped_bytes)


def _load(*, response_csv: Path | None, private: Path | None, warehouse_url: str, table: str,
          encryption_key: str | None, conversation_id: str | None, from_date: str | None, to_date: str | None,
          phone_numbers: str, max_rejects: int, reject_path: Path | None, audit: dict[str, Any] | None, fast: bool | None,
          max_unzipped_bytes: int | None) -> LoadSummary:
    check_table(table)
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
    if fast is None:
        fast = sum(path.stat().st_size for path in (response_csv, private) if path is not None) >= ARROW_FROM_BYTES
    rejects = Rejects(reject_path)
    with tempfile.TemporaryDirectory(prefix="uci-load-") as scratch:  # mode 0700
        try:
            private_csv = private
            if private is not None and private.suffix.lower() == ".zip":
                from airflow_provider_uci.exhaust.download import open_private_zip

                private_csv = open_private_zip(private, encryption_key, Path(scratch), max_bytes=max_unzipped_bytes)
            users = _Users(private_csv, conversation, phone_numbers, rejects, fast)
            if private is not None:
                users.check(private.name)
            warehouse = open_warehouse(warehouse_url)
            try:
                postgres = warehouse.backend == "postgres"
                counts = {"read": 0, "without_user": 0}
                hashes = [KeyHashes()]  # the key hashes of the rows the current attempt reads

                def responses() -> Iterator[tuple[Any, ...]]:
                    # join_users, counting as it goes
                    read = without = 0
                    by_device = users.by_device()
                    hashes[0] = keys = KeyHashes()
                    try:
                        for record in read_responses(response_csv, rejects, conversation, from_date, to_date):
                            keys.add_key(record.message_id, record.device_id, record.question_id)
                            read += 1
                            user = by_device.get(record.device_id)
                            if user is None:
                                without += 1
                                yield (*record, None, None)
                            else:
                                yield (*record, *user)
                    finally:
                        counts["read"], counts["without_user"] = read, without

                def before_commit() -> None:
                    rejects.close()
                    if rejects.count > max_rejects:
                        where = f"; all of them are in {reject_path}" if reject_path else ""
                        raise RejectLimitExceeded(f"{rejects.count} record(s) rejected, more than "
                                                  f"max_rejects={max_rejects}: {rejects.summary()}{where}; "
                                                  "nothing was loaded")
                    repeated = hashes[0].repeated()
                    if repeated and response_csv is not None:
                        duplicate = find_duplicate(response_csv, read_response_lines(
                            response_csv, Rejects(), conversation, from_date, to_date), hashes[0], repeated)
                        if duplicate is not None:
                            raise duplicate

                load = partial(warehouse.load, table=table, conversation_id=conversation, from_date=from_date or "",
                               to_date=to_date or "", audit={**(audit or {}), "rejected": lambda: rejects.count},
                               before_commit=before_commit)
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
                    hashes[0] = prepared.key_hashes
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
                warehouse.close()
        finally:
            rejects.close()
        skipped = users.skipped
    return LoadSummary(
        conversation_id=conversation, from_date=from_date, to_date=to_date, table=table,
        responses_read=counts["read"], responses_loaded=result.responses, responses_replaced=result.replaced,
        responses_without_user=counts["without_user"], users_loaded=result.users,
        users_of_other_conversations=skipped, rejected=rejects.count,
        reject_file=str(reject_path) if reject_path and rejects.count else None, reader=reader,
    )
