"""Hooks for the Data Exhaust API: :class:`UciExhaustHook` (workers) and :class:`UciExhaustAsyncHook` (triggerer).

Both are the HTTP provider's hooks (``HttpHook`` and ``HttpAsyncHook``), configured through their
public API: the sync hook builds its session in ``get_conn`` and the async one its session settings
in ``config``, from the connection's host, password and the extras ``timeout``, ``verify`` and
``proxies``. Left to themselves, both would send every other extra (the channel, ``requested_by``,
the zip password) as an HTTP header; these send exactly ``Authorization: Bearer <API key>``,
``X-Channel-ID`` and ``Content-Type`` (the user-token headers switch the real service to a path that
refuses UCI datasets, docs/service-contract.md §4.11). Both read every answer the same way
(:mod:`airflow_provider_uci.hooks.wire`): HTTP 200 with ``result: null`` is :class:`ExhaustJobNotFound`,
400/401/403 are :class:`ExhaustApiError`, and 5xx, 429, timeouts and dropped connections are retried
by one :class:`RetryPolicy` (429 waits its ``Retry-After``), the HTTP provider's own retries off.

Importing this module imports the HTTP provider (requests, aiohttp): import it where the service is
called, not at the top of a module every task process loads (``tests/benchmarks/hook_import.py``).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from functools import cached_property
from typing import Any, ClassVar
from urllib.parse import quote

import aiohttp
import requests
from airflow.providers.http.hooks.http import HttpAsyncHook, HttpHook, SessionConfig

from airflow_provider_uci.hooks.wire import (
    CONN_TYPE,
    DEFAULT_CONN_ID,
    DEFAULT_TIMEOUT,
    LIST_LIMIT,
    SENT_HEADERS,
    ConnectionSettings,
    job_list,
    judge,
    read_route,
    submit_route,
)
from airflow_provider_uci.models import ExhaustJob, ExhaustRequest, ExhaustTransientError, strip_channel
from airflow_provider_uci.retry import RetryPolicy, Verdict

__all__ = ["DEFAULT_TIMEOUT", "TEST_TIMEOUT", "UciExhaustAsyncHook", "UciExhaustHook"]

#: (connect, read) timeouts of ``test_connection``: one try, answered within about 5 s.
TEST_TIMEOUT = (2.0, 3.0)
#: What a sync call may meet that a later call can mend (the text of these may hold the URL).
_SYNC_TRANSIENT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
_ASYNC_TRANSIENT = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, asyncio.TimeoutError)


def _transport_failure(exc: BaseException) -> Verdict:
    """A network fault as a reason to retry; its text may hold the URL, so only its kind is kept."""
    kind = "Timeout" if isinstance(exc, (requests.Timeout, asyncio.TimeoutError)) else "ConnectionError"
    return Verdict.transient(f"{kind} talking to the service ({type(exc).__name__})")


def _path(route: str, tag: str) -> str:
    return f"/dataset/v1/request/{route}/{quote(tag, safe='')}"


class _ExhaustConnection:
    """What both hooks take: the connection (type ``uci_exhaust``) and how to call the service.

    :param uci_exhaust_conn_id: the Airflow connection id.
    :param retry: how often and how long to retry transient failures.
    :param timeout: (connect, read) timeouts in seconds; default: the connection's, else 10 and 45.
    """

    conn_name_attr = "uci_exhaust_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    #: What the HTTP hook under this one is made with, besides the connection.
    http_hook_args: ClassVar[dict[str, Any]] = {}

    def __init__(
        self,
        uci_exhaust_conn_id: str = DEFAULT_CONN_ID,
        *,
        retry: RetryPolicy | None = None,
        timeout: tuple[float, float] | None = None,
    ) -> None:
        # the HTTP hook, which follows this class among the hook's bases
        http_hook: Any = super()
        http_hook.__init__(method="GET", http_conn_id=uci_exhaust_conn_id, **self.http_hook_args)
        self.uci_exhaust_conn_id = uci_exhaust_conn_id
        self.retry = retry or RetryPolicy()
        self.timeout = timeout


class UciExhaustHook(_ExhaustConnection, HttpHook):
    """Talk to the Data Exhaust API from a worker (an ``HttpHook``).

    The connection (type ``uci_exhaust``): host = the API base URL (``https://<host>/api``),
    password = the API key, extras ``channel_id`` (sent as ``X-Channel-ID``), ``requested_by``,
    ``zip_password`` (the private exhaust zip's password) and the HTTP settings ``timeout`` (seconds,
    or ``[connect, read]``), ``verify`` (false, or a CA bundle path) and ``proxies``. One hook is for
    one thread: each call sets the method it sends.

    Takes the arguments of :class:`_ExhaustConnection`.
    """

    hook_name = "Sunbird UCI Data Exhaust"
    #: Waits between attempts (an instance may be given another, as tests do).
    sleep = staticmethod(time.sleep)
    _session: requests.Session | None = None

    @cached_property
    def settings(self) -> ConnectionSettings:
        """The connection's settings, read on first use (never at construction)."""
        return ConnectionSettings.from_connection(self.get_connection(self.uci_exhaust_conn_id))

    def get_conn(
        self, headers: dict[str, Any] | None = None, extra_options: dict[str, Any] | None = None
    ) -> requests.Session:
        """The session, made on first use: the three headers, TLS and proxies, and nothing else of the connection.

        :param headers: must be empty: the service takes no other header.
        :param extra_options: request options over the hook's (``timeout``, ``check_response``...).
        """
        if headers:
            raise ValueError(
                f"headers: the service takes only {', '.join(SENT_HEADERS)}, which the hook sends; "
                f"got {sorted(headers)}"
            )
        settings = self.settings
        self.base_url = settings.base_url
        self.merged_extra = {
            "timeout": self.timeout or settings.timeout or DEFAULT_TIMEOUT,
            "check_response": False,
            "allow_redirects": False,
            **(extra_options or {}),
        }
        if self._session is None:
            session = requests.Session()
            session.headers.update(settings.headers())
            session.verify = settings.verify
            session.proxies.update(settings.proxies)
            adapter = self.adapter or self.keep_alive_adapter
            if adapter is not None:
                session.mount("http://", adapter)
                session.mount("https://", adapter)
            self._session = session
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def _request(
        self,
        method: str,
        path: str,
        route: str,
        *,
        json_body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Send one call through ``HttpHook.run``, retrying what is transient; return the envelope's ``result``."""

        def attempt() -> Verdict:
            self.method = method
            try:
                response = self.run(endpoint=path, data=params, json=json_body)
            except _SYNC_TRANSIENT as exc:
                return _transport_failure(exc)
            return judge(route, response.status_code, response.headers, response.content)

        result: dict[str, Any] | None = self.retry.call(
            attempt, what=route, log=self.log, sleep=self.sleep, give_up=ExhaustTransientError
        )
        return result

    def request_for(
        self,
        conversation_id: str,
        dataset: str,
        start_date: str,
        end_date: str,
        tag: str,
        *,
        requested_by: str | None = None,
        encryption_key: str | None = None,
    ) -> ExhaustRequest:
        """A validated request that takes channel, requester and key from the connection when not given."""
        settings = self.settings
        return ExhaustRequest(
            conversation_id=conversation_id,
            dataset=dataset,
            start_date=start_date,
            end_date=end_date,
            tag=tag,
            channel=settings.channel,
            requested_by=settings.requested_by if requested_by is None else requested_by,
            encryption_key=settings.encryption_key if encryption_key is None else encryption_key,
        ).validate()

    def submit_request(self, request: ExhaustRequest) -> ExhaustJob:
        """Submit; safe to repeat the same day, since the service's request id is deterministic per day."""
        request = request.validate()
        if request.channel != self.settings.channel:
            request = ExhaustRequest(**{**request.__dict__, "channel": self.settings.channel}).validate()
        result = self._request("POST", "/dataset/v1/request/submit", submit_route, json_body=request.body())
        job = ExhaustJob.from_api(result or {})
        self.log.info(
            "Submitted %s for conversation %s (%s..%s): request %s, status %s",
            job.dataset,
            request.conversation_id,
            request.start_date,
            request.end_date,
            job.request_id,
            job.status_text,
        )
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
        except Exception as exc:
            return False, str(exc)
        probe = type(self)(self.uci_exhaust_conn_id, retry=RetryPolicy(attempts=1), timeout=TEST_TIMEOUT)
        probe.settings = settings  # the cached property, already read
        try:
            probe.list_requests("airflow-connection-test", limit=1)
        except Exception as exc:
            return False, f"{settings.base_url}: {exc}"
        finally:
            probe.close()
        return True, f"Connected to {settings.base_url} as channel {settings.channel}"


class UciExhaustAsyncHook(_ExhaustConnection, HttpAsyncHook):
    """Read jobs from the triggerer's event loop (an ``HttpAsyncHook``), retried as :class:`UciExhaustHook` does.

    The connection is looked up asynchronously (a synchronous lookup would block the event loop), and
    one ``aiohttp`` session serves every call until :meth:`aclose`.

    Takes the arguments of :class:`_ExhaustConnection`.
    """

    hook_name = "Sunbird UCI Data Exhaust (async)"
    http_hook_args: ClassVar[dict[str, Any]] = {"retry_limit": 1}  # the retries are this hook's own
    #: Waits between attempts (an instance may be given another, as tests do).
    sleep = staticmethod(asyncio.sleep)
    _settings: ConnectionSettings | None = None
    _session_config: SessionConfig | None = None
    _client: aiohttp.ClientSession | None = None

    async def get_settings(self) -> ConnectionSettings:
        if self._settings is None:
            connection = await self.aget_connection(self.uci_exhaust_conn_id)
            self._settings = ConnectionSettings.from_connection(connection)
        return self._settings

    async def config(self) -> SessionConfig:
        """The session settings: the three headers, timeouts, TLS and proxy, and nothing else of the connection."""
        if self._session_config is None:
            settings = await self.get_settings()
            connect, read = self.timeout or settings.timeout or DEFAULT_TIMEOUT
            options: dict[str, Any] = {
                "timeout": aiohttp.ClientTimeout(sock_connect=connect, sock_read=read),
                "allow_redirects": False,
                "check_response": False,
            }
            if settings.verify is False:
                options["ssl"] = False
            elif isinstance(settings.verify, str):
                options["ssl"] = ssl.create_default_context(cafile=settings.verify)
            if proxy := settings.proxy_for(settings.base_url):
                options["proxy"] = proxy
            self._session_config = SessionConfig(
                base_url=settings.base_url, headers=settings.headers(), auth=None, extra_options=options
            )
        return self._session_config

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def _request(self, path: str, route: str, params: dict[str, str]) -> dict[str, Any] | None:
        """Send one GET through ``HttpAsyncHook.run``, retrying what is transient; return the ``result``."""
        await self.config()
        if self._client is None:
            self._client = aiohttp.ClientSession()
        client = self._client

        async def attempt() -> Verdict:
            try:
                response = await self.run(session=client, endpoint=path, data=params)
                try:
                    content = await response.read()
                finally:
                    response.release()
            except _ASYNC_TRANSIENT as exc:
                return _transport_failure(exc)
            return judge(route, response.status, response.headers, content)

        result: dict[str, Any] | None = await self.retry.acall(
            attempt, what=route, log=self.log, sleep=self.sleep, give_up=ExhaustTransientError
        )
        return result

    async def read_request(self, tag: str, request_id: str) -> ExhaustJob:
        """Read one job (see :meth:`UciExhaustHook.read_request`)."""
        settings = await self.get_settings()
        result = await self._request(
            _path(read_route, strip_channel(tag, settings.channel)), read_route, {"requestId": request_id}
        )
        return ExhaustJob.from_api(result or {})

    async def list_requests(self, tag: str, limit: int = LIST_LIMIT) -> list[ExhaustJob]:
        """The tag's jobs, newest submission first."""
        settings = await self.get_settings()
        result = await self._request(
            _path("list", strip_channel(tag, settings.channel)), "list", {"limit": str(limit)}
        )
        return job_list(result)
