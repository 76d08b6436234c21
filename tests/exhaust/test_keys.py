"""The key check's hashes: the same text hashes alike wherever it stands, and two keys that share a
hash are told apart by reading the file again (only a real key twice refuses the file)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from airflow_provider_uci.exhaust import keys, reader
from airflow_provider_uci.exhaust.keys import KeyHashes, key_hashes, text_hashes
from airflow_provider_uci.exhaust.load import load_exhaust
from tests.exhaust.test_load import SUNBIRD, TARA, state


def test_a_text_hashes_alike_in_any_batch_and_apart_from_others() -> None:
    uuids = pa.array(["2f981090-d874-40e3-b2ee-52f98509453a", "cbcf21a0-73ad-4e96-9802-38ea535cf88b"] * 3)
    mixed = pa.array(["a", "bb", "", "ASSESS:c4d8", "bb", "a,b"])
    for values in (uuids, mixed):
        whole = text_hashes(values)
        assert (text_hashes(values.slice(1, 4)) == whole[1:5]).all(), "a slice of a batch hashes as the batch"
        assert (text_hashes(pa.array(values.to_pylist()[::-1])) == whole[::-1]).all()
        assert len(set(whole.tolist())) == len(set(values.to_pylist()))
    assert text_hashes(pa.array(["ab", "ba", "a\x00", "ab\x00"])).tolist() == list(
        dict.fromkeys(text_hashes(pa.array(["ab", "ba", "a\x00", "ab\x00"])).tolist())
    ), "order, bytes and length all count"
    one = key_hashes(pa.array(["m"]), pa.array(["d1"]), pa.array(["q"]))
    assert one != key_hashes(pa.array(["m"]), pa.array(["q"]), pa.array(["d1"])), (
        "columns are not interchangeable"
    )


def test_repeated_finds_only_hashes_seen_twice() -> None:
    hashes = KeyHashes()
    hashes.add(np.array([5, 1, 9], dtype=np.uint64))
    hashes.add(np.array([7, 9], dtype=np.uint64))
    assert hashes.repeated() == {9}


@pytest.mark.parametrize("fast", [True, False], ids=["read in C", "record by record"])
def test_keys_that_share_a_hash_are_not_taken_for_one_answer_twice(
    fast: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every key made to hash alike: the file is read again, its keys compared, and it loads."""
    monkeypatch.setattr(reader, "key_hashes", lambda *columns: np.zeros(len(columns[0]), dtype=np.uint64))
    monkeypatch.setattr(keys, "_hash_keys", lambda rows: np.zeros(len(rows), dtype=np.uint64))
    url = f"sqlite:///{tmp_path}/w.db"

    summary = load_exhaust(
        response_csv=SUNBIRD / TARA.response, private=SUNBIRD / TARA.private, warehouse_url=url, fast=fast
    )

    assert (summary.reader, summary.responses_loaded) == ("arrow" if fast else "records", TARA.rows)
    assert len(state(url)[0]) == TARA.rows


@pytest.mark.parametrize("spill_bytes", [8, 24, 8 << 20], ids=["every batch spilled", "some", "none"])
def test_repeats_are_found_alike_whether_the_hashes_stay_in_memory_or_go_to_files(spill_bytes: int) -> None:
    """Hashes past ``spill_bytes`` go to temporary files by their top bits; the same repeats come back."""
    rng = np.random.default_rng(7)
    batches = [rng.integers(0, 2**64, size=size, dtype=np.uint64) for size in (1, 40, 3, 500, 7)]
    twice = [
        batches[1][5],
        batches[3][0],
        np.uint64(2**64 - 1),
        np.uint64(0),
    ]  # the top and the bottom bucket too
    batches += [np.array(twice, dtype=np.uint64), np.array([2**64 - 1, 0, 0], dtype=np.uint64)]
    hashes = KeyHashes(spill_bytes=spill_bytes)
    for batch in batches:
        hashes.add(batch.copy())
    assert hashes.repeated() == {int(value) for value in twice}
    assert hashes.repeated() == set(), "the hashes are let go of"
