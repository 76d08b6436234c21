"""Who may call the emulator's own routes: ``/admin/*`` and the internal ``POST /request/search``.

These routes move the clock, run the nightly jobs, put files in place and read every channel's jobs,
so they must not be open to whoever can reach the port. With an admin token configured
(``--admin-token`` or ``UCI_EMULATOR_ADMIN_TOKEN``) every caller sends it, as ``X-Admin-Token: <token>``
or ``Authorization: Bearer <token>`` (the first wins when both are sent); without
one, only loopback clients (127.0.0.0/8, ::1) are answered, and ``serve`` refuses to listen on any
other interface. The client address is the one uvicorn reports, which behind a reverse proxy on the
same host is the forwarded client's (``X-Forwarded-For``), so a proxied remote caller is not mistaken
for a local one. uvicorn reads no RFC 7239 ``Forwarded`` header (nor ``X-Real-IP``): a request that
carries one is answered only when every client it names is loopback, so a proxy that sends only
``Forwarded:`` does not make its remote callers look local.

The token is compared in constant time and never written to a log or an answer.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any

from fastapi import Request

from airflow_provider_uci.emulator.config import EmulatorSettings, SettingsError
from airflow_provider_uci.emulator.protocol import ClientInputError

#: The header that carries the admin token.
ADMIN_TOKEN_HEADER = "X-Admin-Token"
#: The ``id`` of the admin routes' envelopes.
ADMIN_ID = "uci.emulator.admin"


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` is a loopback address (``localhost`` counts; any other name does not)."""
    if host is None:
        return False
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def forwarded_clients(headers: Any) -> list[str]:
    """The clients a proxy names in ``Forwarded`` (each ``for=``) and ``X-Real-IP``: bare addresses (an
    obfuscated or unknown one, ``for=unknown`` or ``for=_hidden``, as it is: not loopback)."""
    named = []
    for value in headers.getlist("forwarded"):
        for element in value.split(","):
            for pair in element.split(";"):
                key, _, text = pair.strip().partition("=")
                if key.strip().lower() == "for":
                    named.append(_bare(text.strip().strip('"')))
    named += [value.strip() for value in headers.getlist("x-real-ip")]
    return named


def _bare(node: str) -> str:
    """An RFC 7239 node without its port: ``[::1]:80`` -> ``::1``, ``127.0.0.1:80`` -> ``127.0.0.1``."""
    if node.startswith("["):
        return node[1:].partition("]")[0]
    return node.rpartition(":")[0] if node.count(":") == 1 else node


def check_exposure(host: str, settings: EmulatorSettings, setting: str = "--host") -> None:
    """Refuse to listen beyond loopback without an admin token: the admin routes would be open to all."""
    if settings.admin_token is None and not is_loopback(host):
        raise SettingsError(
            f"{setting} {host}: listening beyond loopback needs an admin token (--admin-token or "
            "UCI_EMULATOR_ADMIN_TOKEN), or listen on 127.0.0.1"
        )


def admin_refusal(request: Request, settings: EmulatorSettings) -> ClientInputError | None:
    """Why this caller may not use an admin route, or ``None`` when it may."""
    token = settings.admin_token
    if token is None:
        client = request.client.host if request.client else None
        if is_loopback(client) and all(is_loopback(named) for named in forwarded_clients(request.headers)):
            return None
        return ClientInputError(
            403, "admin routes answer loopback clients only, as no admin token is configured"
        )
    given = request.headers.get(ADMIN_TOKEN_HEADER)
    if not given:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        given = credentials.strip() if scheme.lower() == "bearer" else ""
    if not given:
        return ClientInputError(
            401, f"{ADMIN_TOKEN_HEADER}: required header is missing (or send Authorization: Bearer <token>)"
        )
    # headers arrive decoded as Latin-1, so encoding back gives the bytes the client sent
    if not hmac.compare_digest(given.encode("latin-1"), token.encode("utf-8")):
        return ClientInputError(403, f"{ADMIN_TOKEN_HEADER}: the token does not match")
    return None
