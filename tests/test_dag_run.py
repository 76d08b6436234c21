"""The operator and the deferrable sensor in a real DAG run (``dag.test()``) against the emulator.

The emulator runs its jobs every second (fast mode) over seeded data; ``dag.test()`` runs the sensors'
triggers inline, as a triggerer would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_uci.refs import decoded
from tests.support.airflow import load_dag, task_states, xcoms
from tests.support.connections import set_uci_connection
from tests.support.services import Emulator, run_emulator

API_KEY = "k-3c5f0e9a7d21"
ZIP_PASSWORD = "zip-pass-7731b"
SCRIPT = Path(sys.executable).with_name("uci-exhaust")
RESPONSE, PRIVATE = "uci-response-exhaust", "uci-private-exhaust"


@pytest.fixture(scope="module")
def fast_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Emulator, dict]]:
    data = tmp_path_factory.mktemp("fast")
    summary = json.loads(
        subprocess.run(
            [
                str(SCRIPT),
                "emulator",
                "seed",
                "--data-dir",
                str(data),
                "--bots",
                "2",
                "--users",
                "12",
                "--events",
                "150",
                "--start",
                "2026-02-01",
                "--days",
                "2",
                "--json",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    with run_emulator(data, "--jobs-every", "1", "--api-key", f"{API_KEY}=dev-consumer") as emulator:
        yield emulator, summary


def test_submit_and_wait_for_both_exhausts(
    fast_emulator, airflow_db: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    emulator, summary = fast_emulator
    set_uci_connection(monkeypatch, emulator.api, api_key=API_KEY, zip_password=ZIP_PASSWORD)
    dag = load_dag(airflow_db, "uci_test_submit_wait")
    conf = {"conversation_id": summary["bots"][0]["id"], "start_date": "2026-02-01", "end_date": "2026-02-02"}

    first = dag.test(run_conf=conf)
    assert str(first.state) == "success", task_states(first)
    values = xcoms(dag.dag_id, first.run_id)
    assert set(values["submit_response"]) == {RESPONSE} and set(values["submit_private"]) == {PRIVATE}
    response, private = values["submit_response"][RESPONSE], values["submit_private"][PRIVATE]
    assert set(response) == {"request_id", "tag", "dataset", "conversation_id", "start_date", "end_date"}
    assert response["dataset"] == RESPONSE and private["dataset"] == PRIVATE
    # a wait the triggerer ended stores its value as JSON text; the next step reads it through refs
    waited_response, waited_private = decoded(values["wait_response"]), decoded(values["wait_private"])
    assert set(waited_response) == {RESPONSE} and set(waited_private) == {PRIVATE}
    assert waited_response[RESPONSE]["status"] == "SUCCESS" and waited_response[RESPONSE]["file_count"] == 1
    assert waited_private[PRIVATE]["request_id"] == private["request_id"]

    second = dag.test(run_conf=conf)
    assert str(second.state) == "success", task_states(second)
    again = xcoms(dag.dag_id, second.run_id)
    assert again["submit_response"][RESPONSE]["request_id"] == response["request_id"], "same day, same job"
    assert again["submit_private"][PRIVATE]["request_id"] == private["request_id"]

    # secret hygiene: nothing the runs printed or stored holds a key or a signed URL
    out, err = capfd.readouterr()
    stored = json.dumps([values, again])
    logs = (
        "".join(
            path.read_text(errors="replace")
            for path in Path(airflow_db.parent / "logs").rglob("*")
            if path.is_file()
        )
        if (airflow_db.parent / "logs").exists()
        else ""
    )
    for text in (out, err, stored, logs):
        assert API_KEY not in text
        assert ZIP_PASSWORD not in text
        assert "sig=" not in text
    assert "submit_private" in out + err, "the run's task logs were captured"
