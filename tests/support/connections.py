"""Airflow connections for the tests, given through ``AIRFLOW_CONN_*`` variables as a user would."""

from __future__ import annotations

import json

import pytest


def uci_connection(
    host: str,
    *,
    api_key: str = "dev-key",
    channel: str = "dev-channel",
    requested_by: str = "tests",
    zip_password: str | None = None,
    extra: dict | None = None,
) -> str:
    """A ``uci_exhaust`` connection as JSON; ``extra`` adds to (or overrides) the extras made from the options."""
    extra = {"channel_id": channel, "requested_by": requested_by, **(extra or {})}
    if zip_password is not None:
        extra["zip_password"] = zip_password
    return json.dumps({"conn_type": "uci_exhaust", "host": host, "password": api_key, "extra": extra})


def set_uci_connection(
    monkeypatch: pytest.MonkeyPatch,
    host: str,
    conn_id: str = "uci_exhaust_default",
    **options: str | dict | None,
) -> str:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", uci_connection(host, **options))  # type: ignore[arg-type]
    return conn_id
