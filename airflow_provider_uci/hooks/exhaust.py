"""Hooks for the Data Exhaust API: :class:`UciExhaustHook` (workers) and :class:`UciExhaustAsyncHook` (triggerer).

Both send exactly ``Authorization: Bearer <API key>``, ``X-Channel-ID`` and ``Content-Type`` (the
user-token headers switch the real service to a path that refuses UCI datasets, contract 4.11), and
both read every answer the same way (:mod:`airflow_provider_uci.hooks.wire`): HTTP 200 with
``result: null`` is :class:`ExhaustJobNotFound`, 400/401/403 are :class:`ExhaustApiError`, and 5xx,
429, timeouts and dropped connections are retried by one :class:`RetryPolicy` (429 waits its
``Retry-After``). Read timeouts sit above the service's own 20-second ask timeout.

Both speak HTTP through httpx, which Airflow's task runner has loaded already: a task that imports
this module pays for no HTTP library of its own.
"""

from __future__ import annotations

import asyncio
import time
from functools import cached_property
from typing import Any
from urllib.parse import quote

import httpx
from airflow.sdk import BaseHook

from airflow_provider_uci.hooks.wire import (
    CONN_TYPE,
    DEFAULT_CONN_ID,
    LIST_LIMIT,
    ConnectionSettings,
    judge,
    job_list,
    read_route,
    submit_route,
)
from airflow_provider_uci.models import ExhaustJob, ExhaustRequest, ExhaustTransientError, strip_channel
from airflow_provider_uci.retry import RetryPolicy, Verdict

#: (connect, read) seconds; the service itself gives up on a call after 20 s.
DEFAULT_TIMEOUT = (10.0, 45.0)
#: (connect, read) timeouts of ``test_connection``: one try, answered within about 5 s.
TEST_TIMEOUT = (2.0, 3.0)


def _timeout(timeout: tuple[float, float]) -> httpx.Timeout:
    connect, read = timeout
    return httpx.Timeout(connect=connect, read=read, write=read, pool=connect)


def _transport_failure(exc: httpx.TransportError) -> Verdict:
    """A network fault as a reason to retry; its text may hold the URL, so only its kind is kept."""
    kind = "Timeout" if isinstance(exc, httpx.TimeoutException) else "ConnectionError"
    return Verdict.transient(f"{kind} talking to the service ({type(exc).__name__})")


def _path(route: str, tag: str) -> str:
    return f"/dataset/v1/request/{route}/{quote(tag, safe='')}"


class _ExhaustHookBase(BaseHook):
    """What both hooks are: their connection type, how they are made, and their retry rule."""

    conn_name_attr = "uci_exhaust_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE

    def __init__(self, uci_exhaust_conn_id: str = DEFAULT_CONN_ID, *, retry: RetryPolicy | None = None,
                 timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        super().__init__()
        self.uci_exhaust_conn_id = uci_exhaust_conn_id
        self.retry = retry or RetryPolicy()
        self.timeout = timeout


class UciExhaustHook(_ExhaustHookBase):
    """Talk to the Data Exhaust API from a worker.

    The connection (type ``uci_exhaust``): host = the API base URL (``https://<host>/api``),
    password = the API key, extras ``channel_id`` (sent as ``X-Channel-ID``), ``requested_by`` and
    ``zip_password`` (the private exhaust zip's password).

    :param uci_exhaust_conn_id: the Airflow connection id.
    :param retry: how often and how long to retry transient failures.
    :param timeout: (connect, read) timeouts in seconds.
    """

    hook_name = "Sunbird UCI Data Exhaust"

    def __init__(self, uci_exhaust_conn_id: str = DEFAULT_CONN_ID, *, retry: RetryPolicy | None = None,
                 timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        super().__init__(uci_exhaust_conn_id, retry=retry, timeout=timeout)
        self._client: httpx.Client | None = None
        self.sleep = time.sleep

    @cached_property
    def settings(self) -> ConnectionSettings:
        """The connection's settings, read on first use (never at construction)."""
        return ConnectionSettings.from_connection(self.get_connection(self.uci_exhaust_conn_id))

    def get_conn(self) -> httpx.Client:
        """The HTTP client, sending the connection's three headers and nothing else of it."""
        if self._client is None:
            self._client = httpx.Client(headers=self.settings.headers(), timeout=_timeout(self.timeout))
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _request(self, method: str, path: str, route: str, *, json_body: dict[str, Any] | None = None,
                 params: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """Send one call, retrying what is transient; return the envelope's ``result``."""
        url = self.settings.url(path)

        def attempt() -> Verdict:
            try:
                response = self.get_conn().request(method, url, json=json_body, params=params)
            except httpx.TransportError as exc:
                return _transport_failure(exc)
            return judge(route, response.status_code, response.headers, response.content)

        return self.retry.call(attempt, what=route, log=self.log, sleep=self.sleep, give_up=ExhaustTransientError)

    def request_for(self, conversation_id: str, dataset: str, start_date: str, end_date: str, tag: str, *,
                    requested_by: str | None = None, encryption_key: str | None = None) -> ExhaustRequest:
        """A validated request that takes channel, requester and key from the connection when not given."""
        settings = self.settings
        return ExhaustRequest(
            conversation_id=conversation_id, dataset=dataset, start_date=start_date, end_date=end_date, tag=tag,
            channel=settings.channel, requested_by=settings.requested_by if requested_by is None else requested_by,
            encryption_key=settings.encryption_key if encryption_key is None else encryption_key,
        ).validate()

    def submit_request(self, request: ExhaustRequest) -> ExhaustJob:
        """Submit; safe to repeat the same day, since the service's request id is deterministic per day."""
        request = request.validate()
        if request.channel != self.settings.channel:
            request = ExhaustRequest(**{**request.__dict__, "channel": self.settings.channel}).validate()
        result = self._request("POST", "/dataset/v1/request/submit", submit_route, json_body=request.body())
        job = ExhaustJob.from_api(result or {})
        self.log.info("Submitted %s for conversation %s (%s..%s): request %s, status %s", job.dataset,
                      request.conversation_id, request.start_date, request.end_date, job.request_id, job.status_text)
        return job

    def read_request(self, tag: str, request_id: str) -> ExhaustJob:
        """Read one job; the tag may be bare or ``tag:channel``.

        :raises ExhaustJobNotFound: when the service knows no such job.
        """
        bare = strip_channel(tag, self.settings.channel)
        result = self._request("GET", _path(read_route, bare), read_route, params={"requestId": request_id})
        return ExhaustJob.from_api(result or {})

    def list_requests(self, tag: str, limit: int = LIST_LIMIT) -> list[ExhaustJob]:
        """The tag's jobs (every dataset), newest submission first."""
        bare = strip_channel(tag, self.settings.channel)
        result = self._request("GET", _path("list", bare), "list", params={"limit": limit})
        return job_list(result)

    def test_connection(self) -> tuple[bool, str]:
        """List an unused tag: proves the URL, the API key and the channel (the service authorizes it).

        One try with short timeouts, so the answer comes within about 5 s even for an unreachable host;
        the message names the URL (never the key).
        """
        try:
            settings = self.settings
        except Exception as exc:  # noqa: BLE001 - a connection missing a field
            return False, str(exc)
        probe = type(self)(self.uci_exhaust_conn_id, retry=RetryPolicy(attempts=1), timeout=TEST_TIMEOUT)
        probe.settings = settings  # type: ignore[misc]  # the cached property, already read
        try:
            probe.list_requests("airflow-connection-test", limit=1)
        except Exception as exc:  # noqa: BLE001 - any failure is the answer
            return False, f"{settings.base_url}: {exc}"
        finally:
            probe.close()
        return True, f"Connected to {settings.base_url} as channel {settings.channel}"


class UciExhaustAsyncHook(_ExhaustHookBase):
    """Read jobs from the triggerer's event loop, with the same retry rule as :class:`UciExhaustHook`.

    The connection is looked up asynchronously: a synchronous lookup would block the event loop.
    """

    hook_name = "Sunbird UCI Data Exhaust (async)"

    def __init__(self, uci_exhaust_conn_id: str = DEFAULT_CONN_ID, *, retry: RetryPolicy | None = None,
                 timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        super().__init__(uci_exhaust_conn_id, retry=retry, timeout=timeout)
        self._settings: ConnectionSettings | None = None
        self._client: httpx.AsyncClient | None = None
        self.sleep = asyncio.sleep

    async def get_settings(self) -> ConnectionSettings:
        if self._settings is None:
            connection = await self.aget_connection(self.uci_exhaust_conn_id)
            self._settings = ConnectionSettings.from_connection(connection)
        return self._settings

    async def get_async_conn(self) -> httpx.AsyncClient:
        """The HTTP client, kept for every call until :meth:`aclose` (a trigger polls through one)."""
        if self._client is None:
            settings = await self.get_settings()
            self._client = httpx.AsyncClient(headers=settings.headers(), timeout=_timeout(self.timeout))
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _request(self, path: str, route: str, params: dict[str, Any]) -> dict[str, Any] | None:
        url = (await self.get_settings()).url(path)
        client = await self.get_async_conn()

        async def attempt() -> Verdict:
            try:
                response = await client.get(url, params=params)
            except httpx.TransportError as exc:
                return _transport_failure(exc)
            return judge(route, response.status_code, response.headers, response.content)

        return await self.retry.acall(attempt, what=route, log=self.log, sleep=self.sleep,
                                      give_up=ExhaustTransientError)

    async def read_request(self, tag: str, request_id: str) -> ExhaustJob:
        """Read one job (see :meth:`UciExhaustHook.read_request`)."""
        settings = await self.get_settings()
        result = await self._request(_path(read_route, strip_channel(tag, settings.channel)), read_route,
                                     {"requestId": request_id})
        return ExhaustJob.from_api(result or {})

    async def list_requests(self, tag: str, limit: int = LIST_LIMIT) -> list[ExhaustJob]:
        """The tag's jobs, newest submission first."""
        settings = await self.get_settings()
        result = await self._request(_path("list", strip_channel(tag, settings.channel)), "list",
                                     {"limit": str(limit)})
        return job_list(result)
