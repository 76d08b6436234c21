"""Reading what clients send, so that any input gets a 4xx with an error envelope, never a 500.

Bodies are read with a size cap (a hostile body costs at most the cap, never the whole upload) and
parsed as strict JSON: real numbers only, nesting at most :data:`MAX_JSON_DEPTH` deep (a 100,000-deep
array would otherwise exhaust the parser's recursion), and text that is valid Unicode (a lone
surrogate escape such as ``"\\ud800"`` parses in Python but can be neither stored nor answered).
Every refusal is a :class:`ClientInputError` whose message names the field and the rule.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

from fastapi import Request, Response

from airflow_provider_uci.emulator import protocol
from airflow_provider_uci.emulator.gateway import json_response
from airflow_provider_uci.emulator.protocol import ClientInputError

#: How deep a JSON body may nest; a submit body needs four levels.
MAX_JSON_DEPTH = 64
#: The largest ``limit`` accepted: Java's ``Int.MaxValue``, what the real service parses limits into.
MAX_LIMIT = 2**31 - 1

#: The envelope's ``responseCode`` (and ``params.err``) for each status a client error gets.
CODES = {
    400: "CLIENT_ERROR",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "RESOURCE_NOT_FOUND",
    413: "CLIENT_ERROR",
    415: "CLIENT_ERROR",
}


class BodyTooLarge(ClientInputError):
    """The body is over the route's cap (413)."""


def error_response(api_id: str, now: datetime, error: ClientInputError) -> Response:
    """The error envelope for ``error``, with its HTTP status."""
    code = CODES.get(error.status, "CLIENT_ERROR")
    return json_response(
        protocol.failure(api_id, now, code, error.message), error.status, {"Request-Time": "0"}
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused as soon as it is known to exceed ``limit`` bytes.

    A declared ``Content-Length`` over the cap is refused before a byte is read; a chunked body is
    read until it passes the cap.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(413, f"body: must be at most {limit} bytes, got {int(declared)}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(413, f"body: must be at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def require_json_type(request: Request) -> None:
    """Refuse a body declared as anything but JSON (415)."""
    declared = request.headers.get("content-type", "")
    if "json" not in declared.lower():
        raise ClientInputError(415, f"Content-Type: must be application/json, got {declared[:100]!r}")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def parse_json(raw: bytes, what: str = "body") -> Any:
    """Parse ``raw`` as strict JSON; ``what`` names it in errors."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ClientInputError(
            400, f"{what}: must be UTF-8 text (invalid byte at offset {exc.start})"
        ) from None
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:
        raise ClientInputError(400, f"{what}: JSON must nest at most {MAX_JSON_DEPTH} levels deep") from None
    except ValueError as exc:
        raise ClientInputError(400, f"{what}: must be valid JSON ({str(exc)[:200]})") from None
    _check_tree(value, what)
    return value


def _check_tree(value: Any, what: str) -> None:
    """Walk ``value`` without recursion: depth within the cap, every string valid Unicode."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item, what)
        elif isinstance(item, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise ClientInputError(400, f"{what}: JSON must nest at most {MAX_JSON_DEPTH} levels deep")
            if isinstance(item, dict):
                for key, child in item.items():
                    _check_text(key, what)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)


def _check_text(text: str, what: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ClientInputError(
                400, f"{what}: text must be valid Unicode (it holds a lone surrogate escape)"
            ) from None


def json_object(raw: bytes, what: str = "body", *, empty_ok: bool = False) -> dict[str, Any]:
    """Parse ``raw`` as a JSON object; an empty body is ``{}`` when ``empty_ok``."""
    if empty_ok and not raw.strip():
        return {}
    value = parse_json(raw, what)
    if not isinstance(value, dict):
        raise ClientInputError(400, f"{what}: must be a JSON object, got {type(value).__name__}")
    return value


def parse_limit(value: Any, what: str = "limit") -> int:
    """A ``limit``: a whole number from 0 to :data:`MAX_LIMIT` (a JSON integer or its digits as text)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ClientInputError(
            400, f"{what}: must be a whole number from 0 to {MAX_LIMIT}, got {_shown(value)}"
        )
    text = value.strip() if isinstance(value, str) else str(value)
    digits = text[1:] if text[:1] in "+-" else text
    if not digits.isdigit() or not digits.isascii() or len(digits) > 12:
        raise ClientInputError(
            400, f"{what}: must be a whole number from 0 to {MAX_LIMIT}, got {_shown(value)}"
        )
    number = int(text)
    if not 0 <= number <= MAX_LIMIT:
        raise ClientInputError(400, f"{what}: must be a whole number from 0 to {MAX_LIMIT}, got {number}")
    return number


def check_text(value: str, what: str, *, limit: int | None = None) -> str:
    """Refuse text no database column can hold: a NUL character, or more than ``limit`` characters."""
    if "\x00" in value:
        raise ClientInputError(400, f"{what}: must not contain the NUL character")
    if limit is not None and len(value) > limit:
        raise ClientInputError(400, f"{what}: must be at most {limit} characters, got {len(value)}")
    return value


def _shown(value: Any) -> str:
    """A short, safe rendering of a rejected value for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
