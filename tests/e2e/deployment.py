"""The whole system for the end-to-end tests: Airflow's four processes on PostgreSQL, the emulator, a warehouse."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.system import UCI_EXHAUST, AirflowSystem, EmulatorService
from tests.support.connections import uci_connection
from tests.support.services import Azurite, postgres_database

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "uci_exhaust"
ZIP_KEY = "e2e-zip-key-7730"
DAYS = ["2026-03-01", "2026-03-02"]
#: Fast-schedule period of the emulator's jobs. Each test (re)starts the emulator and triggers its run
#: at once, so the jobs first run this long after the trigger: long enough for the run to plan,
#: submit, and have its waits defer (5-20 s on a busy two-core machine).
JOBS_EVERY = 45.0


#: A bot of the channel that nobody used: its exhausts are "No data found".
QUIET = "0b6a3c1e-7d51-4c0a-9e55-2f8a7c9d4e11"


@dataclass
class Deployment:
    airflow: AirflowSystem
    emulator: EmulatorService
    summary: dict
    warehouse_url: str
    quiet: str = QUIET

    def loads(self) -> list[dict]:
        """The warehouse's audit rows (``uci_responses_loads``)."""
        from airflow_provider_uci.exhaust.warehouse import open_warehouse

        warehouse = open_warehouse(self.warehouse_url)
        try:
            return warehouse.loads("uci_responses")
        finally:
            warehouse.close()

    def bot(self, index: int) -> tuple[str, int]:
        """The id of seeded bot ``index`` and how many answers it has on the test days."""
        bot = self.summary["bots"][index]
        return bot["id"], sum(count for day, count in bot["events_by_day"].items() if day in DAYS)


@contextmanager
def deploy(root: Path, azurite: Azurite) -> Iterator[Deployment]:
    """Seed the emulator's data, create fresh metadata and warehouse databases, start Airflow; stop it all after.

    Connections and Variables reach every Airflow process as ``AIRFLOW_CONN_*``/``AIRFLOW_VAR_*``
    variables. The emulator is not started here: each test starts it in the mode it needs.
    """
    began = time.monotonic()
    data = root / "emulator"
    summary = json.loads(
        subprocess.run(
            [
                str(UCI_EXHAUST),
                "emulator",
                "seed",
                "--data-dir",
                str(data),
                "--bots",
                "3",
                "--users",
                "20",
                "--events",
                "300",
                "--start",
                DAYS[0],
                "--days",
                str(len(DAYS)),
                "--seed",
                "31",
                "--json",
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
    )
    subprocess.run(
        [
            str(UCI_EXHAUST),
            "emulator",
            "seed",
            "--data-dir",
            str(data),
            "--bots",
            "0",
            "--users",
            "0",
            "--events",
            "0",
            "--start",
            DAYS[0],
            "--days",
            str(len(DAYS)),
            "--bot",
            f"{QUIET}=Quiet bot",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    with postgres_database() as metadata, postgres_database() as warehouse:
        airflow = AirflowSystem.configure(root, metadata)
        emulator = EmulatorService(
            data,
            airflow.log_path("emulator"),
            JOBS_EVERY,
            {k: v for k, v in airflow.env.items() if not k.startswith("AIRFLOW")},
        )
        airflow.env.update(
            {
                "AIRFLOW_CONN_UCI_EXHAUST_DEFAULT": uci_connection(emulator.api, zip_password=ZIP_KEY),
                "AIRFLOW_CONN_UCI_WAREHOUSE": warehouse,
                "AIRFLOW_CONN_WASB_DEFAULT": json.dumps(
                    {"conn_type": "wasb", "extra": {"connection_string": azurite.connection_string}}
                ),
                "AIRFLOW_VAR_UCI_EXHAUST_WAREHOUSE_CONN_ID": "uci_warehouse",
                "AIRFLOW_VAR_UCI_EXHAUST_DESTINATION": "wasb://uci-e2e/exhaust",
                "AIRFLOW_VAR_UCI_EXHAUST_POLL_CONTINUOUSLY": "true",
            }
        )
        airflow.env["AIRFLOW_VAR_UCI_TEST_ZIP_PASSWORD"] = ZIP_KEY
        shutil.copy(ROOT / "dags" / "uci_exhaust.py", airflow.dags_folder / "uci_exhaust.py")
        shutil.copy(ROOT / "tests" / "dags" / "uci_test_submit_wait.py", airflow.dags_folder)
        try:
            airflow.migrate()
            migrated = time.monotonic()
            airflow.start_all()
            airflow.wait_healthy(120)
            airflow.warm_up_execution_api()
            airflow.login()
            airflow.wait_for_dag(DAG_ID, 120)
            airflow.unpause(DAG_ID)
            print(
                f"\n[e2e] seeded + migrated in {migrated - began:.1f} s; Airflow healthy with the DAG parsed "
                f"{time.monotonic() - migrated:.1f} s later"
            )
            yield Deployment(airflow, emulator, summary, warehouse)
        finally:
            stopping = time.monotonic()
            strays = airflow.stop_all()
            emulator.stop()
            print(
                f"\n[e2e] stopped in {time.monotonic() - stopping:.1f} s; "
                f"whole module {time.monotonic() - began:.1f} s"
            )
        assert not strays, f"processes outlived their process groups (killed now): {strays}"
