"""Each fault knob does what it says, on the routes it names and no others."""

from __future__ import annotations

import http.client
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.support.api import ExhaustApi, new_tag, submit_body
from tests.support.services import Emulator


def job_with_file(emulator: Emulator, data: bytes) -> tuple[str, str]:
    """Submit a job, place ``data`` as its file; return (bare tag, request id)."""
    tag = new_tag()
    job = ExhaustApi(emulator.api).submit(submit_body(tag)).json()["result"]
    requests.post(f"{emulator.root}/admin/jobs/{job['requestId']}/file", params={"tag": job["tag"]}, data=data,
                  timeout=10).raise_for_status()
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
    emulator = start_emulator(env={"UCI_EMULATOR_FAULT_429": "submit=1", "UCI_EMULATOR_FAULT_RETRY_AFTER": "7"})
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
    began = time.monotonic()
    assert api.read(new_tag(), "X").status_code == 200
    assert time.monotonic() - began < 0.5


def test_dropped_connections(start_emulator) -> None:
    emulator = start_emulator("--fault-drop", "submit=1")
    api = ExhaustApi(emulator.api)
    with pytest.raises(requests.ConnectionError):
        api.submit(submit_body(new_tag()))
    assert api.list(new_tag()).status_code == 200, "other routes answer"


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
    body = ExhaustApi(emulator.api).read(tag, request_id).json()
    issued = int(time.mktime(time.strptime(body["ts"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone) * 1000
    assert 1000 <= body["result"]["expiresAt"] - issued <= 3000
    (url,) = body["result"]["downloadUrls"]
    assert requests.get(url, timeout=10).content == data
    time.sleep(3)
    expired = requests.get(url, timeout=10)
    assert expired.status_code == 403 and b"AuthenticationFailed" in expired.content


def test_bad_knob_values_are_refused_by_name(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = Path(sys.executable).with_name("uci-exhaust")
    result = subprocess.run([str(script), "emulator", "serve", "--data-dir", str(tmp_path), "--fault-500", "nope=0.1"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--fault-500" in result.stderr and "unknown route 'nope'" in result.stderr
