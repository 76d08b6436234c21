"""UciExhaustHook and UciExhaustAsyncHook against the emulator over HTTP, faults included."""

from __future__ import annotations

import logging

import pytest
import requests
from airflow.providers.http.hooks.http import HttpAsyncHook, HttpHook

from airflow_provider_uci.hooks.exhaust import UciExhaustAsyncHook, UciExhaustHook
from airflow_provider_uci.models import (
    ExhaustApiError,
    ExhaustJobNotFound,
    ExhaustTransientError,
    ExhaustValidationError,
    JobStatus,
)
from airflow_provider_uci.retry import RetryPolicy
from tests.support.api import ExhaustApi, new_tag
from tests.support.connections import set_uci_connection
from tests.support.services import Emulator

BOT = "c63b6faa-11a9-4259-b941-11cd2f8446c6"


class Sleeps(list):
    """Records the waits a hook asks for instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_hook(retry: RetryPolicy | None = None, **kwargs) -> tuple[UciExhaustHook, Sleeps]:
    hook = UciExhaustHook(retry=retry, **kwargs)
    sleeps = Sleeps()
    hook.sleep = sleeps
    return hook, sleeps


@pytest.fixture
def hook(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> UciExhaustHook:
    set_uci_connection(monkeypatch, emulator.api)
    return make_hook()[0]


def test_submit_read_list_round_trip(hook: UciExhaustHook) -> None:
    tag = new_tag()
    job = hook.submit_request(
        hook.request_for(BOT, "private", "2022-03-01", "2022-03-02", tag, zip_password="pw-123")
    )
    assert (
        job.status is JobStatus.SUBMITTED and job.tag == f"{tag}:dev-channel" and job.requested_by == "tests"
    )
    assert len(job.request_id) == 32
    again = hook.submit_request(hook.request_for(BOT, "private", "2022-03-01", "2022-03-02", tag))
    assert again.request_id == job.request_id, "a repeated submit lands on the same job"
    for form in (tag, job.tag):
        assert hook.read_request(form, job.request_id).request_id == job.request_id, "either tag form works"
    response = hook.submit_request(hook.request_for(BOT, "response", "2022-03-01", "2022-03-02", tag))
    listed = hook.list_requests(job.tag)
    assert [j.request_id for j in listed] == [response.request_id, job.request_id]


#: What every HTTP client sends beside the request's own headers; the gateway ignores these.
TRANSPORT = {"host", "user-agent", "accept", "accept-encoding", "connection", "content-length"}
#: The three headers the real gateway accepts from a UCI client.
THREE = {"authorization", "x-channel-id", "content-type"}
#: Extras of a connection a user of HTTP connections may write: none of them may become a header.
EXTRAS = {
    "zip_password": "zip-secret-77",
    "timeout": 30,
    "verify": True,
    "proxies": {},
    "x_custom_header": "must-not-be-sent",
}


def received(emulator: Emulator) -> set[str]:
    """The header names of the last API call the emulator saw, less the transport's own."""
    return set(emulator.last_request()["headerNames"]) - TRANSPORT


def test_the_hooks_are_the_http_providers() -> None:
    assert isinstance(UciExhaustHook(), HttpHook)
    assert isinstance(UciExhaustAsyncHook(), HttpAsyncHook)


def test_the_service_receives_the_three_headers_and_no_extra(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_uci_connection(monkeypatch, emulator.api, extra=EXTRAS)
    hook = UciExhaustHook()
    job = hook.submit_request(hook.request_for(BOT, "private", "2022-03-01", "2022-03-02", new_tag()))
    assert emulator.last_request()["method"] == "POST" and received(emulator) == THREE
    hook.read_request(job.tag, job.request_id)
    assert emulator.last_request()["method"] == "GET" and received(emulator) == THREE
    hook.list_requests(job.tag)
    assert emulator.last_request()["path"].startswith("/api/dataset/v1/request/list/")
    assert received(emulator) == THREE


@pytest.mark.asyncio
async def test_the_async_hook_sends_the_three_headers_and_no_extra(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_uci_connection(monkeypatch, emulator.api, extra=EXTRAS)
    hook = UciExhaustAsyncHook()
    try:
        await hook.list_requests(new_tag())
        assert emulator.last_request()["method"] == "GET" and received(emulator) == THREE
        with pytest.raises(ExhaustJobNotFound):
            await hook.read_request(new_tag(), "0" * 32)
        assert emulator.last_request()["path"].startswith("/api/dataset/v1/request/read/")
        assert received(emulator) == THREE
    finally:
        await hook.aclose()


def test_the_emulator_reports_a_header_it_was_sent(emulator: Emulator) -> None:
    """The check above can fail: a header a client adds is in the emulator's report."""
    ExhaustApi(emulator.api).list(new_tag())
    answer = requests.get(
        f"{emulator.api}/dataset/v1/request/list/{new_tag()}",
        timeout=10,
        headers={
            "Authorization": "Bearer dev-key",
            "X-Channel-ID": "dev-channel",
            "channel_id": "dev-channel",
        },
    )
    assert answer.status_code == 200
    assert received(emulator) == {"authorization", "x-channel-id", "channel_id"}


def test_no_header_can_be_added_to_the_session(hook: UciExhaustHook) -> None:
    with pytest.raises(
        ValueError, match="headers: the service takes only Authorization, X-Channel-ID, Content-Type"
    ):
        hook.get_conn(headers={"X-Authenticated-User-Token": ""})


def test_the_connection_timeout_applies(start_emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    slow = start_emulator("--fault-latency", "list=1", "--latency-seconds", "1.5")
    set_uci_connection(monkeypatch, slow.api, extra={"timeout": [2, 0.5]})
    hook, sleeps = make_hook(RetryPolicy(attempts=2, backoff=0.1))
    with pytest.raises(ExhaustTransientError, match="Timeout"):
        hook.list_requests(new_tag())
    assert sleeps == [0.1]
    set_uci_connection(monkeypatch, slow.api, extra={"timeout": 5})
    assert make_hook()[0].list_requests(new_tag()) == [], "a longer timeout outlasts the latency"


@pytest.mark.asyncio
async def test_the_connection_timeout_applies_to_the_async_hook(
    start_emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = start_emulator("--fault-latency", "list=1", "--latency-seconds", "1.5")
    set_uci_connection(monkeypatch, slow.api, extra={"timeout": [2, 0.5]})
    hook = UciExhaustAsyncHook(retry=RetryPolicy(attempts=1))
    try:
        with pytest.raises(ExhaustTransientError, match="Timeout"):
            await hook.list_requests(new_tag())
    finally:
        await hook.aclose()


@pytest.mark.asyncio
async def test_calls_go_through_the_connections_proxy(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy nobody listens on: calls fail to connect through it, so they went to it, not to the service."""
    import socket

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        proxy = f"http://127.0.0.1:{closed.getsockname()[1]}"
    set_uci_connection(monkeypatch, emulator.api, extra={"proxies": {"http": proxy}})
    with pytest.raises(ExhaustTransientError, match="ConnectionError"):
        make_hook(RetryPolicy(attempts=1))[0].list_requests(new_tag())
    hook = UciExhaustAsyncHook(retry=RetryPolicy(attempts=1))
    try:
        with pytest.raises(ExhaustTransientError, match="ConnectionError"):
            await hook.list_requests(new_tag())
    finally:
        await hook.aclose()
    set_uci_connection(monkeypatch, emulator.api, extra={"proxies": {"https": proxy}})
    assert make_hook()[0].list_requests(new_tag()) == [], "an https proxy is not used for an http URL"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"timeout": 0}, "timeout: must be seconds above 0"),
        ({"timeout": [1, 2, 3]}, "timeout: must be seconds above 0, or [connect, read]"),
        ({"timeout": "soon"}, "timeout: must be seconds above 0"),
        (
            {"verify": "/no/such/ca-bundle.pem"},
            "verify: must be true, false, or the path of a CA bundle file",
        ),
        ({"proxies": "http://proxy:3128"}, "proxies: must map a scheme to a proxy URL"),
        ({"proxies": {"https": "proxy:3128"}}, "proxies: must map a scheme to a proxy URL"),
    ],
)
def test_bad_http_settings_are_named(
    extra: dict, message: str, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_uci_connection(monkeypatch, emulator.api, extra=extra)
    with pytest.raises(ExhaustValidationError) as raised:
        _ = UciExhaustHook().settings
    assert str(raised.value).startswith(message)


def test_tls_settings_reach_both_hooks(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio
    import ssl

    import certifi

    set_uci_connection(monkeypatch, emulator.api, extra={"verify": certifi.where()})
    assert UciExhaustHook().get_conn().verify == certifi.where()
    assert isinstance(asyncio.run(UciExhaustAsyncHook().config()).extra_options["ssl"], ssl.SSLContext)
    set_uci_connection(monkeypatch, emulator.api, extra={"verify": "false"})
    assert UciExhaustHook().get_conn().verify is False
    assert asyncio.run(UciExhaustAsyncHook().config()).extra_options["ssl"] is False
    set_uci_connection(monkeypatch, emulator.api)
    assert UciExhaustHook().get_conn().verify is True
    assert "ssl" not in asyncio.run(UciExhaustAsyncHook().config()).extra_options


def test_secrets_are_never_logged(
    emulator: Emulator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Neither Airflow's log (printed) nor the HTTP libraries' (standard logging, at debug) shows a key."""
    set_uci_connection(monkeypatch, emulator.api, zip_password="zip-secret-4471")
    caplog.set_level(logging.DEBUG)
    hook = UciExhaustHook()
    job = hook.submit_request(hook.request_for(BOT, "private", "2022-03-01", "2022-03-02", new_tag()))
    hook.read_request(job.tag, job.request_id)
    set_uci_connection(monkeypatch, emulator.api, api_key="wrong-key-9182")
    with pytest.raises(ExhaustApiError):
        UciExhaustHook().list_requests(job.tag)
    printed = capsys.readouterr()
    logged = caplog.text + printed.out + printed.err
    assert "Submitted uci-private-exhaust" in logged and '"POST /api/dataset/v1/request/submit' in logged
    for secret in ("dev-key", "zip-secret-4471", "wrong-key-9182"):
        assert secret not in logged


def test_unknown_job_is_not_found(hook: UciExhaustHook) -> None:
    with pytest.raises(ExhaustJobNotFound, match="no job available"):
        hook.read_request(new_tag(), "0" * 32)


def test_forbidden_channel_carries_the_service_message(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_uci_connection(monkeypatch, emulator.api, channel="someone-elses-channel")
    hook, _ = make_hook()
    with pytest.raises(ExhaustApiError) as raised:
        hook.submit_request(hook.request_for(BOT, "response", "2022-03-01", "2022-03-02", new_tag()))
    assert raised.value.status == 403 and raised.value.err == "FORBIDDEN"
    assert raised.value.errmsg == (
        "Given X-Consumer-ID='dev-consumer' and X-Channel-ID='someone-elses-channel' are not authorized"
    )
    assert hook.test_connection()[0] is False


def test_bad_api_key_is_an_api_error(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    set_uci_connection(monkeypatch, emulator.api, api_key="wrong-key-123")
    hook, sleeps = make_hook()
    with pytest.raises(ExhaustApiError) as raised:
        hook.list_requests(new_tag())
    assert raised.value.status == 401 and sleeps == [], "client errors are not retried"
    assert "wrong-key-123" not in str(raised.value)


def test_validation_errors_send_nothing(hook: UciExhaustHook, emulator: Emulator) -> None:
    tag = new_tag()
    with pytest.raises(ExhaustValidationError, match="end_date"):
        hook.request_for(BOT, "response", "2022-03-01", "2022-13-45", tag)
    with pytest.raises(ExhaustValidationError, match="conversation_id"):
        hook.request_for("not-a-uuid", "response", "2022-03-01", "2022-03-02", tag)
    assert ExhaustApi(emulator.api).list(tag).json()["result"]["count"] == 0


def test_connection_test_passes(hook: UciExhaustHook) -> None:
    ok, message = hook.test_connection()
    assert ok and "dev-channel" in message


def test_server_errors_are_retried_with_backoff(start_emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    flaky = start_emulator("--fault-500", "read=0.5", "--fault-seed", "3")
    set_uci_connection(monkeypatch, flaky.api)
    hook, sleeps = make_hook(RetryPolicy(attempts=8, backoff=0.5, max_backoff=4))
    job = hook.submit_request(hook.request_for(BOT, "response", "2022-03-01", "2022-03-02", new_tag()))
    for _ in range(10):
        assert hook.read_request(job.tag, job.request_id).request_id == job.request_id
    assert sleeps, "some reads met a 500 and were retried"
    assert set(sleeps) <= {0.5, 1.0, 2.0, 4.0}


def test_persistent_server_errors_give_up(start_emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = start_emulator("--fault-500", "list=1")
    set_uci_connection(monkeypatch, broken.api)
    hook, sleeps = make_hook(RetryPolicy(attempts=4, backoff=1, max_backoff=60))
    with pytest.raises(ExhaustTransientError, match="gave up after 4 attempts"):
        hook.list_requests(new_tag())
    assert sleeps == [1, 2, 4]


def test_rate_limit_waits_retry_after(start_emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    limited = start_emulator("--fault-429", "list=1", "--retry-after", "7")
    set_uci_connection(monkeypatch, limited.api)
    hook, sleeps = make_hook(RetryPolicy(attempts=3))
    with pytest.raises(ExhaustTransientError, match="429"):
        hook.list_requests(new_tag())
    assert sleeps == [7.0, 7.0]


def test_timeouts_and_dropped_connections_are_retried(
    start_emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = start_emulator("--fault-latency", "list=1", "--latency-seconds", "1.5", "--fault-drop", "read=1")
    set_uci_connection(monkeypatch, slow.api)
    hook, sleeps = make_hook(RetryPolicy(attempts=2, backoff=0.1), timeout=(2.0, 0.5))
    with pytest.raises(ExhaustTransientError, match="Timeout"):
        hook.list_requests(new_tag())
    with pytest.raises(ExhaustTransientError, match="ConnectionError"):
        hook.read_request(new_tag(), "X")
    assert sleeps == [0.1, 0.1]
    patient, _ = make_hook(RetryPolicy(attempts=2, backoff=0.1))
    assert patient.list_requests(new_tag()) == [], "the default read timeout outlasts the latency"


@pytest.mark.asyncio
async def test_async_hook_reads_and_lists(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    set_uci_connection(monkeypatch, emulator.api)
    job = make_hook()[0].submit_request(
        UciExhaustHook().request_for(BOT, "response", "2022-03-01", "2022-03-02", new_tag())
    )
    hook = UciExhaustAsyncHook()
    assert (await hook.read_request(job.tag, job.request_id)).request_id == job.request_id
    assert [j.request_id for j in await hook.list_requests(job.bare_tag)] == [job.request_id]
    with pytest.raises(ExhaustJobNotFound):
        await hook.read_request(job.bare_tag, "0" * 32)


@pytest.mark.asyncio
async def test_async_hook_retries_like_the_sync_one(start_emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = start_emulator("--fault-500", "read=1", "--fault-429", "list=1", "--retry-after", "3")
    set_uci_connection(monkeypatch, broken.api)
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    hook = UciExhaustAsyncHook(retry=RetryPolicy(attempts=3, backoff=2))
    hook.sleep = record
    with pytest.raises(ExhaustTransientError, match="HTTP 500"):
        await hook.read_request(new_tag(), "X")
    with pytest.raises(ExhaustTransientError, match="429"):
        await hook.list_requests(new_tag())
    assert waits == [2, 4, 3.0, 3.0]


@pytest.mark.parametrize("server", ["nothing listening", "listening, never answering"])
def test_connection_test_tries_once_with_its_short_timeout_naming_the_url(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        if server != "nothing listening":
            silent.listen(8)  # accepts connections, answers nothing
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/api"
        if server == "nothing listening":
            silent.close()
        set_uci_connection(monkeypatch, url, api_key="secret-key-4471")
        ok, message = UciExhaustHook().test_connection()
        tries = 0
        if server != "nothing listening":  # each try left one connection in the backlog
            silent.setblocking(False)
            while True:
                try:
                    silent.accept()[0].close()
                except BlockingIOError:
                    break
                tries += 1
    assert not ok and url in message and "secret-key-4471" not in message, message
    if server != "nothing listening":
        assert tries == 1 and "Timeout" in message, (tries, message)
