"""An answer's key twice in one response exhaust: found by a 64-bit hash a row, named with both its lines.

The service writes each answer, keyed on (conversation, Message ID, Device ID, Question Id), once (the
pipeline de-duplicates events by ``mid`` before the job reads them), and a load keeps rows as the
file holds them. A file that holds one key twice is not as the service wrote it, and is refused with
:class:`DuplicateAnswer`. While a file is read, each row's key becomes a 64-bit hash: in numpy a batch
at a time when the file is read in C (:func:`key_hashes`), with Python's own ``hash`` when it is read
record by record (a load is of one bot, so the conversation is left out). Once it is read, the hashes
are sorted; only when two are equal is the file read again, to find those records and compare their
keys (two keys may share a hash). Past a million rows the hashes go to temporary files, sixteen by
their top bits, each then sorted alone: the memory they take stays that of a million rows.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from airflow_provider_uci.exhaust.records import ExhaustRefused

#: Records read again at a time, to find those whose keys share a hash.
BATCH = 4096
#: Bytes of hashes kept in memory before they go to temporary files (a million rows' worth).
SPILL_BYTES = 8 << 20
#: The temporary files hashes are spread over, by their top bits.
BUCKET_BITS = 4
BUCKETS = 1 << BUCKET_BITS
_MULTIPLIER = 0x9E3779B97F4A7C15  # 2**64 / the golden ratio: spreads the bits of each word
_BYTE_BASE = 0x100000001B3  # FNV's prime: the base of the polynomial over a value's bytes


class DuplicateAnswer(ExhaustRefused):
    """A response exhaust holds one answer's key twice; the message names both lines. Nothing was loaded."""


def _mix(hashes: Any) -> Any:
    """splitmix64's finaliser, in place on a uint64 array."""
    import numpy as np

    with np.errstate(over="ignore"):
        hashes ^= hashes >> np.uint64(30)
        hashes *= np.uint64(0xBF58476D1CE4E5B9)
        hashes ^= hashes >> np.uint64(27)
        hashes *= np.uint64(0x94D049BB133111EB)
        hashes ^= hashes >> np.uint64(31)
    return hashes


def fixed_width_hashes(keys: Any) -> Any:
    """A 64-bit hash of each value of a numpy array of fixed-width byte strings: its bytes as 64-bit
    words, multiplied and mixed in one after another."""
    import numpy as np

    width = keys.dtype.itemsize
    words = -(-width // 8)
    padded = np.zeros((len(keys), words * 8), dtype=np.uint8)
    padded[:, :width] = keys.view(np.uint8).reshape(len(keys), width)
    hashes = np.zeros(len(keys), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for word in padded.view(np.uint64).T:
            hashes ^= word
            hashes *= np.uint64(_MULTIPLIER)
            hashes ^= hashes >> np.uint64(29)
    return hashes


def text_hashes(values: Any) -> Any:
    """A 64-bit hash of each value of an arrow string array without nulls (uint64, in numpy).

    Values of one width (UUIDs, Message IDs) are hashed as fixed-width words; others as a polynomial
    over their bytes, summed per value, with the value's length mixed in.
    """
    import numpy as np
    import pyarrow as pa

    count = len(values)
    if count == 0:
        return np.zeros(0, dtype=np.uint64)
    if values.offset:
        values = pa.concat_arrays([values])
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int32, count=count + 1)
    lengths = np.diff(offsets)
    start, end = int(offsets[0]), int(offsets[-1])
    data = (
        np.frombuffer(values.buffers()[2], dtype=np.uint8)[start:end]
        if end > start
        else np.zeros(0, np.uint8)
    )
    shortest, longest = int(lengths.min()), int(lengths.max())
    if shortest == longest:
        if longest == 0:
            return _mix(np.zeros(count, dtype=np.uint64))
        return _mix(fixed_width_hashes(data.view(f"S{longest}")) ^ np.uint64(longest))
    starts = (offsets[:-1] - start).astype(np.int64)
    within = np.arange(len(data), dtype=np.int64) - np.repeat(starts, lengths)
    with np.errstate(over="ignore"):
        powers = np.full(longest, _BYTE_BASE, dtype=np.uint64)
        powers[0] = 1
        powers = np.multiply.accumulate(powers)
        terms = data.astype(np.uint64) * powers[within]
        present = lengths > 0
        hashes = np.zeros(count, dtype=np.uint64)
        hashes[present] = np.add.reduceat(terms, starts[present])
        hashes ^= lengths.astype(np.uint64) * np.uint64(_MULTIPLIER)
    return _mix(hashes)


def key_hashes(message_ids: Any, device_ids: Any, question_ids: Any) -> Any:
    """The hash of each row's key (Message ID, Device ID, Question Id), from three arrow string arrays."""
    import numpy as np

    hashes = text_hashes(message_ids)
    with np.errstate(over="ignore"):
        for column in (device_ids, question_ids):
            hashes *= np.uint64(_MULTIPLIER)
            hashes ^= text_hashes(column)
            hashes = _mix(hashes)
    return hashes


class KeyHashes:
    """The key hashes of the rows read so far (8 bytes a row), a batch at a time from :func:`key_hashes`.

    Past ``spill_bytes`` of them (a million rows by default), the hashes are sorted and written out to
    :data:`BUCKETS` temporary files by their top bits, and :meth:`repeated` then looks for repeats one
    file at a time: memory stays flat however many rows a file has, for some milliseconds a million rows.
    """

    def __init__(self, spill_bytes: int = SPILL_BYTES) -> None:
        self._chunks: list[Any] = []
        self._held = 0
        self._spill_bytes = spill_bytes
        self._buckets: list[Any] = []  # temporary files, once the hashes outgrew spill_bytes

    def add(self, hashes: Any) -> None:
        """Keep a batch's hashes (from :func:`key_hashes`)."""
        if len(hashes):
            self._chunks.append(hashes)
            self._held += hashes.nbytes
            if self._held >= self._spill_bytes:
                self._spill()

    def of(self, keys: list[tuple[str, str, str]]) -> Any:
        """The hashes of ``keys`` (Message ID, Device ID, Question Id), as they were kept."""
        return _hash_keys(keys)

    def repeated(self) -> set[int]:
        """The hashes seen more than once (usually none); the hashes kept are let go of."""
        import numpy as np

        if not self._buckets:
            return _repeats(self._taken())
        self._spill()
        found: set[int] = set()
        while self._buckets:
            with self._buckets.pop() as bucket:
                bucket.seek(0)
                found |= _repeats(np.fromfile(bucket, dtype=np.uint64))
        return found

    def _taken(self) -> Any:
        """Every hash held, in one array; the batches' own arrays are let go of one at a time."""
        import numpy as np

        every = np.empty(self._held // 8, dtype=np.uint64)
        at = 0
        while self._chunks:  # one copy at a time, so that the rows' hashes are never held twice
            chunk = self._chunks.pop(0)
            every[at : at + len(chunk)] = chunk
            at += len(chunk)
        self._held = 0
        return every

    def _spill(self) -> None:
        """Append the hashes held to the bucket files, each hash to the file of its top bits."""
        import numpy as np

        every = self._taken()
        every.sort()
        if not self._buckets:
            self._buckets = [tempfile.TemporaryFile(prefix="uci-key-hashes-") for _ in range(BUCKETS)]
        bounds = np.searchsorted(every, np.arange(1, BUCKETS, dtype=np.uint64) << np.uint64(64 - BUCKET_BITS))
        for bucket, part in zip(self._buckets, np.split(every, bounds), strict=True):
            part.tofile(bucket)


def _repeats(hashes: Any) -> set[int]:
    """The values that stand more than once in ``hashes`` (sorted in place)."""
    hashes.sort()
    return {int(value) for value in hashes[1:][hashes[1:] == hashes[:-1]]}


def _hash_keys(keys: list[tuple[str, str, str]]) -> Any:
    import pyarrow as pa

    messages, devices, questions = zip(*keys, strict=True)
    return key_hashes(
        pa.array(messages, pa.string()), pa.array(devices, pa.string()), pa.array(questions, pa.string())
    )


def find_duplicate(
    path: Path, records: Iterator[tuple[int, Any]], hashes: KeyHashes, repeated: set[int]
) -> DuplicateAnswer | None:
    """Read the file's records again (``(line, ResponseRecord)``, as the load read them) and return the
    error naming the first key found twice among those whose hash (as ``hashes`` made them) is in
    ``repeated``; ``None`` when the equal hashes were of different keys."""
    import numpy as np

    if not repeated:
        return None
    wanted = np.fromiter(repeated, dtype=np.uint64, count=len(repeated))
    first_line: dict[tuple[str, ...], int] = {}
    batch: list[tuple[int, Any]] = []

    def look(rows: list[tuple[int, Any]]) -> DuplicateAnswer | None:
        hits = np.isin(hashes.of([(record[1], record[2], record[3]) for _, record in rows]), wanted)
        for hit in np.flatnonzero(hits).tolist():
            line, record = rows[hit]
            key = tuple(record[:4])
            if key in first_line:
                return DuplicateAnswer(
                    f"{path.name}: lines {first_line[key]} and {line} hold the same answer (Conversation ID "
                    f"{key[0]}, Message ID {key[1]}, Device ID {key[2]}, Question Id {key[3]}); the service writes "
                    "each answer once, so this file is not as it wrote it; nothing was loaded"
                )
            first_line[key] = line
        return None

    for row in records:
        batch.append(row)
        if len(batch) >= BATCH:
            found = look(batch)
            if found is not None:
                return found
            batch = []
    return look(batch) if batch else None
