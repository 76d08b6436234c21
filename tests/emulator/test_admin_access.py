"""Every door of the emulator's own routes is locked: ``/admin/*`` and ``POST /request/search``.

With an admin token configured, each route refuses a missing token (401) and a wrong one (403) with
the service's error envelope, changes nothing when it refuses, and works with the token (as
``X-Admin-Token`` or ``Authorization: Bearer``), all over HTTP against an emulator process. Without a
token, the routes answer loopback clients only: checked over HTTP (uvicorn takes the client address a
proxy on this host forwards) and at the ASGI level with the client address set. ``serve`` refuses to
listen beyond loopback without a token. The token never reaches the log or an answer.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

from airflow_provider_uci.emulator.app import create_app
from airflow_provider_uci.emulator.config import EmulatorSettings
from tests.support.api import ExhaustApi, new_tag, submit_body
from tests.support.services import Emulator, free_port, run_emulator

TOKEN = "tok-" + "7f3a9c1e5b2d4068" * 2
WRONG = "tok-" + "0000000000000000" * 2
CHANNEL = "dev-channel"
SCRIPT = Path(sys.executable).with_name("uci-exhaust")


@dataclass(frozen=True)
class Call:
    """One admin route, called with a job of its own (for the job routes)."""

    name: str
    method: str
    path: str  # may hold {rid}
    params: dict[str, str]  # may hold {tag}
    body: bytes | None = None
    content_type: str = "application/json"

    def send(self, root: str, job: dict[str, Any], headers: dict[str, str]) -> requests.Response:
        params = {key: value.format(tag=job["tag"]) for key, value in self.params.items()}
        sent = {"Content-Type": self.content_type, **headers} if self.body is not None else headers
        return requests.request(
            self.method,
            root + self.path.format(rid=job["requestId"]),
            params=params,
            data=self.body,
            headers=sent,
            timeout=60,
        )


CALLS = [
    Call(
        "search",
        "POST",
        "/request/search",
        {},
        json.dumps({"request": {"filters": {"channel": CHANNEL}, "limit": 1}}).encode(),
    ),
    # the test's job has no bot, so a run would fail it: a refused run leaves it SUBMITTED
    Call("run-jobs", "POST", "/admin/run-jobs", {"dataset": "uci-response-exhaust"}),
    Call("get clock", "GET", "/admin/clock", {}),
    Call("set clock", "POST", "/admin/clock", {}, json.dumps({"now": "2030-01-01T00:00:00+00:00"}).encode()),
    Call("schedule", "GET", "/admin/schedule", {}),
    Call("health", "GET", "/admin/health", {}),
    Call("served", "GET", "/admin/served", {}),
    Call("last request", "GET", "/admin/last-request", {}),
    Call(
        "place file",
        "POST",
        "/admin/jobs/{rid}/file",
        {"tag": "{tag}", "name": "placed.csv"},
        b"a,b\n1,2\n",
        "application/octet-stream",
    ),
    Call(
        "fail job",
        "POST",
        "/admin/jobs/{rid}/fail",
        {"tag": "{tag}"},
        json.dumps({"message": "failed by the test"}).encode(),
    ),
]
#: Every route the app serves that must be locked, as (method, path) of its route table.
LOCKED = {
    ("POST", "/request/search"),
    ("POST", "/admin/run-jobs"),
    ("GET", "/admin/clock"),
    ("POST", "/admin/clock"),
    ("GET", "/admin/schedule"),
    ("GET", "/admin/health"),
    ("GET", "/admin/served"),
    ("GET", "/admin/last-request"),
    ("POST", "/admin/jobs/{request_id}/file"),
    ("POST", "/admin/jobs/{request_id}/fail"),
}


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """An emulator with an admin token (by variable), logging at debug level, jobs off."""
    with run_emulator(
        tmp_path_factory.mktemp("locked"),
        "--no-schedule",
        "--log-level",
        "debug",
        env={"UCI_EMULATOR_ADMIN_TOKEN": TOKEN},
    ) as running:
        yield running


def new_job(emulator: Emulator) -> dict[str, Any]:
    answer = ExhaustApi(emulator.api).submit(submit_body(new_tag()))
    assert answer.status_code == 200, answer.text
    return answer.json()["result"]


def job_row(emulator: Emulator, job: dict[str, Any]) -> dict[str, Any]:
    bare = job["tag"].rsplit(":", 1)[0]
    return ExhaustApi(emulator.api).read(bare, job["requestId"]).json()["result"]


def assert_refused(answer: requests.Response, status: int, message_start: str) -> None:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert list(body) == ["id", "ver", "ts", "params", "responseCode", "result"]
    assert body["params"]["status"] == "failed" and body["result"] is None
    assert body["params"]["errmsg"].startswith(message_start), body["params"]["errmsg"]
    assert TOKEN not in answer.text and WRONG not in answer.text


def test_the_calls_cover_every_locked_route(tmp_path: Path) -> None:
    """A new admin route must be added to the table above (and so to these tests)."""
    app = create_app(EmulatorSettings(data_dir=tmp_path, schedule=False))
    served = {
        (method, route.path)
        for route in app.routes
        for method in getattr(route, "methods", ()) or ()
        if route.path.startswith("/admin") or route.path == "/request/search"
    }
    assert served == LOCKED
    assert {(call.method, call.path.replace("{rid}", "{request_id}")) for call in CALLS} == LOCKED


@pytest.mark.parametrize("call", CALLS, ids=[call.name for call in CALLS])
def test_without_the_token_401_with_a_wrong_one_403_and_nothing_changes(locked: Emulator, call: Call) -> None:
    job = new_job(locked)
    before = job_row(locked, job)
    clock = requests.get(f"{locked.root}/admin/clock", headers={"X-Admin-Token": TOKEN}, timeout=10).json()

    assert_refused(call.send(locked.root, job, {}), 401, "X-Admin-Token: required header is missing")
    assert_refused(
        call.send(locked.root, job, {"X-Admin-Token": WRONG}), 403, "X-Admin-Token: the token does not match"
    )
    assert_refused(call.send(locked.root, job, {"Authorization": f"Bearer {WRONG}"}), 403, "X-Admin-Token:")
    # the gateway's API key is no admin token
    assert_refused(call.send(locked.root, job, {"Authorization": "Bearer dev-key"}), 403, "X-Admin-Token:")

    after = job_row(locked, job)
    assert after["status"] == before["status"] == "SUBMITTED"
    assert after["downloadUrls"] == [] and "statusMessage" not in after
    assert not list((locked.data_dir / "blobs").rglob(f"*{job['requestId']}*"))
    now = requests.get(f"{locked.root}/admin/clock", headers={"X-Admin-Token": TOKEN}, timeout=10).json()
    assert abs(now["offsetSeconds"] - clock["offsetSeconds"]) < 1


@pytest.mark.parametrize("how", ["X-Admin-Token", "Bearer"])
@pytest.mark.parametrize("call", CALLS, ids=[call.name for call in CALLS])
def test_with_the_token_the_route_works(locked: Emulator, call: Call, how: str) -> None:
    job = new_job(locked)
    headers = {"X-Admin-Token": TOKEN} if how == "X-Admin-Token" else {"Authorization": f"Bearer {TOKEN}"}
    answer = call.send(locked.root, job, headers)
    if call.name == "set clock":
        requests.post(
            f"{locked.root}/admin/clock", json={"reset": True}, headers=headers, timeout=10
        ).raise_for_status()
    assert answer.status_code == 200, answer.text
    if call.name == "set clock":
        assert answer.json()["now"].startswith("2030-01-01T00:00:0")
    elif call.name == "run-jobs":
        assert job_row(locked, job)["status"] == "FAILED"
    elif call.name == "place file":
        assert answer.json()["status"] == "SUCCESS" and job_row(locked, job)["status"] == "SUCCESS"
    elif call.name == "fail job":
        assert job_row(locked, job)["statusMessage"] == "failed by the test"
    elif call.name == "search":
        assert answer.json()["responseCode"] == "OK" and answer.json()["result"]["count"] >= 1
    elif call.name == "served":
        assert answer.json()["submissions"], "the test's own submission is counted"


def test_the_token_is_never_logged(locked: Emulator) -> None:
    """After every route was called with the right and a wrong token, the debug log holds neither."""
    job = new_job(locked)
    for call in CALLS:
        call.send(locked.root, job, {"X-Admin-Token": WRONG})
        call.send(locked.root, job, {"X-Admin-Token": TOKEN})
    log = locked.log.read_text()
    assert TOKEN not in log and WRONG not in log


# -- without a token: loopback only ----------------------------------------------------------------


@pytest.mark.parametrize("call", CALLS, ids=[call.name for call in CALLS])
def test_without_a_configured_token_loopback_clients_are_answered(emulator: Emulator, call: Call) -> None:
    try:
        assert call.send(emulator.root, new_job(emulator), {}).status_code == 200
    finally:
        emulator.reset_clock()


@pytest.mark.parametrize("call", CALLS, ids=[call.name for call in CALLS])
def test_without_a_configured_token_a_forwarded_remote_client_is_refused(
    emulator: Emulator, call: Call
) -> None:
    """Behind a proxy on this host the forwarded client is the caller: 203.0.113.7 is not loopback."""
    job = new_job(emulator)
    answer = call.send(emulator.root, job, {"X-Forwarded-For": "203.0.113.7"})
    assert_refused(answer, 403, "admin routes answer loopback clients only")
    assert job_row(emulator, job)["status"] == "SUBMITTED"


def asgi_call(app: Any, client: tuple[str, int], method: str, path: str, **kwargs: Any) -> httpx.Response:
    """Call ``app`` in process as if from ``client``."""

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=client)
        async with httpx.AsyncClient(transport=transport, base_url="http://emulator.test") as http:
            return await http.request(method, path, **kwargs)

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("client", "answered"),
    [
        (("127.0.0.1", 40000), True),
        (("127.9.8.7", 40000), True),
        (("::1", 40000), True),
        (("::ffff:127.0.0.1", 40000), True),
        (("203.0.113.7", 40000), False),
        (("192.0.2.2", 40000), False),
        (("fd00::2", 40000), False),
        (("::ffff:203.0.113.7", 40000), False),
        (("testclient", 50000), False),
    ],
)
def test_loopback_rule_by_client_address(tmp_path: Path, client: tuple[str, int], answered: bool) -> None:
    """At the ASGI level, with the client address set: loopback answered, anything else 403."""
    app = create_app(EmulatorSettings(data_dir=tmp_path, schedule=False))
    for method, path, body in (
        ("GET", "/admin/health", None),
        ("GET", "/admin/clock", None),
        ("POST", "/admin/clock", {"reset": True}),
        ("GET", "/admin/schedule", None),
        ("POST", "/admin/run-jobs", None),
        ("POST", "/request/search", {"request": {"filters": {"status": "SUBMITTED"}}}),
        ("POST", "/admin/jobs/X/fail?tag=t:c", {}),
        ("POST", "/admin/jobs/X/file?tag=t:c", None),
    ):
        answer = asgi_call(app, client, method, path, json=body)
        if answered:
            assert answer.status_code in (200, 404), (
                path,
                answer.text,
            )  # 404: the job routes' job X is unknown
        else:
            assert answer.status_code == 403, (path, answer.text)
            assert answer.json()["params"]["errmsg"].startswith("admin routes answer loopback clients only")


def test_with_a_token_a_loopback_client_needs_it_too(tmp_path: Path) -> None:
    app = create_app(EmulatorSettings(data_dir=tmp_path, schedule=False, admin_token=TOKEN))
    assert asgi_call(app, ("127.0.0.1", 1), "GET", "/admin/health").status_code == 401
    assert (
        asgi_call(app, ("127.0.0.1", 1), "GET", "/admin/health", headers={"X-Admin-Token": TOKEN}).status_code
        == 200
    )
    assert (
        asgi_call(
            app, ("203.0.113.7", 1), "GET", "/admin/health", headers={"X-Admin-Token": TOKEN}
        ).status_code
        == 200
    )


def test_downloads_and_gateway_routes_keep_their_own_rules(locked: Emulator) -> None:
    """The admin token is no key to the gateway, and the gateway needs no admin token."""
    api = ExhaustApi(locked.api)
    assert api.submit(submit_body(new_tag())).status_code == 200
    keyless = ExhaustApi(locked.api, key=None)
    assert keyless.submit(submit_body(new_tag()), **{"X-Admin-Token": TOKEN}).status_code == 401
    assert ExhaustApi(locked.api, key=TOKEN).submit(submit_body(new_tag())).status_code == 401


# -- serve ------------------------------------------------------------------------------------------


def serve_once(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "airflow_provider_uci.cli"]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("UCI_EMULATOR_")}
    return subprocess.run(
        [*command, "emulator", "serve", "--port", str(free_port()), *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={**clean, **(env or {})},
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.2", "example.org"])
def test_serve_beyond_loopback_without_a_token_exits_2(tmp_path: Path, host: str) -> None:
    done = serve_once("--host", host, "--data-dir", str(tmp_path))
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert lines == [
        f"uci-exhaust: error: --host {host}: listening beyond loopback needs an admin token "
        "(--admin-token or UCI_EMULATOR_ADMIN_TOKEN), or listen on 127.0.0.1"
    ]
    assert "uci-exhaust emulator: http://" not in done.stdout


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (("--admin-token", "short"), {}, "--admin-token"),
        ((), {"UCI_EMULATOR_ADMIN_TOKEN": "short"}, "UCI_EMULATOR_ADMIN_TOKEN"),
        (("--admin-token", "has a space in it, quite long"), {}, "--admin-token"),
    ],
)
def test_a_malformed_token_exits_2_naming_it_without_showing_it(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], named: str
) -> None:
    done = serve_once("--data-dir", str(tmp_path), *args, env=env)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.startswith(f"uci-exhaust: error: {named}: must be")
    assert "short" not in done.stderr and "space in it" not in done.stderr


def test_serve_beyond_loopback_with_a_token_answers_with_the_token(
    start_emulator: Callable[..., Emulator],
) -> None:
    """With a token, ``--host 0.0.0.0`` starts, and the admin routes then need the token."""
    emulator = start_emulator("--host", "0.0.0.0", env={"UCI_EMULATOR_ADMIN_TOKEN": TOKEN})
    assert requests.get(f"{emulator.root}/admin/health", timeout=10).status_code == 401
    answer = requests.get(f"{emulator.root}/admin/health", headers={"X-Admin-Token": TOKEN}, timeout=10)
    assert answer.status_code == 200 and answer.json()["status"] == "ok"
