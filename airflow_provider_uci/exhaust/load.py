"""Join a response exhaust to its private exhaust and load both into a warehouse, all or nothing.

Used by the DAG's load task and by ``uci-exhaust load`` for files downloaded by hand. A load reads
top to bottom: open the files, read the users whole (``exhaust.users``: one row per device, a few
per answer at most), stream the responses (``exhaust.reader``: typed arrow batches, constant memory)
joined to them into the warehouse in one transaction, and audit. Records that break a rule go to a
reject file with their line numbers (``exhaust.rejects``); the first one past ``max_rejects`` stops the
read and fails the load, and the warehouse is left as it was. A conversation id, given or taken from
the file's first readable record, must be a UUID (``exhaust.names``).

Files that are not as the service writes them are refused as a whole (:class:`ExhaustRefused`, a
``ValueError``; nothing is loaded): a private exhaust with no user of the bot (another bot's, or a
header and nothing else: the service answers ``No data found`` rather than write an empty file), and a
response exhaust that holds one answer's key twice (``exhaust.keys``). The private zip is unzipped
into a scratch folder removed however the load ends, or swept by the next run after a kill
(``exhaust.at_rest``), within a size limit (``exhaust.private_zip.unzip_limit``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import closing
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from airflow_provider_uci.exhaust.at_rest import scratch_folder, sigterm_unwinds
from airflow_provider_uci.exhaust.keys import find_duplicate
from airflow_provider_uci.exhaust.names import conversation_id as checked_conversation_id
from airflow_provider_uci.exhaust.phone_hash import hash_secret, phone_scheme
from airflow_provider_uci.exhaust.reader import ResponseBatches
from airflow_provider_uci.exhaust.records import (
    ExhaustFormatError,
    ExhaustRefused,
    read_response_lines,
    read_responses,
)
from airflow_provider_uci.exhaust.rejects import RejectLimitExceeded, Rejects
from airflow_provider_uci.exhaust.users import Users, read_user_table
from airflow_provider_uci.exhaust.warehouse import check_table, open_warehouse

log = logging.getLogger(__name__)

DEFAULT_TABLE = "uci_responses"
__all__ = ["DEFAULT_TABLE", "ExhaustRefused", "LoadSummary", "RejectLimitExceeded", "load_exhaust"]


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
    #: how the response file was read: ``arrow`` (in C), ``records`` (record by record), ``arrow+records``
    #: (some blocks record by record), or ``none`` (no response file)
    reader: str = "none"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _first_conversation(path: Path, rejects: Rejects) -> str:
    """The conversation id of the file's first readable record, which must be a UUID. The records before it
    are rejects (``rejects`` bears no more than the load does, so a file of hostile records stops early)."""
    for record in read_responses(path, rejects):
        return checked_conversation_id(record.conversation_id, f"{path.name}: Conversation ID")
    rejects.close()
    where = f"; they are in {rejects.path}" if rejects.path is not None and rejects.count else ""
    why = f": {rejects.summary()}{where}" if rejects.count else ""
    raise ExhaustFormatError(
        f"{path.name}: no readable response record to take the conversation id from: "
        f"{rejects.count} record(s) rejected{why}; nothing was loaded"
    )


@sigterm_unwinds()  # SIGTERM rolls the load back and removes its scratch files
def load_exhaust(
    *,
    response_csv: Path | None,
    private: Path | None,
    warehouse_url: str,
    table: str = DEFAULT_TABLE,
    encryption_key: str | None = None,
    conversation_id: str | None = None,
    from_date: str | None = None,
    to_date: str | None = None,
    phone_numbers: str = "plain",
    max_rejects: int = 0,
    reject_path: Path | None = None,
    audit: dict[str, Any] | None = None,
    fast: bool | None = None,
    max_unzipped_bytes: int | None = None,
    phone_hash_secret: str | None = None,
) -> LoadSummary:
    """Load one bot's exhausts for one range in one transaction.

    :param response_csv: the response exhaust CSV; ``None`` when the service answered ``No data found``
        for it (no file exists): the bot's rows of every day of the range are then replaced by none,
        which needs ``conversation_id``, ``from_date`` and ``to_date``.
    :param private: the private exhaust CSV, or its zip (opened with ``encryption_key``); ``None`` when
        the service answered ``No data found`` for it: the responses load with no user joined.
    :param warehouse_url: ``sqlite:///path`` or ``postgresql://...``.
    :param conversation_id: the bot; taken from the response file when not given. Records of another
        bot are rejects.
    :param phone_numbers: ``plain``, ``hashed`` (HMAC-SHA256 under ``phone_hash_secret``) or ``none``; a
        table keeps one way (``exhaust.warehouse.phones``).
    :param phone_hash_secret: the secret ``hashed`` phones are keyed with (``exhaust.phone_hash``; default the
        ``UCI_EXHAUST_PHONE_HASH_SECRET`` variable); ``hashed`` without one is refused.
    :param max_rejects: how many rejected records to bear (default none).
    :param reject_path: JSON-lines file for rejected records, with file name, line number and reason.
    :param fast: read both files in C where it can, and record by record only the blocks it is not sure
        of (``exhaust.reader``), the default (``None`` is the same); ``False`` reads every record record
        by record (the reference, for comparison).
    :param max_unzipped_bytes: the most bytes the private zip's CSV may unzip to (default
        ``exhaust.private_zip.unzip_limit`` of the zip's size).
    :raises ExhaustRefused: a private exhaust with no user of the bot, or a response exhaust with an
        answer twice.
    :raises LoadTerminated: SIGTERM arrived (in the main thread): rolled back, scratch files removed.
    """
    return _load(**locals())  # every argument, by name: _load takes the same ones


def _load(
    *,
    response_csv: Path | None,
    private: Path | None,
    warehouse_url: str,
    table: str,
    encryption_key: str | None,
    conversation_id: str | None,
    from_date: str | None,
    to_date: str | None,
    phone_numbers: str,
    max_rejects: int,
    reject_path: Path | None,
    audit: dict[str, Any] | None,
    fast: bool | None,
    max_unzipped_bytes: int | None,
    phone_hash_secret: str | None,
) -> LoadSummary:
    conversation_id = conversation_id or None  # an empty id: taken from the file, as a missing one
    response_csv, private = _checked_arguments(
        response_csv, private, table, max_rejects, conversation_id, from_date, to_date
    )
    phones = _Phones(phone_numbers, hash_secret(phone_numbers, phone_hash_secret))  # before anything is read
    fast = fast is not False
    rejects = Rejects(reject_path, limit=max_rejects)
    with closing(rejects):
        if conversation_id is None:
            assert response_csv is not None, "_checked_arguments requires the bot without a response exhaust"
            conversation = _first_conversation(response_csv, rejects)
            rejects.restart()  # the load reads the file again from its start, and rejects those records again
        else:
            conversation = conversation_id
        bot = _BotLoad(
            response_csv=response_csv,
            private=private,
            warehouse_url=warehouse_url,
            table=table,
            encryption_key=encryption_key,
            conversation=conversation,
            from_date=from_date,
            to_date=to_date,
            phones=phones,
            max_rejects=max_rejects,
            reject_path=reject_path,
            audit=audit,
            fast=fast,
            max_unzipped_bytes=max_unzipped_bytes,
        )
        return _load_bot(bot, rejects)


@dataclass(frozen=True, kw_only=True)
class _BotLoad:
    """One load's checked arguments, with the bot it is for."""

    response_csv: Path | None
    private: Path | None
    warehouse_url: str
    table: str
    encryption_key: str | None
    conversation: str
    from_date: str | None
    to_date: str | None
    phones: _Phones
    max_rejects: int
    reject_path: Path | None
    audit: dict[str, Any] | None
    fast: bool
    max_unzipped_bytes: int | None


def _load_bot(bot: _BotLoad, rejects: Rejects) -> LoadSummary:
    """Load the bot's users and responses, reading the private exhaust first (unzipped into scratch)."""
    with scratch_folder("uci-load-") as scratch:  # mode 0700; swept by the next run if this one is killed
        users = _users(bot, Path(scratch), rejects)
        with open_warehouse(bot.warehouse_url) as warehouse:
            responses = (
                None
                if bot.response_csv is None
                else ResponseBatches(
                    bot.response_csv,
                    rejects,
                    bot.conversation,
                    bot.from_date,
                    bot.to_date,
                    fast=bot.fast,
                    timestamps_as_text=warehouse.timestamps_as_text,
                )
            )
            joined = _Joined(responses, users)
            result = warehouse.load(
                table=bot.table,
                conversation_id=bot.conversation,
                from_date=bot.from_date or "",
                to_date=bot.to_date or "",
                responses=joined,
                users=users.table,
                audit={**(bot.audit or {}), "rejected": lambda: rejects.count},
                before_commit=partial(
                    _audit_reads,
                    rejects,
                    bot.max_rejects,
                    bot.reject_path,
                    responses,
                    bot.conversation,
                    bot.from_date,
                    bot.to_date,
                ),
                phone_numbers=bot.phones.scheme,
            )
    return LoadSummary(
        conversation_id=bot.conversation,
        from_date=bot.from_date,
        to_date=bot.to_date,
        table=bot.table,
        responses_read=joined.rows,
        responses_loaded=result.responses,
        responses_replaced=result.replaced,
        responses_without_user=joined.without_user,
        users_loaded=result.users,
        users_of_other_conversations=users.skipped,
        rejected=rejects.count,
        reject_file=str(bot.reject_path) if bot.reject_path and rejects.count else None,
        reader=responses.engine if responses is not None else "none",
    )


def _checked_arguments(
    response_csv: Path | None,
    private: Path | None,
    table: str,
    max_rejects: int,
    conversation_id: str | None,
    from_date: str | None,
    to_date: str | None,
) -> tuple[Path | None, Path | None]:
    """The two paths, once every argument is found usable (else an error naming it)."""
    check_table(table)
    if conversation_id is not None:
        checked_conversation_id(conversation_id, "conversation_id")
    if max_rejects < 0:
        raise ValueError(f"max_rejects: must be zero or more, got {max_rejects}")
    response_csv = None if response_csv is None else Path(response_csv)
    private = None if private is None else Path(private)
    for name, path in (("response", response_csv), ("private", private)):
        if path is not None and not path.is_file():
            raise FileNotFoundError(f"{name}: no such file {path.name!r}")
    if response_csv is None:
        for name, value in (
            ("conversation_id", conversation_id),
            ("from_date", from_date),
            ("to_date", to_date),
        ):
            if not value:
                raise ValueError(
                    f"{name}: required without a response exhaust (response_csv=None, the service "
                    "found no data), to know which bot's days the load empties"
                )
    return response_csv, private


class _Phones:
    """How a load stores phones: the mode, the secret of ``hashed``, and the scheme ``<table>_loads`` records."""

    def __init__(self, mode: str, secret: str | None) -> None:
        self.mode, self.secret, self.scheme = mode, secret, phone_scheme(mode, secret)


def _users(bot: _BotLoad, scratch: Path, rejects: Rejects) -> Users:
    """The bot's users, read whole before the load starts: none without a private exhaust; its zip is
    unzipped into ``scratch``. A file with no user of the bot is refused."""
    private = bot.private
    if private is None:
        return Users.none(bot.conversation)
    private_csv = private
    if private.suffix.lower() == ".zip":
        from airflow_provider_uci.exhaust.private_zip import open_private_zip

        private_csv = open_private_zip(private, bot.encryption_key, scratch, max_bytes=bot.max_unzipped_bytes)
    phones = bot.phones
    users = read_user_table(
        private_csv, rejects, bot.conversation, phones.mode, fast=bot.fast, phone_hash_secret=phones.secret
    )
    users.check(private.name, rejected=rejects.count > 0)
    return users


class _Joined:
    """The response batches joined to the users, counted as they go."""

    def __init__(self, responses: ResponseBatches | None, users: Users) -> None:
        self.responses, self.users = responses, users
        self.rows = self.without_user = 0

    def __iter__(self) -> Iterator[Any]:
        for batch in self.responses or ():
            joined, without = self.users.join(batch)
            self.rows += batch.num_rows
            self.without_user += without
            yield joined


def _audit_reads(
    rejects: Rejects,
    max_rejects: int,
    reject_path: Path | None,
    responses: ResponseBatches | None,
    conversation: str,
    from_date: str | None,
    to_date: str | None,
) -> None:
    """Once every record is read: fail the load on an answer in the file twice (a reject past ``max_rejects``
    stopped the read where it was met, ``exhaust.rejects``)."""
    rejects.close()
    if (
        rejects.count > max_rejects
    ):  # the rejects' own limit raises first; kept for a Rejects made without one
        where = f"; they are in {reject_path}" if reject_path else ""
        raise RejectLimitExceeded(
            f"{rejects.count} record(s) rejected, more than max_rejects={max_rejects}: "
            f"{rejects.summary()}{where}; nothing was loaded"
        )
    if responses is None:
        return
    repeated = responses.key_hashes.repeated()
    if repeated:
        duplicate = find_duplicate(
            responses.path,
            read_response_lines(responses.path, Rejects(), conversation, from_date, to_date),
            responses.key_hashes,
            repeated,
        )
        if duplicate is not None:
            raise duplicate
