"""The provider as Airflow sees it: ``airflow providers list``, the connection type and its form."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from airflow_provider_uci import get_provider_info
from tests.support.connections import uci_connection

AIRFLOW = Path(sys.executable).with_name("airflow")


def airflow_cli(*args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(AIRFLOW), *args], capture_output=True, text=True, timeout=180, env={**os.environ, **(env or {})}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_provider_info_declares_the_connection_form_the_3_2_way() -> None:
    info = get_provider_info()
    assert info["package-name"] == "airflow-provider-uci"
    (conn,) = info["connection-types"]
    assert conn["connection-type"] == "uci_exhaust"
    assert conn["hook-class-name"] == "airflow_provider_uci.hooks.exhaust.UciExhaustHook"
    assert set(conn["conn-fields"]) == {"channel_id", "requested_by", "zip_password", "timeout", "verify"}
    assert "extra" not in conn["ui-field-behaviour"]["hidden-fields"], "proxies are given in the extra JSON"
    assert conn["conn-fields"]["zip_password"]["schema"]["format"] == "password"
    assert conn["ui-field-behaviour"]["relabeling"] == {"host": "API base URL", "password": "API key"}


def test_airflow_lists_the_provider_and_its_connection_type(airflow_db: Path) -> None:
    providers = json.loads(airflow_cli("providers", "list", "--output", "json"))
    assert "airflow-provider-uci" in {p["package_name"] for p in providers}
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    # hooks are listed by the task runtime's manager; connection forms by the core one
    hook = ProvidersManagerTaskRuntime().hooks["uci_exhaust"]
    assert hook.hook_class_name == "airflow_provider_uci.hooks.exhaust.UciExhaustHook"
    manager = ProvidersManager()
    ours = {
        name: widget
        for name, widget in manager.connection_form_widgets.items()
        if widget.package_name == "airflow-provider-uci"
    }
    assert set(ours) == {
        "extra__uci_exhaust__channel_id",
        "extra__uci_exhaust__requested_by",
        "extra__uci_exhaust__zip_password",
        "extra__uci_exhaust__timeout",
        "extra__uci_exhaust__verify",
    }
    assert ours["extra__uci_exhaust__zip_password"].is_sensitive
    assert manager.field_behaviours["uci_exhaust"]["relabeling"] == {
        "host": "API base URL",
        "password": "API key",
    }


def test_airflow_connections_get_reads_a_uci_connection(airflow_db: Path) -> None:
    env = {
        "AIRFLOW_CONN_UCI_EXHAUST_DEFAULT": uci_connection(
            "https://exhaust.example.org/api", api_key="not-a-real-key"
        )
    }
    (record,) = json.loads(
        airflow_cli("connections", "get", "uci_exhaust_default", "--output", "json", env=env)
    )
    assert record["conn_type"] == "uci_exhaust"
    assert record["host"] == "https://exhaust.example.org/api"
    assert record["extra_dejson"] == {"channel_id": "dev-channel", "requested_by": "tests"}
