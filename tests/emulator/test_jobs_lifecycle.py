"""The nightly exhaust jobs end to end, against real emulator processes (docs/service-contract.md §2-§4).

Every test seeds a data dir with ``uci-exhaust emulator seed``, submits through the API, runs the jobs
(``POST /admin/run-jobs``, the ``run-jobs`` command, or the schedule) and reads the outcome through the
API and the files in blob storage. Expected values come from docs/service-contract.md and from the seed's own
summary, not from the emulator's code: identities are decrypted here with AES-ECB, CSVs are parsed with
the client's Spark-dialect reader.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from airflow_provider_uci.emulator.crypto import DEFAULT_ENCRYPTION_SECRET
from airflow_provider_uci.exhaust.spark_csv import read_records
from tests.support.api import PRIVATE, RESPONSE, ExhaustApi, new_tag, submit_body
from tests.support.services import AZURITE_ACCOUNT, Azurite, Emulator, run_emulator

SCRIPT = Path(sys.executable).with_name("uci-exhaust")
IST = ZoneInfo("Asia/Kolkata")
CHANNEL = "dev-channel"
OTHER_CHANNEL = "other-channel"
ACCOUNT = "uciemulator"  # the local storage account of stored URLs

#: 20:00 UTC on 10 March is 01:30 IST on 11 March: the output files carry the IST date.
NOW = "2026-03-10T20:00:00+00:00"
RUN_DAY = "20260311"
UTC_DAY = "20260310"

#: The main bot, with two users of known consent among generated ones; telemetry on 8 and 9 March.
ALPHA = "a1a1a1a1-0000-4000-8000-00000000000a"
ALPHA_NAME = "Alpha Bot"
AGREES = "a9a9a9a9-0000-4000-8000-0000000000a1"
REFUSES = "a9a9a9a9-0000-4000-8000-0000000000a2"
START, END = "2026-03-08", "2026-03-09"
#: A bot whose only user has a ``users.data`` that is not JSON; telemetry on 5 March.
BROKEN = "b2b2b2b2-0000-4000-8000-00000000000b"
BROKEN_USER = "b9b9b9b9-0000-4000-8000-0000000000b1"
BROKEN_DAY = "2026-03-05"
#: A bot with no registered users and no telemetry.
LONELY = "c3c3c3c3-0000-4000-8000-00000000000c"

RESPONSE_COLUMNS = [
    "Message ID",
    "Conversation ID",
    "Conversation Name",
    "Device ID",
    "Session ID",
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
PRIVATE_COLUMNS = [
    "Conversation ID",
    "Conversation Name",
    "Decrypted Device ID",
    "Encrypted Device ID",
    "Device UUID",
]

#: Two consumers: the default one on dev-channel, and one that may use another channel.
TWO_CONSUMERS = (
    "--api-key",
    "dev-key=dev-consumer",
    "--api-key",
    "other-key=other-consumer",
    "--authorize",
    "dev-consumer=dev-channel",
    "--authorize",
    f"other-consumer={OTHER_CHANNEL}",
)


# -- the command line -----------------------------------------------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``uci-exhaust`` (the console script next to this interpreter) to its end."""
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "airflow_provider_uci.cli"]
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env=dict(os.environ),
    )


def seed(data_dir: Path, *args: str) -> dict[str, Any]:
    """``uci-exhaust emulator seed --data-dir DIR --json ARGS``; return its summary."""
    done = cli("emulator", "seed", "--data-dir", str(data_dir), "--json", "--now", NOW, *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def cli_run_jobs(data_dir: Path, *args: str) -> list[dict[str, Any]]:
    """``uci-exhaust emulator run-jobs --data-dir DIR --json ARGS``; return the outcomes."""
    done = cli("emulator", "run-jobs", "--data-dir", str(data_dir), "--json", "--now", NOW, *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def rows_for(summary: dict[str, Any], bot_id: str) -> int:
    """How many response rows the seed made for ``bot_id`` (over every day it wrote)."""
    bot = next(b for b in summary["bots"] if b["id"] == bot_id)
    return sum(bot["events_by_day"].values())


# -- HTTP -----------------------------------------------------------------------------------------


def run_jobs(emulator: Emulator, dataset: str | None = None) -> list[dict[str, Any]]:
    """``POST /admin/run-jobs[?dataset=]``; return the outcomes."""
    params = {"dataset": dataset} if dataset else {}
    answer = requests.post(f"{emulator.root}/admin/run-jobs", params=params, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()["processed"]


def outcome_of(outcomes: list[dict[str, Any]], request_id: str) -> dict[str, Any]:
    found = [o for o in outcomes if o["requestId"] == request_id]
    assert len(found) == 1, outcomes
    return found[0]


def submit(api: ExhaustApi, tag: str, **kwargs: Any) -> dict[str, Any]:
    answer = api.submit(submit_body(tag, **kwargs))
    assert answer.status_code == 200, answer.text
    return answer.json()["result"]


def submit_raw(api: ExhaustApi, body: dict[str, Any]) -> dict[str, Any]:
    answer = api.submit(body)
    assert answer.status_code == 200, answer.text
    return answer.json()["result"]


def read(api: ExhaustApi, tag: str, request_id: str) -> dict[str, Any]:
    answer = api.read(tag, request_id)
    assert answer.status_code == 200, answer.text
    result = answer.json()["result"]
    assert result is not None, answer.text
    return result


def wait_for_status(api: ExhaustApi, tag: str, request_id: str, timeout: float) -> dict[str, Any]:
    """Read until the job leaves SUBMITTED, or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        job = read(api, tag, request_id)
        if job["status"] != "SUBMITTED" or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


def download(url: str) -> bytes:
    answer = requests.get(url, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.content


def ist_ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=IST).timestamp() * 1000)


# -- files ----------------------------------------------------------------------------------------


def report_dir(data_dir: Path, dataset: str, request_id: str) -> Path:
    return data_dir / "blobs" / "reports" / dataset / request_id


def parse_csv(data: bytes) -> tuple[list[str | None], list[dict[str, str | None]]]:
    """Header and rows (by header name) of a Spark-dialect CSV."""
    records = [values for _, values in read_records(io.StringIO(data.decode("utf-8"), newline=""))]
    header, rows = records[0], records[1:]
    return header, [dict(zip(header, row, strict=True)) for row in rows]  # type: ignore[arg-type]


def aes_ecb_decrypt(encrypted_b64: str, secret_b64: str) -> str:
    """UCI's AES/ECB/PKCS5Padding, base64 in and out of the key and the text."""
    decryptor = Cipher(algorithms.AES(base64.b64decode(secret_b64)), modes.ECB()).decryptor()
    padded = decryptor.update(base64.b64decode(encrypted_b64)) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return (unpadder.update(padded) + unpadder.finalize()).decode("utf-8")


def uci_query(data_dir: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(data_dir / "uci.sqlite3") as conn:
        return conn.execute(sql, params).fetchall()


# -- the shared, seeded emulator ------------------------------------------------------------------


@dataclass
class Seeded:
    """An emulator over a seeded data dir, with what the seed reported."""

    emulator: Emulator
    summary: dict[str, Any]

    @property
    def data_dir(self) -> Path:
        return self.emulator.data_dir

    @property
    def api(self) -> ExhaustApi:
        return ExhaustApi(self.emulator.api)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A data dir holding the main bot: 4 generated users plus one consenting and one refusing user."""
    data_dir = tmp_path_factory.mktemp("template")
    summary = seed(
        data_dir,
        "--bots",
        "0",
        "--users",
        "4",
        "--events",
        "200",
        "--days",
        "2",
        "--start",
        START,
        "--seed",
        "11",
        "--bot",
        f"{ALPHA}={ALPHA_NAME}",
        "--user",
        f"{AGREES}=true",
        "--user",
        f"{REFUSES}=false",
    )
    assert rows_for(summary, ALPHA) > 0
    return data_dir, summary


def copy_of(template: tuple[Path, dict[str, Any]], target: Path) -> Path:
    shutil.copytree(template[0], target)
    return target


@pytest.fixture(scope="module")
def seeded(
    template: tuple[Path, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Seeded]:
    """The template plus a bot with a broken user and a bot with no users, served without a schedule."""
    data_dir = copy_of(template, tmp_path_factory.mktemp("shared") / "data")
    seed(
        data_dir,
        "--bots",
        "0",
        "--users",
        "0",
        "--events",
        "30",
        "--days",
        "1",
        "--start",
        BROKEN_DAY,
        "--seed",
        "12",
        "--bot",
        f"{BROKEN}=Broken Bot",
        "--user",
        f"{BROKEN_USER}=true",
    )
    with sqlite3.connect(data_dir / "uci.sqlite3") as conn:
        conn.execute("UPDATE users SET data = ? WHERE id = ?", ('{"device": {"consent": tru', BROKEN_USER))
        conn.execute(
            'INSERT INTO bot (id, name, "ownerOrgID", "startDate", "endDate") VALUES (?, ?, ?, NULL, NULL)',
            (LONELY, "Lonely Bot", CHANNEL),
        )
    with run_emulator(data_dir, "--no-schedule", "--now", NOW, *TWO_CONSUMERS) as running:
        yield Seeded(running, template[1])


# -- failure messages (docs/service-contract.md §2.4) ---------------------------------------------


def _no_conversation(dataset: str) -> Any:
    def make(tag: str) -> dict[str, Any]:
        body = submit_body(tag, dataset=dataset, conversation_id=ALPHA, start=START, end=END)
        del body["request"]["datasetConfig"]["conversationId"]
        return body

    return make


FAILURES = {
    # case: (dataset, channel, body maker, message, whole message or prefix)
    "no conversationId key": (
        RESPONSE,
        CHANNEL,
        _no_conversation(RESPONSE),
        "Request should have conversationId",
        True,
    ),
    "no conversationId key, private": (
        PRIVATE,
        CHANNEL,
        _no_conversation(PRIVATE),
        "Request should have conversationId",
        True,
    ),
    "conversation not in the bot table": (
        RESPONSE,
        CHANNEL,
        lambda tag: submit_body(tag, conversation_id=str(uuid.uuid4()), start=START, end=END),
        "No data found for conversation in DB",
        True,
    ),
    "conversation not in the bot table, private": (
        PRIVATE,
        CHANNEL,
        lambda tag: submit_body(tag, dataset=PRIVATE, conversation_id=str(uuid.uuid4())),
        "No data found for conversation in DB",
        True,
    ),
    "real bot under another channel": (
        RESPONSE,
        OTHER_CHANNEL,
        lambda tag: submit_body(tag, conversation_id=ALPHA, start=START, end=END),
        "No data found for conversation in DB",
        True,
    ),
    "real bot under another channel, private": (
        PRIVATE,
        OTHER_CHANNEL,
        lambda tag: submit_body(tag, dataset=PRIVATE, conversation_id=ALPHA),
        "No data found for conversation in DB",
        True,
    ),
    "date range without telemetry": (
        RESPONSE,
        CHANNEL,
        lambda tag: submit_body(tag, conversation_id=ALPHA, start="2026-02-01", end="2026-02-02"),
        "No data found",
        True,
    ),
    "start after end": (
        RESPONSE,
        CHANNEL,
        lambda tag: submit_body(tag, conversation_id=ALPHA, start=END, end=START),
        "No data found",
        True,
    ),
    "bot without telemetry": (
        RESPONSE,
        CHANNEL,
        lambda tag: submit_body(tag, conversation_id=LONELY, start=START, end=END),
        "No data found",
        True,
    ),
    "bot without registered users, private": (
        PRIVATE,
        CHANNEL,
        lambda tag: submit_body(tag, dataset=PRIVATE, conversation_id=LONELY),
        "No data found",
        True,
    ),
    "badly formatted date": (
        RESPONSE,
        CHANNEL,
        lambda tag: submit_body(tag, conversation_id=ALPHA, start="08/03/2026", end=END),
        "Invalid request",
        True,
    ),
    "conversationId not a UUID": (
        RESPONSE,
        CHANNEL,
        lambda tag: submit_body(tag, conversation_id="alpha-bot", start=START, end=END),
        "Invalid request",
        True,
    ),
    "conversationId not a UUID, private": (
        PRIVATE,
        CHANNEL,
        lambda tag: submit_body(tag, dataset=PRIVATE, conversation_id="alpha-bot"),
        "Invalid request",
        True,
    ),
    "users.data not JSON": (
        RESPONSE,
        CHANNEL,
        lambda tag: submit_body(tag, conversation_id=BROKEN, start=BROKEN_DAY, end=BROKEN_DAY),
        "Request processing failed with ",
        False,
    ),
    "users.data not JSON, private": (
        PRIVATE,
        CHANNEL,
        lambda tag: submit_body(tag, dataset=PRIVATE, conversation_id=BROKEN),
        "Request processing failed with ",
        False,
    ),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_each_failure_message_comes_from_its_cause(seeded: Seeded, case: str) -> None:
    dataset, channel, make_body, message, whole = FAILURES[case]
    key = "dev-key" if channel == CHANNEL else "other-key"
    api, tag = ExhaustApi(seeded.emulator.api, key=key, channel=channel), new_tag()
    rid = submit_raw(api, make_body(tag))["requestId"]

    outcome = outcome_of(run_jobs(seeded.emulator, dataset), rid)
    job = read(api, tag, rid)

    assert outcome["status"] == "FAILED"
    assert job["status"] == "FAILED"
    if whole:
        assert job["statusMessage"] == message
    else:
        assert job["statusMessage"].startswith(message) and len(job["statusMessage"]) > len(message)
    assert outcome["statusMessage"] == job["statusMessage"]
    assert job["attempts"] == 1
    assert job["downloadUrls"] == []
    assert job["jobStats"]["executionTime"] == 0
    assert job["jobStats"]["dtJobCompleted"] >= job["jobStats"]["dtJobSubmitted"]
    assert job["lastUpdated"] == job["jobStats"]["dtJobCompleted"]
    assert not report_dir(seeded.data_dir, dataset, rid).exists()


# -- retries and attempts (docs/service-contract.md §2.1, §2.2, §4.4) -----------------------------


def test_failed_job_is_retried_at_each_run_until_three_attempts(seeded: Seeded) -> None:
    api, tag = seeded.api, new_tag()
    body = submit_body(tag, conversation_id=str(uuid.uuid4()), start=START, end=END)
    rid = submit_raw(api, body)["requestId"]

    attempts = []
    for _ in range(4):
        outcomes = run_jobs(seeded.emulator)
        job = read(api, tag, rid)
        assert job["status"] == "FAILED"
        assert job["statusMessage"] == "No data found for conversation in DB"
        attempts.append(job["attempts"])
    assert attempts == [1, 2, 3, 3]
    assert rid not in {o["requestId"] for o in outcomes}  # the fourth run did not pick it

    again = submit_raw(api, body)
    assert again["requestId"] == rid
    assert again["status"] == "SUBMITTED"
    assert again["attempts"] == 3
    assert again["statusMessage"] == "No data found for conversation in DB"
    assert again["jobStats"]["dtJobCompleted"] is None  # not processed, while SUBMITTED
    assert again["lastUpdated"] == job["jobStats"]["dtJobCompleted"] < again["jobStats"]["dtJobSubmitted"]
    for _ in range(2):
        assert rid not in {o["requestId"] for o in run_jobs(seeded.emulator)}
        job = read(api, tag, rid)
        assert (job["status"], job["attempts"]) == ("SUBMITTED", 3)


def test_status_message_is_cut_to_300_characters(seeded: Seeded) -> None:
    api = seeded.api
    long_tag, exact_tag = new_tag(), new_tag()
    long_rid = submit(api, long_tag, conversation_id=ALPHA)["requestId"]
    exact_rid = submit(api, exact_tag, conversation_id=ALPHA)["requestId"]
    long_message = "Request processing failed with " + "".join(f"[{n}] column missing; " for n in range(40))
    exact_message = ("Request processing failed with " + "x" * 300)[:300]

    for tag, rid, message in ((long_tag, long_rid, long_message), (exact_tag, exact_rid, exact_message)):
        answer = requests.post(
            f"{seeded.emulator.root}/admin/jobs/{rid}/fail",
            params={"tag": f"{tag}:{CHANNEL}"},
            json={"message": message},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text

    cut = read(api, long_tag, long_rid)["statusMessage"]
    assert len(long_message) > 300
    assert len(cut) == 300 and cut.endswith("...")
    assert cut == long_message[:297] + "..."
    assert read(api, exact_tag, exact_rid)["statusMessage"] == exact_message


def test_unknown_dataset_stays_submitted_through_every_run(seeded: Seeded) -> None:
    api, tag = seeded.api, new_tag()
    rid = submit(api, tag, dataset="uci-unknown-exhaust", conversation_id=ALPHA, start=START, end=END)[
        "requestId"
    ]
    for _ in range(2):
        assert rid not in {o["requestId"] for o in run_jobs(seeded.emulator)}
    assert rid not in {o["requestId"] for o in cli_run_jobs(seeded.data_dir)}
    job = read(api, tag, rid)
    assert job["status"] == "SUBMITTED"
    assert job["attempts"] == 0
    assert "statusMessage" not in job
    assert job["jobStats"]["dtJobCompleted"] is None


# -- success (docs/service-contract.md §2.2, §3.3, §3.5, §4.5) ------------------------------------


def test_response_success_writes_the_csv_at_its_path(seeded: Seeded) -> None:
    api, tag = seeded.api, new_tag()
    submitted = submit(api, tag, conversation_id=ALPHA, start=START, end=END)
    rid = submitted["requestId"]

    outcome = outcome_of(run_jobs(seeded.emulator, RESPONSE), rid)
    job = read(api, tag, rid)

    name = f"{ALPHA}_response_{RUN_DAY}.csv"
    key = f"uci-response-exhaust/{rid}/{name}"
    assert outcome["status"] == "SUCCESS"
    assert outcome["downloadUrls"] == [f"wasb://reports@{ACCOUNT}.blob.core.windows.net/{key}"]
    assert job["status"] == "SUCCESS"
    assert job["attempts"] == 0
    assert job["statusMessage"] == ""
    stats = job["jobStats"]
    assert isinstance(stats["executionTime"], int) and stats["executionTime"] >= 0
    assert stats["dtJobCompleted"] >= stats["dtJobSubmitted"] == submitted["jobStats"]["dtJobSubmitted"]
    assert job["lastUpdated"] == stats["dtJobCompleted"]

    stored = report_dir(seeded.data_dir, RESPONSE, rid)
    assert [p.name for p in stored.iterdir()] == [name]
    assert UTC_DAY not in name
    assert len(job["downloadUrls"]) == 1
    data = download(job["downloadUrls"][0])
    assert data == (stored / name).read_bytes()
    header, rows = parse_csv(data)
    assert header == RESPONSE_COLUMNS
    assert len(rows) == rows_for(seeded.summary, ALPHA)
    assert {(r["Conversation ID"], r["Conversation Name"]) for r in rows} == {(ALPHA, ALPHA_NAME)}
    registered = {
        user
        for (user,) in uci_query(
            seeded.data_dir, "SELECT users_id FROM user_registrations WHERE applications_id = ?", ALPHA
        )
    }
    assert {r["Device ID"] for r in rows} <= registered


def test_response_range_is_by_sync_day_inclusive(seeded: Seeded) -> None:
    api, tag = seeded.api, new_tag()
    rid = submit(api, tag, conversation_id=ALPHA, start=START, end=START)["requestId"]
    run_jobs(seeded.emulator, RESPONSE)
    job = read(api, tag, rid)
    assert job["status"] == "SUCCESS"
    _, rows = parse_csv(download(job["downloadUrls"][0]))
    bot = next(b for b in seeded.summary["bots"] if b["id"] == ALPHA)
    assert len(rows) == bot["events_by_day"][START] < rows_for(seeded.summary, ALPHA)


def test_response_without_dates_reads_the_bots_and_ignores_an_encryption_key(seeded: Seeded) -> None:
    api, tag = seeded.api, new_tag()
    body = submit_body(tag, conversation_id=ALPHA, encryption_key="not-used-by-this-job")
    del body["request"]["datasetConfig"]["startDate"], body["request"]["datasetConfig"]["endDate"]
    rid = submit_raw(api, body)["requestId"]
    outcome = outcome_of(run_jobs(seeded.emulator, RESPONSE), rid)
    name = f"{ALPHA}_response_{RUN_DAY}.csv"
    assert outcome["downloadUrls"] == [
        f"wasb://reports@{ACCOUNT}.blob.core.windows.net/uci-response-exhaust/{rid}/{name}"
    ]
    assert [p.name for p in report_dir(seeded.data_dir, RESPONSE, rid).iterdir()] == [name]
    _, rows = parse_csv(download(read(api, tag, rid)["downloadUrls"][0]))
    assert len(rows) == rows_for(seeded.summary, ALPHA)  # the bot's startDate..endDate is the seed's range


def test_success_after_a_failure_keeps_the_old_message(seeded: Seeded) -> None:
    api, tag = seeded.api, new_tag()
    late_bot, late_user = str(uuid.uuid4()), str(uuid.uuid4())
    rid = submit(api, tag, dataset=PRIVATE, conversation_id=late_bot)["requestId"]
    run_jobs(seeded.emulator, PRIVATE)
    failed = read(api, tag, rid)
    assert (failed["status"], failed["attempts"]) == ("FAILED", 1)
    assert failed["statusMessage"] == "No data found for conversation in DB"

    seed(
        seeded.data_dir,
        "--bots",
        "0",
        "--users",
        "0",
        "--events",
        "0",
        "--seed",
        "13",
        "--bot",
        f"{late_bot}=Late Bot",
        "--user",
        f"{late_user}=true",
    )
    outcome = outcome_of(run_jobs(seeded.emulator, PRIVATE), rid)
    job = read(api, tag, rid)

    assert outcome["status"] == "SUCCESS"
    assert job["status"] == "SUCCESS"
    assert job["attempts"] == 1
    assert job["statusMessage"] == "No data found for conversation in DB"
    assert job["jobStats"]["dtJobCompleted"] > failed["jobStats"]["dtJobCompleted"]
    assert len(job["downloadUrls"]) == 1
    with zipfile.ZipFile(io.BytesIO(download(job["downloadUrls"][0]))) as archive:
        _, rows = parse_csv(archive.read(f"{late_bot}_userinfo_{RUN_DAY}.csv"))
    assert [(r["Conversation ID"], r["Conversation Name"], r["Device UUID"]) for r in rows] == [
        (late_bot, "Late Bot", late_user)
    ]


# -- dataset selection ----------------------------------------------------------------------------


def test_run_jobs_dataset_runs_only_that_dataset(seeded: Seeded) -> None:
    api, tag = seeded.api, new_tag()
    response_rid = submit(api, tag, conversation_id=ALPHA, start=START, end=END)["requestId"]
    private_rid = submit(api, tag, dataset=PRIVATE, conversation_id=ALPHA)["requestId"]

    outcomes = cli_run_jobs(seeded.data_dir, "--dataset", PRIVATE)
    assert outcome_of(outcomes, private_rid)["status"] == "SUCCESS"
    assert {o["dataset"] for o in outcomes} == {PRIVATE}
    assert read(api, tag, private_rid)["status"] == "SUCCESS"
    assert read(api, tag, response_rid)["status"] == "SUBMITTED"

    outcomes = run_jobs(seeded.emulator, RESPONSE)
    assert outcome_of(outcomes, response_rid)["status"] == "SUCCESS"
    assert {o["dataset"] for o in outcomes} == {RESPONSE}
    assert read(api, tag, response_rid)["status"] == "SUCCESS"


def test_a_bad_dataset_is_refused_by_the_route_and_the_command(seeded: Seeded) -> None:
    api, tag = seeded.api, new_tag()
    rid = submit(api, tag, conversation_id=ALPHA, start=START, end=END)["requestId"]
    answer = requests.post(
        f"{seeded.emulator.root}/admin/run-jobs", params={"dataset": "uci-nothing"}, timeout=10
    )
    assert answer.status_code == 400
    body = answer.json()
    assert body["responseCode"] == "CLIENT_ERROR" and body["params"]["errmsg"].startswith(
        "dataset: must be one of"
    )
    assert "uci-nothing" in body["params"]["errmsg"]
    done = cli("emulator", "run-jobs", "--data-dir", str(seeded.data_dir), "--dataset", "uci-nothing")
    assert done.returncode == 2
    assert "--dataset" in done.stderr
    assert read(api, tag, rid)["status"] == "SUBMITTED"  # nothing ran


# -- consent (docs/service-contract.md §3.2, §3.4) ------------------------------------------------


def test_consent_hides_the_answer_and_the_phone_number(seeded: Seeded) -> None:
    api, tag = seeded.api, new_tag()
    response_rid = submit(api, tag, conversation_id=ALPHA, start=START, end=END)["requestId"]
    private_rid = submit(api, tag, dataset=PRIVATE, conversation_id=ALPHA)["requestId"]
    run_jobs(seeded.emulator)

    _, rows = parse_csv(download(read(api, tag, response_rid)["downloadUrls"][0]))
    refused = [r for r in rows if r["Device ID"] == REFUSES]
    agreed = [r for r in rows if r["Device ID"] == AGREES]
    assert refused and agreed
    assert all(r["Question Response"] == "" for r in refused)
    assert all(json.loads(r["Question Response"] or "null") for r in agreed)

    with zipfile.ZipFile(io.BytesIO(download(read(api, tag, private_rid)["downloadUrls"][0]))) as archive:
        header, rows = parse_csv(archive.read(f"{ALPHA}_userinfo_{RUN_DAY}.csv"))
    assert header == PRIVATE_COLUMNS
    identities = dict(
        uci_query(
            seeded.data_dir,
            "SELECT users_id, username FROM identities WHERE users_id IN (?, ?)",
            AGREES,
            REFUSES,
        )
    )
    by_user = {r["Device UUID"]: r for r in rows}
    assert by_user[REFUSES]["Decrypted Device ID"] == REFUSES
    assert by_user[REFUSES]["Encrypted Device ID"] == identities[REFUSES]
    phone = aes_ecb_decrypt(identities[AGREES], DEFAULT_ENCRYPTION_SECRET)
    assert phone.startswith("phone:")
    assert by_user[AGREES]["Decrypted Device ID"] == phone
    assert by_user[AGREES]["Encrypted Device ID"] == identities[AGREES]
    registered = {
        user
        for (user,) in uci_query(
            seeded.data_dir, "SELECT users_id FROM user_registrations WHERE applications_id = ?", ALPHA
        )
    }
    assert set(by_user) == registered
    assert {(r["Conversation ID"], r["Conversation Name"]) for r in rows} == {(ALPHA, ALPHA_NAME)}


# -- the private zip (docs/service-contract.md §3.5) ----------------------------------------------


def _private_job(seeded: Seeded, **kwargs: Any) -> tuple[str, dict[str, Any], dict[str, Any]]:
    api, tag = seeded.api, new_tag()
    rid = submit(api, tag, dataset=PRIVATE, conversation_id=ALPHA, **kwargs)["requestId"]
    outcome = outcome_of(run_jobs(seeded.emulator, PRIVATE), rid)
    job = read(api, tag, rid)
    assert outcome["status"] == job["status"] == "SUCCESS"
    return rid, outcome, job


def test_private_zip_with_a_key_needs_the_password(seeded: Seeded) -> None:
    rid, outcome, job = _private_job(seeded, encryption_key="s3cret-Key")
    entry = f"{ALPHA}_userinfo_{RUN_DAY}.csv"
    zip_key = f"uci-private-exhaust/{rid}/{ALPHA}_userinfo_{RUN_DAY}.zip"
    assert outcome["downloadUrls"] == [f"https://{ACCOUNT}.blob.core.windows.net/reports/{zip_key}"]
    stored = report_dir(seeded.data_dir, PRIVATE, rid)
    # only the zip: unlike the real job, the emulator keeps no plain CSV (phone numbers) beside it
    assert sorted(p.name for p in stored.iterdir()) == [f"{ALPHA}_userinfo_{RUN_DAY}.zip"]

    data = download(job["downloadUrls"][0])
    assert data == (stored / f"{ALPHA}_userinfo_{RUN_DAY}.zip").read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.namelist() == [entry]
        assert archive.getinfo(entry).flag_bits & 0x1
        with pytest.raises(RuntimeError):
            archive.read(entry)
        with pytest.raises(RuntimeError):
            archive.read(entry, pwd=b"wrong-key")
        content = archive.read(entry, pwd=b"s3cret-Key")
    header, rows = parse_csv(content)
    assert header == PRIVATE_COLUMNS and rows


def test_private_zip_without_a_key_is_not_encrypted(seeded: Seeded) -> None:
    rid, outcome, job = _private_job(seeded)
    entry = f"{ALPHA}_userinfo_{RUN_DAY}.csv"
    assert outcome["downloadUrls"] == [
        f"https://{ACCOUNT}.blob.core.windows.net/reports/uci-private-exhaust/{rid}/{ALPHA}_userinfo_{RUN_DAY}.zip"
    ]
    with zipfile.ZipFile(io.BytesIO(download(job["downloadUrls"][0]))) as archive:
        assert archive.namelist() == [entry]
        assert not archive.getinfo(entry).flag_bits & 0x1
        header, rows = parse_csv(archive.read(entry))
    assert header == PRIVATE_COLUMNS and rows


def test_private_ignores_the_date_range(seeded: Seeded) -> None:
    _, _, job = _private_job(seeded, start="08/03/2026", end="yesterday")
    with zipfile.ZipFile(io.BytesIO(download(job["downloadUrls"][0]))) as archive:
        _, rows = parse_csv(archive.read(f"{ALPHA}_userinfo_{RUN_DAY}.csv"))
    assert {r["Device UUID"] for r in rows} >= {AGREES, REFUSES}


def test_private_with_an_empty_key_falls_back_to_the_csv(seeded: Seeded) -> None:
    rid, outcome, job = _private_job(seeded, encryption_key="")
    name = f"{ALPHA}_userinfo_{RUN_DAY}.csv"
    assert outcome["downloadUrls"] == [
        f"wasb://reports@{ACCOUNT}.blob.core.windows.net/uci-private-exhaust/{rid}/{name}"
    ]
    stored = report_dir(seeded.data_dir, PRIVATE, rid)
    assert [p.name for p in stored.iterdir()] == [name]
    data = download(job["downloadUrls"][0])
    assert data == (stored / name).read_bytes()
    header, rows = parse_csv(data)
    assert header == PRIVATE_COLUMNS and rows


# -- the schedule (docs/service-contract.md §2.1) -------------------------------------------------


def _schedule(emulator: Emulator) -> dict[str, Any]:
    answer = requests.get(f"{emulator.root}/admin/schedule", timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_nightly_schedule_runs_response_at_two_and_private_at_three(
    template: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    data_dir = copy_of(template, tmp_path / "data")
    tag = new_tag()
    with run_emulator(data_dir, "--now", "2026-03-11T01:00:00+05:30") as night:
        api = ExhaustApi(night.api)
        response_rid = submit(api, tag, conversation_id=ALPHA, start=START, end=END)["requestId"]
        private_rid = submit(api, tag, dataset=PRIVATE, conversation_id=ALPHA)["requestId"]
        plan = _schedule(night)
        assert plan["enabled"] is True and plan["every"] is None
        assert plan["timezone"] == "Asia/Kolkata"
        assert plan["crons"] == {RESPONSE: "0 2 * * *", PRIVATE: "0 3 * * *"}

        night.set_clock("2026-03-11T01:59:58+05:30")  # a few seconds before the night's first run
        time.sleep(0.5)
        assert read(api, tag, response_rid)["status"] == "SUBMITTED"
        response_job = wait_for_status(api, tag, response_rid, timeout=15)
        assert response_job["status"] == "SUCCESS"
        assert response_job["jobStats"]["dtJobCompleted"] >= ist_ms("2026-03-11T02:00:00")
        assert read(api, tag, private_rid)["status"] == "SUBMITTED"
        plan = _schedule(night)
        assert datetime.fromisoformat(plan["nextDue"][PRIVATE]) == datetime(2026, 3, 11, 3, 0, tzinfo=IST)
        assert datetime.fromisoformat(plan["nextDue"][RESPONSE]) == datetime(2026, 3, 12, 2, 0, tzinfo=IST)
        time.sleep(0.5)
        assert read(api, tag, private_rid)["status"] == "SUBMITTED"

        night.set_clock("2026-03-11T03:00:01+05:30")
        private_job = wait_for_status(api, tag, private_rid, timeout=15)
        assert private_job["status"] == "SUCCESS"
        assert private_job["jobStats"]["dtJobCompleted"] >= ist_ms("2026-03-11T03:00:00")
        assert read(api, tag, response_rid)["jobStats"] == response_job["jobStats"]  # not run again
        assert (report_dir(data_dir, RESPONSE, response_rid) / f"{ALPHA}_response_{RUN_DAY}.csv").is_file()
        assert (report_dir(data_dir, PRIVATE, private_rid) / f"{ALPHA}_userinfo_{RUN_DAY}.zip").is_file()


def test_fast_mode_processes_a_job_without_being_asked(
    template: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    data_dir = copy_of(template, tmp_path / "data")
    with run_emulator(data_dir, "--jobs-every", "1", "--now", NOW) as fast:
        api, tag = ExhaustApi(fast.api), new_tag()
        rid = submit(api, tag, conversation_id=ALPHA, start=START, end=END)["requestId"]
        job = wait_for_status(api, tag, rid, timeout=10)
        assert job["status"] == "SUCCESS"
        plan = _schedule(fast)
        assert plan["every"] == 1 and plan["runs"] >= 1, "run by the schedule, not by a call to run-jobs"
        assert (report_dir(data_dir, RESPONSE, rid) / f"{ALPHA}_response_{RUN_DAY}.csv").is_file()


# -- Azure Blob storage ---------------------------------------------------------------------------


@pytest.mark.azure
@pytest.mark.node
def test_happy_path_on_azure_blob_storage(azurite: Azurite, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    storage = ("--storage", "azure", "--azure-connection-string", azurite.connection_string)
    bot = str(uuid.uuid4())
    summary = seed(
        data_dir,
        *storage,
        "--bots",
        "0",
        "--users",
        "3",
        "--events",
        "60",
        "--days",
        "1",
        "--start",
        "2026-02-20",
        "--seed",
        "21",
        "--bot",
        f"{bot}=Azure Bot",
    )
    assert rows_for(summary, bot) > 0
    with run_emulator(data_dir, "--no-schedule", "--now", NOW, *storage) as running:
        api, tag = ExhaustApi(running.api), new_tag()
        rid = submit(api, tag, conversation_id=bot, start="2026-02-20", end="2026-02-20")["requestId"]
        outcome = outcome_of(run_jobs(running, RESPONSE), rid)
        job = read(api, tag, rid)

    name = f"{bot}_response_{RUN_DAY}.csv"
    assert outcome["downloadUrls"] == [
        f"wasb://reports@{AZURITE_ACCOUNT}.blob.core.windows.net/uci-response-exhaust/{rid}/{name}"
    ]
    assert job["status"] == "SUCCESS" and job["statusMessage"] == ""
    assert not (data_dir / "blobs" / "reports").exists()
    url = job["downloadUrls"][0]
    assert url.startswith(
        f"http://127.0.0.1:{azurite.port}/{AZURITE_ACCOUNT}/reports/uci-response-exhaust/{rid}/"
    )
    header, rows = parse_csv(download(url))
    assert header == RESPONSE_COLUMNS
    assert len(rows) == rows_for(summary, bot)
    assert {(r["Conversation ID"], r["Conversation Name"]) for r in rows} == {(bot, "Azure Bot")}
