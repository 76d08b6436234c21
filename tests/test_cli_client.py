"""``uci-exhaust submit|status|list|download`` as a user runs them, against the emulator over HTTP."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.services import Emulator, run_emulator

SCRIPT = Path(sys.executable).with_name("uci-exhaust")
API_KEY = "cli-key-83b1f0"
ZIP_KEY = "cli-zip-7f3a9c"


@pytest.fixture(scope="module")
def fast(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Emulator, dict]]:
    data = tmp_path_factory.mktemp("cli-emulator")
    summary = json.loads(
        subprocess.run(
            [
                str(SCRIPT),
                "emulator",
                "seed",
                "--data-dir",
                str(data),
                "--events",
                "300",
                "--start",
                "2026-04-01",
                "--json",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    with run_emulator(data, "--jobs-every", "1", "--api-key", f"{API_KEY}=dev-consumer") as emulator:
        yield emulator, summary


def cli(emulator: Emulator, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "UCI_EXHAUST_URL": emulator.api,
        "UCI_EXHAUST_CHANNEL": "dev-channel",
        "UCI_EXHAUST_API_KEY": API_KEY,
        "UCI_EXHAUST_ZIP_PASSWORD": ZIP_KEY,
        "AIRFLOW_HOME": str(home),
    }
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=120, env=env)


def test_submit_status_list_download(fast, tmp_path: Path) -> None:
    emulator, summary = fast
    bot = summary["bots"][0]["id"]
    submitted = cli(
        emulator,
        "submit",
        "--conversation-id",
        bot,
        "--dataset",
        "private",
        "--from-date",
        "2026-04-01",
        "--to-date",
        "2026-04-01",
        "--tag",
        "cli-test",
        "--json",
        home=tmp_path,
    )
    assert submitted.returncode == 0, submitted.stderr
    job = json.loads(submitted.stdout)
    assert job["status"] == "SUBMITTED" and job["tag"] == "cli-test" and len(job["request_id"]) == 32
    for _ in range(30):
        status = json.loads(
            cli(
                emulator,
                "status",
                "--tag",
                "cli-test",
                "--request-id",
                job["request_id"],
                "--json",
                home=tmp_path,
            ).stdout
        )
        if status["status"] == "SUCCESS":
            break
        time.sleep(0.5)
    assert status["status"] == "SUCCESS" and status["files"] == 1
    listed = json.loads(cli(emulator, "list", "--tag", "cli-test", "--json", home=tmp_path).stdout)
    assert [item["request_id"] for item in listed] == [job["request_id"]]
    out = tmp_path / "downloads" / "users"
    previous = os.umask(0o022)  # the usual umask, under which files are world-readable unless made otherwise
    try:
        fetched = cli(
            emulator,
            "download",
            "--tag",
            "cli-test",
            "--request-id",
            job["request_id"],
            "--out",
            str(out),
            "--extract",
            home=tmp_path,
        )
    finally:
        os.umask(previous)
    assert fetched.returncode == 0, fetched.stderr
    (archive,) = out.glob("*.zip")
    (extracted,) = out.glob("*.csv")
    with zipfile.ZipFile(archive) as opened:
        assert opened.read(opened.namelist()[0], pwd=ZIP_KEY.encode()) == extracted.read_bytes()
    # personal data at rest: the files only their owner may read, in folders only their owner may enter
    assert [stat.S_IMODE(path.stat().st_mode) for path in (archive, extracted, out, out.parent)] == [
        0o600,
        0o600,
        0o700,
        0o700,
    ]
    assert "MB" in fetched.stderr, "a progress bar was shown"
    for result in (submitted, fetched):
        for text in (result.stdout, result.stderr):
            assert API_KEY not in text and ZIP_KEY not in text and "sig=" not in text


def test_errors_have_clear_messages_and_exit_codes(fast, tmp_path: Path) -> None:
    emulator, _ = fast
    unknown = cli(emulator, "status", "--tag", "no-such-tag", "--request-id", "0" * 32, home=tmp_path)
    assert unknown.returncode == 3 and "no job available" in unknown.stderr
    invalid = cli(
        emulator,
        "submit",
        "--conversation-id",
        "bot-1",
        "--dataset",
        "response",
        "--from-date",
        "2026-04-01",
        "--to-date",
        "2026-04-01",
        home=tmp_path,
    )
    assert invalid.returncode == 2 and "--conversation-id: must be a UUID" in invalid.stderr
    env_less = subprocess.run(
        [str(SCRIPT), "list", "--tag", "x"],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("UCI_EXHAUST_")}
        | {"AIRFLOW_HOME": str(tmp_path)},
    )
    assert env_less.returncode == 2 and "--url" in env_less.stderr
    not_done = cli(emulator, "download", "--tag", "no-such-tag", "--request-id", "X", home=tmp_path)
    assert not_done.returncode == 3
