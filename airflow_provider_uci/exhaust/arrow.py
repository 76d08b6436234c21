"""Read a response exhaust in C: pyarrow parses it, checks it a column at a time, joins the users
and encodes PostgreSQL's binary ``COPY`` format, with no Python object per value (or, for SQLite,
hands the rows over as Python values).

The loader's fast path. It takes a file only when the record-by-record reader
(``records.read_responses``) would take every record of it with the same values, and is stricter
where that is cheaper: a file with anything it is not sure of (a value that breaks a rule or has an
unusual form, a row of another bot or of a day outside the range, a row that does not parse) is
declined as a whole with :class:`FastPathDeclined`, and the loader reads it again record by record,
which names each broken record and its line. Integers, booleans and timestamps are typed here, from
text in the one form both readers read alike (``_INTEGER``, ``_BOOLEAN``, ``_TIMESTAMP``); binary
``COPY`` then spares the server parsing text, which halves its share of the load.

The file is read in blocks of whole records (``exhaust.arrow_csv``), which threads parse, check and
encode at once, in order.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from airflow_provider_uci.exhaust.arrow_csv import csv_options, in_order, parse_block, plain_header, spark_blocks
from airflow_provider_uci.exhaust.keys import KeyHashes, fixed_width_hashes, key_hashes
from airflow_provider_uci.exhaust.arrow_csv import FastPathDeclined
from airflow_provider_uci.exhaust.records import (
    KEY_FIELDS,
    RESPONSE_HEADERS,
    RESPONSE_TABLE_COLUMNS,
    IST,
    ExhaustFormatError,
    UserRecord,
    header_positions,
)
from airflow_provider_uci.exhaust.warehouse import STORED_RESPONSE_COLUMNS

#: Bytes of the file parsed at a time: larger blocks cost less per row, and hold more memory.
BLOCK_BYTES = 1 << 21
#: Threads that parse, check and encode blocks at once.
WORKERS = 2
#: Blocks between two returns of the memory pyarrow's allocator holds free.
RELEASE_EVERY = 8
_INTEGER = r"^-?[0-9]{1,18}$"
_BOOLEAN = r"^([tT][rR][uU][eE]|[fF][aA][lL][sS][eE])$"  # ASCII letters only, as str.lower() sees them
#: Years 1000 to 2999, real days and times, zone offsets up to 15:59 (PostgreSQL's limit).
_TIMESTAMP = (r"^[12][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
              r"(\.[0-9]{1,6})?(Z|[+-](0[0-9]|1[0-5]):[0-5][0-9])$")
_IST_MICROSECONDS = int(IST.utcoffset(None).total_seconds()) * 1_000_000
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
    ``binary_join_element_wise`` over the rows' pieces: no Python object per value. The pieces of
    one width in every row (the field count, the fields' lengths, values that are never null) that
    stand side by side are first laid out together in numpy, as one piece.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    count = len(columns[0])
    if count == 0:
        return b""
    parts: list[Any] = []
    side_by_side: list[Any] = []  # fixed-width pieces not yet in ``parts``, as (count, width) bytes

    def fixed(values: Any) -> None:
        side_by_side.append(values.view(np.uint8).reshape(count, -1))

    def flush() -> None:
        if side_by_side:
            laid = side_by_side[0] if len(side_by_side) == 1 else np.hstack(side_by_side)
            parts.append(_fixed_width(laid, laid.shape[1]))
            side_by_side.clear()

    fixed(np.full(count, len(columns), dtype=">i2"))
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
            fixed(lengths)
            flush()
            parts.append(values.view(pa.binary()))
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
        if missing:  # a null has no value at all: its piece stands alone, empty in those rows
            header[~np.asarray(values.is_valid())] = -1
            fixed(header)
            flush()
            parts.append(_fixed_width(data, width, values.buffers()[0]))
        else:
            fixed(header)
            fixed(data)
    flush()
    rows = pc.binary_join_element_wise(*parts, b"", null_handling="replace", null_replacement=b"")
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int32, count=count + 1, offset=rows.offset * 4)
    return memoryview(rows.buffers()[2])[offsets[0]:offsets[-1]]


class UserJoin:
    """A bot's users as arrow arrays for the join: one row per device, with its phone and encrypted id.

    :meth:`find` gives, for each device id of a column, the row of its user (null for none). When every
    device id has one length (UUIDs do), ids are found in numpy, by a binary search over the sorted
    64-bit hashes of the users' ids, and the ids themselves compared; otherwise (or should two users'
    hashes meet) by a look-up in a dict.
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
        if lengths and lengths["min"] == lengths["max"] > 0 and self.devices.null_count == 0:
            self._width = lengths["min"]
            self._keys = self._fixed(self.devices)
            hashes = self._hash(self._keys)
            self._order = np.argsort(hashes).astype(np.int32)
            self._hashes = hashes[self._order]
            if np.any(self._hashes[1:] == self._hashes[:-1]):
                self._width = 0  # two ids, one hash: the dict it is

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

    def _hash(self, keys: Any) -> Any:
        """A 64-bit hash of each fixed-width id (``keys.fixed_width_hashes``)."""
        return fixed_width_hashes(keys)

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
                hashes = self._hash(keys)
                at = np.minimum(np.searchsorted(self._hashes, hashes), len(self._hashes) - 1)
                rows = self._order[at]
                found = (self._hashes[at] == hashes) & (self._keys[rows] == keys)
                return pa.array(rows, mask=~found)
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
    :param block_bytes: bytes of the file parsed at a time (default :data:`BLOCK_BYTES`).
    :param workers: threads that parse, check and encode blocks at once (default :data:`WORKERS`).
    """

    def __init__(self, path: Path, conversation_id: str, users: UserJoin, first_day: str | None,
                 last_day: str | None, block_bytes: int | None = None, workers: int | None = None) -> None:
        self.path = Path(path)
        self.conversation_id = conversation_id
        self.users = users
        self.range = (first_day, last_day)
        self.block_bytes = block_bytes or BLOCK_BYTES
        self.workers = workers or WORKERS
        self.rows = 0
        self.without_user = 0
        self.first_day: str | None = None
        self.last_day: str | None = None
        #: every row's key hash, for the check that no answer is in the file twice (``exhaust.keys``)
        self.key_hashes = KeyHashes()

    def copy_chunks(self, load_id: int) -> Iterator[memoryview | bytes]:
        """``COPY ... (FORMAT binary)`` data of ``STORED_RESPONSE_COLUMNS``, a chunk per block of the file."""
        import pyarrow as pa

        def encode(values: dict[str, Any], days: Any, rows: int) -> memoryview | bytes:
            values = {**values, "sync_date": days, "load_id": pa.repeat(pa.scalar(load_id, pa.int64()), rows)}
            return pg_binary_rows([values[field] for field in STORED_RESPONSE_COLUMNS])

        yield PG_BINARY_HEADER
        for pieces in self.encoded_blocks(encode):
            yield from pieces
        yield PG_BINARY_TRAILER

    def records(self) -> Iterator[tuple[Any, ...]]:
        """The joined rows as the record reader and the join make them (``RESPONSE_TABLE_COLUMNS``: text,
        ``int``, ``bool``, timestamps as their text, or ``None``), for a warehouse that takes rows."""

        def encode(values: dict[str, Any], days: Any, rows: int) -> list[tuple[Any, ...]]:
            return list(zip(*(values[field].to_pylist() for field in RESPONSE_TABLE_COLUMNS), strict=True))

        for pieces in self.encoded_blocks(encode, timestamps_as_text=True):
            for rows in pieces:
                yield from rows

    def encoded_blocks(self, encode: Callable[[dict[str, Any], Any, int], Any],
                       timestamps_as_text: bool = False) -> Iterator[list[Any]]:
        """Each block's batches checked, joined and encoded (``encode(values, sync days, rows)``), in order."""
        import pyarrow as pa

        blocks = spark_blocks(self.path, self.block_bytes)
        header, first = plain_header(blocks)
        try:
            positions = header_positions(header, self.path.name)
        except ExhaustFormatError as exc:
            raise FastPathDeclined(f"the header: {exc}") from None
        options = csv_options(len(header), self.block_bytes)
        by_field = {field: positions.get(field) for field in RESPONSE_HEADERS.values()}
        checked: set[str] = set()

        def block_of(block: memoryview) -> tuple[list[Any], int, int, str | None, str | None, list[Any]]:
            pieces, rows, without, low, high, hashes = [], 0, 0, None, None, []
            if block:
                for batch in parse_block(block, options).to_batches():
                    if batch.num_rows == 0:
                        continue
                    values, days, bounds, without_user = self._checked(batch, by_field, checked, timestamps_as_text)
                    hashes.append(key_hashes(values["message_id"], values["device_id"], values["question_id"]))
                    pieces.append(encode(values, days, batch.num_rows))
                    rows, without = rows + batch.num_rows, without + without_user
                    if bounds is not None:
                        low = bounds[0] if low is None or bounds[0] < low else low
                        high = bounds[1] if high is None or bounds[1] > high else high
            return pieces, rows, without, low, high, hashes

        pool = pa.default_memory_pool()
        for number, (pieces, rows, without, low, high, hashes) in enumerate(
                in_order(block_of, itertools.chain([first], blocks), self.workers)):
            for batch_hashes in hashes:
                self.key_hashes.add(batch_hashes)
            if number % RELEASE_EVERY == RELEASE_EVERY - 1:
                pool.release_unused()  # the threads' allocators keep what they freed; return it to the system
            self.rows += rows
            self.without_user += without
            if low is not None:
                self.first_day = low if self.first_day is None or low < self.first_day else self.first_day
                self.last_day = high if self.last_day is None or high > self.last_day else self.last_day
            yield pieces

    def _checked(self, batch: Any, by_field: dict[str, int | None], checked: set[str],
                 timestamps_as_text: bool) -> tuple[dict[str, Any], Any, tuple[str, str] | None, int]:
        """A batch's columns checked, typed (timestamps kept as text when asked) and joined to the users;
        the rows' sync days; the first and last of them; how many rows have no user."""
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
        typed, texts = {}, {}
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
            texts[field] = text
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
        days, bounds = self._days(pc.coalesce(typed["at_timestamp"], typed["event_timestamp"]), rows)

        at = self.users.find(column("device_id"))
        if timestamps_as_text:
            typed.update(texts)
        values = {field: typed.get(field, column(field)) for field in RESPONSE_HEADERS.values()}
        values["user_phone"] = self.users.phones.take(at)
        values["user_encrypted_device_id"] = self.users.encrypted.take(at)
        return values, days, bounds, at.null_count

    def _days(self, moments: Any, rows: int) -> tuple[Any, tuple[str, str] | None]:
        """The IST day of each row's sync timestamp, checked against the range; the first and last."""
        import pyarrow as pa
        import pyarrow.compute as pc

        local = pc.add(pc.cast(moments, pa.int64()), _IST_MICROSECONDS)
        days = pc.cast(pc.cast(local, pa.timestamp("us")), pa.date32())
        if rows == 0:
            return days, None
        first, last = self.range
        if days.null_count:
            if first is None or first != last:
                raise FastPathDeclined("a row with no timestamp, in a load of more than one day")
            days = days.fill_null(pa.scalar(date.fromisoformat(first), pa.date32()))
        bounds = pc.min_max(days).as_py()
        low, high = bounds["min"].isoformat(), bounds["max"].isoformat()
        if (first is not None and low < first) or (last is not None and high > last):
            raise FastPathDeclined("a row synced on a day outside the load's range")
        return days, (low, high)

