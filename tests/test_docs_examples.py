"""The example DAGs under docs/examples: each parses, and each runs green with ``dag.test()`` on the emulator.

One seeded bot over two days, the emulator in fast mode (its jobs every second), and every example run
for that bot, its waits polling every second. A run that loads is checked row by row against the
emulator's own files.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_uci.refs import decoded
from tests.support.airflow import load_dag, task_states, xcoms
from tests.support.connections import set_uci_connection
from tests.support.expected import assert_table_matches
from tests.support.services import Emulator, run_emulator

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "docs" / "examples"
SCRIPT = Path(sys.executable).with_name("uci-exhaust")
ZIP_PASSWORD = "examples-zip-4410"
DAYS = ["2026-05-04", "2026-05-05"]
RESPONSE, PRIVATE = "uci-response-exhaust", "uci-private-exhaust"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Emulator, dict]]:
    data = tmp_path_factory.mktemp("examples-emulator")
    seed = [str(SCRIPT), "emulator", "seed", "--data-dir", str(data), "--bots", "1", "--users", "8"]
    seed += ["--events", "60", "--start", DAYS[0], "--days", "2", "--seed", "7", "--json"]
    summary = json.loads(subprocess.run(seed, check=True, capture_output=True, text=True).stdout)
    with run_emulator(data, "--jobs-every", "1") as emulator:
        yield emulator, summary


def for_one_bot(bot: str, tmp_path: Path) -> dict[str, Any]:
    """The params of the one-bot examples: the bot, the days, and a wait polling every second."""
    return {
        "conversation_id": bot,
        "start_date": DAYS[0],
        "end_date": DAYS[1],
        "poll_continuously": True,
        "poll_interval": 1,
        "destination": str(tmp_path / "files"),
        "warehouse_conn_id": "uci_warehouse",
    }


def for_a_fleet(bot: str, tmp_path: Path) -> dict[str, Any]:
    """The params of the fleet examples (``run_params()``; files and warehouse from the Variables)."""
    return {
        "conversation_ids": [bot],
        "start_date": DAYS[0],
        "end_date": DAYS[1],
        "poll_continuously": True,
        "poll_interval": 1,
    }


#: Each example's run conf, made for one bot.
RUNS: dict[str, Callable[[str, Path], dict[str, Any]]] = {
    "example_uci_submit_and_wait": lambda bot, tmp: {
        key: value
        for key, value in for_one_bot(bot, tmp).items()
        if key not in ("destination", "warehouse_conn_id")
    },
    "example_uci_copy_and_load": for_one_bot,
    "uci_exhaust_compact": for_a_fleet,
}
#: The examples that load the warehouse (the others end with the wait).
LOADS = {"example_uci_copy_and_load", "uci_exhaust_compact"}


def test_every_example_parses_with_one_dag_of_its_own_that_this_file_runs() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=EXAMPLES)
    assert not bag.import_errors, bag.import_errors
    files = sorted(path.name for path in EXAMPLES.glob("*.py"))
    assert len(files) >= 3
    by_file = sorted(Path(dag.fileloc).name for dag in bag.dags.values())
    assert by_file == files, "one DAG per example file"
    assert set(bag.dags) == set(RUNS), "every example has a run below, and every run an example"
    for dag in bag.dags.values():
        assert dag.doc_md and "example" in dag.tags, dag.dag_id


@pytest.mark.parametrize("dag_id", sorted(RUNS))
def test_example_runs_green_against_the_emulator(
    dag_id: str, seeded, airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator, summary = seeded
    bot = summary["bots"][0]["id"]
    warehouse = f"sqlite:///{tmp_path / 'warehouse.db'}"
    set_uci_connection(monkeypatch, emulator.api, extra={"zip_password": ZIP_PASSWORD})
    monkeypatch.setenv("AIRFLOW_CONN_UCI_WAREHOUSE", warehouse)
    monkeypatch.setenv("AIRFLOW_VAR_UCI_EXHAUST_WAREHOUSE_CONN_ID", "uci_warehouse")
    monkeypatch.setenv("AIRFLOW_VAR_UCI_EXHAUST_DESTINATION", str(tmp_path / "files"))
    dag = load_dag(airflow_db, dag_id)
    for task in dag.tasks:
        task.retries = 0  # a failure shows at once

    run = dag.test(run_conf=RUNS[dag_id](bot, tmp_path))

    assert str(run.state) == "success", task_states(run)
    if dag_id in LOADS:
        seeded_rows = sum(n for day, n in summary["bots"][0]["events_by_day"].items() if day in DAYS)
        assert_table_matches(warehouse, emulator.data_dir, [bot], DAYS, ZIP_PASSWORD, seeded_rows)
    else:
        answered = decoded(xcoms(dag_id, run.run_id)["wait"])
        assert set(answered) == {RESPONSE, PRIVATE}
        assert all(job["status"] == "SUCCESS" and job["file_count"] == 1 for job in answered.values())
