"""The real service's wire format: the response envelope, the job object and the request id.

docs/service-contract.md §1.3 (request id), §1.7 (envelope) and §1.8 (job object). Key orders matter to
clients that compare bytes, so every object here is built in the order the real service writes it.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from airflow_provider_uci.emulator.store import JobRow


class ClientInputError(Exception):
    """What the client sent breaks a rule; answered with ``status`` and the error envelope."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


SUBMIT_ID = "ekstep.analytics.dataset.request.submit"
READ_ID = "ekstep.analytics.dataset.request.info"
LIST_ID = "ekstep.analytics.dataset.request.list"
SEARCH_ID = "ekstep.analytics.dataset.request.search"

HTTP_STATUS = {
    "OK": 200,
    "CLIENT_ERROR": 400,
    "SERVER_ERROR": 500,
    "REQUEST_TIMEOUT": 408,
    "RESOURCE_NOT_FOUND": 404,
    "FORBIDDEN": 403,
}

NO_JOB_MESSAGE = "no job available with the given request_id and tag"


def format_ts(instant: datetime) -> str:
    """Format like Joda's ``yyyy-MM-dd'T'HH:mm:ss.SSSZZ`` in UTC: ``2022-04-06T09:32:00.079+00:00``."""
    utc = instant.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}+00:00"


def request_id(
    *, dataset: str, tag: str, requested_by: str, channel: str, submission_date: str, dataset_type: str | None
) -> str:
    """The deterministic id: upper-case MD5 of ``dataset|tag|requestedBy|channel|date[|type]``."""
    parts = [dataset, tag, requested_by, channel, submission_date]
    if dataset_type is not None:
        parts.append(dataset_type)
    return hashlib.md5("|".join(parts).encode("utf-8")).hexdigest().upper()


def success(api_id: str, now: datetime, result: Any) -> dict[str, Any]:
    """A ``responseCode: OK`` envelope."""
    return {
        "id": api_id,
        "ver": "1.0",
        "ts": format_ts(now),
        "params": {"resmsgid": str(uuid.uuid4()), "status": "successful", "client_key": None},
        "responseCode": "OK",
        "result": result,
    }


def failure(
    api_id: str, now: datetime, code: str, message: str, *, response_code: str | None = None
) -> dict[str, Any]:
    """An error envelope; ``response_code`` differs from ``code`` only for the HTTP 200 "no job" answer."""
    return {
        "id": api_id,
        "ver": "1.0",
        "ts": format_ts(now),
        "params": {
            "resmsgid": str(uuid.uuid4()),
            "err": code,
            "status": "failed",
            "errmsg": message,
            "client_key": None,
        },
        "responseCode": response_code or code,
        "result": None,
    }


def http_status(envelope: dict[str, Any]) -> int:
    """The HTTP status the real controller maps a ``responseCode`` to (anything else is 500)."""
    return HTTP_STATUS.get(envelope["responseCode"], 500)


def dumps(envelope: dict[str, Any]) -> bytes:
    """Serialise compactly, as Jackson does, keeping non-ASCII text as UTF-8."""
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _ms(instant: datetime | None) -> int | None:
    return None if instant is None else int(instant.timestamp() * 1000)


def job_fields(row: JobRow, *, expires_at_ms: int, sign: Callable[[str], str]) -> dict[str, Any]:
    """The job object's values (docs/service-contract.md §1.8), before choosing the key order."""
    processed = row.status in ("SUCCESS", "FAILED")
    submitted = _ms(row.dt_job_submitted)
    completed = _ms(row.dt_job_completed)
    urls = [sign(url) for url in row.download_urls] if processed and row.download_urls else []
    return {
        "requestId": row.request_id,
        "tag": row.tag,
        "dataset": row.job_id,
        "requestedBy": row.requested_by,
        "requestedChannel": row.requested_channel,
        "status": row.status,
        "lastUpdated": completed if completed else submitted,
        "datasetConfig": row.request_data,
        "attempts": row.iteration,
        "jobStats": {
            "dtJobSubmitted": submitted,
            "dtJobCompleted": completed if processed else None,
            "executionTime": row.execution_time if processed else None,
        },
        "downloadUrls": urls,
        "expiresAt": expires_at_ms,
        "statusMessage": row.err_message,
    }


#: Submit and read write the job as a Scala map (HashMap order, ``None`` dropped).
MAP_ORDER = (
    "attempts",
    "lastUpdated",
    "tag",
    "expiresAt",
    "datasetConfig",
    "downloadUrls",
    "requestedBy",
    "jobStats",
    "status",
    "dataset",
    "requestId",
    "requestedChannel",
    "statusMessage",
)
#: List (and search) write it as a case class (declaration order, ``None`` as ``null``).
CASE_CLASS_ORDER = (
    "requestId",
    "tag",
    "dataset",
    "requestedBy",
    "requestedChannel",
    "status",
    "lastUpdated",
    "datasetConfig",
    "attempts",
    "jobStats",
    "downloadUrls",
    "expiresAt",
    "statusMessage",
)


def job_as_map(fields: dict[str, Any]) -> dict[str, Any]:
    """The job object as submit and read return it: ``statusMessage`` omitted while it is null."""
    return {key: fields[key] for key in MAP_ORDER if not (key == "statusMessage" and fields[key] is None)}


def job_as_case_class(fields: dict[str, Any]) -> dict[str, Any]:
    """The job object as list returns it: every field, ``statusMessage: null`` included."""
    return {key: fields[key] for key in CASE_CLASS_ORDER}
