"""The emulator's own routes (``/admin/...``): the clock, health, job results, the nightly jobs and the
served-faults log. The real service has none.

They answer only callers :mod:`airflow_provider_uci.emulator.access` lets in, and refuse anything else
with the service's error envelope (``id`` ``uci.emulator.admin``), never a 500.
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from airflow_provider_uci.emulator import protocol
from airflow_provider_uci.emulator.access import ADMIN_ID
from airflow_provider_uci.emulator.config import SettingsError, check_instant
from airflow_provider_uci.emulator.deps import ADMIN_ONLY, SchedulerDep, ServedDep, ServiceDep
from airflow_provider_uci.emulator.gateway import json_response
from airflow_provider_uci.emulator.inputs import (
    ClientInputError,
    check_text,
    error_response,
    json_object,
    parse_limit,
    read_body,
)
from airflow_provider_uci.emulator.service import Service
from airflow_provider_uci.emulator.storage import StorageError, https_url, wasb_url
from airflow_provider_uci.emulator.store import JobRow

#: The admin routes, each behind the admin guard.
router = APIRouter(prefix="/admin", dependencies=[ADMIN_ONLY])


def _bad(service: Service, status: int, message: str) -> Response:
    return error_response(ADMIN_ID, service.clock.now(), ClientInputError(status, message))


def _clock_view(service: Service) -> dict[str, Any]:
    return {
        "now": service.clock.now().isoformat(),
        "offsetSeconds": service.clock.offset_seconds,
        "timezone": str(service.settings.timezone),
    }


@router.get("/served")
async def served(served: ServedDep) -> Response:
    """The faults served since the emulator started, by kind and route, and the submissions it accepted."""
    return json_response(served.report(), 200)


@router.post("/run-jobs")
async def run_jobs(request: Request, service: ServiceDep) -> Response:
    """Run the nightly jobs now, as the real service's on-demand replay does."""

    from airflow_provider_uci.emulator.jobs import DATASETS

    dataset = request.query_params.get("dataset")
    if dataset is not None and dataset not in DATASETS:
        return _bad(service, 400, f"dataset: must be one of {', '.join(DATASETS)}, got {dataset[:60]!r}")
    outcomes = await run_in_threadpool(service.run_jobs, (dataset,) if dataset else None)
    return json_response({"processed": [outcome.as_dict() for outcome in outcomes]}, 200)


@router.get("/schedule")
async def schedule(service: ServiceDep, scheduler: SchedulerDep) -> Response:
    settings = service.settings
    return json_response(
        {
            "enabled": settings.schedule,
            "every": settings.jobs_every,
            "timezone": str(settings.jobs_timezone),
            "crons": scheduler.crons,
            "runs": scheduler.runs,
            "nextDue": {name: due.isoformat() for name, due in scheduler.next_due.items()},
        },
        200,
    )


@router.get("/health")
async def health(service: ServiceDep) -> Response:
    return json_response(
        {
            "status": "ok",
            "storage": service.settings.storage,
            "store": "postgresql" if service.store.is_postgres else "sqlite",
            "now": service.clock.now().isoformat(),
        },
        200,
    )


@router.get("/last-request")
async def last_request(request: Request) -> Response:
    """The method, path and header names of the last API call the gateway saw (a client's header hygiene)."""
    seen = getattr(request.app.state, "last_request", None)
    return json_response(seen or {"method": None, "path": None, "headerNames": []}, 200)


@router.get("/clock")
async def get_clock(service: ServiceDep) -> Response:
    return json_response(_clock_view(service), 200)


def _instant(body: dict[str, Any]) -> datetime | str:
    """The instant ``{"now": ...}`` names, or why it names none."""
    text = body.get("now")
    if not isinstance(text, str):
        return "now: expected an ISO 8601 date-time with an offset, such as 2026-01-05T10:00:00+05:30"
    try:
        instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return f"now: expected an ISO 8601 date-time with an offset, got {text[:60]!r}"
    if instant.tzinfo is None:
        return "now: the date-time must carry a UTC offset"
    try:
        check_instant(instant, "now")
    except SettingsError as exc:
        return str(exc)
    return instant


@router.post("/clock")
async def set_clock(request: Request, service: ServiceDep) -> Response:
    """Move the clock to ``{"now": "<ISO date-time with offset>"}``, or back to real time with ``{"reset": true}``."""
    try:
        body = json_object(await read_body(request, ADMIN_BODY_BYTES))
    except ClientInputError as exc:
        return error_response(ADMIN_ID, service.clock.now(), exc)
    reset = body.get("reset", False)
    if not isinstance(reset, bool):
        return _bad(service, 400, f"reset: must be true or false, got {type(reset).__name__}")
    if reset:
        service.clock.reset()
        return json_response(_clock_view(service), 200)
    instant = _instant(body)
    if isinstance(instant, str):
        return _bad(service, 400, instant)
    service.clock.set(instant)
    return json_response(_clock_view(service), 200)


async def _find_job(request: Request, service: Service, request_id: str) -> tuple[str, JobRow | Response]:
    """The job's ``tag`` query parameter and its row, or the refusal when there is no such job."""
    tag = request.query_params.get("tag", "")
    if not tag:
        return tag, _bad(service, 400, "tag: required query parameter (the job's tag:channel)")
    # a NUL is in no stored tag or id, and PostgreSQL refuses to compare it
    row = None if "\x00" in tag + request_id else await service.db(service.store.get, tag, request_id)
    if row is None:
        return tag, _bad(service, 404, f"no job with tag {tag[:120]!r} and requestId {request_id[:60]!r}")
    return tag, row


async def _job_view(service: Service, tag: str, request_id: str) -> Response:
    row = await service.db(service.store.get, tag, request_id)
    fields = service.job_fields(row, "http://admin.invalid")
    fields["downloadUrls"] = list(row.download_urls)  # the stored form, unsigned
    return json_response(protocol.job_as_case_class(fields), 200)


async def _store_body(request: Request, service: Service, key: str) -> None:
    """Store the request body as blob ``key`` of the reports container."""
    # the body goes to a temporary file a chunk at a time, so a file of any size costs no memory
    with tempfile.NamedTemporaryFile(prefix="uci-place-", suffix=".part") as spool:
        async for chunk in request.stream():
            spool.write(chunk)
        spool.flush()
        await run_in_threadpool(
            service.storage.upload_file, service.settings.reports_container, key, Path(spool.name)
        )


@router.post("/jobs/{request_id}/file")
async def place_file(request: Request, request_id: str, service: ServiceDep) -> Response:
    """Store the request body as the job's output file and mark the job SUCCESS.

    Every parameter is checked before a byte is stored, and a file stored for a job that then
    cannot be marked is removed again, so a refused or failed call leaves nothing behind.
    """
    tag, row = await _find_job(request, service, request_id)
    if isinstance(row, Response):
        return row
    given = request.query_params.get("name")
    name = given or default_file_name(row.job_id, row.request_data, service.clock.now())
    try:
        execution = parse_limit(request.query_params.get("executionTime", "0"), "executionTime")
        check_file_name(name, "name" if given else "name (from the job's conversationId; pass ?name=)")
    except ClientInputError as exc:
        return error_response(ADMIN_ID, service.clock.now(), exc)
    key = f"{row.job_id}/{request_id}/{name}"
    container = service.settings.reports_container
    storage = service.storage
    try:
        existed = await run_in_threadpool(storage.exists, container, key)
    except StorageError:  # the job's dataset (any text at submit) makes no folder name, such as '..'
        return _bad(service, 400, f"dataset: the job's dataset {row.job_id[:60]!r} makes no blob key")
    await _store_body(request, service, key)
    account = storage.account
    stored = (
        https_url(account, container, key) if name.endswith(".zip") else wasb_url(account, container, key)
    )
    try:
        await service.db(
            service.store.mark_success,
            tag,
            request_id,
            download_urls=[stored],
            execution_time=execution,
            completed=service.clock.now(),
        )
    except BaseException:
        if not existed:
            await run_in_threadpool(storage.delete, container, key)
        raise
    return await _job_view(service, tag, request_id)


@router.post("/jobs/{request_id}/fail")
async def fail_job(request: Request, request_id: str, service: ServiceDep) -> Response:
    """Mark the job FAILED with ``{"message": ...}`` (default ``Invalid request``), as a nightly run would."""
    try:
        body = json_object(await read_body(request, ADMIN_BODY_BYTES), empty_ok=True)
    except ClientInputError as exc:
        return error_response(ADMIN_ID, service.clock.now(), exc)
    message = body.get("message", "Invalid request")
    if not isinstance(message, str):
        return _bad(service, 400, f"message: must be a string, got {type(message).__name__}")
    try:
        check_text(message, "message")
    except ClientInputError as exc:
        return error_response(ADMIN_ID, service.clock.now(), exc)
    tag, row = await _find_job(request, service, request_id)
    if isinstance(row, Response):
        return row
    await service.db(
        service.store.mark_failed, tag, request_id, message=message, completed=service.clock.now()
    )
    return await _job_view(service, tag, request_id)


#: Admin JSON bodies (the clock, a failure message) are small.
ADMIN_BODY_BYTES = 64 * 1024


def check_file_name(name: str, what: str = "name") -> str:
    """A job file's name: one path segment of printable characters, as the real jobs write them."""
    if not 0 < len(name) <= 200:
        raise ClientInputError(400, f"{what}: must be 1 to 200 characters, got {len(name)}")
    if (
        name in (".", "..")
        or name.endswith(".partial")
        or any(c in name for c in "/\\")
        or not name.isprintable()
    ):
        raise ClientInputError(
            400,
            f"{what}: must be one file name (no '/', '\\', control characters, '.', '..' "
            f"or '.partial' ending), got {name[:60]!r}",
        )
    return name


def default_file_name(dataset: str, request_data: Any, now: datetime) -> str:
    """The real job's file name: ``<conversationId>_<response|userinfo>_<yyyyMMdd IST>.csv|.zip``."""
    from airflow_provider_uci.emulator.jobs.common import IST

    conversation = request_data.get("conversationId", "") if isinstance(request_data, dict) else ""
    day = now.astimezone(IST).strftime("%Y%m%d")
    if dataset == "uci-private-exhaust":
        return f"{conversation}_userinfo_{day}.zip"
    return f"{conversation}_response_{day}.csv"
