"""Hostile input costs little: a zip bomb and a value of hundreds of megabytes fail fast, in bounded
memory, with a message that says what and where, and leave the warehouse as it was.

Each load runs as ``uci-exhaust load`` in a child process whose peak RSS is read by a small wrapper
(``tests/benchmarks/hostile_input.py`` prints the same figures for the full-size files); the bound
checked here is loose (the targets are tighter), so that a loaded machine cannot make it flaky.
"""

from __future__ import annotations

import io
import os
import sqlite3
import zipfile
from pathlib import Path

import pytest

from airflow_provider_uci.exhaust.load import load_exhaust
from airflow_provider_uci.exhaust.private_zip import UNZIP_FLOOR, ZipTooLarge, open_private_zip, unzip_limit
from airflow_provider_uci.exhaust.spark_csv import RECORD_LIMIT, SparkCsvError, read_records
from tests.benchmarks.hostile_input import (
    TARA_PRIVATE,
    TARA_RESPONSE,
    bomb_zip,
    long_field_csv,
    measure,
    table_state,
    uci_exhaust,
)

MIB = 1 << 20
RSS_BOUND_MB = 400


@pytest.fixture
def warehouse(tmp_path: Path) -> tuple[str, Path]:
    """A SQLite warehouse that already holds the Tara sample."""
    database = tmp_path / "warehouse.db"
    url = f"sqlite:///{database}"
    load_exhaust(response_csv=TARA_RESPONSE, private=TARA_PRIVATE, warehouse_url=url)
    return url, database


def uci_load(tmp_path: Path, url: str, *files: str) -> dict[str, object]:
    scratch = tmp_path / "tmp"
    scratch.mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(scratch)}
    env.pop("UCI_EXHAUST_ENCRYPTION_KEY", None)
    result = measure(
        [*uci_exhaust(), "load", *files, "--warehouse", url, "--rejects", str(tmp_path / "rejects.jsonl")],
        env=env,
    )
    result["scratch_left"] = sorted(path.name for path in scratch.iterdir())
    return result


def test_a_zip_bomb_is_refused_before_it_is_unzipped(warehouse: tuple[str, Path], tmp_path: Path) -> None:
    url, database = warehouse
    before = table_state(database)
    bomb = tmp_path / "users.zip"
    size = bomb_zip(bomb, 200 * MIB)  # 200 MiB in about 200 KB: over 100 times the zip's size
    limit = unzip_limit(size)
    assert size < 400_000 and limit == 100 * size

    result = uci_load(tmp_path, url, "--response", str(TARA_RESPONSE), "--private", str(bomb))

    assert result["returncode"] == 2, result["stderr"]
    assert str(result["stderr"]).startswith(
        f"uci-exhaust: error: users.zip: its entry says it unzips to "
        f"{200 * MIB + 87} bytes, more than the limit of {limit}"
    )
    assert "refused before unzipping it" in str(result["stderr"])
    assert str(result["stderr"]).count("\n") == 1 and "Traceback" not in str(result["stderr"])
    assert result["peak_rss_mb"] < RSS_BOUND_MB
    assert result["scratch_left"] == []
    assert table_state(database) == before


def test_a_zip_bomb_over_a_configured_limit_is_refused(warehouse: tuple[str, Path], tmp_path: Path) -> None:
    url, database = warehouse
    before = table_state(database)
    bomb = tmp_path / "users.zip"
    bomb_zip(bomb, 3 * MIB)

    result = uci_load(
        tmp_path, url, "--response", str(TARA_RESPONSE), "--private", str(bomb), "--max-unzipped-mb", "2"
    )

    assert result["returncode"] == 2
    assert f"more than the limit of {2 * MIB} (max_unzipped_bytes)" in str(result["stderr"])
    assert result["scratch_left"] == []
    assert table_state(database) == before


def test_a_zip_entry_that_understates_its_size_is_unzipped_no_further_and_refused(tmp_path: Path) -> None:
    bomb = tmp_path / "users.zip"
    bomb_zip(bomb, 100 * MIB, declared=1024)
    with zipfile.ZipFile(bomb) as archive:
        assert archive.infolist()[0].file_size == 1024

    with pytest.raises(ValueError, match=r"^users.zip: cannot be read \(BadZipFile: Bad CRC-32"):
        open_private_zip(bomb, None, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == [], "no partial file is left"


def test_an_entry_within_the_limit_unzips_and_one_past_it_does_not(tmp_path: Path) -> None:
    bomb = tmp_path / "users.zip"
    bomb_zip(bomb, 5 * MIB)
    with pytest.raises(ZipTooLarge, match="its entry says it unzips to"):
        open_private_zip(bomb, None, tmp_path / "out", max_bytes=MIB)
    assert not (tmp_path / "out").exists(), "refused before anything is made"
    assert open_private_zip(bomb, None, tmp_path / "out", max_bytes=6 * MIB).stat().st_size == 5 * MIB + 87
    with pytest.raises(ValueError, match="max_unzipped_bytes: must be at least 1"):
        open_private_zip(bomb, None, tmp_path / "out", max_bytes=0)


def test_the_default_unzip_limit_follows_the_zips_size() -> None:
    assert unzip_limit(1000) == UNZIP_FLOOR == MIB  # a few users: no 64 MiB floor for a tiny zip to fill
    assert unzip_limit(10 * MIB) == 1000 * MIB
    assert unzip_limit(1 << 30) == 4096 * MIB


@pytest.mark.parametrize(
    ("field_mib", "newline_every", "expected"),
    [
        (512, 0, f"a record longer than {RECORD_LIMIT} characters"),
        (40, 100, "field larger than field limit (131072)"),
    ],
    ids=["512 MiB on one line", "40 MiB over many lines"],
)
def test_a_huge_value_fails_the_load_fast_in_bounded_memory(
    warehouse: tuple[str, Path], tmp_path: Path, field_mib: int, newline_every: int, expected: str
) -> None:
    url, database = warehouse
    before = table_state(database)
    response = tmp_path / "response.csv"
    long_field_csv(response, field_mib * MIB, newline_every=newline_every)

    result = uci_load(tmp_path, url, "--response", str(response), "--private", str(TARA_PRIVATE))

    assert result["returncode"] == 2, result["stderr"]
    stderr = str(result["stderr"])
    assert stderr.startswith("uci-exhaust: error: response.csv: line 3")
    assert expected in stderr and stderr.count("\n") == 1
    assert result["peak_rss_mb"] < RSS_BOUND_MB
    assert table_state(database) == before


def test_the_record_reader_refuses_a_record_of_many_lines_and_values_past_the_limit() -> None:
    """Short values over many lines: no single value is too long, the record is."""
    record = '"a\n",' * (
        RECORD_LIMIT // 4
    )  # line 2 is '"a', each after it '","a': 3, then 5 characters a line
    too_long_at = (RECORD_LIMIT - 3) // 5 + 3
    with pytest.raises(
        SparkCsvError, match=rf"^line {too_long_at}: a record longer than {RECORD_LIMIT} characters"
    ):
        for _ in read_records(io.StringIO("h1,h2\n" + record + "\n", newline="")):
            pass


def test_a_long_value_is_refused_by_the_record_reader_too(tmp_path: Path) -> None:
    response = tmp_path / "response.csv"
    long_field_csv(response, 200_000)
    with pytest.raises(ValueError, match=r"^response.csv: line 3: field larger than field limit"):
        load_exhaust(
            response_csv=response,
            private=TARA_PRIVATE,
            warehouse_url=f"sqlite:///{tmp_path}/w.db",
            fast=False,
        )
    with sqlite3.connect(tmp_path / "w.db") as conn:
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone() == (0,)
    conn.close()
