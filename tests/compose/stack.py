"""The repository's docker-compose.yaml as a running stack: compose calls, health, and Airflow's REST API."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from tests.compose.engine import ROOT, Engine

COMPOSE_FILE = ROOT / "docker-compose.yaml"
OVERRIDE = Path(__file__).resolve().parent / "override.yaml"
PROJECT = "ucicomposetest"
INIT = "airflow-init"
API = "http://127.0.0.1:8080"
VARIABLE = re.compile(r"\$\{(\w+)")


@dataclass
class Stack:
    """One compose project of docker-compose.yaml plus the test's override, with its own .env file."""

    engine: Engine
    env_file: Path
    log_dir: Path
    env: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        # only the .env file sets the compose's variables: none leak in from the test's environment
        names = set(VARIABLE.findall(COMPOSE_FILE.read_text(encoding="utf-8")))
        self.env = {key: value for key, value in os.environ.items() if key not in names}
        if not self.env_file.exists():
            self.env_file.write_text("")

    def compose(
        self, *args: str, timeout: float = 900, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        command = [
            self.engine.compose,
            "--project-name",
            PROJECT,
            "--project-directory",
            str(ROOT),
            "--env-file",
            str(self.env_file),
            "-f",
            str(COMPOSE_FILE),
            "-f",
            str(OVERRIDE),
            *args,
        ]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=self.env
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"docker-compose {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    def services(self) -> list[str]:
        return self.compose("config", "--services").stdout.split()

    def container(self, service: str) -> str:
        found = self.compose("ps", "-a", "-q", service).stdout.split()
        assert len(found) == 1, f"{service}: containers {found}"
        return found[0]

    def inspect(self, service: str) -> dict[str, Any]:
        return json.loads(self.engine.run("inspect", self.container(service)).stdout)[0]

    def ip(self, service: str) -> str:
        networks = self.inspect(service)["NetworkSettings"]["Networks"]
        return next(iter(networks.values()))["IPAddress"]

    def logs(self, service: str, tail: int = 60) -> str:
        return self.compose("logs", "--no-color", f"--tail={tail}", service, check=False).stdout

    def exec(self, service: str, *command: str, user: str | None = None) -> str:
        args = ["exec", "-T", *(["--user", user] if user else []), service, *command]
        return self.compose(*args, timeout=300).stdout

    def save_logs(self, name: str) -> Path:
        """Every service's log so far, in one file under the test's folder (for a failure's report)."""
        path = self.log_dir / f"{name}.log"
        path.write_text(self.compose("logs", "--no-color", "--timestamps", check=False).stdout)
        return path

    def states(self) -> dict[str, tuple[str, str | None, int]]:
        """Each service's (container status, health or None, exit code)."""
        found = {}
        for service in self.services():
            ids = self.compose("ps", "-a", "-q", service).stdout.split()
            if not ids:
                continue
            state = json.loads(self.engine.run("inspect", ids[0]).stdout)[0]["State"]
            found[service] = (state["Status"], (state.get("Health") or {}).get("Status"), state["ExitCode"])
        return found

    def wait_healthy(self, timeout: float) -> float:
        """Wait until init has exited 0 and every other service is healthy; the seconds it took."""
        started = time.monotonic()
        while True:
            states = self.states()
            init = states.get(INIT)
            if init and init[0] == "exited" and init[2] != 0:
                raise AssertionError(f"{INIT} exited {init[2]}:\n{self.logs(INIT)}")
            others = {name: state for name, state in states.items() if name != INIT}
            if (
                init == ("exited", None, 0)
                and len(others) == len(self.services()) - 1
                and all(health == "healthy" for _, health, _ in others.values())
            ):
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                path = self.save_logs("not-healthy")
                raise AssertionError(f"not healthy after {timeout:.0f} s: {states}\n(logs: {path})")
            time.sleep(3)

    def up(self, timeout: float, *options: str) -> float:
        """``up -d`` (with ``options``), then wait for health; the seconds from ``up`` to healthy."""
        started = time.monotonic()
        self.compose("up", "-d", "--no-build", *options)
        self.wait_healthy(timeout)
        return time.monotonic() - started


class Rest:
    """Airflow's REST API v2 at the api-server the stack publishes, logged in as ``admin``."""

    def __init__(self, password: str, base: str = API) -> None:
        self.base = base
        self.session = requests.Session()
        answer = requests.post(
            f"{base}/auth/token", json={"username": "admin", "password": password}, timeout=30
        )
        answer.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"

    def get(self, path: str, **params: Any) -> Any:
        for attempt in range(5):  # a busy api-server on two cores may drop a call
            try:
                answer = self.session.get(f"{self.base}/api/v2/{path}", params=params, timeout=60)
                answer.raise_for_status()
                return answer.json()
            except (requests.ConnectionError, requests.Timeout):
                if attempt == 4:
                    raise
                time.sleep(2)

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        answer = self.session.post(
            f"{self.base}/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf}, timeout=60
        )
        assert answer.status_code in (200, 201), answer.text
        return answer.json()["dag_run_id"]

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.get(f"dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self.get(f"dags/{dag_id}/dagRuns", limit=100, order_by="-start_date")["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.get(f"dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances", limit=1000)[
            "task_instances"
        ]

    def wait_run(
        self,
        dag_id: str,
        run_id: str,
        timeout: float,
        during: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> tuple[str, list[dict[str, Any]]]:
        """Poll the run until it ends (``during`` sees each poll's task instances); its state and tasks."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.run(dag_id, run_id)["state"]
            tis = self.task_instances(dag_id, run_id)
            if during is not None:
                during(tis)
            if state in ("success", "failed"):
                return state, tis
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{dag_id} {run_id}: still {state} after {timeout:.0f} s: {summary(tis)}"
                )
            time.sleep(1)


def summary(tis: list[dict[str, Any]]) -> str:
    return ", ".join(
        f"{ti['task_id']}[{ti.get('rendered_map_index') or ti.get('map_index')}] {ti.get('state')} "
        f"try {ti.get('try_number')}"
        for ti in tis
    )
