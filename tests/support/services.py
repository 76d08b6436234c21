"""Start the services the tests talk to: the emulator, Azurite (from npm) and PostgreSQL databases.

Under ``CI=true`` a service that cannot be had fails the test; elsewhere it skips it with the reason.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

NODE_DIR = Path(__file__).resolve().parent.parent / "node"
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
POSTGRES_URL = os.environ.get("UCI_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def unavailable(reason: str) -> None:
    """Fail under CI (a missing service is a broken run), skip elsewhere."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"required service unavailable under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not open port {port} in {timeout} s:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


class EmulatorAddress:
    """The URLs of an emulator listening on 127.0.0.1 at ``port``."""

    port: int

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api(self) -> str:
        """The connection host a client uses, like ``https://<host>/api``."""
        return f"{self.root}/api"


@dataclass
class Emulator(EmulatorAddress):
    """A running ``uci-exhaust emulator serve`` process."""

    port: int
    data_dir: Path
    process: subprocess.Popen
    log: Path

    def set_clock(self, instant: str) -> None:
        requests.post(f"{self.root}/admin/clock", json={"now": instant}, timeout=10).raise_for_status()

    def reset_clock(self) -> None:
        requests.post(f"{self.root}/admin/clock", json={"reset": True}, timeout=10).raise_for_status()

    def last_request(self) -> dict:
        """The last API call the emulator's gateway saw: ``method``, ``path`` and ``headerNames`` (lower case)."""
        answer = requests.get(f"{self.root}/admin/last-request", timeout=10)
        answer.raise_for_status()
        return answer.json()


@contextmanager
def run_emulator(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Emulator]:
    """Start the emulator as a user would (its console script) on a free port; stop it afterwards."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / f"emulator-{port}.log"
    script = Path(sys.executable).with_name("uci-exhaust")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "airflow_provider_uci.cli"]
    full_env = {**os.environ, **(env or {})}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                *command,
                "emulator",
                "serve",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
                "--log-level",
                "warning",
                *args,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=full_env,
            start_new_session=True,
        )
    try:
        wait_for_port(port, process, 30, "the emulator", log)
        yield Emulator(port=port, data_dir=data_dir, process=process, log=log)
    finally:
        stop(process)


def node_tool(name: str) -> Path:
    """The path of a pinned npm tool (tests/node), installing the pinned set with ``npm ci`` if needed."""
    binary = NODE_DIR / "node_modules" / ".bin" / name
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None:
        unavailable("npm is not installed; Node.js 20 and npm are needed for Azurite and newman")
    result = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, capture_output=True, text=True, timeout=600
    )
    if result.returncode != 0 or not binary.exists():
        unavailable(f"npm ci in {NODE_DIR} failed: {result.stderr[-2000:]}")
    return binary


@dataclass
class Azurite:
    port: int
    process: subprocess.Popen

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.port}/{AZURITE_ACCOUNT};"
        )


@contextmanager
def run_azurite(workdir: Path) -> Iterator[Azurite]:
    """Start Azurite's blob service (the pinned npm package) on a free port, in memory."""
    binary = node_tool("azurite-blob")
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "azurite.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(binary),
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(port),
                "--inMemoryPersistence",
                "--silent",
                "--skipApiVersionCheck",
                "--disableTelemetry",
                "--loose",
            ],
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        wait_for_port(port, process, 30, "Azurite", log)
        yield Azurite(port=port, process=process)
    finally:
        stop(process)


@contextmanager
def postgres_database() -> Iterator[str]:
    """Create a fresh PostgreSQL database for one test (or module) and drop it afterwards."""
    try:
        import psycopg2
    except ImportError:
        unavailable("psycopg2 is not installed")
    try:
        admin = psycopg2.connect(POSTGRES_URL, connect_timeout=5)
    except Exception as exc:
        unavailable(f"PostgreSQL at {POSTGRES_URL} is not reachable: {exc}")
    admin.autocommit = True
    name = f"uci_test_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
