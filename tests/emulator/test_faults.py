"""Each fault knob does what it says, on the routes it names and no others."""

from __future__ import annotations

import http.client
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.support.api import ExhaustApi, new_tag, submit_body
from tests.support.services import Emulator


def served(emulator: Emulator) -> dict:
    """What the emulator reports it served: faults by kind and route, submissions by job."""
    answer = requests.get(f"{emulator.root}/admin/served", timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def job_with_file(emulator: Emulator, data: bytes) -> tuple[str, str]:
    """Submit a job, place ``data`` as its file; return (bare tag, request id)."""
    tag = new_tag()
    job = ExhaustApi(emulator.api).submit(submit_body(tag)).json()["result"]
    requests.post(
        f"{emulator.root}/admin/jobs/{job['requestId']}/file",
        params={"tag": job["tag"]},
        data=data,
        timeout=10,
    ).raise_for_status()
    return tag, job["requestId"]


def test_server_errors_only_on_the_named_route(start_emulator) -> None:
    emulator = start_emulator("--fault-500", "read=1")
    api = ExhaustApi(emulator.api)
    tag = new_tag()
    submitted = api.submit(submit_body(tag))
    assert submitted.status_code == 200
    for _ in range(3):
        answer = api.read(tag, submitted.json()["result"]["requestId"])
        assert answer.status_code == 500
        body = answer.json()
        assert list(body) == ["id", "ver", "ts", "params", "responseCode", "result"]
        assert body["id"] == "ekstep.analytics.dataset.request.info"
        assert body["responseCode"] == "ERROR" and body["params"]["err"] == "ERROR" and body["result"] is None
    assert api.list(tag).status_code == 200


def test_server_error_rate_is_roughly_the_rate_asked(start_emulator) -> None:
    emulator = start_emulator("--fault-500", "0.3", "--fault-seed", "7")
    api = ExhaustApi(emulator.api)
    codes = [api.list(new_tag()).status_code for _ in range(300)]
    assert set(codes) == {200, 500}
    assert 0.2 < codes.count(500) / len(codes) < 0.4


def test_rate_limit_answers_429_with_retry_after(start_emulator) -> None:
    emulator = start_emulator(
        env={"UCI_EMULATOR_FAULT_429": "submit=1", "UCI_EMULATOR_FAULT_RETRY_AFTER": "7"}
    )
    api = ExhaustApi(emulator.api)
    answer = api.submit(submit_body(new_tag()))
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "7"
    assert answer.json() == {"message": "API rate limit exceeded"}
    assert api.list(new_tag()).status_code == 200


def test_added_latency(start_emulator) -> None:
    emulator = start_emulator("--fault-latency", "list=1", "--latency-seconds", "0.6")
    api = ExhaustApi(emulator.api)
    began = time.monotonic()
    assert api.list(new_tag()).status_code == 200
    assert time.monotonic() - began >= 0.6
    assert api.read(new_tag(), "X").status_code == 200
    assert served(emulator)["faults"]["latency"] == {"list": 1}, "the read was not slowed"


def test_dropped_connections(start_emulator) -> None:
    emulator = start_emulator("--fault-drop", "submit=1")
    api = ExhaustApi(emulator.api)
    with pytest.raises(requests.ConnectionError):
        api.submit(submit_body(new_tag()))
    assert api.list(new_tag()).status_code == 200, "other routes answer"
    assert served(emulator)["faults"]["drop"] == {"submit": 1}
    assert served(emulator)["submissions"] == [], "a dropped submission never reached the service"


def test_truncated_download_bodies(start_emulator) -> None:
    emulator = start_emulator("--fault-truncate", "1")
    data = b"0123456789" * 50_000
    tag, request_id = job_with_file(emulator, data)
    (url,) = ExhaustApi(emulator.api).read(tag, request_id).json()["result"]["downloadUrls"]
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    connection.request("GET", f"{parts.path}?{parts.query}")
    response = connection.getresponse()
    assert response.status == 200
    assert int(response.headers["Content-Length"]) == len(data)
    with pytest.raises(http.client.IncompleteRead) as cut:
        response.read()
    assert 0 < len(cut.value.partial) < len(data)
    assert data.startswith(cut.value.partial)


def test_shorter_url_expiry(start_emulator) -> None:
    emulator = start_emulator("--expiry-seconds", "2")
    data = b"x,y\n"
    tag, request_id = job_with_file(emulator, data)

    def clock_ms() -> int:
        now = requests.get(f"{emulator.root}/admin/clock", timeout=10).json()["now"]
        return int(datetime.fromisoformat(now).timestamp() * 1000)

    before = clock_ms()
    body = ExhaustApi(emulator.api).read(tag, request_id).json()
    after = clock_ms()
    assert before + 2000 <= body["result"]["expiresAt"] <= after + 2000, (
        "2 s after the read, by the emulator's clock"
    )
    (url,) = body["result"]["downloadUrls"]
    assert requests.get(url, timeout=10).content == data
    time.sleep(3)
    expired = requests.get(url, timeout=10)
    assert expired.status_code == 403 and b"AuthenticationFailed" in expired.content


def test_the_faults_served_are_counted_by_kind_and_route(start_emulator) -> None:
    emulator = start_emulator(
        "--fault-500",
        "list=1",
        "--fault-429",
        "search=1",
        "--fault-latency",
        "submit=1",
        "--latency-seconds",
        "0.1",
        "--fault-truncate",
        "1",
    )
    assert served(emulator)["faults"] == {
        kind: {} for kind in ("latency", "drop", "error_429", "error_500", "truncate")
    }
    api = ExhaustApi(emulator.api)
    tag, request_id = job_with_file(emulator, b"0123456789" * 50_000)
    for _ in range(3):
        assert api.list(tag).status_code == 500
    search = requests.post(
        f"{emulator.root}/request/search", json={"request": {"filters": {"status": "SUCCESS"}}}, timeout=10
    )
    assert search.status_code == 429
    (url,) = api.read(tag, request_id).json()["result"]["downloadUrls"]
    with pytest.raises(requests.exceptions.ChunkedEncodingError):  # the body is cut short
        _ = requests.get(url, timeout=10).content
    assert served(emulator)["faults"] == {
        "latency": {"submit": 1},
        "drop": {},
        "error_429": {"search": 1},
        "error_500": {"list": 3},
        "truncate": {"download": 1},
    }


def test_each_submission_is_counted_by_job_whatever_its_tag(emulator: Emulator) -> None:
    api = ExhaustApi(emulator.api)
    bot = "5b0c7f5e-0d1f-4b8e-9a51-7c3f0e9a2d11"
    first, second = new_tag(), new_tag()
    for tag in (first, first, second):  # the same job twice under one tag, then under another tag
        assert api.submit(submit_body(tag, conversation_id=bot)).status_code == 200
    assert api.submit(submit_body(first, conversation_id=bot, start="2022-03-02")).status_code == 200
    mine = {
        (s["startDate"], s["endDate"]): s
        for s in served(emulator)["submissions"]
        if s["conversationId"] == bot
    }
    assert {key: s["count"] for key, s in mine.items()} == {
        ("2022-03-01", "2022-04-01"): 3,
        ("2022-03-02", "2022-04-01"): 1,
    }
    assert {s["dataset"] for s in mine.values()} == {"uci-response-exhaust"}


def test_a_seed_gives_each_route_the_same_faults_however_calls_interleave(start_emulator) -> None:
    """With a seed, the n-th call of a route meets the same faults whatever other routes were called."""
    alone, mixed = (start_emulator("--fault-500", "0.5", "--fault-seed", "3") for _ in range(2))
    reads_alone = [ExhaustApi(alone.api).read(new_tag(), "X").status_code for _ in range(20)]
    reads_mixed = []
    for number in range(20):
        for _ in range(number % 3):
            ExhaustApi(mixed.api).list(new_tag())
        reads_mixed.append(ExhaustApi(mixed.api).read(new_tag(), "X").status_code)
    assert reads_mixed == reads_alone and set(reads_alone) == {200, 500}


def test_bad_knob_values_are_refused_by_name(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = Path(sys.executable).with_name("uci-exhaust")
    result = subprocess.run(
        [str(script), "emulator", "serve", "--data-dir", str(tmp_path), "--fault-500", "nope=0.1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--fault-500" in result.stderr and "unknown route 'nope'" in result.stderr
