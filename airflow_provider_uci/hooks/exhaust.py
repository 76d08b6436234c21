"""Hooks for the Data Exhaust API: :class:`UciExhaustHook` (workers) and :class:`UciExhaustAsyncHook` (triggerer).

Both send exactly ``Authorization: Bearer <API key>``, ``X-Channel-ID`` and ``Content-Type`` (the
user-token headers switch the real service to a path that refuses UCI datasets, contract 4.11), and
both read every answer the same way (:mod:`airflow_provider_uci.hooks.wire`): HTTP 200 with
``result: null`` is :class:`ExhaustJobNotFound`, 400/401/403 are :class:`ExhaustApiError`, and 5xx,
429, timeouts and dropped connections are retried with exponential backoff (429 waits its
``Retry-After``). Read timeouts sit above the service's own 20-second ask timeout.
"""

from __future__ import annotations

import asyncio
import time
from functools import cached_property
from typing import Any

import requests
from airflow.providers.http.hooks.http import HttpAsyncHook, HttpHook

from airflow_provider_uci.hooks.wire import (
    CONN_TYPE,
    DEFAULT_CONN_ID,
    LIST_LIMIT,
    ConnectionSettings,
    RetryPolicy,
    Verdict,
    judge,
    job_list,
    read_route,
    submit_route,
)
from airflow_provider_uci.models import ExhaustJob, ExhaustRequest, ExhaustTransientError, strip_channel

#: (connect, read) seconds; the service itself gives up on a call after 20 s.
DEFAULT_TIMEOUT = (10.0, 45.0)


class _ExhaustHookSettings:
    """What both hooks are: their connection type, and how they are made."""

    conn_name_attr = "uci_exhaust_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE

    def __init__(self, uci_exhaust_conn_id: str = DEFAULT_CONN_ID, *, retry: RetryPolicy | None = None,
                 timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        super().__init__(method="GET", http_conn_id=uci_exhaust_conn_id)  # type: ignore[call-arg]
        self.uci_exhaust_conn_id = uci_exhaust_conn_id
        self.retry = retry or RetryPolicy()
        self.timeout = timeout


#: (connect, read) timeouts of ``test_connection``: one try, answered within about 5 s.
TEST_TIMEOUT = (2.0, 3.0)


class UciExhaustHook(_ExhaustHookSettings, HttpHook):
    """Talk to the Data Exhaust API from a worker.

    The connection (type ``uci_exhaust``): host = the API base URL (``https://<host>/api``),
    password = the API key, extras ``channel_id`` (sent as ``X-Channel-ID``), ``requested_by`` and
    ``encryption_key`` (the private exhaust zip's password).

    :param uci_exhaust_conn_id: the Airflow connection id.
    :param retry: how often and how long to retry transient failures.
    :param timeout: (connect, read) timeouts in seconds.
    """

    hook_name = "Sunbird UCI Data Exhaust"

    def __init__(self, uci_exhaust_conn_id: str = DEFAULT_CONN_ID, *, retry: RetryPolicy | None = None,
                 timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        super().__init__(uci_exhaust_conn_id, retry=retry, timeout=timeout)
        self._session: requests.Session | None = None
        self.sleep = time.sleep

    @cached_property
    def settings(self) -> ConnectionSettings:
        """The connection's settings, read on first use (never at construction)."""
        return ConnectionSettings.from_connection(self.get_connection(self.uci_exhaust_conn_id))

    # HttpHook would turn every connection extra into a header (leaking the encryption key) and a
    # login into basic auth; this hook sends its own three headers only.
    def _configure_session_from_extra(self, session: requests.Session, connection: Any,
                                      extra_options: dict[str, Any]) -> requests.Session:
        return session

    def _extract_auth(self, connection: Any) -> None:
        return None

    def _get_session(self) -> requests.Session:
        if self._session is None:
            self._session = self.get_conn(headers=self.settings.headers())
        return self._session

    def _request(self, method: str, path: str, route: str, *, json_body: dict[str, Any] | None = None,
                 params: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """Send one call, retrying what is transient; return the envelope's ``result``."""
        url = self.settings.url(path)
        last = ""
        for attempt in range(1, self.retry.attempts + 1):
            try:
                response = self._get_session().request(method, url, json=json_body, params=params,
                                                       timeout=self.timeout)
                verdict = judge(route, response.status_code, response.headers, response.content)
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                verdict = Verdict.transient(f"{type(exc).__name__} talking to the service")
            if verdict.retry is None:
                return verdict.result
            last = verdict.retry
            if attempt == self.retry.attempts:
                break
            delay = self.retry.delay(attempt, verdict.retry_after)
            self.log.warning("%s: %s; retrying in %.1f s (attempt %d of %d)", route, last, delay, attempt,
                             self.retry.attempts)
            self.sleep(delay)
        raise ExhaustTransientError(f"{route}: gave up after {self.retry.attempts} attempts; last: {last}")

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
        result = self._request("GET", f"/dataset/v1/request/read/{requests.utils.quote(bare, safe='')}", read_route,
                               params={"requestId": request_id})
        return ExhaustJob.from_api(result or {})

    def list_requests(self, tag: str, limit: int = LIST_LIMIT) -> list[ExhaustJob]:
        """The tag's jobs (every dataset), newest submission first."""
        bare = strip_channel(tag, self.settings.channel)
        result = self._request("GET", f"/dataset/v1/request/list/{requests.utils.quote(bare, safe='')}", "list",
                               params={"limit": limit})
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
        return True, f"Connected to {settings.base_url} as channel {settings.channel}"


class UciExhaustAsyncHook(_ExhaustHookSettings, HttpAsyncHook):
    """Read jobs from the triggerer's event loop, with the same retry rules as :class:`UciExhaustHook`.

    The connection is looked up asynchronously: a synchronous lookup would block the event loop.
    """

    hook_name = "Sunbird UCI Data Exhaust (async)"

    def __init__(self, uci_exhaust_conn_id: str = DEFAULT_CONN_ID, *, retry: RetryPolicy | None = None,
                 timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        super().__init__(uci_exhaust_conn_id, retry=retry, timeout=timeout)
        self._settings: ConnectionSettings | None = None
        self.sleep = asyncio.sleep

    async def get_settings(self) -> ConnectionSettings:
        if self._settings is None:
            connection = await self.aget_connection(self.uci_exhaust_conn_id)
            self._settings = ConnectionSettings.from_connection(connection)
        return self._settings

    async def _request(self, path: str, route: str, params: dict[str, Any]) -> dict[str, Any] | None:
        import aiohttp

        settings = await self.get_settings()
        url = settings.url(path)
        timeout = aiohttp.ClientTimeout(sock_connect=self.timeout[0], sock_read=self.timeout[1])
        last = ""
        async with aiohttp.ClientSession(headers=settings.headers(), timeout=timeout) as session:
            for attempt in range(1, self.retry.attempts + 1):
                try:
                    async with session.get(url, params=params) as response:
                        content = await response.read()
                        verdict = judge(route, response.status, response.headers, content)
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    verdict = Verdict.transient(f"{type(exc).__name__} talking to the service")
                if verdict.retry is None:
                    return verdict.result
                last = verdict.retry
                if attempt == self.retry.attempts:
                    break
                delay = self.retry.delay(attempt, verdict.retry_after)
                self.log.warning("%s: %s; retrying in %.1f s (attempt %d of %d)", route, last, delay, attempt,
                                 self.retry.attempts)
                await self.sleep(delay)
        raise ExhaustTransientError(f"{route}: gave up after {self.retry.attempts} attempts; last: {last}")

    async def read_request(self, tag: str, request_id: str) -> ExhaustJob:
        """Read one job (see :meth:`UciExhaustHook.read_request`)."""
        settings = await self.get_settings()
        bare = strip_channel(tag, settings.channel)
        result = await self._request(f"/dataset/v1/request/read/{requests.utils.quote(bare, safe='')}", read_route,
                                     {"requestId": request_id})
        return ExhaustJob.from_api(result or {})

    async def list_requests(self, tag: str, limit: int = LIST_LIMIT) -> list[ExhaustJob]:
        """The tag's jobs, newest submission first."""
        settings = await self.get_settings()
        bare = strip_channel(tag, settings.channel)
        result = await self._request(f"/dataset/v1/request/list/{requests.utils.quote(bare, safe='')}", "list",
                                     {"limit": str(limit)})
        return job_list(result)
