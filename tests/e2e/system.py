"""The whole system as separate processes: Airflow's four components, the emulator, and REST calls to them.

Airflow runs as a user runs it: ``airflow scheduler``, ``triggerer``, ``dag-processor`` and
``api-server`` with the LocalExecutor and a PostgreSQL metadata database, in their own
``AIRFLOW_HOME``, configured by environment variables only (connections and Variables included).
Each process leads its own process group, so stopping it also stops its children.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from tests.support.services import EmulatorAddress, free_port, wait_for_port

BIN = Path(sys.executable).parent
AIRFLOW = BIN / "airflow"
UCI_EXHAUST = BIN / "uci-exhaust"
COMPONENTS = {
    "scheduler": ("scheduler", "--skip-serve-logs"),
    "dag-processor": ("dag-processor",),
    "triggerer": ("triggerer", "--skip-serve-logs"),
    "api-server": ("api-server",),
}
HEALTHY = ("metadatabase", "scheduler", "triggerer", "dag_processor")
BAD_TASK_STATES = {"failed", "up_for_retry", "upstream_failed"}

#: The fault knobs: 10% HTTP 500, 5% 429 with Retry-After, 2 s latency on 10% of calls, 5% truncated
#: downloads, signed URLs that expire after 60 s.
FAULT_ARGS = (
    "--fault-500",
    "0.1",
    "--fault-429",
    "0.05",
    "--retry-after",
    "1",
    "--fault-latency",
    "0.1",
    "--latency-seconds",
    "2",
    "--fault-truncate",
    "0.05",
    "--expiry-seconds",
    "60",
)
#: The kinds of fault those knobs serve, as the emulator's ``/admin/served`` names them.
FAULT_KINDS = ("error_500", "error_429", "latency", "truncate")
#: Seeds under which, at those rates, every kind fires early in a run of one bot: within the first 8
#: reads (a run makes dozens while it waits) and on the first download (a run makes about four). Each
#: route draws from its own stream, so this holds however the calls interleave.
FAULT_SEEDS = (92, 261)


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log, without the api-server's access log lines."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"({exc})"
    return "\n".join([line for line in text.splitlines() if "[http.access]" not in line][-lines:])


def start_process(command: list[str], log: Path, env: dict[str, str], cwd: Path) -> subprocess.Popen:
    """Start ``command`` as the leader of a new process group, output appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"\n===== {time.strftime('%H:%M:%S')} start: {' '.join(command[1:])}\n".encode())
        out.flush()
        return subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )


def kill_group(process: subprocess.Popen, sig: int = signal.SIGTERM, wait: float = 15.0) -> None:
    """Signal the process's whole group, wait for the leader, then SIGKILL whatever of the group is left."""
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass
    try:
        process.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(
            process.pid, signal.SIGKILL
        )  # children that outlived their leader (trigger runners, workers)
    except ProcessLookupError:
        pass
    process.wait()


def processes_with(marker: str) -> list[int]:
    """Our own processes whose environment contains ``marker`` (a path unique to this test run)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


class EmulatorService(EmulatorAddress):
    """``uci-exhaust emulator serve`` in fast-schedule mode on a fixed port, restartable with or without faults.

    The job store, blobs and signing key live in the data dir, so a restart (to switch the fault knobs,
    or to know when its jobs run next) keeps every job and every URL valid; the port stays the same,
    so Airflow's connection does too.
    """

    def __init__(self, data_dir: Path, log: Path, jobs_every: float, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.log = log
        self.jobs_every = jobs_every
        self.env = env
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.fault_seed: int | None = None

    def restart(self, fault_seed: int | None) -> float:
        """(Re)start without faults (``None``) or with the fault knobs drawn from ``fault_seed``.

        Returns when it listens (monotonic seconds); its jobs first run one period later.
        """
        self.stop()
        args = [] if fault_seed is None else [*FAULT_ARGS, "--fault-seed", str(fault_seed)]
        self.process = start_process(
            [
                str(UCI_EXHAUST),
                "emulator",
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                "--jobs-every",
                str(self.jobs_every),
                "--log-level",
                "warning",
                *args,
            ],
            self.log,
            self.env,
            self.data_dir,
        )
        self.fault_seed = fault_seed
        wait_for_port(self.port, self.process, 60, "the emulator", self.log)
        return time.monotonic()

    def stop(self) -> None:
        if self.process is not None:
            kill_group(self.process)
            self.process = None

    def served(self) -> dict[str, Any]:
        """What it served since it (re)started: faults by kind and route, accepted submissions by job."""
        answer = requests.get(f"{self.root}/admin/served", timeout=30)
        answer.raise_for_status()
        return answer.json()

    def jobs_of(self, conversation_id: str) -> list[dict[str, Any]]:
        """Every job the service holds for ``conversation_id`` (through its internal search)."""
        answer = requests.post(
            f"{self.root}/request/search",
            timeout=30,
            json={"request": {"filters": {"channel": "dev-channel"}, "limit": 100_000}},
        )
        answer.raise_for_status()
        return [
            job
            for job in answer.json()["result"]["jobs"]
            if (job.get("datasetConfig") or {}).get("conversationId") == conversation_id
        ]


@dataclass
class AirflowSystem:
    """Airflow's scheduler, dag-processor, triggerer and api-server, and a REST client for them."""

    root: Path
    env: dict[str, str]
    port: int
    password: str
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    session: requests.Session = field(default_factory=requests.Session)

    @classmethod
    def configure(cls, root: Path, metadata_url: str) -> AirflowSystem:
        """Lay out AIRFLOW_HOME, the DAGs folder and the environment; nothing is started yet."""
        home, dags = root / "home", root / "dags"
        home.mkdir(parents=True, exist_ok=True)
        dags.mkdir(parents=True, exist_ok=True)
        port = free_port()
        password = secrets.token_urlsafe(16)
        passwords = root / "passwords.json"
        passwords.write_text(json.dumps({"admin": password}))
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AIRFLOW", "UCI_EMULATOR_", "PYTEST_"))
        }
        env.update(
            {
                "AIRFLOW_HOME": str(home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url.replace(
                    "postgresql://", "postgresql+psycopg2://", 1
                ),
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(port),
                "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(48),
                "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
                "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # only the runs the tests trigger
                "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "5",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
                "AIRFLOW__DAG_PROCESSOR__BUNDLE_REFRESH_CHECK_INTERVAL": "1",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
                "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
            }
        )
        return cls(root=root, env=env, port=port, password=password)

    @property
    def home(self) -> Path:
        return Path(self.env["AIRFLOW_HOME"])

    @property
    def dags_folder(self) -> Path:
        return Path(self.env["AIRFLOW__CORE__DAGS_FOLDER"])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_path(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    # --- processes -------------------------------------------------------------------------------

    def migrate(self) -> None:
        result = subprocess.run(
            [str(AIRFLOW), "db", "migrate"],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"airflow db migrate failed ({result.returncode}):\n{result.stdout[-3000:]}\n"
                f"{result.stderr[-3000:]}"
            )

    def start(self, name: str) -> None:
        args = list(COMPONENTS[name])
        if name == "api-server":
            args += ["--host", "127.0.0.1", "--port", str(self.port)]
        self.processes[name] = start_process([str(AIRFLOW), *args], self.log_path(name), self.env, self.root)

    def start_all(self) -> None:
        for name in COMPONENTS:
            self.start(name)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal ``name``'s process group (its children included) and reap it."""
        kill_group(self.processes.pop(name), sig, wait=15.0)

    def stop_all(self) -> list[int]:
        """Stop every component; return the ids of any stray process left behind (which are then killed)."""
        for process in self.processes.values():  # all at once, then reap each
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for name in list(self.processes):
            self.kill(name, signal.SIGTERM)
        strays = processes_with(str(self.home))
        for pid in strays:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return strays

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(
                    f"airflow {name} exited with {process.returncode}:\n{tail(self.log_path(name), 60)}"
                )

    # --- REST ----------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return requests.get(f"{self.base_url}/api/v2/monitor/health", timeout=10).json()

    def wait_healthy(self, timeout: float, components: Iterable[str] = HEALTHY) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                last = self.health()
                if all((last.get(name) or {}).get("status") == "healthy" for name in components):
                    return last
            except (requests.RequestException, ValueError) as exc:
                last = exc
            time.sleep(0.5)
        raise RuntimeError(f"Airflow not healthy after {timeout} s: {last}\n{self.log_tails()}")

    def warm_up_execution_api(self, timeout: float = 240.0) -> float:
        """Make the api-server build its execution API before any task calls it; return how long that took.

        The execution API (Cadwyn) builds its versioned routes on its first request, in the event loop:
        every other request of the api-server waits meanwhile. On a busy two-core machine that took
        35-40 s, longer than a worker's task start waits, so the first task failed to start.
        """
        started = time.monotonic()
        answer = requests.get(f"{self.base_url}/execution/health", timeout=timeout)
        assert answer.status_code == 200, answer.text
        return time.monotonic() - started

    def login(self) -> None:
        answer = requests.post(
            f"{self.base_url}/auth/token", json={"username": "admin", "password": self.password}, timeout=30
        )
        answer.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        answer = self.session.request(method, f"{self.base_url}{path}", **kwargs)
        if answer.status_code == 401:
            self.login()
            answer = self.session.request(method, f"{self.base_url}{path}", **kwargs)
        return answer

    def wait_for_dag(self, dag_id: str, timeout: float) -> None:
        """Wait until the dag-processor has parsed ``dag_id``; fail at once on an import error."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if self.call("GET", f"/api/v2/dags/{dag_id}").status_code == 200:
                return
            errors = self.call("GET", "/api/v2/importErrors").json().get("import_errors") or []
            if errors:
                raise RuntimeError(f"the DAGs folder has import errors: {errors}")
            time.sleep(0.5)
        raise RuntimeError(f"DAG {dag_id} not parsed after {timeout} s\n{self.log_tails()}")

    def unpause(self, dag_id: str) -> None:
        answer = self.call("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})
        assert answer.status_code == 200, answer.text

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        answer = self.call(
            "POST", f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf}
        )
        assert answer.status_code == 200, answer.text
        return answer.json()["dag_run_id"]

    def run_state(self, dag_id: str, run_id: str) -> str:
        answer = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")
        answer.raise_for_status()
        return answer.json()["state"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        answer = self.call(
            "GET",
            f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances",
            params={"limit": 100},
        )
        answer.raise_for_status()
        return answer.json()["task_instances"]

    # --- diagnostics ---------------------------------------------------------------------------

    def log_tails(self, lines: int = 40) -> str:
        parts = []
        for log in sorted((self.root / "logs").glob("*.log")):
            parts.append(f"----- {log.name} (last {lines} lines)\n{tail(log, lines)}")
        return "\n".join(parts)

    def _run_logs(self, dag_id: str, run_id: str, pattern: str) -> Iterator[tuple[str, str, Path]]:
        """(task instance key, task_id, path) of one run's log files matching ``pattern``."""
        run_dir = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
        if not run_dir.exists():
            return
        for log in sorted(run_dir.rglob(pattern)):
            relative = log.relative_to(run_dir).parts
            task = relative[0].removeprefix("task_id=")
            index = next(
                (part.removeprefix("map_index=") for part in relative if part.startswith("map_index=")), None
            )
            yield (f"{task}[{index}]" if index not in (None, "-1") else task), task, log

    def task_log_tails(self, dag_id: str, run_id: str, keys: Iterable[str], lines: int = 30) -> str:
        """The logs (trigger logs included) of the given task instances (``task_id[map_index]``) of one run."""
        wanted = set(keys)
        return "\n".join(
            f"----- task log {log.parent.name}/{log.name} of {key}\n{tail(log, lines)}"
            for key, task, log in self._run_logs(dag_id, run_id, "*.log")
            if key in wanted or task in wanted
        )

    def trigger_logs(self, dag_id: str, run_id: str) -> dict[str, dict[str, str]]:
        """What each triggerer logged for one run's triggers: task instance key -> triggerer job id -> text."""
        logs: dict[str, dict[str, str]] = {}
        for key, _, log in self._run_logs(dag_id, run_id, "*.log.trigger.*.log"):
            triggerer = log.name.rsplit(".", 2)[-2]
            logs.setdefault(key, {})[triggerer] = log.read_text(errors="replace")
        return logs


def stamp(text: str) -> float:
    """A REST timestamp as seconds since the epoch."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def ti_key(ti: dict[str, Any]) -> str:
    index = ti.get("map_index", -1)
    return ti["task_id"] if index is None or index < 0 else f"{ti['task_id']}[{index}]"


def is_sensor(ti: dict[str, Any]) -> bool:
    """A task that waits for the jobs in the triggerer: the DAG's bot tasks, a ``request``, or a sensor."""
    step = ti["task_id"].rsplit(".", 1)[-1]
    return step in ("bot", "request") or step.startswith(("bot_", "wait"))


class RunWatch:
    """Follow one DAG run through REST, remembering every state each task instance was seen in."""

    def __init__(self, system: AirflowSystem, dag_id: str, run_id: str) -> None:
        self.system = system
        self.dag_id = dag_id
        self.run_id = run_id
        self.started = time.monotonic()
        self.seen: dict[str, list[str]] = {}
        self.last: list[dict[str, Any]] = []
        self.state = "queued"

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def poll(self) -> list[dict[str, Any]]:
        self.state = self.system.run_state(self.dag_id, self.run_id)
        self.last = self.system.task_instances(self.dag_id, self.run_id)
        for ti in self.last:
            history = self.seen.setdefault(ti_key(ti), [])
            state = str(ti.get("state"))
            if not history or history[-1] != state:
                history.append(state)
        return self.last

    def until(
        self,
        condition: Callable[[str, list[dict[str, Any]]], bool],
        timeout: float,
        what: str,
        interval: float = 0.3,
    ) -> list[dict[str, Any]]:
        """Poll until ``condition(run_state, task_instances)``; fail with a report on a failure or timeout.

        A failed or retrying task ends the wait at once: the DAG's retry delay is minutes long, and the
        faults under test are meant to be absorbed without a task retry.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                tis = self.poll()
            except requests.RequestException:  # a busy api-server: ask again, until the deadline
                if time.monotonic() > deadline:
                    raise
                continue
            if condition(self.state, tis):
                return tis
            bad = [ti_key(ti) for ti in tis if ti.get("state") in BAD_TASK_STATES]
            if self.state == "failed" or bad:
                raise AssertionError(
                    f"run {self.run_id} went wrong while waiting for {what}: run {self.state}, "
                    f"tasks {bad}\n{self.report(bad)}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"run {self.run_id}: no {what} after {timeout} s (run {self.state})\n"
                    f"{self.report([ti_key(ti) for ti in tis if ti.get('state') != 'success'])}"
                )
            self.system.check_alive()
            time.sleep(interval)

    def report(self, task_keys: Iterable[str] = ()) -> str:
        rows = [
            f"{ti_key(ti):28} {ti.get('rendered_map_index') or ''!s:38} {ti.get('state')!s:14} "
            f"try {ti.get('try_number')}  seen {' -> '.join(self.seen.get(ti_key(ti), []))}"
            for ti in sorted(self.last, key=lambda ti: (ti["task_id"], ti.get("map_index", -1)))
        ]
        return "\n".join(
            [
                f"task instances of {self.run_id}:",
                *rows,
                self.system.task_log_tails(self.dag_id, self.run_id, task_keys),
                self.system.log_tails(),
            ]
        )


def xcom(system: AirflowSystem, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Any:
    """The return value of one task instance, through the REST API."""
    answer = system.call(
        "GET",
        f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/"
        f"{task_id}/xcomEntries/return_value",
        params={"map_index": map_index, "deserialize": True},
    )
    answer.raise_for_status()
    return answer.json()["value"]


def clear(system: AirflowSystem, dag_id: str, run_id: str, task_ids: list[str]) -> None:
    """Clear the given tasks (every map index) of one run, and nothing downstream: as the UI's Clear does."""
    answer = system.call(
        "POST",
        f"/api/v2/dags/{dag_id}/clearTaskInstances",
        json={
            "dry_run": False,
            "dag_run_id": run_id,
            "task_ids": task_ids,
            "only_failed": False,
            "include_downstream": False,
            "include_upstream": False,
            "reset_dag_runs": True,
        },
    )
    assert answer.status_code == 200, answer.text
    cleared = answer.json()["task_instances"]
    assert {ti["task_id"] for ti in cleared} == set(task_ids), cleared
