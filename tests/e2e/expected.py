"""What the warehouse must hold after a run: the emulator's own output files for one bot, joined here.

The files are read with the Spark-dialect reader (whose tests check it against hand-written bytes
and the published files); the join to the private exhaust is written out here, not taken from the loader.
"""

from __future__ import annotations

import io
import zipfile
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from airflow_provider_uci.exhaust.records import RESPONSE_TABLE_COLUMNS
from airflow_provider_uci.exhaust.spark_csv import read_records
from airflow_provider_uci.exhaust.warehouse import open_warehouse

IST = ZoneInfo("Asia/Kolkata")


def expected_rows(data_dir: Path, bot: str, days: list[str], zip_key: str) -> dict[tuple, dict]:
    """Every response row the emulator wrote for ``bot`` on ``days`` (IST), with its user's phone, by key."""
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
            row = dict(zip(header, values))
            day = datetime.fromisoformat(row["@timestamp"].replace("Z", "+00:00")).astimezone(IST).date().isoformat()
            if row["Conversation ID"] != bot or day not in days:
                continue
            row["phone"] = users.get((row["Conversation ID"], row["Device ID"]))
            rows[(row["Conversation ID"], row["Message ID"], row["Device ID"], row["Question Id"])] = row
    return rows


def table_rows(warehouse_url: str, bot: str | None = None) -> dict[tuple, dict]:
    """The warehouse's ``uci_responses`` rows (of one bot, if given), by key."""
    warehouse = open_warehouse(warehouse_url)
    try:
        rows = warehouse.fetch_normalised("uci_responses")
    finally:
        warehouse.close()
    return {tuple(row[:4]): dict(zip(RESPONSE_TABLE_COLUMNS, row)) for row in rows if bot is None or row[0] == bot}


def assert_table_matches(warehouse_url: str, data_dir: Path, bot: str, days: list[str], zip_key: str,
                         expected_count: int) -> int:
    """The table holds exactly the bot's expected rows, each with its values and its user's phone."""
    want = expected_rows(data_dir, bot, days, zip_key)
    assert len(want) == expected_count, "the emulator wrote every seeded event of the bot's days"
    got = table_rows(warehouse_url, bot)
    assert set(got) == set(want), (f"{len(set(want) - set(got))} row(s) missing, "
                                   f"{len(set(got) - set(want))} unexpected")
    for key, row in got.items():
        source = want[key]
        assert row["question_title"] == source["Question Title"]
        assert row["question_response"] == source["Question Response"]
        assert row["question_options"] == source["Question Options"]
        assert row["session_id"] == source["Session ID"]
        assert row["user_phone"] == source["phone"], "each answer carries its user's phone (or none)"
    assert any(row["user_phone"] for row in got.values()), "some users consented to share their phone"
    return len(got)
