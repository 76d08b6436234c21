"""Airflow connections for the tests, given through ``AIRFLOW_CONN_*`` variables as a user would."""

from __future__ import annotations

import json

import pytest


def uci_connection(host: str, *, api_key: str = "dev-key", channel: str = "dev-channel", requested_by: str = "tests",
                   encryption_key: str | None = None) -> str:
    extra = {"channel_id": channel, "requested_by": requested_by}
    if encryption_key is not None:
        extra["zip_password"] = encryption_key
    return json.dumps({"conn_type": "uci_exhaust", "host": host, "password": api_key, "extra": extra})


def set_uci_connection(monkeypatch: pytest.MonkeyPatch, host: str, conn_id: str = "uci_exhaust_default",
                       **options: str | None) -> str:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", uci_connection(host, **options))  # type: ignore[arg-type]
    return conn_id
