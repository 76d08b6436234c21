"""The ``uci_exhaust_report`` DAG: scheduled on the warehouse Asset, it writes the report into the destination."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from airflow_provider_uci.exhaust.load import load_exhaust
from tests.support.airflow import load_dag, task_states, xcoms

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "sunbird"
MENTOR_BOT = "1ffc932f-1220-458d-9d9a-a5a377a42139"
BOT_A, BOT_B = "0b9c1c2e-5a55-4b5e-9f1e-0d6f2b7f0a01", "0b9c1c2e-5a55-4b5e-9f1e-0d6f2b7f0a02"


def test_scheduled_on_the_asset_every_load_emits(airflow_db: Path) -> None:
    from airflow_provider_uci.operators.load import warehouse_asset

    dag = load_dag(airflow_db, "uci_exhaust_report")
    assert dag.timetable.asset_condition == warehouse_asset("uci_responses") or warehouse_asset(
        "uci_responses"
    ) in getattr(dag.timetable.asset_condition, "objects", [])


def test_a_run_writes_the_fleet_report_into_the_destination(
    airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warehouse = tmp_path / "warehouse.db"
    load_exhaust(
        response_csv=FIXTURES / "response-exhaust-2022-06-24-mentor-feedback.csv",
        private=None,
        warehouse_url=f"sqlite:///{warehouse}",
    )
    destination = tmp_path / "files"
    monkeypatch.setenv(
        "AIRFLOW_CONN_UCI_REPORT_WAREHOUSE", json.dumps({"conn_type": "sqlite", "host": str(warehouse)})
    )
    monkeypatch.setenv("AIRFLOW_VAR_UCI_EXHAUST_WAREHOUSE_CONN_ID", "uci_report_warehouse")
    monkeypatch.setenv("AIRFLOW_VAR_UCI_EXHAUST_DESTINATION", str(destination))
    dag = load_dag(airflow_db, "uci_exhaust_report")
    run = dag.test()
    assert task_states(run) == {"refresh_report": "success"}
    page = destination / "report.html"
    bot_page = destination / MENTOR_BOT / "report.html"
    assert xcoms("uci_exhaust_report", run.run_id)["refresh_report"] == [str(page), str(bot_page)], (
        "no Asset event in a test run: the bot comes from <table>_loads"
    )
    text = page.read_text(encoding="utf-8")
    assert "MPC-UP-Mentor Feedback" in text and text.count("<svg") >= 4
    assert "<b>17</b>answers" in text
    assert "MPC-UP-Mentor Feedback: conversation report" in bot_page.read_text(encoding="utf-8")
    run = dag.test()  # the next run: no load since, so the fleet's page alone
    assert xcoms("uci_exhaust_report", run.run_id)["refresh_report"] == [str(page)]


def test_the_loaded_bots_come_from_the_asset_events_extras_uuids_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from airflow_provider_uci.dags.uci_exhaust_report import _loaded_bots

    events = {
        "asset": [
            SimpleNamespace(extra={"conversation_id": BOT_A, "rows": 3}),
            SimpleNamespace(extra={"conversation_id": BOT_B}),
            SimpleNamespace(extra={"conversation_id": BOT_A}),
            SimpleNamespace(extra=None),
            SimpleNamespace(extra={"conversation_id": "../../escaped"}),
        ]
    }
    with caplog.at_level(logging.WARNING):
        assert _loaded_bots({"triggering_asset_events": events}) == [BOT_A, BOT_B]
    assert "conversation_id: '../../escaped' from an Asset event's extra is not a UUID" in caplog.text
    assert _loaded_bots({}) == []


def test_an_asset_event_naming_a_path_writes_nothing_outside_the_destination(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from airflow_provider_uci.dags.uci_exhaust_report import _loaded_bots, bots_loaded_since, refresh
    from airflow_provider_uci.transfers.exhaust import Destination

    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    load_exhaust(
        response_csv=FIXTURES / "response-exhaust-2022-06-24-mentor-feedback.csv",
        private=None,
        warehouse_url=url,
    )
    destination = tmp_path / "deep" / "down" / "files"
    before = set(tmp_path.rglob("*"))
    events = {
        "a": [
            SimpleNamespace(extra={"conversation_id": "../../escaped"}),
            SimpleNamespace(extra={"conversation_id": "/etc/uci"}),
        ]
    }
    with caplog.at_level(logging.WARNING):
        bots, _ = bots_loaded_since(url, 0, _loaded_bots({"triggering_asset_events": events}))
        written = refresh(url, Destination.parse(str(destination)), [*bots, "../../escaped"])
    made = {path for path in set(tmp_path.rglob("*")) - before if path.is_file()}
    assert made == {destination / "report.html", destination / MENTOR_BOT / "report.html"}
    assert written == [str(destination / "report.html"), str(destination / MENTOR_BOT / "report.html")]
    assert not any("escaped" in str(path) for path in tmp_path.rglob("*"))
    assert (
        caplog.text.count("conversation_id: '../../escaped'") == 2
        and "conversation_id: '/etc/uci'" in caplog.text
    )


def test_every_bot_loaded_since_the_last_report_and_a_quiet_one_under_its_own_name(tmp_path: Path) -> None:
    from airflow_provider_uci.dags.uci_exhaust_report import bots_loaded_since, refresh
    from airflow_provider_uci.exhaust.warehouse import open_warehouse
    from airflow_provider_uci.transfers.exhaust import Destination
    from tests.support.batches import response_batches, user_table

    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    load_exhaust(
        response_csv=FIXTURES / "response-exhaust-2022-06-24-mentor-feedback.csv",
        private=None,
        warehouse_url=url,
    )
    bots, last = bots_loaded_since(url, 0)
    assert bots == [MENTOR_BOT]
    for quiet in (BOT_A, BOT_B):  # two loads that finish together, with no answers in their range
        with open_warehouse(url) as warehouse:
            warehouse.load(
                table="uci_responses",
                conversation_id=quiet,
                from_date="2022-06-24",
                to_date="2022-06-24",
                responses=response_batches([]),
                users=user_table([]),
                audit={},
            )
    bots, newest = bots_loaded_since(url, last, [BOT_B])
    assert bots == [BOT_A, BOT_B] and newest == last + 2
    destination = tmp_path / "files"
    refresh(url, Destination.parse(str(destination)), bots)
    page = (destination / BOT_A / "report.html").read_text(encoding="utf-8")
    assert f"<h1>{BOT_A}: conversation report</h1>" in page and "No answers in range." in page
    assert "all bots" not in page
    fleet = (destination / "report.html").read_text(encoding="utf-8")
    assert fleet.count("no answers in range") == 2, (
        "every bot of the range is listed, the quiet ones with zeros"
    )
