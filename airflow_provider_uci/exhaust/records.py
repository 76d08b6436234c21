"""Typed records of the two exhausts, read by header name from any published vintage.

Response exhaust files have had 12, 15, 17 and 18 columns (docs/service-contract.md §3.3): columns are
found by name, and those a vintage lacks (``Session ID``, ``X Path``, ``Eof``) read as null. Values are
typed (integers, booleans, timestamps) and the JSON columns checked; a record that breaks a rule is
handed to a :class:`Rejects` log with its line number instead of being loaded.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, datetime, timedelta, timezone
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from airflow_provider_uci.exhaust.rejects import Rejects
from airflow_provider_uci.exhaust.spark_csv import SparkCsvError, read_records


class ExhaustFormatError(ValueError):
    """A file is not an exhaust this reader understands (the message names the file and the rule)."""


class ExhaustRefused(ValueError):
    """A file is readable but not as the service writes it (the message says how); nothing was loaded."""


class ResponseRecord(NamedTuple):
    """One answer: a row of the response exhaust, typed. The first four fields are its key."""

    conversation_id: str
    message_id: str
    device_id: str
    question_id: str
    conversation_name: str | None
    session_id: str | None
    question_type: str | None
    question_title: str | None
    question_description: str | None
    question_duration: int | None
    question_score: int | None
    question_max_score: int | None
    question_options: str | None
    question_response: str | None
    x_path: str | None
    eof: bool | None
    event_timestamp: str | None
    at_timestamp: str | None


class UserRecord(NamedTuple):
    """One user of a bot: a row of the private exhaust. ``phone`` is null without consent."""

    conversation_id: str
    device_uuid: str
    conversation_name: str | None
    phone: str | None
    encrypted_device_id: str | None
    consented: bool


#: Response exhaust header -> record field; the key columns are required, the others optional.
RESPONSE_HEADERS = {
    "Conversation ID": "conversation_id",
    "Message ID": "message_id",
    "Device ID": "device_id",
    "Question Id": "question_id",
    "Conversation Name": "conversation_name",
    "Session ID": "session_id",
    "Question Type": "question_type",
    "Question Title": "question_title",
    "Question Description": "question_description",
    "Question Duration": "question_duration",
    "Question Score": "question_score",
    "Question Max Score": "question_max_score",
    "Question Options": "question_options",
    "Question Response": "question_response",
    "X Path": "x_path",
    "Eof": "eof",
    "Timestamp": "event_timestamp",
    "@timestamp": "at_timestamp",
}
KEY_FIELDS = ("conversation_id", "message_id", "device_id", "question_id")
PRIVATE_HEADERS = (
    "Conversation ID",
    "Conversation Name",
    "Decrypted Device ID",
    "Encrypted Device ID",
    "Device UUID",
)
#: What a file saved by a spreadsheet may start with; not part of the first column's name.
BYTE_ORDER_MARK = "\ufeff"
#: India Standard Time, the zone of the service's sync days (docs/service-contract.md §3.2); no daylight
#: saving since 1945.
IST = timezone(
    timedelta(hours=5, minutes=30)
)  # schedule.SCHEDULE_TIMEZONE, as a fixed offset: quicker per row
#: The UTC time of day at which the IST day turns (``HH:MM``).
IST_DAY_TURNS = datetime(2000, 1, 2, tzinfo=IST).astimezone(timezone.utc).strftime("%H:%M")
#: The largest zone offset PostgreSQL takes in a timestamp.
MAX_ZONE_OFFSET = timedelta(hours=15, minutes=59, seconds=59)


class _Reject(ValueError):
    pass


def _int(name: str, value: str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        try:
            number = float(value)
        except ValueError:
            raise _Reject(f"{name}: expected a whole number, got {value!r}") from None
        if not number.is_integer():
            raise _Reject(f"{name}: expected a whole number, got {value!r}") from None
        return int(number)


def _bool(name: str, value: str | None) -> bool | None:
    if value is None or value == "":
        return None
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    raise _Reject(f"{name}: expected true or false, got {value!r}")


def moment(value: str) -> datetime:
    """The moment an ISO 8601 timestamp of the exhaust stands for (in its zone; UTC when it has none)."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _timestamp(name: str, value: str | None) -> str | None:
    if value is None or value == "":
        return None
    try:
        parsed = moment(value)
        parsed.astimezone(IST)  # a day can be told
    except (ValueError, OverflowError):
        raise _Reject(f"{name}: expected an ISO 8601 timestamp, got {value!r}") from None
    offset = parsed.utcoffset()
    if offset is not None and abs(offset) > MAX_ZONE_OFFSET:
        raise _Reject(f"{name}: a zone offset beyond ±15:59, which PostgreSQL cannot store, in {value!r}")
    return value


def nul_reason(fields: tuple[str, ...], values: Any) -> str | None:
    """Why a record with a NUL character in a value is rejected (no text column of PostgreSQL can hold
    one), naming the first such field; ``None`` when there is none."""
    for name, value in zip(fields, values, strict=True):
        if value and "\x00" in value:
            return f"{name}: contains a NUL character, which PostgreSQL text cannot hold"
    return None


def _json(name: str, value: str | None, empty_allowed: bool) -> str | None:
    if value is None or (value == "" and empty_allowed):
        return value
    try:
        orjson.loads(value)
    except orjson.JSONDecodeError:
        raise _Reject(f"{name}: not valid JSON: {value[:80]!r}") from None
    return value


class _JsonChecked:
    """The JSON texts already found valid, so that a text seen again is not parsed again.

    Options repeat with every answer to a question, and most answers are one of a few choices; parsing
    a text builds all its objects, which costs far more than a look-up. At most ``budget`` characters
    are remembered (then the memory is emptied and starts again), so memory stays flat.
    """

    def __init__(self, budget: int = 1 << 22, longest: int = 1 << 12) -> None:
        self._seen: set[str] = set()
        self._size = 0
        self._budget = budget
        self._longest = longest

    def __call__(self, name: str, value: str | None, empty_allowed: bool) -> str | None:
        if value is None or value in self._seen:
            return value
        _json(name, value, empty_allowed)
        if value and len(value) <= self._longest:
            if self._size + len(value) > self._budget:
                self._seen.clear()
                self._size = 0
            self._seen.add(value)
            self._size += len(value)
        return value


def read_header(records: Iterator[tuple[int, list[str | None]]], source: str) -> list[str | None]:
    """The first record of a file: its header (a UTF-8 byte order mark before it, as a spreadsheet saves
    one, left out)."""
    try:
        header = next(records)[1]
    except StopIteration:
        raise ExhaustFormatError(f"{source}: the file is empty") from None
    except SparkCsvError as exc:
        raise ExhaustFormatError(f"{source}: {exc}") from None
    if header and header[0] and header[0].startswith(BYTE_ORDER_MARK):
        header[0] = header[0][len(BYTE_ORDER_MARK) :]
    return header


def checked_records(
    records: Iterator[tuple[int, list[str | None]]], source: str, shift: int = 0
) -> Iterator[tuple[int, list[str | None]]]:
    """The records, with a break in the dialect (say, a file cut short) reported as the file's error; its
    line number moved by ``shift`` (the lines before the text read)."""
    try:
        yield from records
    except SparkCsvError as exc:
        raise ExhaustFormatError(f"{source}: {exc.moved(shift)}") from None


def header_positions(header: Sequence[str | None], source: str) -> dict[str, int]:
    positions = {}
    for index, name in enumerate(header):
        if name in RESPONSE_HEADERS and RESPONSE_HEADERS[name] not in positions:
            positions[RESPONSE_HEADERS[name]] = index
    missing = [
        name for name, field in RESPONSE_HEADERS.items() if field in KEY_FIELDS and field not in positions
    ]
    if missing:
        raise ExhaustFormatError(f"{source}: not a response exhaust: no {', '.join(missing)} column")
    return positions


def read_responses(
    path: Path,
    rejects: Rejects,
    conversation_id: str | None = None,
    first_day: str | None = None,
    last_day: str | None = None,
) -> Iterator[ResponseRecord]:
    """Stream the typed records of a response exhaust CSV (see :func:`read_response_lines`)."""
    for _, record in read_response_lines(path, rejects, conversation_id, first_day, last_day):
        yield record


def read_response_lines(
    path: Path,
    rejects: Rejects,
    conversation_id: str | None = None,
    first_day: str | None = None,
    last_day: str | None = None,
) -> Iterator[tuple[int, ResponseRecord]]:
    """Stream the typed records of a response exhaust CSV, each with the line it starts on.

    :param path: the file (UTF-8, Spark's dialect).
    :param rejects: where records that break a rule go.
    :param conversation_id: when given, a record of another conversation is a reject.
    :param first_day: when given (``YYYY-MM-DD``), a record synced before this IST day is a reject
        (see :func:`sync_day`).
    :param last_day: likewise, after this day. A record with no timestamp at all is a reject unless
        both are given and equal (then it belongs to that day).
    """
    source = Path(path).name
    with open(path, encoding="utf-8", newline="") as handle:
        records = read_records(handle)
        header = read_header(records, source)
        for line, record, _ in typed_responses(
            records, header, source, rejects, conversation_id, first_day, last_day
        ):
            yield line, record


def typed_responses(
    records: Iterator[tuple[int, list[str | None]]],
    header: Sequence[str | None],
    source: str,
    rejects: Rejects,
    conversation_id: str | None = None,
    first_day: str | None = None,
    last_day: str | None = None,
    first_line: int = 1,
) -> Iterator[tuple[int, ResponseRecord, str | None]]:
    """The typed records of ``records`` (read by ``spark_csv.read_records``) under ``header``, each with its
    line (counted from ``first_line``) and sync day (``None`` for a record with no timestamp in a load of
    one day); the rules are those of :func:`read_response_lines`."""
    positions = header_positions(header, source)
    width = len(header)
    fields = ResponseRecord._fields
    # a column the vintage lacks reads the None appended after the values
    pick = itemgetter(*(positions.get(field, width) for field in fields))
    json_checked = _JsonChecked()
    make = ResponseRecord._make
    single_day = bool(first_day) and first_day == last_day
    shift = first_line - 1
    for line, values in checked_records(records, source, shift):
        line += shift
        try:
            if len(values) != width:
                raise _Reject(f"expected {width} values as in the header, got {len(values)}")
            values.append(None)
            raw = pick(values)
            values.pop()
            if not (raw[0] and raw[1] and raw[2] and raw[3]):
                index = next(index for index in range(4) if not raw[index])
                raise _Reject(f"{fields[index]}: must not be empty (it is part of the key)")
            if conversation_id is not None and raw[0] != conversation_id:
                raise _Reject(f"conversation_id: {raw[0]!r} is not the requested {conversation_id!r}")
            nul = nul_reason(fields, raw)
            if nul is not None:
                raise _Reject(nul)
            # checked in column order: the first broken rule is the one a reject names
            duration = _int("question_duration", raw[9])
            score = _int("question_score", raw[10])
            max_score = _int("question_max_score", raw[11])
            options = json_checked("question_options", raw[12], empty_allowed=False)
            response = json_checked("question_response", raw[13], empty_allowed=True)
            eof = _bool("eof", raw[15])
            event_timestamp, at_timestamp, day = _synced(raw[16], raw[17], first_day, last_day, single_day)
            record = (*raw[:9], duration, score, max_score, options, response, raw[14], eof)
            yield line, make((*record, event_timestamp, at_timestamp)), day
        except _Reject as reason:
            rejects.add(source, line, str(reason), values)


def _synced(
    event_text: str | None, at_text: str | None, first_day: str | None, last_day: str | None, single_day: bool
) -> tuple[str | None, str | None, str | None]:
    """A record's event and ``@timestamp`` moments and its sync day, which must lie in the load's range
    (``None`` only in a load of one day, for a record with neither timestamp)."""
    event_timestamp = _timestamp("event_timestamp", event_text)
    at_timestamp = (
        event_timestamp
        if at_text is not None and at_text == event_text
        else _timestamp("at_timestamp", at_text)
    )
    day = sync_day(at_timestamp, event_timestamp)
    if day is None:
        if not single_day:
            raise _Reject(
                "at_timestamp: no @timestamp or Timestamp to place the record in a sync day, "
                "and the load is not for one day"
            )
    elif (first_day and day < first_day) or (last_day and day > last_day):
        raise _Reject(
            f"at_timestamp: synced on {day} (IST), outside the range "
            f"{first_day or '...'}..{last_day or '...'}"
        )
    return event_timestamp, at_timestamp, day


def sync_day(
    at_timestamp: str | datetime | None, event_timestamp: str | datetime | None = None
) -> str | None:
    """The IST day an answer was synced on, ``YYYY-MM-DD``: the day of the telemetry file it came from.

    The pipeline files each event under the IST date of its ``syncts`` and copies ``syncts`` into
    ``@timestamp`` (docs/service-contract.md §3.2), which the exhaust writes as ``@timestamp`` and
    ``Timestamp``; the first of the two that is there decides. ``None`` when neither is (the oldest vintages).
    """
    value = at_timestamp or event_timestamp
    if not value:
        return None
    if value.__class__ is str and len(value) >= 17 and value[-1] == "Z" and value[10] == "T":
        day = value[:10]  # UTC: the IST day turns at 18:30
        if value[11:16] < IST_DAY_TURNS:
            return date.fromisoformat(day).isoformat()
        return (date.fromisoformat(day) + timedelta(days=1)).isoformat()
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(IST).date().isoformat()


#: Columns of the responses table, in order: the record's fields, then the joined user columns.
RESPONSE_TABLE_COLUMNS = (*ResponseRecord._fields, "user_phone", "user_encrypted_device_id")
USER_TABLE_COLUMNS = UserRecord._fields
