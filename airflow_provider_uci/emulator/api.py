"""The Data Exhaust API (docs/service-contract.md §1): the gateway's routes and the service's internal search.

:data:`router` holds the gateway routes (``/dataset/v1/request/...``); the application serves it twice,
at the root and under ``/api``, so a connection host of ``http://127.0.0.1:9000/api`` works as
``https://<host>/api`` does for the real service. :data:`internal_router` holds ``POST /request/search``,
the service's internal route, which answers admin callers only.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from airflow_provider_uci.emulator import protocol
from airflow_provider_uci.emulator.deps import Refused, ServedDep, ServiceDep, SettingsDep, admin_guard
from airflow_provider_uci.emulator.fields import SEARCH_FILTERS, check_day, check_submission
from airflow_provider_uci.emulator.gateway import (
    authorize,
    envelope_response,
    gateway_consumer,
    inject_faults,
    json_response,
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

#: The gateway's routes, served at the root and again under ``/api``.
router = APIRouter()
#: The service's own route behind the gateway.
internal_router = APIRouter(dependencies=[admin_guard(protocol.SEARCH_ID)])


def play_error_page() -> Response:
    """The real service's HTML 500 page (Play's), for input its controller does not expect."""
    return Response(PLAY_ERROR_PAGE, status_code=500, media_type="text/html")


def play_bad_json_page() -> Response:
    """Play's HTML 400 page for a body that is not JSON."""
    return Response(PLAY_BAD_JSON_PAGE, status_code=400, media_type="text/html")


def base_url(request: Request) -> str:
    """Scheme and authority the client used, for download URLs it can reach."""
    return f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


async def server_error(service: Service, api_id: str, message: str, started: float) -> Response:
    """The real controller's 500: its actor never replies, so the ask times out (after a delay)."""
    if service.settings.server_error_delay:
        await asyncio.sleep(service.settings.server_error_delay)
    return envelope_response(protocol.failure(api_id, service.clock.now(), "ERROR", message), started)


@dataclass(frozen=True)
class Caller:
    """A call the gateway let through: the consumer its API key names, the channel it asks for, and when
    it came (for the ``Request-Time`` header)."""

    consumer: str
    channel: str
    started: float


def through_gateway(route: str, api_id: str) -> Any:
    """A dependency that passes a call through the gateway: the fault knobs first, then the API key.
    A fault, or the gateway's 401, answers in the route's place."""

    async def gateway_caller(request: Request, settings: SettingsDep) -> Caller:
        started = _loop_time()
        if (fault := await inject_faults(request, route, api_id)) is not None:
            raise Refused(fault)
        consumer = gateway_consumer(request, settings)
        if isinstance(consumer, Response):
            raise Refused(consumer)
        return Caller(consumer, request.headers.get("x-channel-id", ""), started)

    return Depends(gateway_caller)


SubmitCaller = Annotated[Caller, through_gateway("submit", protocol.SUBMIT_ID)]
ReadCaller = Annotated[Caller, through_gateway("read", protocol.READ_ID)]
ListCaller = Annotated[Caller, through_gateway("list", protocol.LIST_ID)]


def _text(value: Any) -> str:
    """A JSON value as the Scala service sees it in a string field."""
    return value if isinstance(value, str) else json.dumps(value)


def _failure(api_id: str, now: datetime, code: str, message: str, started: float) -> Response:
    return envelope_response(protocol.failure(api_id, now, code, message), started)


async def _submitted_request(
    request: Request, service: Service, started: float
) -> tuple[dict[str, Any], datetime] | Response:
    """The submission's ``request`` object with the instant it was read, or the answer to a body the
    service refuses (too large, not JSON, no ``request`` object, a required field missing)."""
    play = service.settings.play_errors
    try:
        raw = await read_body(request, MAX_BODY_BYTES)
    except BodyTooLarge:
        return json_response({"message": "Request size limit exceeded"}, 413)
    try:
        require_json_type(request)
    except ClientInputError as exc:
        return play_error_page() if play else error_response(protocol.SUBMIT_ID, service.clock.now(), exc)
    now = service.clock.now()
    try:
        body = parse_json(raw)
    except ClientInputError as exc:
        return play_bad_json_page() if play else error_response(protocol.SUBMIT_ID, now, exc)
    req = body.get("request") if isinstance(body, dict) else None
    if not isinstance(req, dict):
        if play:
            return await server_error(service, protocol.SUBMIT_ID, "java.lang.NullPointerException", started)
        return error_response(
            protocol.SUBMIT_ID, now, ClientInputError(400, "request: must be a JSON object")
        )
    for key in ("tag", "dataset", "datasetConfig"):
        if req.get(key) is None:
            return _failure(protocol.SUBMIT_ID, now, "CLIENT_ERROR", f"{key} is empty", started)
    return req, now


@router.post("/dataset/v1/request/submit")
async def submit(request: Request, service: ServiceDep, served: ServedDep, caller: SubmitCaller) -> Response:
    started, channel = caller.started, caller.channel
    submitted = await _submitted_request(request, service, started)
    if isinstance(submitted, Response):
        return submitted
    req, now = submitted
    if (denied := authorize(request, service.settings, caller.consumer, channel)) is not None:
        return _failure(protocol.SUBMIT_ID, now, "FORBIDDEN", denied, started)
    tag, dataset, config = _text(req["tag"]), _text(req["dataset"]), req["datasetConfig"]
    requested_by = _text(req.get("requestedBy") or "")
    key = req.get("encryptionKey")
    encryption_key = None if key is None else _text(key)
    try:
        check_submission(
            tag=tag,
            dataset=dataset,
            requested_by=requested_by,
            channel=channel,
            encryption_key=encryption_key,
            lengths=not service.settings.play_errors,
        )
    except ClientInputError as exc:
        return error_response(protocol.SUBMIT_ID, now, exc)
    dataset_type = config.get("type") if isinstance(config, dict) else None
    try:
        row = await service.db(
            service.store.submit,
            tag=f"{tag}:{channel}",
            request_id=protocol.request_id(
                dataset=dataset,
                tag=tag,
                requested_by=requested_by,
                channel=channel,
                submission_date=now.astimezone(service.settings.timezone).strftime("%Y-%m-%d"),
                dataset_type=None if dataset_type is None else _text(dataset_type),
            ),
            job_id=dataset,
            request_data=config,
            requested_by=requested_by,
            requested_channel=channel,
            encryption_key=encryption_key,
            now=now,
        )
    except StoreError as exc:
        return await server_error(service, protocol.SUBMIT_ID, str(exc), started)
    served.submission(dataset, config, now.astimezone(service.settings.timezone))
    job = protocol.job_as_map(service.job_fields(row, partial(base_url, request)))
    return envelope_response(protocol.success(protocol.SUBMIT_ID, service.clock.now(), job), started)


@router.get("/dataset/v1/request/read/{tag}")
async def read(request: Request, tag: str, service: ServiceDep, caller: ReadCaller) -> Response:
    started, channel = caller.started, caller.channel
    rid = request.query_params.get("requestId", "")
    try:
        # a NUL can be in no stored tag or id (submit refuses it), and PostgreSQL refuses to compare it
        row = None if "\x00" in tag + rid else await service.db(service.store.get, f"{tag}:{channel}", rid)
    except StoreError as exc:
        return await server_error(service, protocol.READ_ID, str(exc), started)
    now = service.clock.now()
    if row is None:
        return envelope_response(
            protocol.failure(protocol.READ_ID, now, "OK", protocol.NO_JOB_MESSAGE, response_code="OK"),
            started,
        )
    if (denied := authorize(request, service.settings, caller.consumer, channel)) is not None:
        return _failure(protocol.READ_ID, now, "FORBIDDEN", denied, started)
    job = protocol.job_as_map(service.job_fields(row, partial(base_url, request)))
    return envelope_response(protocol.success(protocol.READ_ID, now, job), started)


def _list_limit(raw_limit: str | None, service: Service) -> int | Response:
    """The list's ``limit`` query parameter, or the answer to one the service refuses."""
    if raw_limit is None:
        return service.settings.list_default_limit
    if service.settings.play_errors:
        try:  # the real controller's toInt: anything but a Java int is its HTML 500 page
            limit = int(raw_limit)
            if not -MAX_LIMIT - 1 <= limit <= MAX_LIMIT:
                raise ValueError(raw_limit)
        except ValueError:
            return play_error_page()
        return limit
    try:
        return parse_limit(raw_limit)
    except ClientInputError as exc:
        return error_response(protocol.LIST_ID, service.clock.now(), exc)


def _listed(
    service: Service, request: Request, api_id: str, now: datetime, rows: Any, count: int | None = None
) -> dict[str, Any]:
    """The success envelope of a list or search answer: the jobs as case classes, and ``count`` (the
    number of jobs unless given)."""
    jobs = [protocol.job_as_case_class(service.job_fields(row, partial(base_url, request))) for row in rows]
    return protocol.success(api_id, now, {"count": len(jobs) if count is None else count, "jobs": jobs})


@router.get("/dataset/v1/request/list/{tag}")
async def list_jobs(request: Request, tag: str, service: ServiceDep, caller: ListCaller) -> Response:
    started, channel = caller.started, caller.channel
    limit = _list_limit(request.query_params.get("limit"), service)
    if isinstance(limit, Response):
        return limit
    try:
        rows = [] if "\x00" in tag else await service.db(service.store.list, f"{tag}:{channel}", limit)
    except StoreError as exc:
        return await server_error(service, protocol.LIST_ID, str(exc), started)
    now = service.clock.now()
    if (denied := authorize(request, service.settings, caller.consumer, channel)) is not None:
        return _failure(protocol.LIST_ID, now, "FORBIDDEN", denied, started)
    return envelope_response(_listed(service, request, protocol.LIST_ID, now, rows), started)


async def _search_body(request: Request, service: Service) -> Any:
    """The search's parsed JSON body, or the answer to a body the service refuses."""
    play = service.settings.play_errors
    try:
        raw = await read_body(request, MAX_BODY_BYTES)
        require_json_type(request)
        return parse_json(raw)
    except ClientInputError as exc:
        if play and exc.status == 415:
            return play_error_page()
        if play and exc.status == 400:
            return play_bad_json_page()
        return error_response(protocol.SEARCH_ID, service.clock.now(), exc)


@internal_router.post("/request/search")
async def search(request: Request, service: ServiceDep) -> Response:
    started = _loop_time()
    if (fault := await inject_faults(request, "search", protocol.SEARCH_ID)) is not None:
        return fault
    body = await _search_body(request, service)
    if isinstance(body, Response):
        return body
    now = service.clock.now()
    req = body.get("request") if isinstance(body, dict) else None
    filters = req.get("filters") if isinstance(req, dict) else None
    if not isinstance(req, dict) or not filters or not isinstance(filters, dict):
        return _failure(protocol.SEARCH_ID, now, "CLIENT_ERROR", "Filters are empty", started)
    supported = {k: _text(v) for k, v in filters.items() if k in SEARCH_FILTERS}
    if not supported:
        return _failure(protocol.SEARCH_ID, now, "CLIENT_ERROR", "Unsupported filters", started)
    limit_value = req.get("limit", service.settings.search_default_limit)
    try:
        for name, value in supported.items():
            check_text(value, f"filters.{name}")
        if not service.settings.play_errors:
            check_day(supported.get("requestedDate"))
            limit_value = parse_limit(limit_value, "limit")
    except ClientInputError as exc:
        return error_response(protocol.SEARCH_ID, now, exc)
    try:
        total, rows = await service.db(service.store.search, supported, int(limit_value))
    except (StoreError, TypeError, ValueError, OverflowError) as exc:
        return await server_error(service, protocol.SEARCH_ID, str(exc), started)
    return envelope_response(_listed(service, request, protocol.SEARCH_ID, now, rows, total), started)
