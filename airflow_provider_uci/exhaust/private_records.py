"""The private exhaust read record by record: its users, the rules their records keep, and the phone
as a load stores it.

A user without consent has the Device UUID as "Decrypted Device ID" (docs/service-contract.md §3.4): no
phone. A rejected record's phone goes to the rejects only as the load would store it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from airflow_provider_uci.exhaust.phone_hash import check_mode, hash_phone, hash_secret, keyed_secret
from airflow_provider_uci.exhaust.records import (
    PRIVATE_HEADERS,
    ExhaustFormatError,
    UserRecord,
    checked_records,
    nul_reason,
    read_header,
)
from airflow_provider_uci.exhaust.rejects import Rejects
from airflow_provider_uci.exhaust.spark_csv import read_records


def phone_value(decrypted: str | None, device_uuid: str, mode: str, secret: str | None = None) -> str | None:
    """What lands as the user's phone: as it is, its HMAC-SHA256 under ``secret`` (``exhaust.phone_hash``;
    the environment's secret when none is given), or nothing; null without consent."""
    check_mode(mode)
    if decrypted is None or decrypted == "" or decrypted == device_uuid or mode == "none":
        return None
    if mode == "hashed":
        return hash_phone(decrypted, keyed_secret(secret))
    return decrypted


def _as_stored(
    values: list[str | None], width: int, decrypted: int, device: int, phone_numbers: str, secret: str | None
) -> tuple[list[str | None] | None, str | None]:
    """A private exhaust record's values as a reject file may hold them: the phone (Decrypted Device ID)
    as the load stores it (``plain``, ``hashed``, ``none``); all of them withheld when the record's
    columns cannot be told apart and it is not ``plain``. Return the values and why any were withheld."""
    if phone_numbers == "plain":
        return values, None
    if len(values) != width:
        return None, (
            f"phone_numbers={phone_numbers}: the record's values cannot be told apart, and one of "
            "them may be a phone number"
        )
    shown = list(values)
    shown[decrypted] = phone_value(values[decrypted], values[device] or "", phone_numbers, secret)
    return shown, None


def read_users(
    path: Path,
    rejects: Rejects,
    phone_numbers: str = "plain",
    conversation_id: str | None = None,
    phone_hash_secret: str | None = None,
) -> Iterator[UserRecord]:
    """Stream the users of a private exhaust CSV (already unzipped).

    A user without consent has the Device UUID as "Decrypted Device ID" (docs/service-contract.md §3.4): no
    phone. A rejected record's phone goes to ``rejects`` only as ``phone_numbers`` stores it.
    """
    source = Path(path).name
    secret = hash_secret(phone_numbers, phone_hash_secret)  # the mode and the secret checked before reading
    with open(path, encoding="utf-8", newline="") as handle:
        records = read_records(handle)
        header = read_header(records, source)
        shared: dict[str, str] = {}
        for _, conversation, name, decrypted, encrypted, device in user_values(
            records, header, source, rejects, phone_numbers, conversation_id, phone_hash_secret=secret
        ):
            consented = bool(decrypted) and decrypted != device
            # a bot's id and name repeat on every row: keep one copy of each (a user is held per device)
            conversation = shared.setdefault(conversation, conversation)
            name = shared.setdefault(name, name) if name is not None and len(shared) < 10_000 else name
            yield UserRecord(
                conversation,
                device,
                name,
                phone_value(decrypted, device, phone_numbers, secret),
                encrypted,
                consented,
            )


def private_positions(header: Sequence[str | None], source: str) -> list[int]:
    """Where a private exhaust's columns (:data:`PRIVATE_HEADERS`) stand in its header."""
    missing = [name for name in PRIVATE_HEADERS if name not in header]
    if missing:
        raise ExhaustFormatError(f"{source}: not a private exhaust: no {', '.join(missing)} column")
    return [header.index(name) for name in PRIVATE_HEADERS]


def user_values(
    records: Iterator[tuple[int, list[str | None]]],
    header: Sequence[str | None],
    source: str,
    rejects: Rejects,
    phone_numbers: str = "plain",
    conversation_id: str | None = None,
    first_line: int = 1,
    phone_hash_secret: str | None = None,
) -> Iterator[tuple[int, str, str | None, str | None, str | None, str]]:
    """The private exhaust's records of ``records`` under ``header`` that keep the rules, as ``(line,
    Conversation ID, Conversation Name, Decrypted Device ID, Encrypted Device ID, Device UUID)``, the
    line counted from ``first_line``; the others go to ``rejects`` (a phone in them hashed under
    ``phone_hash_secret`` when ``phone_numbers`` is ``hashed``)."""
    at = private_positions(header, source)
    shift = first_line - 1
    secret = hash_secret(phone_numbers, phone_hash_secret)

    def reject(line: int, reason: str, values: list[str | None]) -> None:
        rejects.add(
            source, line, reason, *_as_stored(values, len(header), at[2], at[4], phone_numbers, secret)
        )

    for line, values in checked_records(records, source, shift):
        line += shift
        if not values:  # a blank line: one of a run, counted (it holds no phone number to withhold)
            rejects.add(source, line, "a blank line", values)
            continue
        if len(values) != len(header):
            reject(line, f"expected {len(header)} values as in the header, got {len(values)}", values)
            continue
        conversation, name, decrypted, encrypted, device = (values[i] for i in at)
        if not conversation or not device:
            reject(line, "Conversation ID and Device UUID must not be empty", values)
            continue
        if conversation_id is not None and conversation != conversation_id:
            reject(
                line, f"conversation_id: {conversation!r} is not the requested {conversation_id!r}", values
            )
            continue
        nul = nul_reason(PRIVATE_HEADERS, (conversation, name, decrypted, encrypted, device))
        if nul is not None:
            reject(line, nul, values)
            continue
        yield line, conversation, name, decrypted, encrypted, device
