"""A bot's users, read whole from its private exhaust before a load starts, and joined to its answers.

:func:`read_user_table` reads the file as ``exhaust.reader`` reads responses: in C a block at a time,
and record by record (``private_records.user_values``, the reference for every rule) a block the C engine
is not sure of (a record of the wrong width, an empty Conversation ID or Device UUID, a NUL, text
pyarrow cannot parse), whose records that break a rule go to the rejects with their lines. It holds
what ``private_records.read_users`` holds: one user per device (the last row the file has for it), as arrow
columns a few times smaller than records. Users of other bots are counted, not kept.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

from airflow_provider_uci.exhaust.arrow_csv import (
    Block,
    csv_options,
    headed_blocks,
    parse_block,
    quotes_out_of_place,
)
from airflow_provider_uci.exhaust.phone_hash import hash_phone, hash_secret, keyed_secret
from airflow_provider_uci.exhaust.private_records import private_positions, user_values
from airflow_provider_uci.exhaust.records import USER_TABLE_COLUMNS, ExhaustRefused, read_header
from airflow_provider_uci.exhaust.rejects import Rejects
from airflow_provider_uci.exhaust.spark_csv import read_records

#: Other bots a private exhaust is found to hold users of, named at most.
OTHERS_NAMED = 5
#: Bytes of the file parsed at a time.
BLOCK_BYTES = 1 << 21
#: The raw columns kept of each of the bot's rows, before the phone is made of the decrypted id.
_RAW = ("conversation_name", "decrypted", "encrypted_device_id", "device_uuid")


class Users:
    """One bot's users: ``table`` holds :data:`records.USER_TABLE_COLUMNS`, one row per device.

    ``skipped`` counts the rows of other bots, ``others`` names the first few of them.
    """

    def __init__(
        self, conversation_id: str, table: Any, skipped: int = 0, others: list[str] | None = None
    ) -> None:
        self.conversation_id = conversation_id
        self.table = table
        self.rows = table.num_rows
        self.skipped = skipped
        self.others = others or []
        self._join = UserJoin(table["device_uuid"], table["phone"], table["encrypted_device_id"])

    @classmethod
    def none(cls, conversation_id: str) -> Users:
        """No users (the service found no data for the private exhaust)."""
        import pyarrow as pa

        return cls(
            conversation_id,
            pa.schema(
                [(name, pa.bool_() if name == "consented" else pa.string()) for name in USER_TABLE_COLUMNS]
            ).empty_table(),
        )

    def check(self, name: str, rejected: bool) -> None:
        """Refuse a private exhaust ``name`` with no user of the bot, unless records were ``rejected`` (which
        the reject limit then judges)."""
        if self.rows or rejected:
            return
        if self.skipped:
            more = (
                " and others" if self.skipped > len(self.others) and len(self.others) >= OTHERS_NAMED else ""
            )
            raise ExhaustRefused(
                f"private: {name} holds no user of conversation {self.conversation_id} (the bot whose responses "
                f"are loaded): its {self.skipped} user(s) are of conversation(s) {', '.join(self.others)}{more}; "
                f"give the private exhaust requested for {self.conversation_id}, or none if the service found no "
                "data for it; nothing was loaded"
            )
        raise ExhaustRefused(
            f"private: {name} holds a header and no user; the service never writes an empty exhaust (it answers "
            f"'No data found'), so this is not one of its files; load without a private exhaust if the service "
            "found no users; nothing was loaded"
        )

    def join(self, batch: Any) -> tuple[Any, int]:
        """A response batch with the user's ``user_phone`` and ``user_encrypted_device_id`` after its columns
        (null where the device has no user); and how many rows have none."""
        at = self._join.find(batch.column("device_id"))
        return (
            batch.append_column("user_phone", self._join.phones.take(at)).append_column(
                "user_encrypted_device_id", self._join.encrypted.take(at)
            ),
            at.null_count,
        )


def read_user_table(
    path: Path,
    rejects: Rejects,
    conversation_id: str,
    phone_numbers: str = "plain",
    fast: bool = True,
    block_bytes: int | None = None,
    phone_hash_secret: str | None = None,
) -> Users:
    """The bot's users in the private exhaust CSV ``path`` (already unzipped); see the module.

    :param phone_numbers: ``plain``, ``hashed`` (HMAC-SHA256 under ``phone_hash_secret``, ``exhaust.phone_hash``)
        or ``none``, as ``private_records.phone_value``.
    :param fast: read in C where it can (``False``: every record by the record engine).
    """
    import pyarrow as pa

    secret = hash_secret(phone_numbers, phone_hash_secret)  # the mode and the secret checked before reading
    reading = _Reading(
        Path(path), rejects, conversation_id, phone_numbers, block_bytes or BLOCK_BYTES, secret
    )
    reading.read(fast)
    raw = pa.Table.from_batches(reading.parts, schema=pa.schema([(name, pa.string()) for name in _RAW]))
    del reading.parts
    table = _users(raw, conversation_id, phone_numbers, secret)
    del raw
    pa.default_memory_pool().release_unused()  # what reading took and let go of, back to the system
    return Users(conversation_id, table, reading.skipped, reading.others)


class _Reading:
    """The bot's rows of a private exhaust as raw arrow batches, in the file's order."""

    def __init__(
        self,
        path: Path,
        rejects: Rejects,
        conversation_id: str,
        phone_numbers: str,
        block_bytes: int,
        secret: str | None = None,
    ) -> None:
        self.path, self.rejects, self.conversation_id = path, rejects, conversation_id
        self.phone_numbers, self.block_bytes, self.secret = phone_numbers, block_bytes, secret
        self.parts: list[Any] = []
        self.skipped = 0
        self.others: list[str] = []

    def read(self, fast: bool) -> None:
        import pyarrow.compute as pc

        headed = headed_blocks(self.path, self.block_bytes) if fast else None
        if headed is None:
            self._records(0, 1, None)
            return
        header, blocks = headed
        with closing(blocks):
            at = private_positions(header, self.path.name)
            options = csv_options(len(header), self.block_bytes)  # every column: each must be UTF-8
            for block in blocks:
                if block.doubt is not None or quotes_out_of_place(block.data):
                    self._records(block.offset, block.first_line, header)  # where records end is unsure
                    return
                table, doubt = parse_block(block.data, options) if block.data else (None, None)
                batches = table.to_batches() if table is not None else []
                if doubt is not None or any(
                    values.null_count or (len(values) and pc.min(pc.binary_length(values)).as_py() == 0)
                    for batch in batches
                    for values in (batch.column(at[0]), batch.column(at[4]))
                ):
                    self._records(block.offset, block.first_line, header, block)
                    continue
                for batch in batches:
                    self._keep(batch.column(at[0]), [batch.column(index) for index in at[1:]])

    def _keep(self, conversations: Any, columns: list[Any]) -> None:
        """Keep the bot's rows of a batch (``columns`` in :data:`_RAW` order); count the others'."""
        import pyarrow as pa
        import pyarrow.compute as pc

        own = pc.equal(conversations, self.conversation_id)
        kept = pc.sum(own).as_py() or 0
        self.skipped += len(own) - kept
        if kept < len(own) and len(self.others) < OTHERS_NAMED:
            for other in pc.unique(conversations.filter(pc.invert(own))).to_pylist():
                if other not in self.others and len(self.others) < OTHERS_NAMED:
                    self.others.append(other)
        if kept:
            batch = pa.RecordBatch.from_arrays(columns, names=list(_RAW))
            self.parts.append(batch if kept == len(own) else batch.filter(own))

    def _records(
        self, offset: int, first_line: int, header: Sequence[str | None] | None, block: Block | None = None
    ) -> None:
        """The file from ``offset`` (to ``block``'s end, or the file's), record by record."""
        import pyarrow as pa

        with open(self.path, "rb") as handle:
            handle.seek(offset)
            data = handle.read(block.end - offset) if block is not None else None
            text = io.TextIOWrapper(
                io.BytesIO(data) if data is not None else handle, encoding="utf-8", newline=""
            )
            records = read_records(text)
            if header is None:
                header = read_header(records, self.path.name)  # lines are counted from the file's first
                first_line = 1
            rows = user_values(
                records,
                header,
                self.path.name,
                self.rejects,
                self.phone_numbers,
                first_line=first_line,
                phone_hash_secret=self.secret,
            )
            while chunk := list(itertools.islice(rows, 20_000)):
                conversations, *columns = (
                    pa.array(values, pa.string()) for values in list(zip(*chunk, strict=False))[1:]
                )
                self._keep(conversations, columns)


def _users(table: Any, conversation_id: str, phone_numbers: str, secret: str | None) -> Any:
    """The users table's rows of the bot's raw rows: a device's last row, its phone as ``phone_numbers``
    stores it (none without consent: the service then writes the Device UUID as the decrypted id)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    count = table.num_rows
    if count and pc.count_distinct(table["device_uuid"]).as_py() < count:
        # a device twice: its last row stands, as a dict of the records keeps it
        last = (
            pa.table({"device": table["device_uuid"], "row": pa.array(np.arange(count))})
            .group_by("device", use_threads=False)
            .aggregate([("row", "max")])["row_max"]
        )
        table = table.take(np.sort(last.to_numpy()))  # in the order of the file
        count = table.num_rows
    column = {
        name: pa.concat_arrays(table[name].chunks) if count else pa.array([], pa.string()) for name in _RAW
    }
    device, decrypted = column["device_uuid"], column.pop("decrypted")
    consented = pc.fill_null(pc.and_(pc.not_equal(decrypted, ""), pc.not_equal(decrypted, device)), False)
    phones = pc.if_else(consented, decrypted, pa.scalar(None, pa.string()))
    if phone_numbers == "none":
        phones = pa.nulls(count, pa.string())
    elif phone_numbers == "hashed":
        key = keyed_secret(secret)  # the secret checked before reading
        phones = pa.array(
            [None if phone is None else hash_phone(phone, key) for phone in phones.to_pylist()],
            pa.string(),
        )
    column.update(
        conversation_id=pa.repeat(pa.scalar(conversation_id, pa.string()), count),
        phone=phones,
        consented=consented,
    )
    return pa.table([column[name] for name in USER_TABLE_COLUMNS], names=list(USER_TABLE_COLUMNS))


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

        def flat(values: Any) -> Any:
            """One array (no copy of a column of one chunk, as ``Users`` makes them)."""
            if isinstance(values, pa.ChunkedArray):
                values = values.chunk(0) if values.num_chunks == 1 else pa.concat_arrays(values.chunks)
            return values.cast(pa.string())

        self.devices, self.phones, self.encrypted = flat(devices), flat(phones), flat(encrypted)
        if len(self.devices) == 0:  # concat_arrays of no chunks: typed empty arrays
            self.devices = self.phones = self.encrypted = pa.array([], pa.string())
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

    def _fixed(self, values: Any) -> Any:
        """The ids as a numpy array of fixed-width byte strings (a view of the arrow data, no copy)."""
        import numpy as np

        offsets = np.frombuffer(
            values.buffers()[1], dtype=np.int32, count=len(values) + 1, offset=values.offset * 4
        )
        return np.frombuffer(
            values.buffers()[2], dtype=f"S{self._width}", count=len(values), offset=int(offsets[0])
        )

    def _hash(self, keys: Any) -> Any:
        """A 64-bit hash of each fixed-width id (``keys.fixed_width_hashes``)."""
        from airflow_provider_uci.exhaust.keys import fixed_width_hashes

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
