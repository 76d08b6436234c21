"""The ``uci_exhaust_report`` DAG: scheduled on the warehouse Asset, it writes the report into the destination."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from airflow_provider_uci.exhaust.load import load_exhaust
from tests.support.airflow import load_dag, task_states, xcoms

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "sunbird"


def test_scheduled_on_the_asset_every_load_emits(airflow_db: Path) -> None:
    from airflow_provider_uci.operators.load import warehouse_asset

    dag = load_dag(airflow_db, "uci_exhaust_report")
    assert dag.timetable.asset_condition == warehouse_asset("uci_responses") or \
        warehouse_asset("uci_responses") in getattr(dag.timetable.asset_condition, "objects", [])


def test_a_run_writes_the_fleet_report_into_the_destination(airflow_db: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    warehouse = tmp_path / "warehouse.db"
    load_exhaust(response_csv=FIXTURES / "response-exhaust-2022-06-24-mentor-feedback.csv", private=None,
                 warehouse_url=f"sqlite:///{warehouse}")
    destination = tmp_path / "files"
    monkeypatch.setenv("AIRFLOW_CONN_UCI_REPORT_WAREHOUSE", json.dumps({"conn_type": "sqlite", "host": str(warehouse)}))
    monkeypatch.setenv("AIRFLOW_VAR_UCI_EXHAUST_WAREHOUSE_CONN_ID", "uci_report_warehouse")
    monkeypatch.setenv("AIRFLOW_VAR_UCI_EXHAUST_DESTINATION", str(destination))
    dag = load_dag(airflow_db, "uci_exhaust_report")
    run = dag.test()
    assert task_states(run) == {"refresh_report": "success"}
    page = destination / "report.html"
    assert xcoms("uci_exhaust_report", run.run_id)["refresh_report"] == [str(page)]
    text = page.read_text(encoding="utf-8")
    assert "MPC-UP-Mentor Feedback" in text and text.count("<svg") >= 4
    assert "<b>17</b>answers" in text


def test_the_loaded_bots_come_from_the_asset_events_extras() -> None:
    from airflow_provider_uci.dags.uci_exhaust_report import _loaded_bots

    events = {"asset": [SimpleNamespace(extra={"conversation_id": "bot-a", "rows": 3}),
                        SimpleNamespace(extra={"conversation_id": "bot-b"}),
                        SimpleNamespace(extra={"conversation_id": "bot-a"}), SimpleNamespace(extra=None)]}
    assert _loaded_bots({"triggering_asset_events": events}) == ["bot-a", "bot-b"]
    assert _loaded_bots({}) == []
