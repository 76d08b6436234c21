"""The Data Exhaust API (contract section 1) as a FastAPI application.

Routes are served at the gateway paths (``/dataset/v1/request/...``) and again under ``/api``, so a
connection host of ``http://127.0.0.1:9000/api`` works as ``https://<host>/api`` does for the real
service. ``POST /request/search`` is the service's internal route. Download and admin routes are in
:mod:`airflow_provider_uci.emulator.admin`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from airflow_provider_uci.emulator import protocol
from airflow_provider_uci.emulator.access import admin_refusal
from airflow_provider_uci.emulator.config import EmulatorSettings
from airflow_provider_uci.emulator.faults import ServedLog
from airflow_provider_uci.emulator.fields import SEARCH_FILTERS, check_day, check_submission
from airflow_provider_uci.emulator.gateway import (
    authorize,
    envelope_response,
    gateway_consumer,
    inject_faults,
    json_response,
    route_miss,
)
from airflow_provider_uci.emulator.inputs import (
    MAX_LIMIT,
    BodyTooLarge,
    ClientInputError,
    check_text,
    error_response,
    parse_json,
    parse_limit,
    read_body,
    require_json_type,
)
from airflow_provider_uci.emulator.service import Service
from airflow_provider_uci.emulator.store import StoreError

#: Kong's request-size-limiting plugin on these routes: 1 MB.
MAX_BODY_BYTES = 1024 * 1024

PLAY_ERROR_PAGE = (
    b'<!DOCTYPE html><html lang="en"><head><title>Internal Server Error</title></head><body>'
    b"<h1>Oops, an error occurred</h1><p>This exception has been logged with id <code>7ci3m0pdj</code>.</p>"
    b"</body></html>"
)
PLAY_BAD_JSON_PAGE = (
    b'<!DOCTYPE html><html lang="en"><head><title>Bad Request</title></head><body><h1>Bad Request</h1>'
    b"<p>For request 'POST /request/submit' [Invalid Json]</p></body></html>"
)


def base_url(request: Request) -> str:
    """Scheme and authority the client used, for download URLs it can reach."""
    return f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"


async def server_error(service: Service, api_id: str, message: str, started: float) -> Response:
    """The real controller's 500: its actor never replies, so the ask times out (after a delay)."""
    if service.settings.server_error_delay:
        await asyncio.sleep(service.settings.server_error_delay)
    return envelope_response(protocol.failure(api_id, service.clock.now(), "ERROR", message), started)


def register_api(app: FastAPI, service: Service) -> None:
    """Add the gateway routes (at both prefixes) and the internal search route."""
    loop_time = lambda: asyncio.get_running_loop().time()  # noqa: E731
    play = service.settings.play_errors

    async def submit(request: Request) -> Response:
        started = loop_time()
        if (fault := await inject_faults(request, "submit", protocol.SUBMIT_ID)) is not None:
            return fault
        consumer = gateway_consumer(request, service.settings)
        if isinstance(consumer, Response):
            return consumer
        try:
            raw = await read_body(request, MAX_BODY_BYTES)
        except BodyTooLarge:
            return json_response({"message": "Request size limit exceeded"}, 413)
        try:
            require_json_type(request)
        except ClientInputError as exc:
            if play:
                return Response(PLAY_ERROR_PAGE, status_code=500, media_type="text/html")
            return error_response(protocol.SUBMIT_ID, service.clock.now(), exc)
        now = service.clock.now()
        try:
            body = parse_json(raw)
        except ClientInputError as exc:
            if play:
                return Response(PLAY_BAD_JSON_PAGE, status_code=400, media_type="text/html")
            return error_response(protocol.SUBMIT_ID, now, exc)
        req = body.get("request") if isinstance(body, dict) else None
        if not isinstance(req, dict):
            if play:
                return await server_error(
                    service, protocol.SUBMIT_ID, "java.lang.NullPointerException", started
                )
            return error_response(
                protocol.SUBMIT_ID, now, ClientInputError(400, "request: must be a JSON object")
            )
        for key in ("tag", "dataset", "datasetConfig"):
            if req.get(key) is None:
                return envelope_response(
                    protocol.failure(protocol.SUBMIT_ID, now, "CLIENT_ERROR", f"{key} is empty"), started
                )
        channel = request.headers.get("x-channel-id", "")
        if (denied := authorize(request, service.settings, consumer, channel)) is not None:
            return envelope_response(protocol.failure(protocol.SUBMIT_ID, now, "FORBIDDEN", denied), started)
        tag, dataset, config = _text(req["tag"]), _text(req["dataset"]), req["datasetConfig"]
        requested_by = _text(req.get("requestedBy") or "")
        key = req.get("encryptionKey")
        zip_password = None if key is None else _text(key)
        try:
            check_submission(
                tag=tag,
                dataset=dataset,
                requested_by=requested_by,
                channel=channel,
                zip_password=zip_password,
                lengths=not play,
            )
        except ClientInputError as exc:
            return error_response(protocol.SUBMIT_ID, now, exc)
        dataset_type = config.get("type") if isinstance(config, dict) else None
        rid = protocol.request_id(
            dataset=dataset,
            tag=tag,
            requested_by=requested_by,
            channel=channel,
            submission_date=now.astimezone(service.settings.timezone).strftime("%Y-%m-%d"),
            dataset_type=None if dataset_type is None else _text(dataset_type),
        )
        try:
            row = await service.db(
                service.store.submit,
                tag=f"{tag}:{channel}",
                request_id=rid,
                job_id=dataset,
                request_data=config,
                requested_by=requested_by,
                requested_channel=channel,
                zip_password=zip_password,
                now=now,
            )
        except StoreError as exc:
            return await server_error(service, protocol.SUBMIT_ID, str(exc), started)
        request.app.state.served.submission(dataset, config, now.astimezone(service.settings.timezone))
        job = protocol.job_as_map(service.job_fields(row, lambda: base_url(request)))
        return envelope_response(protocol.success(protocol.SUBMIT_ID, service.clock.now(), job), started)

    async def read(request: Request, tag: str) -> Response:
        started = loop_time()
        if (fault := await inject_faults(request, "read", protocol.READ_ID)) is not None:
            return fault
        consumer = gateway_consumer(request, service.settings)
        if isinstance(consumer, Response):
            return consumer
        channel = request.headers.get("x-channel-id", "")
        rid = request.query_params.get("requestId", "")
        try:
            # a NUL can be in no stored tag or id (submit refuses it), and PostgreSQL refuses to compare it
            row = (
                None if "\x00" in tag + rid else await service.db(service.store.get, f"{tag}:{channel}", rid)
            )
        except StoreError as exc:
            return await server_error(service, protocol.READ_ID, str(exc), started)
        now = service.clock.now()
        if row is None:
            return envelope_response(
                protocol.failure(protocol.READ_ID, now, "OK", protocol.NO_JOB_MESSAGE, response_code="OK"),
                started,
            )
        if (denied := authorize(request, service.settings, consumer, channel)) is not None:
            return envelope_response(protocol.failure(protocol.READ_ID, now, "FORBIDDEN", denied), started)
        job = protocol.job_as_map(service.job_fields(row, lambda: base_url(request)))
        return envelope_response(protocol.success(protocol.READ_ID, now, job), started)

    async def list_jobs(request: Request, tag: str) -> Response:
        started = loop_time()
        if (fault := await inject_faults(request, "list", protocol.LIST_ID)) is not None:
            return fault
        consumer = gateway_consumer(request, service.settings)
        if isinstance(consumer, Response):
            return consumer
        channel = request.headers.get("x-channel-id", "")
        raw_limit = request.query_params.get("limit")
        if raw_limit is None:
            limit = service.settings.list_default_limit
        elif play:
            try:  # the real controller's toInt: anything but a Java int is its HTML 500 page
                limit = int(raw_limit)
                if not -MAX_LIMIT - 1 <= limit <= MAX_LIMIT:
                    raise ValueError(raw_limit)
            except ValueError:
                return Response(PLAY_ERROR_PAGE, status_code=500, media_type="text/html")
        else:
            try:
                limit = parse_limit(raw_limit)
            except ClientInputError as exc:
                return error_response(protocol.LIST_ID, service.clock.now(), exc)
        try:
            rows = [] if "\x00" in tag else await service.db(service.store.list, f"{tag}:{channel}", limit)
        except StoreError as exc:
            return await server_error(service, protocol.LIST_ID, str(exc), started)
        now = service.clock.now()
        if (denied := authorize(request, service.settings, consumer, channel)) is not None:
            return envelope_response(protocol.failure(protocol.LIST_ID, now, "FORBIDDEN", denied), started)
        jobs = [
            protocol.job_as_case_class(service.job_fields(row, lambda: base_url(request))) for row in rows
        ]
        return envelope_response(
            protocol.success(protocol.LIST_ID, now, {"count": len(jobs), "jobs": jobs}), started
        )

    async def search(request: Request) -> Response:
        started = loop_time()
        if (refused := admin_refusal(request, service.settings)) is not None:
            return error_response(protocol.SEARCH_ID, service.clock.now(), refused)
        if (fault := await inject_faults(request, "search", protocol.SEARCH_ID)) is not None:
            return fault
        try:
            raw = await read_body(request, MAX_BODY_BYTES)
            require_json_type(request)
            body = parse_json(raw)
        except ClientInputError as exc:
            if play and exc.status == 415:
                return Response(PLAY_ERROR_PAGE, status_code=500, media_type="text/html")
            if play and exc.status == 400:
                return Response(PLAY_BAD_JSON_PAGE, status_code=400, media_type="text/html")
            return error_response(protocol.SEARCH_ID, service.clock.now(), exc)
        now = service.clock.now()
        req = body.get("request") if isinstance(body, dict) else None
        filters = req.get("filters") if isinstance(req, dict) else None
        if not filters or not isinstance(filters, dict):
            return envelope_response(
                protocol.failure(protocol.SEARCH_ID, now, "CLIENT_ERROR", "Filters are empty"), started
            )
        supported = {k: _text(v) for k, v in filters.items() if k in SEARCH_FILTERS}
        if not supported:
            return envelope_response(
                protocol.failure(protocol.SEARCH_ID, now, "CLIENT_ERROR", "Unsupported filters"), started
            )
        limit_value = req.get("limit", service.settings.search_default_limit)
        try:
            for name, value in supported.items():
                check_text(value, f"filters.{name}")
            if not play:
                check_day(supported.get("requestedDate"))
                limit_value = parse_limit(limit_value, "limit")
        except ClientInputError as exc:
            return error_response(protocol.SEARCH_ID, now, exc)
        try:
            total, rows = await service.db(service.store.search, supported, int(limit_value))
        except (StoreError, TypeError, ValueError, OverflowError) as exc:
            return await server_error(service, protocol.SEARCH_ID, str(exc), started)
        jobs = [
            protocol.job_as_case_class(service.job_fields(row, lambda: base_url(request))) for row in rows
        ]
        return envelope_response(
            protocol.success(protocol.SEARCH_ID, now, {"count": total, "jobs": jobs}), started
        )

    for prefix in ("", "/api"):
        app.add_api_route(
            f"{prefix}/dataset/v1/request/submit", submit, methods=["POST"], include_in_schema=not prefix
        )
        app.add_api_route(
            f"{prefix}/dataset/v1/request/read/{{tag}}", read, methods=["GET"], include_in_schema=not prefix
        )
        app.add_api_route(
            f"{prefix}/dataset/v1/request/list/{{tag}}",
            list_jobs,
            methods=["GET"],
            include_in_schema=not prefix,
        )
    app.add_api_route("/request/search", search, methods=["POST"])


def _text(value: Any) -> str:
    """A JSON value as the Scala service sees it in a string field."""
    return value if isinstance(value, str) else json.dumps(value)


def create_app(settings: EmulatorSettings | None = None, *, service: Service | None = None) -> FastAPI:
    """Build the emulator's application; every piece comes from ``settings`` unless given.

    While the application runs (under uvicorn), the nightly jobs run on their schedule unless
    ``settings.schedule`` is off.
    """
    from airflow_provider_uci.emulator import openapi
    from airflow_provider_uci.emulator.admin import register_admin
    from airflow_provider_uci.emulator.scheduler import JobScheduler

    service = service or Service(settings or EmulatorSettings.from_env())
    scheduler = JobScheduler(service)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(scheduler.run_forever()) if service.settings.schedule else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = FastAPI(
        title="Sunbird Data Exhaust (local emulator)", docs_url="/docs", redoc_url=None, lifespan=lifespan
    )
    app.state.service = service
    app.state.settings = service.settings
    app.state.clock = service.clock
    app.state.scheduler = scheduler
    app.state.find_transport = None
    app.state.served = ServedLog()
    app.add_exception_handler(StarletteHTTPException, route_miss)
    register_api(app, service)
    register_admin(app, service)
    openapi.install(app)
    return app
