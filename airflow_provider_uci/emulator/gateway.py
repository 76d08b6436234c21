"""What stands in front of the real service: the Kong gateway's API-key check, and the fault knobs.

The real gateway resolves the bearer API key to a consumer and passes ``X-Consumer-ID`` on; the
service then checks the (consumer, channel) pair. Faults are injected here too, before the service
sees the call, as a misbehaving network or gateway would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import Request, Response

from airflow_provider_uci.emulator import protocol
from airflow_provider_uci.emulator.config import EmulatorSettings

#: Text of the real controller's 500 after its 20-second ask timeout.
ASK_TIMEOUT_MESSAGE = (
    "Ask timed out on [Actor[akka://application/user/job-service-actor#-1474312046]] after [20000 ms]. "
    "Message of type [org.ekstep.analytics.api.service.JobAPIService$DataRequest]. "
    "A typical reason for `AskTimeoutException` is that the recipient actor didn't send a reply."
)

TransportFinder = Callable[[Any], Any]


def json_response(
    body: dict[str, Any] | bytes, status: int, headers: dict[str, str] | None = None
) -> Response:
    """A JSON response with the real service's ``Request-Time`` header."""
    content = body if isinstance(body, bytes) else protocol.dumps(body)
    return Response(content=content, status_code=status, media_type="application/json", headers=headers)


def envelope_response(envelope: dict[str, Any], started: float) -> Response:
    """Serialise an envelope with the HTTP status its ``responseCode`` maps to."""
    elapsed = int((asyncio.get_running_loop().time() - started) * 1000)
    return json_response(envelope, protocol.http_status(envelope), {"Request-Time": str(elapsed)})


async def route_miss(request: Request, exc: Exception) -> Response:
    """Answer a path no route takes (a tag holding '/', an unknown path) as the part in front would.

    Kong answers ``{"message": "no Route matched with those values"}``; a download path is Azure's
    ``ResourceNotFound``; an admin path the emulator's own envelope. A wrong method gets a 405 the same way.
    """
    from airflow_provider_uci.emulator.access import ADMIN_ID

    status = getattr(exc, "status_code", 404)
    path = request.url.path
    if path.startswith("/blob/"):
        body = (
            b'<?xml version="1.0" encoding="utf-8"?><Error><Code>ResourceNotFound</Code>'
            b"<Message>The specified resource does not exist.</Message></Error>"
        )
        return Response(
            body,
            status_code=404,
            media_type="application/xml",
            headers={"x-ms-error-code": "ResourceNotFound"},
        )
    if path.startswith("/admin/"):
        clock = request.app.state.clock
        code = "RESOURCE_NOT_FOUND" if status == 404 else "CLIENT_ERROR"
        return json_response(
            protocol.failure(ADMIN_ID, clock.now(), code, f"no route for {request.method} {path[:100]}"),
            status,
        )
    if status == 405:
        return json_response({"message": "Method Not Allowed"}, 405)
    return json_response({"message": "no Route matched with those values"}, 404)


def note_request(request: Request) -> None:
    """Keep the method, path and header names (never values) of the last API call, for ``GET /admin/last-request``."""
    request.app.state.last_request = {
        "method": request.method,
        "path": request.url.path,
        "headerNames": sorted({name.lower() for name in request.headers}),
    }


def gateway_consumer(request: Request, settings: EmulatorSettings) -> str | Response:
    """Resolve ``Authorization: Bearer <key>`` to a consumer id, or answer 401 as Kong does."""
    note_request(request)
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return json_response({"message": "Unauthorized"}, 401)
    consumer = settings.api_keys.get(token.strip())
    if consumer is None:
        return json_response({"message": "Invalid API key"}, 401)
    return consumer


def authorize(request: Request, settings: EmulatorSettings, consumer: str, channel: str) -> str | None:
    """Return the service's 403 message for this consumer and channel, or ``None`` when allowed.

    An empty ``x-authenticated-user-token`` counts as absent; a non-empty one is refused, because
    the emulator has no user service and the real gateway denies UCI datasets on that path.
    """
    if not channel:
        return "X-Channel-ID is missing in request header"
    if request.headers.get("x-authenticated-user-token", "").strip():
        return "You are not authorized."
    if (consumer, channel) not in settings.authorized:
        return f"Given X-Consumer-ID='{consumer}' and X-Channel-ID='{channel}' are not authorized"
    return None


def drop_connection(request: Request) -> bool:
    """Abort the TCP connection carrying ``request`` without answering; ``False`` if not possible."""
    finder: TransportFinder | None = getattr(request.app.state, "find_transport", None)
    transport = finder(request.scope.get("client")) if finder else None
    if transport is None:
        return False
    transport.abort()
    return True


async def inject_faults(request: Request, route: str, api_id: str | None) -> Response | None:
    """Apply the configured faults for ``route``; return the response that replaces the real one.

    Each fault served is counted in the application's ``served`` log.
    """
    settings: EmulatorSettings = request.app.state.settings
    faults = settings.faults
    if not faults.active:
        return None
    served = request.app.state.served
    fired = faults.draw(route)
    if "latency" in fired:
        await asyncio.sleep(faults.latency_seconds)
        served.fault("latency", route)
    if "drop" in fired and drop_connection(request):
        served.fault("drop", route)
        return Response(status_code=500)  # never reaches the client: the connection is gone
    if "error_429" in fired:
        served.fault("error_429", route)
        return json_response(
            {"message": "API rate limit exceeded"}, 429, {"Retry-After": str(faults.retry_after)}
        )
    if "error_500" in fired:
        served.fault("error_500", route)
        if api_id is None:
            return Response(
                content=b'<?xml version="1.0" encoding="utf-8"?><Error><Code>InternalError</Code>'
                b"<Message>The server encountered an internal error. Please retry the request.</Message></Error>",
                status_code=500,
                media_type="application/xml",
            )
        clock = request.app.state.clock
        return json_response(protocol.failure(api_id, clock.now(), "ERROR", ASK_TIMEOUT_MESSAGE), 500)
    return None
