"""What the warehouse must hold after DAG runs: the emulator's own output files, joined here.

The files are read with the Spark-dialect reader (whose tests check it against hand-written bytes
and the published files); the join to the private exhaust is written out here, not taken from the loader.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Collection
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from airflow_provider_uci.exhaust.records import RESPONSE_TABLE_COLUMNS
from airflow_provider_uci.exhaust.spark_csv import read_records
from airflow_provider_uci.exhaust.warehouse import open_warehouse
from tests.support.warehouse import fetch_normalised

IST = ZoneInfo("Asia/Kolkata")
TABLE = "uci_responses"


def expected_rows(
    data_dir: Path, bots: Collection[str], days: Collection[str], zip_key: str
) -> dict[tuple, dict]:
    """Every response row the emulator wrote for ``bots`` on ``days`` (IST), with its user's phone, by key."""
    reports = data_dir / "blobs" / "reports"
    users: dict[tuple[str, str], str | None] = {}
    for archive in (reports / "uci-private-exhaust").rglob("*.zip"):
        with zipfile.ZipFile(archive) as opened:
            text = opened.read(opened.namelist()[0], pwd=zip_key.encode()).decode("utf-8")
        records = [values for _, values in read_records(io.StringIO(text, newline=""))]
        for conversation, _, decrypted, _, device in records[1:]:
            users[(conversation, device)] = None if decrypted == device else decrypted
    rows: dict[tuple, dict] = {}
    for path in (reports / "uci-response-exhaust").rglob("*.csv"):
        with open(path, encoding="utf-8", newline="") as handle:
            records = [values for _, values in read_records(handle)]
        header = records[0]
        for values in records[1:]:
            row = dict(zip(header, values, strict=False))
            day = (
                datetime.fromisoformat(row["@timestamp"].replace("Z", "+00:00"))
                .astimezone(IST)
                .date()
                .isoformat()
            )
            if row["Conversation ID"] not in bots or day not in days:
                continue
            row["phone"] = users.get((row["Conversation ID"], row["Device ID"]))
            rows[(row["Conversation ID"], row["Message ID"], row["Device ID"], row["Question Id"])] = row
    return rows


def table_rows(warehouse_url: str, bots: Collection[str] | None = None) -> dict[tuple, dict]:
    """The warehouse's response rows (of ``bots``, if given), by key; a key held twice fails."""
    with open_warehouse(warehouse_url) as warehouse:
        fetched = [row for row in fetch_normalised(warehouse, TABLE) if bots is None or row[0] in bots]
    rows = {tuple(row[:4]): dict(zip(RESPONSE_TABLE_COLUMNS, row, strict=False)) for row in fetched}
    assert len(rows) == len(fetched), f"{len(fetched) - len(rows)} answer(s) held twice"
    return rows


def assert_table_matches(
    warehouse_url: str,
    data_dir: Path,
    bots: Collection[str],
    days: Collection[str],
    zip_key: str,
    expected_count: int,
) -> dict[tuple, dict]:
    """The table holds exactly the bots' expected rows, each with its values and its user's phone (rows of
    other bots, loaded by other runs into the same warehouse, are not looked at)."""
    want = expected_rows(data_dir, bots, days, zip_key)
    assert len(want) == expected_count, "the emulator wrote every seeded event of the bots' days"
    got = table_rows(warehouse_url, bots)
    assert set(got) == set(want), (
        f"{len(set(want) - set(got))} row(s) missing, {len(set(got) - set(want))} unexpected"
    )
    for key, row in got.items():
        source = want[key]
        assert row["question_title"] == source["Question Title"]
        assert row["question_response"] == source["Question Response"]
        assert row["question_options"] == source["Question Options"]
        assert row["session_id"] == source["Session ID"]
        assert row["user_phone"] == source["phone"], "each answer carries its user's phone (or none)"
    assert any(row["user_phone"] for row in got.values()), "some users consented to share their phone"
    return got
