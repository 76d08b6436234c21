"""What the sync and async hooks share: connection settings, retry policy, and reading answers.

:func:`judge` turns one HTTP answer into a result, a reason to retry, or a raised error, so both hooks
read the real service's envelopes (contract 1.7) the same way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

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


@dataclass(frozen=True)
class ConnectionSettings:
    """A ``uci_exhaust`` connection, checked: base URL, API key, channel, requester, encryption key."""

    base_url: str
    channel: str
    requested_by: str = ""
    api_key: str = field(default="", repr=False)
    encryption_key: str | None = field(default=None, repr=False)

    @classmethod
    def from_connection(cls, connection: Any) -> ConnectionSettings:
        """Read and check a connection; the API key and encryption key are masked in logs from here on."""
        host = (connection.host or "").strip()
        if not host:
            raise ExhaustValidationError("host", "the connection needs the API base URL, e.g. https://<host>/api")
        base = host if "://" in host else f"{connection.schema or 'https'}://{host}"
        if connection.port and base.count(":") < 2:
            base = f"{base}:{connection.port}"
        extra = connection.extra_dejson or {}
        api_key = connection.password or ""
        if not api_key:
            raise ExhaustValidationError("password", "the connection needs the API key in its password field")
        channel = str(extra.get("channel_id") or extra.get("channel") or "")
        if not channel:
            raise ExhaustValidationError("channel_id", "the connection needs the channel id (sent as X-Channel-ID)")
        # ``zip_password``: a name Airflow's masker hides in the UI and API; ``encryption_key`` is read
        # too, for connections made before it was renamed (Airflow shows that one in clear).
        encryption_key = extra.get("zip_password") or extra.get("encryption_key") or None
        mask_secret(api_key)
        if encryption_key:
            mask_secret(encryption_key)
        return cls(base_url=base.rstrip("/"), channel=channel, requested_by=str(extra.get("requested_by") or ""),
                   api_key=api_key, encryption_key=encryption_key)

    def headers(self) -> dict[str, str]:
        """Exactly the three headers real clients send (contract 1.2)."""
        return {"Authorization": f"Bearer {self.api_key}", "X-Channel-ID": self.channel,
                "Content-Type": "application/json"}

    def url(self, path: str) -> str:
        return self.base_url + path


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
