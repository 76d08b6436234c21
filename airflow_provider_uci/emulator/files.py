"""Signed downloads from the emulator's local storage, standing in for Azure Blob's.

The route checks the SAS-shaped ``se``/``sig`` against the emulator's clock, answers 403
``AuthenticationFailed`` for an expired or altered URL, and serves ranged GETs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from airflow_provider_uci.emulator.deps import ServedDep, ServiceDep
from airflow_provider_uci.emulator.faults import ServedLog
from airflow_provider_uci.emulator.gateway import drop_connection, inject_faults
from airflow_provider_uci.emulator.storage import LocalStorage, StorageError

CHUNK = 256 * 1024

#: The blob download route (``GET`` and ``HEAD``).
router = APIRouter()


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


async def _blob_bytes(
    request: Request, path: Path, first: int, length: int, cut: int | None, served: ServedLog
) -> AsyncIterator[bytes]:
    """``length`` bytes of the file from ``first``; with the truncation fault, only ``cut`` of them, and
    then the connection dropped (or the response aborted) as a failing network would."""
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
        served.fault("truncate", "download")
        if not drop_connection(request):
            raise ConnectionAbortedError("truncated download (fault knob)")


@router.head("/blob/{account}/{container}/{key:path}", operation_id="head_blob")
@router.get("/blob/{account}/{container}/{key:path}", operation_id="get_blob")
async def download(
    request: Request, account: str, container: str, key: str, service: ServiceDep, served: ServedDep
) -> Response:
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
    status = 206 if isinstance(ranged, tuple) else 200
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers)
    cut = length // 2 if service.settings.faults.truncates() else None
    return StreamingResponse(
        _blob_bytes(request, path, first, length, cut, served),
        status_code=status,
        headers=headers,
        media_type="application/octet-stream",
    )
