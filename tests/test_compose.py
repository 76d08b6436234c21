"""docker-compose.yaml: valid, and wiring every service the stack needs (no Docker engine runs the stack here)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.support.services import unavailable

ROOT = Path(__file__).resolve().parent.parent


def test_compose_file_validates_and_wires_the_stack() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        unavailable("docker-compose is not installed (Debian package docker-compose)")
    check = subprocess.run([binary, "-f", str(ROOT / "docker-compose.yaml"), "config", "-q"], capture_output=True,
                           text=True, timeout=120, cwd=ROOT)
    assert check.returncode == 0, check.stderr
    rendered = subprocess.run([binary, "-f", str(ROOT / "docker-compose.yaml"), "config"], capture_output=True,
                              text=True, timeout=120, cwd=ROOT, check=True).stdout
    services = yaml.safe_load(rendered)["services"]
    assert {"postgres", "redis", "azurite", "uci-exhaust-emulator", "airflow-init", "airflow-apiserver",
            "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker"} <= set(services)
    scheduler = services["airflow-scheduler"]["environment"]
    assert scheduler["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert '"conn_type": "uci_exhaust"' in scheduler["AIRFLOW_CONN_UCI_EXHAUST_DEFAULT"]
    assert "uci-exhaust-emulator:9000/api" in scheduler["AIRFLOW_CONN_UCI_EXHAUST_DEFAULT"]
    assert (ROOT / services["airflow-scheduler"]["build"]["dockerfile"]).is_file() or \
        (ROOT / "docker" / "Dockerfile").is_file()
