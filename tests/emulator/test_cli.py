"""``uci-exhaust emulator serve`` used as a new user would: the console script on PATH, flags and variables.

Every emulator here is its own process, started by name from the environment's ``bin`` directory with
a clean set of ``UCI_EMULATOR_*`` variables, and every check is an HTTP call to it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.support.api import ExhaustApi, new_tag, submit_body
from tests.support.services import free_port, stop, wait_for_port

BIN_DIR = Path(sys.executable).parent
SCRIPT = BIN_DIR / "uci-exhaust"
DATASET = "uci-response-exhaust"
DENIED = "Given X-Consumer-ID='c2' and X-Channel-ID='dev-channel' are not authorized"


def user_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without any ``UCI_EMULATOR_*`` setting, with the venv's bin first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UCI_EMULATOR_")}
    env["PATH"] = f"{BIN_DIR}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra or {})
    return env


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``uci-exhaust`` by name and wait for it (for commands that end on their own)."""
    return subprocess.run(
        ["uci-exhaust", *args],
        env=user_env(env),
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )


@contextmanager
def serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """``uci-exhaust emulator serve --port <free> --data-dir <tmp> ARGS``; yield its ``.../api`` base URL."""
    assert SCRIPT.exists(), f"the uci-exhaust console script is not installed next to {sys.executable}"
    port = free_port()
    data_dir = tmp_path / f"data-{port}"
    log = tmp_path / f"serve-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["uci-exhaust", "emulator", "serve", "--port", str(port), "--data-dir", str(data_dir), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=user_env(env),
            start_new_session=True,
        )
    try:
        wait_for_port(port, process, 30, "uci-exhaust emulator serve", log)
        yield f"http://127.0.0.1:{port}/api"
    finally:
        stop(process)


def expected_request_id(tag: str, requested_by: str, channel: str, day: str, dataset: str = DATASET) -> str:
    """The service's id: upper-case MD5 of ``dataset|tag|requestedBy|channel|date|type``."""
    return (
        hashlib.md5(f"{dataset}|{tag}|{requested_by}|{channel}|{day}|{dataset}".encode()).hexdigest().upper()
    )


def test_console_script_serves_and_accepts_a_submission(tmp_path: Path) -> None:
    """With no configuration, the script on PATH serves the API under /api with the dev key and channel."""
    with serve(tmp_path) as base:
        tag = new_tag()
        response = ExhaustApi(base).submit(submit_body(tag))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["responseCode"] == "OK"
        assert body["result"]["tag"] == f"{tag}:dev-channel"
        assert body["result"]["status"] == "SUBMITTED"
        read = ExhaustApi(base).read(tag, body["result"]["requestId"])
        assert read.status_code == 200
        assert read.json()["result"]["requestId"] == body["result"]["requestId"]
    # the job store lives in the given data dir, not the working directory
    assert any(tmp_path.glob("data-*/job_request.sqlite3"))


def test_serve_help_documents_keys_channels_clock_and_faults() -> None:
    """``--help`` exits 0 and names the key/channel/clock flags, their variables and the fault flags."""
    result = run_cli("emulator", "serve", "--help")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for flag in (
        "--api-key",
        "--authorize",
        "--now",
        "--timezone",
        "--fault-500",
        "--fault-429",
        "--fault-latency",
        "--fault-drop",
        "--fault-truncate",
        "--fault-seed",
        "--retry-after",
        "--port",
        "--data-dir",
    ):
        assert flag in text, flag
    for variable in (
        "UCI_EMULATOR_API_KEYS",
        "UCI_EMULATOR_AUTHORIZED",
        "UCI_EMULATOR_NOW",
        "UCI_EMULATOR_TIMEZONE",
        "UCI_EMULATOR_FAULT_500",
    ):
        assert variable in text, variable
    assert "KEY=CONSUMER" in text and "CONSUMER=CHANNEL" in text
    assert "dev-key" in text and "dev-channel" in text


@pytest.mark.parametrize("how", ["flags", "environment"])
def test_api_keys_and_channels_are_configurable(tmp_path: Path, how: str) -> None:
    """``k2=c2`` with ``c2=ch2``, by flag or by variable: k2 submits on ch2; dev-key is gone; dev-channel is 403.

    The flag case also sets the variables to another key, which must lose: a flag wins over its variable.
    """
    if how == "flags":
        args = ("--api-key", "k2=c2", "--authorize", "c2=ch2")
        env = {"UCI_EMULATOR_API_KEYS": "k3=c3", "UCI_EMULATOR_AUTHORIZED": "c3=ch2"}
    else:
        args = ()
        env = {"UCI_EMULATOR_API_KEYS": "k2=c2", "UCI_EMULATOR_AUTHORIZED": "c2=ch2"}
    with serve(tmp_path, *args, env=env) as base:
        tag = new_tag()
        ok = ExhaustApi(base, key="k2", channel="ch2").submit(submit_body(tag))
        assert ok.status_code == 200, ok.text
        assert ok.json()["responseCode"] == "OK"
        assert ok.json()["result"]["tag"] == f"{tag}:ch2"

        # the default key no longer exists: the gateway refuses it before the service sees the call
        default = ExhaustApi(base).submit(submit_body(new_tag()))
        assert default.status_code == 401
        assert "responseCode" not in default.json()
        if how == "flags":
            assert ExhaustApi(base, key="k3", channel="ch2").submit(submit_body(new_tag())).status_code == 401

        # a known key on a channel its consumer may not use: the service's 403 envelope
        wrong = ExhaustApi(base, key="k2", channel="dev-channel").submit(submit_body(new_tag()))
        assert wrong.status_code == 403
        denied = wrong.json()
        assert denied["responseCode"] == "FORBIDDEN"
        assert denied["params"]["err"] == "FORBIDDEN"
        assert denied["params"]["status"] == "failed"
        assert denied["params"]["errmsg"] == DENIED
        assert denied["result"] is None


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        pytest.param(("--api-key", "nokey"), {}, "--api-key", id="--api-key"),
        pytest.param(("--authorize", "c2"), {}, "--authorize", id="--authorize"),
        pytest.param(("--timezone", "Mars/Base"), {}, "--timezone", id="--timezone"),
        pytest.param(("--now", "next tuesday"), {}, "--now", id="--now"),
        pytest.param(("--fault-500", "2"), {}, "--fault-500", id="--fault-500"),
        pytest.param(("--fault-429", "sometimes"), {}, "--fault-429", id="--fault-429"),
        pytest.param(("--fault-latency", "upload=0.5"), {}, "--fault-latency", id="--fault-latency"),
        pytest.param(
            (), {"UCI_EMULATOR_API_KEYS": "nokey"}, "UCI_EMULATOR_API_KEYS", id="UCI_EMULATOR_API_KEYS"
        ),
        pytest.param(
            (), {"UCI_EMULATOR_AUTHORIZED": "c2"}, "UCI_EMULATOR_AUTHORIZED", id="UCI_EMULATOR_AUTHORIZED"
        ),
        pytest.param(
            (), {"UCI_EMULATOR_TIMEZONE": "Mars/Base"}, "UCI_EMULATOR_TIMEZONE", id="UCI_EMULATOR_TIMEZONE"
        ),
        pytest.param((), {"UCI_EMULATOR_NOW": "next tuesday"}, "UCI_EMULATOR_NOW", id="UCI_EMULATOR_NOW"),
        pytest.param(
            (), {"UCI_EMULATOR_FAULT_500": "2"}, "UCI_EMULATOR_FAULT_500", id="UCI_EMULATOR_FAULT_500"
        ),
        pytest.param(("--port", "nine-thousand"), {}, "--port", id="--port"),
    ],
)
def test_malformed_settings_exit_2_naming_the_setting(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], named: str
) -> None:
    """A malformed flag or variable stops ``serve`` before it listens: exit 2, one line naming it, no traceback."""
    port = str(free_port())
    result = run_cli(
        "emulator", "serve", "--port", port, "--data-dir", str(tmp_path / "data"), *args, env=env
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert named in result.stderr, result.stderr
    assert "error" in result.stderr
    assert "Traceback" not in result.stderr
    assert "uci-exhaust emulator: http://" not in result.stdout


@pytest.mark.parametrize(
    ("args", "env", "instant", "day"),
    [
        # given in the configured zone: 10:00 in Kolkata is 04:30 UTC, the same day everywhere
        (
            ("--now", "2024-01-05T10:00:00+05:30", "--timezone", "Asia/Kolkata"),
            {},
            "2024-01-05T04:30:00+00:00",
            "2024-01-05",
        ),
        # 23:30 UTC is already 05:00 the next day in Kolkata
        (
            ("--now", "2024-01-05T23:30:00+00:00", "--timezone", "Asia/Kolkata"),
            {},
            "2024-01-05T23:30:00+00:00",
            "2024-01-06",
        ),
        # the same instant with the default zone (UTC) stays on the 5th
        (("--now", "2024-01-05T23:30:00+00:00"), {}, "2024-01-05T23:30:00+00:00", "2024-01-05"),
        # the offset written in --now does not choose the zone: 02:00 +05:30 is the 5th in UTC
        (("--now", "2024-01-06T02:00:00+05:30"), {}, "2024-01-05T20:30:00+00:00", "2024-01-05"),
        # a --now without an offset is read in the configured zone
        (
            ("--now", "2024-01-05T23:30:00", "--timezone", "Asia/Kolkata"),
            {},
            "2024-01-05T18:00:00+00:00",
            "2024-01-05",
        ),
        # the same settings by variable
        (
            (),
            {"UCI_EMULATOR_NOW": "2024-01-05T23:30:00+00:00", "UCI_EMULATOR_TIMEZONE": "Asia/Kolkata"},
            "2024-01-05T23:30:00+00:00",
            "2024-01-06",
        ),
    ],
    ids=[
        "kolkata-morning",
        "kolkata-next-day",
        "utc-same-day",
        "offset-is-not-zone",
        "naive-in-zone",
        "by-variable",
    ],
)
def test_now_and_timezone_set_the_submission_date(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], instant: str, day: str
) -> None:
    """The clock starts at ``--now``; the request id's date is that instant's date in ``--timezone``."""
    start = datetime.fromisoformat(instant)
    launched = time.monotonic()
    with serve(tmp_path, *args, env=env) as base:
        tag = new_tag()
        response = ExhaustApi(base).submit(submit_body(tag))
        assert response.status_code == 200, response.text
        body = response.json()
        ticked = timedelta(seconds=time.monotonic() - launched)  # the most the emulator's clock can have run
    result = body["result"]
    assert result["requestId"] == expected_request_id(tag, "user_id", "dev-channel", day)
    utc_day = start.date().isoformat()
    if utc_day != day:  # the id is not the one of the UTC date
        assert result["requestId"] != expected_request_id(tag, "user_id", "dev-channel", utc_day)
    # the clock stood at the configured instant and has ticked since as real time did, no more
    submitted_ms = result["jobStats"]["dtJobSubmitted"]
    start_ms = int(start.timestamp() * 1000)
    assert start_ms <= submitted_ms <= start_ms + ticked.total_seconds() * 1000 + 1, submitted_ms - start_ms
    ts = datetime.fromisoformat(body["ts"])
    assert timedelta(0) <= ts - start <= ticked + timedelta(milliseconds=1)
    assert body["ts"].endswith("+00:00")
