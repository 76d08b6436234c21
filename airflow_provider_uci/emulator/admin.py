"""Routes beside the API: signed downloads from local storage, the clock, health and job results.

The download route stands in for Azure Blob's: it checks the SAS-shaped ``se``/``sig`` against the
emulator's clock, answers 403 ``AuthenticationFailed`` for an expired or altered URL, and serves
ranged GETs. Admin routes (``/admin/...``) are the emulator's own; the real service has none. They
answer only callers :mod:`airflow_provider_uci.emulator.access` lets in, and refuse anything else with
the service's error envelope (``id`` ``uci.emulator.admin``), never a 500.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from airflow_provider_uci.emulator import protocol
from airflow_provider_uci.emulator.access import ADMIN_ID, admin_refusal
from airflow_provider_uci.emulator.config import SettingsError, check_instant
from airflow_provider_uci.emulator.gateway import drop_connection, inject_faults, json_response
from airflow_provider_uci.emulator.inputs import (
    ClientInputError,
    check_text,
    error_response,
    json_object,
    parse_limit,
    read_body,
)
from airflow_provider_uci.emulator.storage import LocalStorage, StorageError, https_url, wasb_url
from airflow_provider_uci.emulator.store import JobRow
from airflow_provider_uci.exhaust.names import PRIVATE_DATASET

if TYPE_CHECKING:
    from airflow_provider_uci.emulator.service import Service

CHUNK = 256 * 1024


def azure_error(status: int, code: str, message: str) -> Response:
    """An error shaped like Azure Blob's XML answer."""
    body = (
        f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code>'
        f"<Message>{message}</Message></Error>"
    ).encode()
    return Response(body, status_code=status, media_type="application/xml", headers={"x-ms-error-code": code})


def parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """Return ``(first, last)`` for a ``bytes=`` range, ``None`` without one, ``"bad"`` if unsatisfiable."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first_text, _, last_text = header[len("bytes=") :].strip().partition("-")
    try:
        if first_text == "":
            length = int(last_text)
            first, last = max(size - length, 0), size - 1
        else:
            first = int(first_text)
            last = min(int(last_text), size - 1) if last_text else size - 1
    except ValueError:
        return None
    if first >= size or first > last:
        return "bad"
    return first, last


def register_admin(app: FastAPI, service: Service) -> None:
    """Add the download, clock, health, job-result and served-faults routes."""

    async def download(request: Request, account: str, container: str, key: str) -> Response:
        storage = service.storage
        if not isinstance(storage, LocalStorage) or account != storage.account:
            return azure_error(404, "ResourceNotFound", "The specified resource does not exist.")
        if (fault := await inject_faults(request, "download", None)) is not None:
            return fault
        se, sig = request.query_params.get("se"), request.query_params.get("sig")
        if not se or not sig:
            return azure_error(403, "AuthenticationFailed", "Server failed to authenticate the request.")
        refusal = storage.verify(container, key, se=se, sig=sig, now=service.clock.now())
        if refusal is not None:
            return azure_error(
                403, "AuthenticationFailed", f"Server failed to authenticate the request. {refusal}"
            )
        try:
            path = storage.path(container, key)
            size = path.stat().st_size
        except (StorageError, OSError, ValueError):  # no such blob, or a key no file can have
            return azure_error(404, "BlobNotFound", "The specified blob does not exist.")
        ranged = parse_range(request.headers.get("range"), size)
        if ranged == "bad":
            return azure_error(
                416, "InvalidRange", "The range specified is invalid for the current size of the resource."
            )
        first, last = ranged if isinstance(ranged, tuple) else (0, size - 1)
        length = last - first + 1 if size else 0
        headers = {"Content-Length": str(length), "Accept-Ranges": "bytes", "x-ms-blob-type": "BlockBlob"}
        if isinstance(ranged, tuple):
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        if request.method == "HEAD":
            return Response(status_code=206 if isinstance(ranged, tuple) else 200, headers=headers)
        cut = length // 2 if service.settings.faults.truncates() else None

        async def body() -> AsyncIterator[bytes]:
            remaining = length if cut is None else cut
            with path.open("rb") as handle:
                handle.seek(first)
                while remaining > 0:
                    chunk = handle.read(min(CHUNK, remaining))
                    if not chunk:
                        break
                    remaining -= len(chunk)
                    yield chunk
            if cut is not None:
                app.state.served.fault("truncate", "download")
                if not drop_connection(request):
                    raise ConnectionAbortedError("truncated download (fault knob)")

        return StreamingResponse(
            body(),
            status_code=206 if isinstance(ranged, tuple) else 200,
            headers=headers,
            media_type="application/octet-stream",
        )

    for method in ("GET", "HEAD"):
        app.add_api_route(
            "/blob/{account}/{container}/{key:path}",
            download,
            methods=[method],
            operation_id=f"{method.lower()}_blob",
        )

    def refusal(request: Request) -> Response | None:
        refused = admin_refusal(request, service.settings)
        return None if refused is None else error_response(ADMIN_ID, service.clock.now(), refused)

    def bad(status: int, message: str) -> Response:
        return error_response(ADMIN_ID, service.clock.now(), ClientInputError(status, message))

    async def health(request: Request) -> Response:
        if (refused := refusal(request)) is not None:
            return refused
        return json_response(
            {
                "status": "ok",
                "storage": service.settings.storage,
                "store": "postgresql" if service.store.is_postgres else "sqlite",
                "now": service.clock.now().isoformat(),
            },
            200,
        )

    def clock_view() -> dict[str, Any]:
        return {
            "now": service.clock.now().isoformat(),
            "offsetSeconds": service.clock.offset_seconds,
            "timezone": str(service.settings.timezone),
        }

    async def last_request(request: Request) -> Response:
        """The method, path and header names of the last API call the gateway saw (a client's header hygiene)."""
        if (refused := refusal(request)) is not None:
            return refused
        seen = getattr(request.app.state, "last_request", None)
        return json_response(seen or {"method": None, "path": None, "headerNames": []}, 200)

    async def get_clock(request: Request) -> Response:
        if (refused := refusal(request)) is not None:
            return refused
        return json_response(clock_view(), 200)

    async def set_clock(request: Request) -> Response:
        """Move the clock to ``{"now": "<ISO date-time with offset>"}``, or back to real time with ``{"reset": true}``."""
        if (refused := refusal(request)) is not None:
            return refused
        try:
            body = json_object(await read_body(request, ADMIN_BODY_BYTES))
        except ClientInputError as exc:
            return error_response(ADMIN_ID, service.clock.now(), exc)
        reset = body.get("reset", False)
        if not isinstance(reset, bool):
            return bad(400, f"reset: must be true or false, got {type(reset).__name__}")
        if reset:
            service.clock.reset()
            return json_response(clock_view(), 200)
        text = body.get("now")
        if not isinstance(text, str):
            return bad(
                400, "now: expected an ISO 8601 date-time with an offset, such as 2026-01-05T10:00:00+05:30"
            )
        try:
            instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return bad(400, f"now: expected an ISO 8601 date-time with an offset, got {text[:60]!r}")
        if instant.tzinfo is None:
            return bad(400, "now: the date-time must carry a UTC offset")
        try:
            check_instant(instant, "now")
        except SettingsError as exc:
            return bad(400, str(exc))
        service.clock.set(instant)
        return json_response(clock_view(), 200)

    async def find_job(request: Request, request_id: str) -> tuple[str, JobRow | Response]:
        """The job's ``tag`` query parameter and its row, or the refusal when there is no such job."""
        tag = request.query_params.get("tag", "")
        if not tag:
            return tag, bad(400, "tag: required query parameter (the job's tag:channel)")
        # a NUL is in no stored tag or id, and PostgreSQL refuses to compare it
        row = None if "\x00" in tag + request_id else await service.db(service.store.get, tag, request_id)
        if row is None:
            return tag, bad(404, f"no job with tag {tag[:120]!r} and requestId {request_id[:60]!r}")
        return tag, row

    async def place_file(request: Request, request_id: str) -> Response:
        """Store the request body as the job's output file and mark the job SUCCESS.

        Every parameter is checked before a byte is stored, and a file stored for a job that then
        cannot be marked is removed again, so a refused or failed call leaves nothing behind.
        """
        if (refused := refusal(request)) is not None:
            return refused
        tag, row = await find_job(request, request_id)
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
            return bad(400, f"dataset: the job's dataset {row.job_id[:60]!r} makes no blob key")
        # the body goes to a temporary file a chunk at a time, so a file of any size costs no memory
        with tempfile.NamedTemporaryFile(prefix="uci-place-", suffix=".part") as spool:
            async for chunk in request.stream():
                spool.write(chunk)
            spool.flush()
            await run_in_threadpool(storage.upload_file, container, key, Path(spool.name))
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
        return await job_view(tag, request_id)

    async def fail_job(request: Request, request_id: str) -> Response:
        """Mark the job FAILED with ``{"message": ...}`` (default ``Invalid request``), as a nightly run would."""
        if (refused := refusal(request)) is not None:
            return refused
        try:
            body = json_object(await read_body(request, ADMIN_BODY_BYTES), empty_ok=True)
        except ClientInputError as exc:
            return error_response(ADMIN_ID, service.clock.now(), exc)
        message = body.get("message", "Invalid request")
        if not isinstance(message, str):
            return bad(400, f"message: must be a string, got {type(message).__name__}")
        try:
            check_text(message, "message")
        except ClientInputError as exc:
            return error_response(ADMIN_ID, service.clock.now(), exc)
        tag, row = await find_job(request, request_id)
        if isinstance(row, Response):
            return row
        await service.db(
            service.store.mark_failed, tag, request_id, message=message, completed=service.clock.now()
        )
        return await job_view(tag, request_id)

    async def job_view(tag: str, request_id: str) -> Response:
        row = await service.db(service.store.get, tag, request_id)
        fields = service.job_fields(row, "http://admin.invalid")
        fields["downloadUrls"] = list(row.download_urls)  # the stored form, unsigned
        return json_response(protocol.job_as_case_class(fields), 200)

    async def run_jobs(request: Request) -> Response:
        """Run the nightly jobs now, as the real service's on-demand replay does."""

        from airflow_provider_uci.emulator.jobs import DATASETS

        if (refused := refusal(request)) is not None:
            return refused
        dataset = request.query_params.get("dataset")
        if dataset is not None and dataset not in DATASETS:
            return bad(400, f"dataset: must be one of {', '.join(DATASETS)}, got {dataset[:60]!r}")
        outcomes = await run_in_threadpool(service.run_jobs, (dataset,) if dataset else None)
        return json_response({"processed": [outcome.as_dict() for outcome in outcomes]}, 200)

    async def schedule(request: Request) -> Response:
        if (refused := refusal(request)) is not None:
            return refused
        scheduler = app.state.scheduler
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

    async def served(request: Request) -> Response:
        """The faults served since the emulator started, by kind and route, and the submissions it accepted."""
        if (refused := refusal(request)) is not None:
            return refused
        return json_response(app.state.served.report(), 200)

    app.add_api_route("/admin/served", served, methods=["GET"])
    app.add_api_route("/admin/run-jobs", run_jobs, methods=["POST"])
    app.add_api_route("/admin/schedule", schedule, methods=["GET"])
    app.add_api_route("/admin/health", health, methods=["GET"])
    app.add_api_route("/admin/last-request", last_request, methods=["GET"])
    app.add_api_route("/admin/clock", get_clock, methods=["GET"])
    app.add_api_route("/admin/clock", set_clock, methods=["POST"])
    app.add_api_route("/admin/jobs/{request_id}/file", place_file, methods=["POST"])
    app.add_api_route("/admin/jobs/{request_id}/fail", fail_job, methods=["POST"])


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
    if dataset == PRIVATE_DATASET:
        return f"{conversation}_userinfo_{day}.zip"
    return f"{conversation}_response_{day}.csv"
