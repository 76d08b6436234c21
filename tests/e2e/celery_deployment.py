"""The end-to-end system on the CeleryExecutor: Redis as the broker, two workers that share no disk.

As in :mod:`tests.e2e.deployment`, Airflow's scheduler, dag-processor, triggerer and api-server run
as processes on a PostgreSQL metadata database (which also holds Celery's results), with the
emulator as its own process and Azurite and PostgreSQL warehouses beside them. Tasks go through
Redis (a database number of its own, queues named for this run alone) to two ``airflow celery
worker`` processes that share no disk, as two machines would: each runs in a mount namespace of its
own where the same path (``<root>/machine``: its AIRFLOW_HOME, DAGs folder and working directory)
is its own folder (``<root>/worker-a`` or ``<root>/worker-b``), bind-mounted there. A file one worker
writes under that path is, for the other, simply not there, whatever path an XCom hands over.

Routing spreads the bots over both workers: a cluster policy (``task_instance_mutation_hook``, by
operator class, not task id) sends the bot tasks of even map indexes to worker ``a``'s queue and those
of odd ones to worker ``b``'s; every other task goes to the queue both serve.

Variables that change between runs (the destination, the warehouse) are set through the REST API,
so no ``AIRFLOW_VAR_*`` of the environment shadows them.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.e2e.deployment import DAG_ID, DAYS, ROOT, ZIP_KEY
from tests.e2e.system import (
    AIRFLOW,
    UCI_EXHAUST,
    AirflowSystem,
    EmulatorService,
    processes_with,
    start_process,
)
from tests.support.connections import uci_connection
from tests.support.services import Azurite, postgres_database, unavailable

REDIS_URL = os.environ.get("UCI_TEST_REDIS_URL", "redis://127.0.0.1:6379")
#: A Redis database of its own: nothing else of the project or of Airflow's defaults (0) uses it.
REDIS_DB = 11
#: The emulator's fast schedule: the run needs no sensor seen deferred here, only done.
JOBS_EVERY = 8.0
WORKERS = ("a", "b")
#: Operator classes routed to the workers' own queues, by map index (even, odd); the rest go to the queue
#: both serve. A bot's copy and its load run on different workers: the load must find the copies.
ROUTES = {"CopyExhaustFilesOperator": ("a", "b"), "LoadExhaustOperator": ("b", "a")}
WAREHOUSES = ("uci_warehouse", "uci_warehouse_local_run")

LOCAL_SETTINGS = '''"""Cluster policy of the Celery end-to-end test: route tasks by operator class and map index."""

ROUTES = {routes!r}


def task_instance_mutation_hook(task_instance, dag_run=None):
    queues = ROUTES.get(task_instance.operator)
    if queues:
        task_instance.queue = queues[max(task_instance.map_index, 0) % len(queues)]
'''


def own_disk_command(disk: Path, machine: Path, command: list[str]) -> list[str]:
    """``command`` in a new mount namespace where ``machine`` shows ``disk``'s contents (a bind mount)."""
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        'mount --bind "$1" "$2" && shift 2 && exec "$@"',
        "sh",
        str(disk),
        str(machine),
        *command,
    ]


def check_own_disks(root: Path) -> None:
    """Fail (under CI) or skip unless a process can be given a disk of its own (``unshare --mount``)."""
    disk, machine = root / "probe-disk", root / "probe-machine"
    disk.mkdir(parents=True)
    machine.mkdir(parents=True)
    (disk / "mark").write_text("seen")
    try:
        result = subprocess.run(
            own_disk_command(disk, machine, ["cat", str(machine / "mark")]),
            capture_output=True,
            text=True,
            timeout=30,
        )
    except OSError as exc:
        unavailable(f"unshare cannot be run: {exc}")
    if result.returncode != 0 or result.stdout != "seen" or (machine / "mark").exists():
        unavailable(
            f"no private mount namespace for the workers' disks (unshare --mount needs CAP_SYS_ADMIN): "
            f"{result.returncode} {result.stderr.strip()}"
        )


@dataclass
class Worker:
    """One ``airflow celery worker``: its disk (``root``), seen by it alone at ``machine``."""

    name: str
    root: Path
    machine: Path
    queues: list[str]

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def env(self) -> dict[str, str]:
        """What differs from the other processes' environment: the paths, on this worker's own disk."""
        return {
            "AIRFLOW_HOME": str(self.machine / "home"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.machine / "dags"),
        }

    def task_logs(self, dag_id: str, run_id: str) -> list[Path]:
        run_dir = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
        return sorted(run_dir.rglob("attempt=*.log")) if run_dir.exists() else []

    def ran(self, dag_id: str, run_id: str) -> set[tuple[str, int]]:
        """(task_id, map_index) of every task instance of the run this worker ran (its log is on its disk)."""
        ran = set()
        for log in self.task_logs(dag_id, run_id):
            parts = log.relative_to(self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}").parts
            index = next(
                (int(part.removeprefix("map_index=")) for part in parts if part.startswith("map_index=")), -1
            )
            ran.add((parts[0].removeprefix("task_id="), index))
        return ran


@dataclass
class CeleryDeployment:
    airflow: AirflowSystem
    emulator: EmulatorService
    summary: dict
    warehouses: dict[str, str]
    workers: dict[str, Worker]
    queues: dict[str, str]

    def bots(self) -> tuple[list[str], int]:
        """Every seeded bot, and how many answers they have on the test days together."""
        bots = self.summary["bots"]
        return [bot["id"] for bot in bots], sum(
            count for bot in bots for day, count in bot["events_by_day"].items() if day in DAYS
        )

    def set_variable(self, key: str, value: str | None) -> None:
        """Set (or with ``None`` delete) an Airflow Variable through the REST API."""
        path = f"/api/v2/variables/{quote(key, safe='')}"
        if value is None:
            answer = self.airflow.call("DELETE", path)
            assert answer.status_code in (204, 404), answer.text
            return
        answer = self.airflow.call("PATCH", path, json={"key": key, "value": value})
        if answer.status_code == 404:
            answer = self.airflow.call("POST", "/api/v2/variables", json={"key": key, "value": value})
        assert answer.status_code in (200, 201), answer.text

    def trigger(self, bots: list[str]) -> str:
        conf = {
            "conversation_ids": bots,
            "start_date": DAYS[0],
            "end_date": DAYS[-1],
            "poll_continuously": True,
            "poll_interval": 2,
        }
        return self.airflow.trigger(DAG_ID, conf)

    def where_ran(self, run_id: str) -> dict[tuple[str, int], list[str]]:
        """For each task instance of the run: the workers that hold a log of it."""
        found: dict[tuple[str, int], list[str]] = {}
        for worker in self.workers.values():
            for key in worker.ran(DAG_ID, run_id):
                found.setdefault(key, []).append(worker.name)
        return found

    def task_log_text(self, run_id: str) -> dict[str, str]:
        """Every task log of the run on the workers' disks, by ``worker:relative path``."""
        texts = {}
        for worker in self.workers.values():
            for log in worker.task_logs(DAG_ID, run_id):
                texts[f"{worker.name}:{log.relative_to(worker.home / 'logs')}"] = log.read_text(
                    errors="replace"
                )
        return texts

    def task_log_tails(self, run_id: str, lines: int = 25) -> str:
        return "\n".join(
            f"----- task log {name}\n" + "\n".join(text.splitlines()[-lines:])
            for name, text in self.task_log_text(run_id).items()
        )


def _redis(url: str) -> Any:
    try:
        import redis
    except ImportError:
        unavailable("the redis client is not installed (it comes with the Celery provider)")
    client = redis.Redis.from_url(f"{url}/{REDIS_DB}", socket_connect_timeout=3)
    try:
        client.ping()
    except Exception as exc:
        unavailable(f"Redis at {url} is not reachable: {exc}")
    return client


@contextmanager
def deploy_celery(root: Path, azurite: Azurite) -> Iterator[CeleryDeployment]:
    """Seed the emulator, create fresh databases, start Airflow on Celery with two workers; stop it all after."""
    began = time.monotonic()
    redis_client = _redis(REDIS_URL)
    check_own_disks(root / "probe")
    run_tag = f"uci-e2e-{secrets.token_hex(4)}"
    queues = {"any": f"{run_tag}-any", **{name: f"{run_tag}-{name}" for name in WORKERS}}
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
    with postgres_database() as metadata, postgres_database() as warehouse, postgres_database() as second:
        airflow = AirflowSystem.configure(root, metadata)
        emulator = EmulatorService(
            data,
            airflow.log_path("emulator"),
            JOBS_EVERY,
            {k: v for k, v in airflow.env.items() if not k.startswith("AIRFLOW")},
        )
        warehouses = dict(zip(WAREHOUSES, (warehouse, second), strict=False))
        airflow.env.update(
            {
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CELERY__BROKER_URL": f"{REDIS_URL}/{REDIS_DB}",
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+"
                + metadata.replace("postgresql://", "postgresql+psycopg2://", 1),
                "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queues["any"],
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
                # the DAG file never changes here: parse it once, not every few seconds (1.4 s of CPU each time)
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
                "AIRFLOW_CONN_UCI_EXHAUST_DEFAULT": uci_connection(emulator.api, zip_password=ZIP_KEY),
                **{f"AIRFLOW_CONN_{conn_id.upper()}": url for conn_id, url in warehouses.items()},
                "AIRFLOW_CONN_WASB_DEFAULT": json.dumps(
                    {"conn_type": "wasb", "extra": {"connection_string": azurite.connection_string}}
                ),
            }
        )
        config = airflow.home / "config"
        config.mkdir(parents=True, exist_ok=True)
        (config / "airflow_local_settings.py").write_text(
            LOCAL_SETTINGS.format(
                routes={cls: tuple(queues[name] for name in names) for cls, names in ROUTES.items()}
            )
        )
        shutil.copy(ROOT / "dags" / "uci_exhaust.py", airflow.dags_folder / "uci_exhaust.py")
        machine = root / "machine"
        machine.mkdir()
        workers = {
            name: Worker(name, root / f"worker-{name}", machine, [queues["any"], queues[name]])
            for name in WORKERS
        }
        try:
            airflow.migrate()
            migrated = time.monotonic()
            emulator.restart(None)
            airflow.start_all()
            for worker in workers.values():
                (worker.root / "dags").mkdir(parents=True)
                worker.home.mkdir(parents=True)
                shutil.copy(ROOT / "dags" / "uci_exhaust.py", worker.root / "dags" / "uci_exhaust.py")
                command = [
                    str(AIRFLOW),
                    "celery",
                    "worker",
                    "--queues",
                    ",".join(worker.queues),
                    "--concurrency",
                    "2",
                    "--celery-hostname",
                    f"{run_tag}-{worker.name}@%h",
                    "--skip-serve-logs",
                ]
                airflow.processes[f"worker-{worker.name}"] = start_process(
                    own_disk_command(
                        worker.root, machine, ["sh", "-c", 'cd "$0" && exec "$@"', str(machine), *command]
                    ),
                    airflow.log_path(f"worker-{worker.name}"),
                    {**airflow.env, **worker.env},
                    root,
                )
            airflow.wait_healthy(120)
            warmed = airflow.warm_up_execution_api()
            airflow.login()
            airflow.wait_for_dag(DAG_ID, 120)
            airflow.unpause(DAG_ID)
            print(
                f"\n[celery] seeded + migrated in {migrated - began:.1f} s; Airflow healthy with the DAG parsed "
                f"{time.monotonic() - migrated:.1f} s later (of which the execution API's first answer "
                f"{warmed:.1f} s)"
            )
            yield CeleryDeployment(airflow, emulator, summary, warehouses, workers, queues)
        finally:
            stopping = time.monotonic()
            strays = airflow.stop_all()
            for pid in processes_with(str(machine)):
                strays.append(pid)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            emulator.stop()
            for key in redis_client.scan_iter(f"*{run_tag}*"):
                redis_client.delete(key)
            for tag, message in redis_client.hscan_iter("unacked"):  # in flight when the workers stopped
                if run_tag.encode() in message:
                    redis_client.hdel("unacked", tag)
                    redis_client.zrem("unacked_index", tag)
            print(
                f"\n[celery] stopped in {time.monotonic() - stopping:.1f} s; "
                f"whole module {time.monotonic() - began:.1f} s"
            )
        assert not strays, f"processes outlived their process groups (killed now): {strays}"
