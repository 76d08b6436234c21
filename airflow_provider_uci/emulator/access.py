"""Who may call the emulator's own routes: ``/admin/*`` and the internal ``POST /request/search``.

These routes move the clock, run the nightly jobs, put files in place and read every channel's jobs,
so they must not be open to whoever can reach the port. With an admin token configured
(``--admin-token`` or ``UCI_EMULATOR_ADMIN_TOKEN``) every caller sends it, as ``X-Admin-Token: <token>``
or ``Authorization: Bearer <token>`` (the first wins when both are sent); without
one, only loopback clients (127.0.0.0/8, ::1) are answered, and ``serve`` refuses to listen on any
other interface. The client address is the one uvicorn reports, which behind a reverse proxy on the
same host is the forwarded client's, so a proxied remote caller is not mistaken for a local one.

The token is compared in constant time and never written to a log or an answer.
"""

from __future__ import annotations

import hmac
import ipaddress

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


def check_exposure(host: str, settings: EmulatorSettings, setting: str = "--host") -> None:
    """Refuse to listen beyond loopback without an admin token: the admin routes would be open to all."""
    if settings.admin_token is None and not is_loopback(host):
        raise SettingsError(
            f"{setting} {host}: listening beyond loopback needs an admin token (--admin-token or "
            "UCI_EMULATOR_ADMIN_TOKEN), or listen on 127.0.0.1")


def admin_refusal(request: Request, settings: EmulatorSettings) -> ClientInputError | None:
    """Why this caller may not use an admin route, or ``None`` when it may."""
    token = settings.admin_token
    if token is None:
        client = request.client.host if request.client else None
        if is_loopback(client):
            return None
        return ClientInputError(
            403, "admin routes answer loopback clients only, as no admin token is configured")
    given = request.headers.get(ADMIN_TOKEN_HEADER)
    if not given:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        given = credentials.strip() if scheme.lower() == "bearer" else ""
    if not given:
        return ClientInputError(
            401, f"{ADMIN_TOKEN_HEADER}: required header is missing (or send Authorization: Bearer <token>)")
    # headers arrive decoded as Latin-1, so encoding back gives the bytes the client sent
    if not hmac.compare_digest(given.encode("latin-1"), token.encode("utf-8")):
        return ClientInputError(403, f"{ADMIN_TOKEN_HEADER}: the token does not match")
    return None


