"""What the sync and async hooks share: connection settings, retry policy, and reading answers.

:func:`judge` turns one HTTP answer into a result, a reason to retry, or a raised error, so both hooks
read the real service's envelopes (docs/service-contract.md §1.7) the same way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from airflow.sdk.log import mask_secret

from airflow_provider_uci.models import (
    ExhaustApiError,
    ExhaustJob,
    ExhaustJobNotFound,
    ExhaustValidationError,
)
from airflow_provider_uci.retry import Verdict

CONN_TYPE = "uci_exhaust"
DEFAULT_CONN_ID = "uci_exhaust_default"
LIST_LIMIT = 100
submit_route = "submit"
read_route = "read"


#: The headers the real gateway and service accept from a UCI client (docs/service-contract.md §1.2, §4.11).
SENT_HEADERS = ("Authorization", "X-Channel-ID", "Content-Type")
#: (connect, read) seconds; the service itself gives up on a call after 20 s.
DEFAULT_TIMEOUT = (10.0, 45.0)


@dataclass(frozen=True)
class ConnectionSettings:
    """A ``uci_exhaust`` connection, checked: where and who to call, and how (timeouts, TLS, proxies).

    :param base_url: the API base URL (``https://<host>/api``).
    :param channel: the ``X-Channel-ID``.
    :param requested_by: stored with each request.
    :param api_key: the bearer API key.
    :param encryption_key: the private exhaust zip's password.
    :param timeout: (connect, read) seconds from the connection, or ``None`` for the hook's default.
    :param verify: verify TLS certificates (``True``), not (``False``), or against this CA bundle file.
    :param proxies: scheme (``http``/``https``) -> proxy URL, as ``requests`` takes them.
    """

    base_url: str
    channel: str
    requested_by: str = ""
    api_key: str = field(default="", repr=False)
    encryption_key: str | None = field(default=None, repr=False)
    timeout: tuple[float, float] | None = None
    verify: bool | str = True
    proxies: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_connection(cls, connection: Any) -> ConnectionSettings:
        """Read and check a connection; its secrets are masked in logs from here on.

        The extras read are ``channel_id``, ``requested_by``, ``zip_password`` and the HTTP settings
        ``timeout``, ``verify`` (or ``verify_ssl``) and ``proxies`` (or ``proxy``); no extra is ever
        sent as a header.
        """
        host = (connection.host or "").strip()
        if not host:
            raise ExhaustValidationError(
                "host", "the connection needs the API base URL, e.g. https://<host>/api"
            )
        base = host if "://" in host else f"{connection.schema or 'https'}://{host}"
        if connection.port and base.count(":") < 2:
            base = f"{base}:{connection.port}"
        extra = connection.extra_dejson or {}
        api_key = connection.password or ""
        if not api_key:
            raise ExhaustValidationError("password", "the connection needs the API key in its password field")
        channel = str(extra.get("channel_id") or extra.get("channel") or "")
        if not channel:
            raise ExhaustValidationError(
                "channel_id", "the connection needs the channel id (sent as X-Channel-ID)"
            )
        # ``zip_password``: a name Airflow's masker hides in the UI and API; ``encryption_key`` is read
        # too, for connections made before it was renamed (Airflow shows that one in clear).
        encryption_key = extra.get("zip_password") or extra.get("encryption_key") or None
        mask_secret(api_key)
        if encryption_key:
            mask_secret(encryption_key)
        return cls(
            base_url=base.rstrip("/"),
            channel=channel,
            requested_by=str(extra.get("requested_by") or ""),
            api_key=api_key,
            encryption_key=encryption_key,
            timeout=_timeout(extra.get("timeout")),
            verify=_verify(extra.get("verify", extra.get("verify_ssl"))),
            proxies=_proxies(extra.get("proxies", extra.get("proxy"))),
        )

    def headers(self) -> dict[str, str]:
        """Exactly the three headers real clients send (docs/service-contract.md §1.2)."""
        return dict(
            zip(SENT_HEADERS, (f"Bearer {self.api_key}", self.channel, "application/json"), strict=False)
        )

    def url(self, path: str) -> str:
        return self.base_url + path

    def proxy_for(self, url: str) -> str | None:
        """The proxy URL for ``url``'s scheme, if the connection names one."""
        return self.proxies.get(urlsplit(url).scheme) or self.proxies.get("all")


def _timeout(value: Any) -> tuple[float, float] | None:
    """``timeout``: seconds for connecting and for reading alike, or ``[connect, read]``."""
    if value in (None, ""):
        return None
    pair = value if isinstance(value, (list, tuple)) else (value, value)
    try:
        if len(pair) != 2 or any(isinstance(part, bool) for part in pair):
            raise ValueError
        connect, read = float(pair[0]), float(pair[1])
        if not (0 < connect < float("inf") and 0 < read < float("inf")):
            raise ValueError
    except (TypeError, ValueError):
        raise ExhaustValidationError(
            "timeout", "must be seconds above 0, or [connect, read] seconds", value
        ) from None
    return connect, read


def _verify(value: Any) -> bool | str:
    """``verify``: true (the default), false, or the path of a CA bundle file."""
    if value is None or isinstance(value, bool):
        return True if value is None else value
    text = str(value).strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if not text or not Path(text).is_file():
        raise ExhaustValidationError(
            "verify", "must be true, false, or the path of a CA bundle file that exists", value
        )
    return text


def _proxies(value: Any) -> dict[str, str]:
    """``proxies``: ``{"https": "http://proxy:3128", ...}``; a proxy's password is masked in logs."""
    if value in (None, "", {}):
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(key, str) and isinstance(url, str) and "://" in url for key, url in value.items()
    ):
        raise ExhaustValidationError(
            "proxies", 'must map a scheme to a proxy URL, e.g. {"https": "http://proxy:3128"}'
        )
    for url in value.values():
        if password := urlsplit(url).password:
            mask_secret(password)
    return dict(value)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        from datetime import datetime, timezone

        return max((parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds(), 0.0)
    except (TypeError, ValueError):
        return None


def _envelope(content: bytes) -> dict[str, Any] | None:
    try:
        body = json.loads(content)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def judge(route: str, status: int, headers: Mapping[str, str], content: bytes) -> Verdict:
    """Read one answer of ``route``; raise for what retrying cannot mend."""
    body = _envelope(content)
    params = (body or {}).get("params") or {}
    err, errmsg = params.get("err"), params.get("errmsg")
    if status == 200 and body is not None:
        if params.get("status") == "failed" or body.get("result") is None:
            if route == read_route:
                raise ExhaustJobNotFound(f"no such job: {errmsg or 'the service returned no job'}")
            raise ExhaustApiError(status, err, errmsg, route)
        return Verdict(result=body["result"])
    if status == 429:
        return Verdict.transient("HTTP 429 rate limited", _retry_after(headers.get("Retry-After")))
    if status >= 500 or status == 408:
        detail = f" {err}: {errmsg}" if errmsg else ""
        return Verdict.transient(f"HTTP {status}{detail}")
    if body is not None and errmsg is None:
        errmsg = body.get("message")  # the gateway's own answers: {"message": "..."}
    if errmsg is None:
        errmsg = content[:200].decode("utf-8", "replace")
    raise ExhaustApiError(status, err, errmsg, route)


def job_list(result: dict[str, Any] | None) -> list[ExhaustJob]:
    """The ``jobs`` of a list answer."""
    return [ExhaustJob.from_api(job) for job in (result or {}).get("jobs") or []]
