"""The response exhaust end to end: seed, submit over HTTP, run the nightly job, download, parse.

Expected values come from the generator's own record of what it wrote (``seed --record``) and from
the real telemetry fixtures, never from the job's code. The CSV is parsed by the Spark-dialect
reader, whose own tests check it against hand-written bytes and the published files.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests

from airflow_provider_uci.exhaust.spark_csv import read_records
from tests.support.api import RESPONSE, ExhaustApi, new_tag, submit_body
from tests.support.services import Emulator, run_emulator

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "sunbird"
IST = ZoneInfo("Asia/Kolkata")
SCRIPT = Path(sys.executable).with_name("uci-exhaust")
START, DAYS = "2026-01-10", 3


def uci_exhaust(*args: str) -> str:
    result = subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Emulator, dict, list[dict]]]:
    """An emulator over seeded data: its summary and the generator's record of every expected row."""
    data = tmp_path_factory.mktemp("seeded")
    record = data / "record.jsonl"
    summary = json.loads(
        uci_exhaust(
            "emulator",
            "seed",
            "--data-dir",
            str(data),
            "--bots",
            "3",
            "--users",
            "40",
            "--events",
            "900",
            "--start",
            START,
            "--days",
            str(DAYS),
            "--seed",
            "11",
            "--edge-cases",
            "0.3",
            "--record",
            str(record),
            "--json",
        )
    )
    rows = [json.loads(line) for line in record.read_text(encoding="utf-8").splitlines()]
    with run_emulator(data, "--no-schedule", "--now", "2026-01-14T09:00:00+05:30") as emulator:
        yield emulator, summary, rows


def run_jobs(emulator: Emulator, dataset: str = RESPONSE) -> list[dict]:
    answer = requests.post(f"{emulator.root}/admin/run-jobs", params={"dataset": dataset}, timeout=120)
    answer.raise_for_status()
    return answer.json()["processed"]


def submit_and_run(
    emulator: Emulator, conversation_id: str, start: str, end: str, channel: str = "dev-channel"
) -> dict:
    api = ExhaustApi(emulator.api, channel=channel)
    tag = new_tag()
    job = api.submit(submit_body(tag, conversation_id=conversation_id, start=start, end=end)).json()["result"]
    run_jobs(emulator)
    return api.read(tag, job["requestId"]).json()["result"]


def download_rows(job: dict) -> tuple[list[str], list[dict], bytes]:
    (url,) = job["downloadUrls"]
    content = requests.get(url, timeout=30).content
    records = [values for _, values in read_records(io.StringIO(content.decode("utf-8"), newline=""))]
    header = records[0]
    return header, [dict(zip(header, values, strict=False)) for values in records[1:]], content


HEADER_2022_06 = [
    "Message ID",
    "Conversation ID",
    "Conversation Name",
    "Device ID",
    "Question Id",
    "Question Type",
    "Question Title",
    "Question Description",
    "Question Duration",
    "Question Score",
    "Question Max Score",
    "Question Options",
    "Question Response",
    "X Path",
    "Eof",
    "Timestamp",
    "@timestamp",
]


def test_summary_is_machine_readable_and_counts_match_the_record(seeded) -> None:
    _emulator, summary, record = seeded
    assert summary["channel"] == "dev-channel" and summary["pdata_id"] == "prod.uci.diksha"
    assert set(summary["users"]) == {"consent_true", "consent_false", "consent_unset"}
    assert sum(summary["users"].values()) == 40
    assert all(summary["users"][kind] > 0 for kind in summary["users"])
    assert len(summary["bots"]) == 3
    for bot in summary["bots"]:
        assert set(bot) >= {"id", "name", "events_by_day"}
        mine = [row for row in record if row["conversation_id"] == bot["id"]]
        by_day = Counter(
            datetime.fromisoformat(row["timestamp"].replace("Z", "+00:00")).astimezone(IST).date().isoformat()
            for row in mine
        )
        assert dict(by_day) == bot["events_by_day"]


def test_every_value_of_every_row_is_what_the_generator_wrote(seeded) -> None:
    emulator, summary, record = seeded
    last = datetime.fromisoformat(START).date().toordinal() + DAYS - 1
    end = datetime.fromordinal(last).date().isoformat()
    lone_backslashes = 0
    for bot in summary["bots"]:
        job = submit_and_run(emulator, bot["id"], START, end)
        assert job["status"] == "SUCCESS", job
        header, rows, content = download_rows(job)
        assert header == [*HEADER_2022_06[:4], "Session ID", *HEADER_2022_06[4:]]
        expected = {row["mid"]: row for row in record if row["conversation_id"] == bot["id"]}
        assert len(rows) == len(expected) == sum(bot["events_by_day"].values())
        assert {row["Message ID"] for row in rows} == set(expected)
        for row in rows:
            want = expected[row["Message ID"]]
            assert row["Conversation ID"] == bot["id"]
            assert row["Conversation Name"] == bot["name"] == want["conversation_name"]
            assert row["Device ID"] == want["device_id"]
            assert row["Session ID"] == want["session_id"]
            assert row["Question Id"] == want["question_id"]
            assert row["Question Type"] == want["question_type"]
            assert row["Question Title"] == want["title"].strip()
            assert row["Question Description"] == ""
            assert (row["Question Duration"], row["Question Score"], row["Question Max Score"]) == (
                str(want["duration"]),
                "1",
                "1",
            )
            assert json.loads(row["Question Options"]) == want["params"]
            if want["consent"]:
                assert json.loads(row["Question Response"]) == want["resvalues"]
            else:
                assert row["Question Response"] == "", "no consent: the response is blanked"
            assert row["X Path"] == want["x_path"]
            assert row["Eof"] == want["eof"]
            assert row["Timestamp"] == row["@timestamp"] == want["timestamp"]
        # JSON's escapes (\n, \\) arrive as backslashes that do not stand before a quote
        lone_backslashes += len(re.findall(rb'\\[^"\\]', content))
    assert lone_backslashes > 0, "the seed must exercise Spark's backslash rule"


def test_one_day_request_holds_exactly_that_sync_day(seeded) -> None:
    emulator, summary, _ = seeded
    bot = summary["bots"][1]
    day = sorted(bot["events_by_day"])[1]
    job = submit_and_run(emulator, bot["id"], day, day)
    _, rows, _ = download_rows(job)
    assert len(rows) == bot["events_by_day"][day]


def test_the_file_is_where_the_real_job_puts_it(seeded) -> None:
    emulator, summary, _ = seeded
    bot = summary["bots"][2]
    job = submit_and_run(emulator, bot["id"], START, START)
    stored = emulator.data_dir / "blobs" / "reports" / "uci-response-exhaust" / job["requestId"]
    run_day = "20260114"  # the IST date of the run (the emulator's clock)
    assert [path.name for path in stored.iterdir()] == [f"{bot['id']}_response_{run_day}.csv"]
    assert (
        f"/reports/uci-response-exhaust/{job['requestId']}/{bot['id']}_response_{run_day}.csv?"
        in job["downloadUrls"][0]
    )


def test_the_same_seed_gives_the_same_data(tmp_path: Path) -> None:
    outputs = []
    for name in ("one", "two"):
        data = tmp_path / name
        summary = uci_exhaust(
            "emulator",
            "seed",
            "--data-dir",
            str(data),
            "--events",
            "300",
            "--start",
            START,
            "--seed",
            "5",
            "--json",
        )
        blobs = sorted((data / "blobs").rglob("*.json.gz"))
        outputs.append(
            (
                summary.replace(str(data), ""),
                [(p.relative_to(data).as_posix(), p.read_bytes()) for p in blobs],
            )
        )
    assert outputs[0] == outputs[1]
    other = json.loads(
        uci_exhaust(
            "emulator",
            "seed",
            "--data-dir",
            str(tmp_path / "three"),
            "--events",
            "300",
            "--start",
            START,
            "--seed",
            "6",
            "--json",
        )
    )
    assert [b["id"] for b in other["bots"]] != [b["id"] for b in json.loads(outputs[0][0])["bots"]]


def test_real_telemetry_fixtures_through_the_job(tmp_path: Path) -> None:
    """The published ASSESS events give rows whose header is the 2022-06 sample's plus Session ID."""
    conversation = "fabc64a7-c9b0-4d0b-b8a6-8778757b2bb5"
    devices = ["6798fa5a-2d83-35c4-3ba6-4d5b96a944b9", "4711abba-d06f-49fb-8c63-c80d0d3df790"]
    uci_exhaust(
        "emulator",
        "seed",
        "--data-dir",
        str(tmp_path),
        "--bots",
        "0",
        "--users",
        "0",
        "--events",
        "0",
        "--channel",
        "channel-001",
        "--bot",
        f"{conversation}=UCI Fixture Bot",
        "--user",
        devices[0],
        "--user",
        f"{devices[1]}=false",
        "--telemetry",
        str(FIXTURES / "assess-telemetry-a.jsonl"),
        "--telemetry",
        str(FIXTURES / "assess-telemetry-b.jsonl"),
        "--pdata-id",
        "dev.UCI.sunbird",
    )
    with run_emulator(
        tmp_path,
        "--no-schedule",
        "--pdata-id",
        "dev.UCI.sunbird",
        "--api-key",
        "dev-key=dev-consumer",
        "--authorize",
        "dev-consumer=channel-001",
    ) as emulator:
        job = submit_and_run(emulator, conversation, "2020-06-24", "2020-06-24", channel="channel-001")
        assert job["status"] == "SUCCESS", job
        header, rows, _ = download_rows(job)
    with open(FIXTURES / "response-exhaust-2022-06-sample.csv", encoding="utf-8", newline="") as handle:
        sample_header = next(read_records(handle))[1]
    assert sample_header == HEADER_2022_06
    assert header == [*sample_header[:4], "Session ID", *sample_header[4:]]
    # a: 5 events; b: 3 of its 6 ASSESS events pass (other channel, other conversation, other pdata id fail)
    assert len(rows) == 8
    assert Counter(row["Device ID"] for row in rows) == {devices[0]: 6, devices[1]: 2}
    assert {row["Conversation Name"] for row in rows} == {"UCI Fixture Bot"}
    consenting = [row for row in rows if row["Device ID"] == devices[0]]
    assert json.loads(consenting[0]["Question Response"]) == [{"3": {"text": "24n"}}]
    assert all(row["Question Response"] == "" for row in rows if row["Device ID"] == devices[1])
    assert {row["Question Type"] for row in rows} == {"mcq"}
    assert {row["Question Duration"] for row in rows} == {"21"}
