"""Read a response exhaust in C: pyarrow parses it, checks it a column at a time, joins the users
and encodes PostgreSQL's binary ``COPY`` format, with no Python object per value.

The PostgreSQL loader's fast path. It takes a file only when the record-by-record reader
(``records.read_responses``) would take every record of it with the same values, and is stricter
where that is cheaper: a file with anything it is not sure of (a value that breaks a rule or has an
unusual form, a row of another bot or of a day outside the range, a row that does not parse) is
declined as a whole with :class:`FastPathDeclined`, and the loader reads it again record by record,
which names each broken record and its line. Integers, booleans and timestamps are typed here, from
text in the one form both readers read alike (``_INTEGER``, ``_BOOLEAN``, ``_TIMESTAMP``); binary
``COPY`` then spares the server parsing text, which halves its share of the load.

Spark's escapes are first rewritten as RFC 4180 (``spark_csv.rfc4180_block``), which pyarrow reads
exactly when told that there is no escape character; null stays apart from ``""``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from airflow_provider_uci.exhaust.postgres import FastPathDeclined
from airflow_provider_uci.exhaust.records import (
    KEY_FIELDS,
    RESPONSE_HEADERS,
    RESPONSE_TABLE_COLUMNS,
    ExhaustFormatError,
    UserRecord,
    _header_positions,
)
from airflow_provider_uci.exhaust.spark_csv import rfc4180_block
from airflow_provider_uci.exhaust.warehouse import STORED_RESPONSE_COLUMNS

#: Bytes of the file parsed at a time: larger blocks cost less per row, and hold more memory.
BLOCK_BYTES = 1 << 22
_INTEGER = r"^-?[0-9]{1,18}$"
_BOOLEAN = r"^(?i:true|false)$"
_TIMESTAMP = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})$"
_IST_MICROSECONDS = (5 * 60 + 30) * 60 * 1_000_000
#: ``COPY ... (FORMAT binary)``: the signature, flags and header extension; the trailer (-1 as int16).
PG_BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
PG_BINARY_TRAILER = b"\xff\xff"
_PG_EPOCH_MICROSECONDS = 946_684_800 * 1_000_000  # 2000-01-01, PostgreSQL's epoch
_PG_EPOCH_DAYS = 10_957


def _fixed_width(values: Any, width: int, validity: Any = None) -> Any:
    """A binary array over a numpy array of ``width``-byte items (no copy)."""
    import numpy as np
    import pyarrow as pa

    count = len(values)
    offsets = np.arange(0, (count + 1) * width, width, dtype=np.int32)
    return pa.Array.from_buffers(pa.binary(), count, [validity, pa.py_buffer(offsets),
                                                      pa.py_buffer(np.ascontiguousarray(values))])


def pg_binary_rows(columns: list[Any]) -> memoryview | bytes:
    """Rows of arrow arrays in PostgreSQL's binary ``COPY`` format (without its header and trailer).

    Text and binary arrays go as they are; int64 as ``bigint``, booleans, timestamps (microseconds,
    any zone) as ``timestamptz``, date32 as ``date``. Each row is built with one
    ``binary_join_element_wise`` over the field headers and values: no Python object per value.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    count = len(columns[0])
    if count == 0:
        return b""
    parts = [_fixed_width(np.full(count, len(columns), dtype=">i2"), 2)]
    for values in columns:
        if values.offset:
            values = pa.concat_arrays([values])  # buffers that start at the first row
        kind = values.type
        missing = values.null_count > 0
        if pa.types.is_string(kind) or pa.types.is_binary(kind) or pa.types.is_null(kind):
            if pa.types.is_null(kind):
                values = pa.nulls(count, pa.binary())
            offsets = np.frombuffer(values.buffers()[1], dtype=np.int32, count=count + 1)
            lengths = np.diff(offsets).astype(">i4")
            if missing:
                lengths[~np.asarray(values.is_valid())] = -1
            parts += [_fixed_width(lengths, 4), values.view(pa.binary())]
            continue
        if pa.types.is_int64(kind):
            data, width = values.fill_null(0).to_numpy().astype(">i8"), 8
        elif pa.types.is_boolean(kind):
            data, width = values.fill_null(False).to_numpy(zero_copy_only=False).astype(np.uint8), 1
        elif pa.types.is_timestamp(kind) and kind.unit == "us":
            data, width = (values.cast(pa.int64()).fill_null(0).to_numpy() - _PG_EPOCH_MICROSECONDS).astype(">i8"), 8
        elif pa.types.is_date32(kind):
            data, width = (values.cast(pa.int32()).fill_null(0).to_numpy() - _PG_EPOCH_DAYS).astype(">i4"), 4
        else:
            raise TypeError(f"no PostgreSQL binary form for {kind}")
        header = np.full(count, width, dtype=">i4")
        if missing:
            header[~np.asarray(values.is_valid())] = -1
        parts += [_fixed_width(header, 4), _fixed_width(data, width, values.buffers()[0] if missing else None)]
    rows = pc.binary_join_element_wise(*parts, b"", null_handling="replace", null_replacement=b"")
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int32, count=count + 1, offset=rows.offset * 4)
    return memoryview(rows.buffers()[2])[offsets[0]:offsets[-1]]


def _blocks(path: Path, size: int) -> Iterator[bytes]:
    """The file rewritten as RFC 4180, in blocks of whole records (of about ``size`` bytes or more).

    Spark's escapes never span lines, so raw blocks are cut at a line end and rewritten alone; a
    record ends at a line end with an even number of quotes before it (RFC 4180 quotes come in pairs).
    """
    raw_rest = b""
    rest = b""
    with open(path, "rb") as handle:
        while data := handle.read(size):
            data = raw_rest + data
            cut = data.rfind(b"\n") + 1
            data, raw_rest = data[:cut], data[cut:]
            if not data:
                continue
            data = rest + rfc4180_block(data)
            cut = len(data)  # the block ends at a line end
            quotes = data.count(b'"')
            while quotes % 2 and cut > 0:  # inside a value: go back a line
                end = data.rfind(b"\n", 0, cut - 1) + 1
                quotes -= data.count(b'"', end, cut)
                cut = end
            data, rest = data[:cut], data[cut:]
            if data:
                yield data
    data = rest + rfc4180_block(raw_rest)
    if data:
        yield data


def plain_header(blocks: Iterator[bytes]) -> tuple[list[str | None], memoryview]:
    """The header of a file read by :func:`_blocks`, and the rest of its first block.

    Only a header of plain names (no quotes) is taken; anything else declines the file.
    """
    first = next(blocks, b"")
    end = first.find(b"\n")
    if end < 0 or b'"' in first[:end]:
        raise FastPathDeclined("no plain header line")
    try:
        header: list[str | None] = first[:end].rstrip(b"\r").decode("utf-8").split(",")
    except UnicodeDecodeError as exc:
        raise FastPathDeclined(f"the header: {exc}") from None
    return header, memoryview(first)[end + 1:]


def record_batches(first: memoryview | bytes, blocks: Iterator[bytes], width: int, block_bytes: int,
                   columns: list[int] | None = None) -> Iterator[Any]:
    """The records of ``first`` and the blocks after it, parsed by pyarrow a block at a time, as record
    batches of text columns ``c0``, ``c1``... (only those of ``columns`` when given).

    Null (nothing) is null and ``""`` is ``""``. A record with more or fewer values than ``width``, or
    anything else pyarrow cannot parse, declines the file.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = [f"c{index}" for index in range(width)]
    wanted = names if columns is None else [names[index] for index in columns]
    options = {
        "read_options": pacsv.ReadOptions(use_threads=False, block_size=2 * block_bytes, column_names=names),
        "parse_options": pacsv.ParseOptions(delimiter=",", quote_char='"', double_quote=True, escape_char=False,
                                            newlines_in_values=True, ignore_empty_lines=False),
        "convert_options": pacsv.ConvertOptions(column_types=dict.fromkeys(wanted, pa.string()),
                                                include_columns=wanted, strings_can_be_null=True,
                                                null_values=[""], quoted_strings_can_be_null=False),
    }
    block: memoryview | bytes | None = first
    while block is not None:
        if block:
            try:  # a block of whole records, parsed alone: no reader holds blocks ahead
                table = pacsv.read_csv(pa.py_buffer(block), **options)
            except pa.ArrowInvalid as exc:
                raise FastPathDeclined(f"pyarrow: {str(exc)[:200]}") from None
            yield from table.to_batches()
            del table
        block = next(blocks, None)


class UserJoin:
    """A bot's users as arrow arrays for the join: one row per device, with its phone and encrypted id.

    :meth:`find` gives, for each device id of a column, the row of its user (null for none). When every
    device id has one length (UUIDs), it is a binary search over the sorted ids in numpy; otherwise a
    look-up in a dict.
    """

    def __init__(self, devices: Any, phones: Any, encrypted: Any) -> None:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        self.devices = devices.cast(pa.string())
        self.phones = phones.cast(pa.string())
        self.encrypted = encrypted.cast(pa.string())
        self._by_device: dict[str, int] | None = None
        self._width = 0
        lengths = pc.min_max(pc.binary_length(self.devices)).as_py() if len(self.devices) else {}
        if lengths and lengths["min"] == lengths["max"] and self.devices.null_count == 0:
            self._width = lengths["min"]
            keys = self._fixed(self.devices)
            self._order = np.argsort(keys, kind="stable").astype(np.int32)
            self._sorted = keys[self._order]

    @classmethod
    def of_records(cls, users: Mapping[str, UserRecord]) -> UserJoin:
        import pyarrow as pa

        return cls(pa.array(list(users), pa.string()), pa.array([user.phone for user in users.values()], pa.string()),
                   pa.array([user.encrypted_device_id for user in users.values()], pa.string()))

    def _fixed(self, values: Any) -> Any:
        """The ids as a numpy array of fixed-width byte strings (a view of the arrow data, no copy)."""
        import numpy as np

        offsets = np.frombuffer(values.buffers()[1], dtype=np.int32, count=len(values) + 1, offset=values.offset * 4)
        return np.frombuffer(values.buffers()[2], dtype=f"S{self._width}", count=len(values),
                             offset=int(offsets[0]))

    def find(self, device_ids: Any) -> Any:
        """The row of each device id's user, as an int32 array; null where the device has no user."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        count = len(device_ids)
        if count == 0 or len(self.devices) == 0:
            return pa.nulls(count, pa.int32())
        if self._width and device_ids.null_count == 0:
            lengths = pc.min_max(pc.binary_length(device_ids)).as_py()
            if lengths["min"] == lengths["max"] == self._width:
                keys = self._fixed(device_ids)
                by_key = np.argsort(keys)  # sorted needles: each search starts where the last ended
                keys = keys[by_key]
                at = np.minimum(np.searchsorted(self._sorted, keys), len(self._sorted) - 1)
                found = self._sorted[at] == keys
                rows = np.empty(count, dtype=np.int32)
                rows[by_key] = self._order[at]
                missing = np.empty(count, dtype=bool)
                missing[by_key] = ~found
                return pa.array(rows, mask=missing)
        if self._by_device is None:
            self._by_device = {device: row for row, device in enumerate(self.devices.to_pylist())}
        get = self._by_device.get
        return pa.array([get(device) for device in device_ids.to_pylist()], pa.int32())


class ArrowResponses:
    """One bot's response exhaust, joined to its users, as binary ``COPY`` data (a ``PreparedResponses``).

    :param path: the response exhaust CSV.
    :param conversation_id: the bot; a row of another declines the file.
    :param users: the bot's users (one per device).
    :param first_day: first sync day of the load's range (``YYYY-MM-DD``) or ``None``.
    :param last_day: last sync day, or ``None``.
    """

    def __init__(self, path: Path, conversation_id: str, users: UserJoin, first_day: str | None,
                 last_day: str | None, block_bytes: int = BLOCK_BYTES) -> None:
        self.path = Path(path)
        self.conversation_id = conversation_id
        self.users = users
        self.range = (first_day, last_day)
        self.block_bytes = block_bytes
        self.rows = 0
        self.without_user = 0
        self.first_day: str | None = None
        self.last_day: str | None = None

    def copy_chunks(self, load_id: int) -> Iterator[memoryview | bytes]:
        """``COPY ... (FORMAT binary)`` data of ``STORED_RESPONSE_COLUMNS``, a chunk per block of the file."""
        blocks = _blocks(self.path, self.block_bytes)
        header, first = plain_header(blocks)
        try:
            positions = _header_positions(header, self.path.name)
        except ExhaustFormatError as exc:
            raise FastPathDeclined(f"the header: {exc}") from None
        yield PG_BINARY_HEADER
        checked: set[str] = set()
        by_field = {field: positions.get(field) for field in RESPONSE_HEADERS.values()}
        for batch in record_batches(first, blocks, len(header), self.block_bytes):
            yield self._chunk(batch, by_field, load_id, checked)
        yield PG_BINARY_TRAILER

    def _chunk(self, batch: Any, by_field: dict[str, int | None], load_id: int, checked: set[str]) -> memoryview | bytes:
        import pyarrow as pa
        import pyarrow.compute as pc

        rows = batch.num_rows
        empty = pa.nulls(rows, pa.string())

        def column(field: str) -> Any:
            at = by_field[field]
            return empty if at is None else batch.column(at)

        def blank_as_null(values: Any) -> Any:
            if values.null_count == rows:
                return values
            return pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)

        def all_match(values: Any, pattern: str) -> bool:
            return values.null_count == rows or pc.all(pc.match_substring_regex(values, pattern)).as_py()

        for field in KEY_FIELDS:
            values = column(field)
            if values.null_count or pc.min(pc.binary_length(values)).as_py() == 0:
                raise FastPathDeclined(f"{field}: an empty value")
        if not pc.all(pc.equal(column("conversation_id"), self.conversation_id)).as_py():
            raise FastPathDeclined("conversation_id: a row of another conversation")
        typed = {}
        for field in ("question_duration", "question_score", "question_max_score"):
            text = blank_as_null(column(field))
            if not all_match(text, _INTEGER):
                raise FastPathDeclined(f"{field}: a value not written as a whole number")
            typed[field] = pc.cast(text, pa.int64())
        text = blank_as_null(column("eof"))
        if not all_match(text, _BOOLEAN):
            raise FastPathDeclined("eof: a value other than true or false")
        typed["eof"] = pc.equal(pc.ascii_lower(text), "true")
        for field in ("event_timestamp", "at_timestamp"):
            text = blank_as_null(column(field))
            if not all_match(text, _TIMESTAMP):
                raise FastPathDeclined(f"{field}: a timestamp not in the usual ISO 8601 form")
            try:
                typed[field] = pc.cast(text, pa.timestamp("us", "UTC"))
            except pa.ArrowInvalid:
                raise FastPathDeclined(f"{field}: a timestamp that is not a real moment") from None
        for field, empty_allowed in (("question_options", False), ("question_response", True)):
            for text in pc.unique(column(field)).to_pylist():
                if text is None or text in checked or (empty_allowed and text == ""):
                    continue
                try:
                    orjson.loads(text)
                except orjson.JSONDecodeError:
                    raise FastPathDeclined(f"{field}: a value that is not JSON") from None
                if len(checked) > 100_000:
                    checked.clear()
                checked.add(text)
        days = self._days(pc.coalesce(typed["at_timestamp"], typed["event_timestamp"]), rows)

        at = self.users.find(column("device_id"))
        self.without_user += at.null_count
        values = {field: typed.get(field, column(field)) for field in RESPONSE_HEADERS.values()}
        values["user_phone"] = self.users.phones.take(at)
        values["user_encrypted_device_id"] = self.users.encrypted.take(at)
        values["sync_date"] = days
        values["load_id"] = pa.repeat(pa.scalar(load_id, pa.int64()), rows)
        self.rows += rows
        return pg_binary_rows([values[field] for field in STORED_RESPONSE_COLUMNS])

    def _days(self, moments: Any, rows: int) -> Any:
        """The IST day of each row's sync timestamp, checked against the range."""
        import pyarrow as pa
        import pyarrow.compute as pc

        local = pc.add(pc.cast(moments, pa.int64()), _IST_MICROSECONDS)
        days = pc.cast(pc.cast(local, pa.timestamp("us")), pa.date32())
        if rows == 0:
            return days
        first, last = self.range
        if days.null_count:
            if first is None or first != last:
                raise FastPathDeclined("a row with no timestamp, in a load of more than one day")
            days = days.fill_null(pa.scalar(date.fromisoformat(first), pa.date32()))
        bounds = pc.min_max(days).as_py()
        low, high = bounds["min"].isoformat(), bounds["max"].isoformat()
        if (first is not None and low < first) or (last is not None and high > last):
            raise FastPathDeclined("a row synced on a day outside the load's range")
        self.first_day = low if self.first_day is None or low < self.first_day else self.first_day
        self.last_day = high if self.last_day is None or high > self.last_day else self.last_day
        return days

