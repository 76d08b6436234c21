"""The main DAG end to end with ``dag.test()``: three seeded bots, the emulator in fast mode, a warehouse.

Expected rows are the emulator's own output files (read with the Spark-dialect reader, whose tests
check it against hand-written bytes and the published files), joined to the private exhaust here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.support.airflow import load_dag, task_states, xcoms
from tests.support.connections import set_uci_connection
from tests.support.expected import assert_table_matches as expected_table
from tests.support.expected import table_rows
from tests.support.services import Emulator, postgres_database, run_emulator

SCRIPT = Path(sys.executable).with_name("uci-exhaust")
ZIP_KEY = "dag-zip-key-5521"
DAYS = ["2026-03-01", "2026-03-02", "2026-03-03"]
STEPS = ("bot.submit", "bot.wait", "bot.copy", "bot.join_and_load")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Emulator, dict]]:
    data = tmp_path_factory.mktemp("dag-emulator")
    summary = json.loads(
        subprocess.run(
            [
                str(SCRIPT),
                "emulator",
                "seed",
                "--data-dir",
                str(data),
                "--bots",
                "3",
                "--users",
                "25",
                "--events",
                "450",
                "--start",
                DAYS[0],
                "--days",
                "3",
                "--seed",
                "21",
                "--json",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    with run_emulator(data, "--jobs-every", "1") as emulator:
        yield emulator, summary


def configure(
    monkeypatch: pytest.MonkeyPatch, emulator: Emulator, destination: str, warehouse_url: str
) -> None:
    set_uci_connection(monkeypatch, emulator.api, zip_password=ZIP_KEY)
    monkeypatch.setenv("AIRFLOW_CONN_UCI_WAREHOUSE", warehouse_url)
    monkeypatch.setenv("AIRFLOW_VAR_UCI_EXHAUST_WAREHOUSE_CONN_ID", "uci_warehouse")
    monkeypatch.setenv("AIRFLOW_VAR_UCI_EXHAUST_DESTINATION", destination)
    monkeypatch.setenv("AIRFLOW_VAR_UCI_EXHAUST_POLL_CONTINUOUSLY", "true")


def asset_events(dag_id: str, run_id: str) -> list[dict]:
    """The extras of the Asset events a run emitted."""
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(AssetEvent)
            .filter(AssetEvent.source_dag_id == dag_id, AssetEvent.source_run_id == run_id)
            .all()
        )
        return [dict(row.extra or {}) for row in rows]


def dag_without_retries(folder: Path):
    """The DAG as the dag-processor parses it, with retries off so that a failure shows at once."""
    dag = load_dag(folder, "uci_exhaust")
    for task in dag.tasks:
        task.retries = 0
    return dag


def conf(summary: dict, start: str, end: str) -> dict:
    return {
        "conversation_ids": [bot["id"] for bot in summary["bots"]],
        "start_date": start,
        "end_date": end,
        "poll_continuously": True,
        "poll_interval": 1,
    }


def assert_table_matches(warehouse_url: str, emulator: Emulator, summary: dict, days: list[str]) -> dict:
    """Exactly the rows the emulator's files hold for the seeded bots' ``days``, as many as it seeded."""
    expected = sum(n for bot in summary["bots"] for day, n in bot["events_by_day"].items() if day in days)
    return expected_table(
        warehouse_url, emulator.data_dir, [bot["id"] for bot in summary["bots"]], days, ZIP_KEY, expected
    )


def test_daily_runs_reruns_and_backfills_load_exactly_once(
    seeded, airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator, summary = seeded
    warehouse_url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    configure(monkeypatch, emulator, str(tmp_path / "files"), warehouse_url)
    dag = dag_without_retries(airflow_db)

    run = dag.test(run_conf=conf(summary, DAYS[0], DAYS[1]))
    assert str(run.state) == "success", task_states(run)
    states = task_states(run)
    assert {name.split("[")[0] for name in states} == {"plan", *STEPS}, (
        "plan, then the four steps of each bot"
    )
    assert all(sum(1 for task in states if task.startswith(f"{step}[")) == 3 for step in STEPS), states
    assert not any(state == "up_for_retry" for state in states.values()), states
    first = assert_table_matches(warehouse_url, emulator, summary, DAYS[:2])
    loads = [
        value
        for name, value in xcoms(dag.dag_id, run.run_id).items()
        if name.startswith("bot.join_and_load[")
    ]
    assert sum(load["responses_loaded"] for load in loads) == len(first)
    events = asset_events(dag.dag_id, run.run_id)
    assert len(events) == 3 and sum(extra["rows"] for extra in events) == len(first), (
        "the warehouse Asset is emitted"
    )

    again = dag.test(run_conf=conf(summary, DAYS[0], DAYS[1]))
    assert str(again.state) == "success", task_states(again)
    assert table_rows(warehouse_url) == first, "a second run leaves the table unchanged"

    overlapping = dag.test(run_conf=conf(summary, DAYS[1], DAYS[1]))
    assert str(overlapping.state) == "success", task_states(overlapping)
    assert table_rows(warehouse_url) == first, "an overlapping range leaves the table unchanged"

    # a run at the end of day 3's data interval (no range in params) loads exactly that day;
    # a fresh parse, as each real run has (dag.test() keeps a run's conf in the DAG's params)
    dag = dag_without_retries(airflow_db)
    scheduled = dag.test(
        logical_date=datetime(2026, 3, 4, 12, tzinfo=ZoneInfo("Asia/Kolkata")),
        run_conf={
            "conversation_ids": [bot["id"] for bot in summary["bots"]],
            "poll_continuously": True,
            "poll_interval": 1,
        },
    )
    assert str(scheduled.state) == "success", task_states(scheduled)
    interval_day = scheduled.data_interval_start.astimezone(ZoneInfo("Asia/Kolkata")).date().isoformat()
    assert interval_day == DAYS[2], "the last whole IST day before the run"
    plan = xcoms(dag.dag_id, scheduled.run_id)["plan"]
    assert {(item["from_date"], item["to_date"]) for item in plan} == {(DAYS[2], DAYS[2])}
    assert_table_matches(warehouse_url, emulator, summary, DAYS)


def test_azure_destination_and_postgresql_warehouse(
    seeded, airflow_db: Path, azurite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator, summary = seeded
    monkeypatch.setenv(
        "AIRFLOW_CONN_WASB_DEFAULT",
        json.dumps({"conn_type": "wasb", "extra": {"connection_string": azurite.connection_string}}),
    )
    with postgres_database() as database:
        configure(monkeypatch, emulator, "wasb://exhaust/daily", database)
        dag = dag_without_retries(airflow_db)
        run = dag.test(run_conf=conf(summary, DAYS[0], DAYS[0]))
        assert str(run.state) == "success", task_states(run)
        first = assert_table_matches(database, emulator, summary, DAYS[:1])
        again = dag.test(run_conf=conf(summary, DAYS[0], DAYS[0]))
        assert str(again.state) == "success", task_states(again)
        assert table_rows(database) == first
    from azure.storage.blob import BlobServiceClient

    names = [
        blob.name
        for blob in BlobServiceClient.from_connection_string(azurite.connection_string)
        .get_container_client("exhaust")
        .list_blobs(name_starts_with="daily/")
    ]
    assert len(names) == 9, names  # per bot: response CSV, private zip and its CSV
