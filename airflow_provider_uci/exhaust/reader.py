"""The one reader of a response exhaust: typed arrow record batches, the records that break a rule set aside.

:class:`ResponseBatches` reads a file with two engines and hands out one kind of batch. In C
(``exhaust.arrow_csv``): the file in blocks of whole records, parsed by pyarrow, checked and typed a
column at a time, by threads at once. Record by record (``records.typed_responses``, the reference
for every rule): a block the C engine is not sure of (a value that breaks a rule or has an unusual
form, a row of another bot or of a day outside the range, a record that does not parse, a NUL) is
read again from its bytes in the file, with its line numbers, and its records that break a rule go
to the rejects with the line they start on; then the C engine goes on with the next block. Where the
records end can only be told by reading them in order after a quote out of place, a record too long,
or a file that ends inside a value: the rest of the file is then read record by record.

A batch holds :data:`RESPONSE_BATCH_COLUMNS`: text, ``int64``, ``bool``, the two timestamps as
``timestamp[us, UTC]`` (or, with ``timestamps_as_text``, as the file writes them), and the IST
``sync_date`` of each row (``date32``). The C engine takes a value only in the one form both engines
read alike (``_INTEGER``, ``_BOOLEAN``, ``_TIMESTAMP``), so a value reads the same whichever engine
reads it.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator, Sequence
from contextlib import closing
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from airflow_provider_uci.exhaust.arrow_csv import (
    Block,
    csv_options,
    headed_blocks,
    parse_block,
    quotes_out_of_place,
)
from airflow_provider_uci.exhaust.keys import KeyHashes, key_hashes
from airflow_provider_uci.exhaust.pipeline import in_order
from airflow_provider_uci.exhaust.records import (
    IST,
    KEY_FIELDS,
    ResponseRecord,
    header_positions,
    moment,
    read_header,
    typed_responses,
)
from airflow_provider_uci.exhaust.rejects import Rejects
from airflow_provider_uci.exhaust.spark_csv import read_records

#: Bytes of the file parsed at a time: larger blocks cost less per row, and hold more memory.
BLOCK_BYTES = 1 << 21
#: Threads that parse, check and type blocks at once.
WORKERS = 2
#: Blocks between two returns of the memory pyarrow's allocator holds free.
RELEASE_EVERY = 8
#: Rows of a batch the record engine makes.
RECORD_BATCH_ROWS = 10_000
#: The columns of a batch: the record's fields, then the row's IST sync day.
RESPONSE_BATCH_COLUMNS = (*ResponseRecord._fields, "sync_date")
_INTEGERS = ("question_duration", "question_score", "question_max_score")
_TIMESTAMPS = ("event_timestamp", "at_timestamp")
_INTEGER = r"^-?[0-9]{1,18}$"
_BOOLEAN = r"^([tT][rR][uU][eE]|[fF][aA][lL][sS][eE])$"  # ASCII letters only, as str.lower() sees them
#: Years 1000 to 2999, real days and times, zone offsets up to 15:59 (PostgreSQL's limit).
_TIMESTAMP = (
    r"^[12][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(\.[0-9]{1,6})?(Z|[+-](0[0-9]|1[0-5]):[0-5][0-9])$"
)
_IST_MICROSECONDS = int(IST.utcoffset(None).total_seconds()) * 1_000_000
_QUOTES_OUT_OF_PLACE = "a quote out of place"


class _Doubt(Exception):
    """The C engine is not sure of a block: the record engine reads it."""


def response_schema(timestamps_as_text: bool = False) -> Any:
    """The arrow schema of a batch of :class:`ResponseBatches`."""
    import pyarrow as pa

    def kind(field: str) -> Any:
        if field in _INTEGERS:
            return pa.int64()
        if field == "eof":
            return pa.bool_()
        if field in _TIMESTAMPS and not timestamps_as_text:
            return pa.timestamp("us", "UTC")
        return pa.date32() if field == "sync_date" else pa.string()

    return pa.schema([(field, kind(field)) for field in RESPONSE_BATCH_COLUMNS])


class ResponseBatches:
    """A response exhaust as typed arrow record batches (see the module); iterate once.

    :param path: the response exhaust CSV.
    :param rejects: where records that break a rule go, with their lines.
    :param conversation_id: the bot; a record of another is a reject (``None``: any bot's).
    :param first_day: first sync day of the load's range (``YYYY-MM-DD``) or ``None``; a record synced
        before it is a reject.
    :param last_day: last sync day, or ``None``. A record with no timestamp belongs to the range's day
        when it is one day, and is a reject otherwise.
    :param timestamps_as_text: give the timestamps as the file writes them, not typed.
    :param fast: read in C where it can (``False``: every record by the record engine).
    :param block_bytes: bytes of the file parsed at a time (default :data:`BLOCK_BYTES`).
    :param workers: threads that parse blocks at once (default :data:`WORKERS`).

    Once read: ``rows``; ``first_synced`` and ``last_synced``, the first and last sync day of them;
    ``key_hashes`` (``exhaust.keys``) of every row; ``engine``, which engines read the file.
    """

    def __init__(
        self,
        path: Path,
        rejects: Rejects,
        conversation_id: str | None,
        first_day: str | None = None,
        last_day: str | None = None,
        *,
        timestamps_as_text: bool = False,
        fast: bool = True,
        block_bytes: int | None = None,
        workers: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.rejects = rejects
        self.conversation_id = conversation_id
        self.range = (first_day or None, last_day or None)
        self.timestamps_as_text = timestamps_as_text
        self.fast = fast
        self.block_bytes = block_bytes or BLOCK_BYTES
        self.workers = workers or WORKERS
        self.rows = 0
        self.first_synced: str | None = None
        self.last_synced: str | None = None
        self.key_hashes = KeyHashes()
        self.blocks_in_c = 0
        self.blocks_by_records = 0
        self._schema = response_schema(timestamps_as_text)

    @property
    def engine(self) -> str:
        """``arrow`` (every block in C), ``records`` (record by record), or ``arrow+records``."""
        if self.blocks_in_c and self.blocks_by_records:
            return "arrow+records"
        return "arrow" if self.blocks_in_c else "records"

    def __iter__(self) -> Iterator[Any]:
        for batch, hashes in self._batches():
            if batch.num_rows:
                self.rows += batch.num_rows
                self.key_hashes.add(hashes)
                yield batch

    def _batches(self) -> Iterator[tuple[Any, Any]]:
        """Each batch, with its rows' key hashes (made on the C engine's threads where it read them)."""
        headed = headed_blocks(self.path, self.block_bytes) if self.fast else None
        if headed is None:  # nothing read in C: the record engine reads the file, and says what is wrong
            yield from self._rest(0, 1, None)
            return
        header, blocks = headed
        by_field = header_positions(header, self.path.name)
        options = csv_options(len(header), self.block_bytes)
        checked: set[str] = set()
        pool = _memory_pool()

        def in_c(block: Block) -> tuple[Block, list[tuple[Any, str, str, Any]] | str]:
            """The block's batches, typed; or why the record engine must read it."""
            if block.doubt is not None:
                return block, block.doubt
            if quotes_out_of_place(block.data):
                return block, _QUOTES_OUT_OF_PLACE
            table, doubt = parse_block(block.data, options) if block.data else (None, None)
            if doubt is not None:
                return block, doubt
            try:
                typed = [
                    self._typed(batch, by_field, checked)
                    for batch in (table.to_batches() if table is not None else ())
                    if batch.num_rows
                ]
            except _Doubt as doubt:
                return block, str(doubt)
            return block._replace(data=memoryview(b"")), typed  # its bytes are let go of at once

        with (
            closing(blocks),
            closing(in_order(in_c, blocks, self.workers)) as done,
        ):
            for number, (block, outcome) in enumerate(done):
                if number % RELEASE_EVERY == RELEASE_EVERY - 1:
                    pool.release_unused()  # the threads' allocators keep what they freed; return it to the system
                if isinstance(outcome, list):
                    self.blocks_in_c += 1
                    for batch, low, high, hashes in outcome:
                        self._synced(low, high)
                        yield batch, hashes
                elif block.doubt is not None or outcome == _QUOTES_OUT_OF_PLACE:
                    yield from self._rest(block.offset, block.first_line, header)
                    return
                else:
                    yield from self._block(block, header)

    def _block(self, block: Block, header: Sequence[str | None]) -> Iterator[tuple[Any, Any]]:
        """A block the C engine is not sure of, read record by record from its bytes in the file."""
        self.blocks_by_records += 1
        with open(self.path, "rb") as handle:
            handle.seek(block.offset)
            text = io.TextIOWrapper(
                io.BytesIO(handle.read(block.end - block.offset)), encoding="utf-8", newline=""
            )
        yield from self._typed_records(read_records(text), header, block.first_line)

    def _rest(
        self, offset: int, first_line: int, header: Sequence[str | None] | None
    ) -> Iterator[tuple[Any, Any]]:
        """The file from ``offset`` (the start of a record, or of the file) to its end, record by record."""
        self.blocks_by_records += 1
        with open(self.path, "rb") as handle:
            handle.seek(offset)
            records = read_records(io.TextIOWrapper(handle, encoding="utf-8", newline=""))
            if header is None:
                header = read_header(records, self.path.name)  # lines are counted from the file's first
                first_line = 1
            yield from self._typed_records(records, header, first_line)

    def _typed_records(
        self, records: Iterator[tuple[int, list[str | None]]], header: Sequence[str | None], first_line: int
    ) -> Iterator[tuple[Any, Any]]:
        """Batches of the records that keep the rules (``records.typed_responses``), with their key hashes;
        the others are rejects."""
        first, last = self.range
        typed = typed_responses(
            records,
            header,
            self.path.name,
            self.rejects,
            self.conversation_id,
            first,
            last,
            first_line=first_line,
        )
        while rows := list(itertools.islice(typed, RECORD_BATCH_ROWS)):
            batch = self._of_records(rows)
            yield batch, _key_hashes(batch)

    def _of_records(self, rows: list[tuple[int, ResponseRecord, str | None]]) -> Any:
        import pyarrow as pa

        records = [record for _, record, _ in rows]
        columns: dict[str, Any] = dict(zip(ResponseRecord._fields, zip(*records, strict=True), strict=True))
        if not self.timestamps_as_text:
            for field in _TIMESTAMPS:
                columns[field] = [None if text is None else moment(text) for text in columns[field]]
        single = self.range[0] or ""  # a record with no timestamp is kept only in a load of one day: that day
        days = [date.fromisoformat(day or single) for _, _, day in rows]
        columns["sync_date"] = days
        low, high = min(days).isoformat(), max(days).isoformat()
        self._synced(low, high)
        return pa.RecordBatch.from_arrays(
            [
                pa.array(columns[field], kind)
                for field, kind in zip(RESPONSE_BATCH_COLUMNS, self._schema.types, strict=True)
            ],
            schema=self._schema,
        )

    def _synced(self, low: str, high: str) -> None:
        self.first_synced = low if self.first_synced is None or low < self.first_synced else self.first_synced
        self.last_synced = high if self.last_synced is None or high > self.last_synced else self.last_synced

    def _typed(self, batch: Any, by_field: dict[str, int], checked: set[str]) -> tuple[Any, str, str, Any]:
        """A batch parsed in C, checked and typed; its first and last sync day; its rows' key hashes. Raise
        :class:`_Doubt` where a value breaks a rule or has a form the C engine does not read."""
        import pyarrow as pa
        import pyarrow.compute as pc

        rows = batch.num_rows
        empty = pa.nulls(rows, pa.string())

        def column(field: str) -> Any:
            at = by_field.get(field)
            return empty if at is None else batch.column(at)

        def blank_as_null(values: Any) -> Any:
            if values.null_count == rows:
                return values
            return pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)

        def all_match(values: Any, pattern: str) -> bool:
            return bool(
                values.null_count == rows or pc.all(pc.match_substring_regex(values, pattern)).as_py()
            )

        for field in KEY_FIELDS:
            values = column(field)
            if values.null_count or pc.min(pc.binary_length(values)).as_py() == 0:
                raise _Doubt(f"{field}: an empty value")
        if (
            self.conversation_id is not None
            and not pc.all(pc.equal(column("conversation_id"), self.conversation_id)).as_py()
        ):
            raise _Doubt("conversation_id: a row of another conversation")
        typed: dict[str, Any] = {}
        for field in _INTEGERS:
            text = blank_as_null(column(field))
            if not all_match(text, _INTEGER):
                raise _Doubt(f"{field}: a value not written as a whole number")
            typed[field] = pc.cast(text, pa.int64())
        text = blank_as_null(column("eof"))
        if not all_match(text, _BOOLEAN):
            raise _Doubt("eof: a value other than true or false")
        typed["eof"] = pc.equal(pc.ascii_lower(text), "true")
        moments = {}
        for field in _TIMESTAMPS:
            text = blank_as_null(column(field))
            if not all_match(text, _TIMESTAMP):
                raise _Doubt(f"{field}: a timestamp not in the usual ISO 8601 form")
            try:
                moments[field] = pc.cast(text, pa.timestamp("us", "UTC"))
            except pa.ArrowInvalid:
                raise _Doubt(f"{field}: a timestamp that is not a real moment") from None
            typed[field] = text if self.timestamps_as_text else moments[field]
        for field, empty_allowed in (("question_options", False), ("question_response", True)):
            _check_json(column(field), field, empty_allowed, checked)
        days, low, high = self._days(pc.coalesce(moments["at_timestamp"], moments["event_timestamp"]), rows)
        typed["sync_date"] = days
        arrays = [typed[field] if field in typed else column(field) for field in RESPONSE_BATCH_COLUMNS]
        typed_batch = pa.RecordBatch.from_arrays(arrays, schema=self._schema)
        return typed_batch, low, high, _key_hashes(typed_batch)

    def _days(self, moments: Any, rows: int) -> tuple[Any, str, str]:
        """The IST day of each row's sync timestamp, checked against the range; the first and last."""
        import pyarrow as pa
        import pyarrow.compute as pc

        local = pc.add(pc.cast(moments, pa.int64()), _IST_MICROSECONDS)
        days = pc.cast(pc.cast(local, pa.timestamp("us")), pa.date32())
        first, last = self.range
        if days.null_count:
            if first is None or first != last:
                raise _Doubt("a row with no timestamp, in a load of more than one day")
            days = days.fill_null(pa.scalar(date.fromisoformat(first), pa.date32()))
        bounds = pc.min_max(days).as_py()
        low, high = bounds["min"].isoformat(), bounds["max"].isoformat()
        if (first is not None and low < first) or (last is not None and high > last):
            raise _Doubt("a row synced on a day outside the load's range")
        return days, low, high


def _check_json(values: Any, field: str, empty_allowed: bool, checked: set[str]) -> None:
    """Raise :class:`_Doubt` unless each distinct value of ``values`` is JSON (``""`` too when
    ``empty_allowed``); ``checked`` keeps the values already found good, across batches."""
    import pyarrow.compute as pc

    for value in pc.unique(values).to_pylist():
        if value is None or value in checked or (empty_allowed and value == ""):
            continue
        try:
            orjson.loads(value)
        except orjson.JSONDecodeError:
            raise _Doubt(f"{field}: a value that is not JSON") from None
        if len(checked) > 100_000:
            checked.clear()
        checked.add(value)


def _key_hashes(batch: Any) -> Any:
    """The hash of each row's key (``keys.key_hashes``)."""
    return key_hashes(*(batch.column(field) for field in KEY_FIELDS[1:]))


def _memory_pool() -> Any:
    import pyarrow as pa

    return pa.default_memory_pool()
