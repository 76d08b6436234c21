"""Read a private exhaust in C: pyarrow parses it, and the users go to PostgreSQL in binary ``COPY``
(or to SQLite as rows).

The loader's fast path for users, beside ``exhaust.arrow`` for responses. It holds what
``records.read_users`` holds (one user per device, the last row the file has for it), as arrow
columns a few times smaller than the records: the users table's rows, and a :class:`UserJoin` for
the responses. A file with anything the record reader would reject (a record of the wrong width, an
empty Conversation ID or Device UUID, a header without the private exhaust's columns) is declined as
a whole with :class:`FastPathDeclined`, and the loader reads it record by record, which names the
record and its line.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from airflow_provider_uci.exhaust import arrow
from airflow_provider_uci.exhaust.arrow import PG_BINARY_HEADER, PG_BINARY_TRAILER, UserJoin, pg_binary_rows
from airflow_provider_uci.exhaust.arrow_csv import csv_options, parse_block, plain_header, spark_blocks
from airflow_provider_uci.exhaust.arrow_csv import FastPathDeclined
from airflow_provider_uci.exhaust.records import PRIVATE_HEADERS, USER_TABLE_COLUMNS, phone_value

#: Users per chunk of ``COPY`` data, or of rows.
COPY_ROWS = 20_000
#: Other bots a private exhaust is found to hold users of, named at most.
OTHERS_NAMED = 5


class ArrowUsers:
    """One bot's users from a private exhaust CSV (a ``PreparedUsers``).

    :param path: the private exhaust CSV (already unzipped).
    :param conversation_id: the bot; users of other bots are counted in ``skipped``, not kept.
    :param phone_numbers: ``plain``, ``hashed`` (SHA-256) or ``none``, as ``records.phone_value``.
    :param block_bytes: bytes of the file parsed at a time (default ``arrow.BLOCK_BYTES``).
    :raises FastPathDeclined: the file holds something only the record reader can name.

    ``columns`` holds the users table's columns but ``conversation_id`` (the bot's, on every row), one
    array each; ``rows`` says how many users there are; ``others`` names the first few other bots the
    file holds users of.
    """

    def __init__(self, path: Path, conversation_id: str, phone_numbers: str = "plain",
                 block_bytes: int | None = None) -> None:
        phone_value(None, "", phone_numbers)  # check the mode before reading
        self.path = Path(path)
        self.conversation_id = conversation_id
        self.skipped = 0
        self.others: list[str] = []
        self.columns = self._read(phone_numbers, block_bytes or arrow.BLOCK_BYTES)
        self.rows = len(self.columns["device_uuid"])

    def _read(self, phone_numbers: str, block_bytes: int) -> dict[str, Any]:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        blocks = spark_blocks(self.path, block_bytes)
        header, first = plain_header(blocks)
        if any(name not in header for name in PRIVATE_HEADERS):
            raise FastPathDeclined("the header: not a private exhaust's")
        at = [header.index(name) for name in PRIVATE_HEADERS]
        options = csv_options(len(header), block_bytes)  # every column: each must be UTF-8, as records read it
        wanted = [f"c{index}" for index in at[1:]]  # the bot's id is the same on every row kept
        parts = []
        for block in itertools.chain([first], blocks):
            for batch in parse_block(block, options).to_batches() if block else ():
                conversation, device = batch.column(f"c{at[0]}"), batch.column(f"c{at[4]}")
                for values in (conversation, device):
                    if values.null_count or (len(values) and pc.min(pc.binary_length(values)).as_py() == 0):
                        raise FastPathDeclined("Conversation ID or Device UUID: an empty value")
                own = pc.equal(conversation, self.conversation_id)
                kept = pc.sum(own).as_py() or 0
                self.skipped += len(own) - kept
                if kept < len(own) and len(self.others) < OTHERS_NAMED:
                    for other in pc.unique(conversation.filter(pc.invert(own))).to_pylist():
                        if other not in self.others and len(self.others) < OTHERS_NAMED:
                            self.others.append(other)
                if kept:
                    parts.append((batch if kept == len(own) else batch.filter(own)).select(wanted))
        names = ("conversation_name", "decrypted", "encrypted_device_id", "device_uuid")
        schema = pa.schema([(name, pa.string()) for name in names])
        table = pa.Table.from_batches([part.rename_columns(names) for part in parts], schema=schema)
        del parts
        count = table.num_rows
        if count and pc.count_distinct(table["device_uuid"]).as_py() < count:
            # a device twice: its last row stands, as a dict of the records keeps it
            last = (pa.table({"device": table["device_uuid"], "row": pa.array(np.arange(count))})
                    .group_by("device", use_threads=False).aggregate([("row", "max")])["row_max"])
            table = table.take(np.sort(last.to_numpy()))  # in the order of the file
            count = table.num_rows
        column = {}
        for name in names:  # one array each, and the table's chunks let go of as each is made
            column[name] = pa.concat_arrays(table[name].chunks) if count else pa.array([], pa.string())
            table = table.drop_columns([name])
        device, decrypted = column["device_uuid"], column.pop("decrypted")
        # without consent the service writes the Device UUID as the decrypted id (contract 3.4)
        consented = pc.fill_null(pc.and_(pc.not_equal(decrypted, ""), pc.not_equal(decrypted, device)), False)
        if phone_numbers == "none":
            phones = pa.nulls(count, pa.string())
        elif phone_numbers == "hashed":
            phones = pa.array([None if phone is None else hashlib.sha256(phone.encode("utf-8")).hexdigest()
                               for phone in pc.if_else(consented, decrypted, pa.scalar(None, pa.string())).to_pylist()],
                              pa.string())
        else:
            phones = pc.if_else(consented, decrypted, pa.scalar(None, pa.string()))
        column.update(phone=phones, consented=consented)
        del table, decrypted
        pa.default_memory_pool().release_unused()  # what reading took and let go of, back to the system
        return column

    def join(self) -> UserJoin:
        """The users for the join with the responses."""
        return UserJoin(self.columns["device_uuid"], self.columns["phone"], self.columns["encrypted_device_id"])

    def by_device(self) -> dict[str, tuple[str | None, str | None]]:
        """Phone and encrypted id by device, for the record-by-record join."""
        return dict(zip(self.columns["device_uuid"].to_pylist(),
                        zip(self.columns["phone"].to_pylist(), self.columns["encrypted_device_id"].to_pylist(),
                            strict=True), strict=True))

    def records(self) -> Iterator[tuple[Any, ...]]:
        """The users as ``UserRecord`` tuples, for a warehouse that takes rows (made a slice at a time)."""
        for start in range(0, self.rows, COPY_ROWS):
            count = min(COPY_ROWS, self.rows - start)
            columns = [self.columns[name].slice(start, count).to_pylist() if name != "conversation_id"
                       else [self.conversation_id] * count for name in USER_TABLE_COLUMNS]
            yield from zip(*columns, strict=True)

    def copy_chunks(self, ordinal: bool = False) -> Iterator[memoryview | bytes]:
        """``COPY ... (FORMAT binary)`` data of ``USER_TABLE_COLUMNS``, then the row's ordinal when asked."""
        import pyarrow as pa

        yield PG_BINARY_HEADER
        for start in range(0, self.rows, COPY_ROWS):
            bot = pa.repeat(pa.scalar(self.conversation_id, pa.string()), min(COPY_ROWS, self.rows - start))
            columns = [bot if name == "conversation_id" else self.columns[name].slice(start, COPY_ROWS)
                       for name in USER_TABLE_COLUMNS]
            if ordinal:
                columns.append(pa.array(range(start + 1, start + len(columns[0]) + 1), pa.int64()))
            yield pg_binary_rows(columns)
        yield PG_BINARY_TRAILER
