"""The compose stack, started for real: ``docker-compose up`` of the repository's docker-compose.yaml.

Run it with ``uv run --locked pytest -m compose`` (root, a Docker Engine or Debian's packages; under
``CI=true`` it installs them when missing, and fails if the engine cannot be had; elsewhere it skips).

What stands in for what (no image registry is reachable here; ``tests/compose/images`` builds each,
and ``tests/compose/override.yaml`` swaps them in; docker-compose.yaml itself is not changed):

- ``apache/airflow:3.3.2-python3.11`` -> Debian bookworm's Python 3.11 with exactly uv.lock's
  packages (the project's dependencies and extras, plus the Celery provider), the user
  airflow (50000:0), AIRFLOW_HOME=/opt/airflow, a virtual environment at /home/airflow/.local first on
  PATH, dumb-init and a short /entrypoint (``airflow <command>`` after waiting for the database).
  Differs: not Airflow's constraints nor its ~80 providers; the host's CA bundle trusted; the official
  entrypoint's _AIRFLOW_DB_MIGRATE, _AIRFLOW_WWW_USER_CREATE, _PIP_ADDITIONAL_REQUIREMENTS and
  arbitrary-uid handling are absent (the compose file uses none of them). The project's own
  docker/Dockerfile is built on it, as it is on the official image.
- ``postgres:16`` -> Debian's PostgreSQL 15 with an entrypoint honouring POSTGRES_USER, _PASSWORD, _DB
  and /docker-entrypoint-initdb.d (*.sql, *.sh) once, without TCP until they are done. Differs:
  version 15; no POSTGRES_INITDB_ARGS, _HOST_AUTH_METHOD, *_FILE or *.sql.gz.
- ``redis:7.2-bookworm`` -> Debian's redis-server 7.0, protected mode off as in the official image.
- ``mcr.microsoft.com/azure-storage/azurite:3.37.0`` -> Azurite 3.37.0 from npm on Debian's Node.js 18
  (the official image has Node 22, which Azurite 3.37 asks for; its blob service runs on 18 here).
- The override also sets two Celery slots (the machine has two cores) and a 60 s task heartbeat
  timeout (Airflow's default is 300 s), so a killed worker's task is retried sooner.

In order, on one stack (each test goes on from where the one before left it):

1. ``up``: every service healthy and airflow-init exited 0 within UP_TIMEOUT; the time is printed.
2. Login at the api-server with the password init generated (read as docs/production.md says).
3. ``uci_exhaust`` and ``uci_exhaust_report`` parsed in the image without import errors, unpaused;
   a triggered run of the seeded bots over the seeded days ends green, the ``warehouse`` database
   holds exactly the emulator's rows (tests/support/expected.py, counts from the seed's own
   output), and Azurite holds each bot's files.
4. The report DAG runs after the loads, and its pages are where docs/analytics.md says.
5. ``down`` then ``up`` (volumes kept): the same secrets, nothing initialised again (secrets kept,
   PostgreSQL's init skipped, the emulator not seeded again, the rows and runs still there).
6. A second run, with the worker container killed (SIGKILL) while a bot copies or loads: the
   restart policy starts it again, the task is retried, and the run ends green with the exact
   rows, none twice.
7. A ``.env`` with its own secrets, zip password, warehouse URL (another database and login) and
   destination: honoured after ``up`` (login, secrets, rows, files).
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import signal
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from tests.compose.engine import Engine, build_images, docker_engine
from tests.compose.stack import INIT, Rest, Stack, summary
from tests.support.expected import assert_table_matches, table_rows
from tests.support.services import AZURITE_ACCOUNT, AZURITE_KEY

pytestmark = [pytest.mark.compose, pytest.mark.e2e, pytest.mark.timeout(5400)]

#: Every service healthy and airflow-init exited 0 within this time (two shared cores, a cold start).
UP_TIMEOUT = 900.0
RUN_TIMEOUT = 1500.0
#: 60 s heartbeat timeout, the DAG's 5-minute retry delay, then the run.
KILLED_RUN_TIMEOUT = 2100.0
REPORT_TIMEOUT = 1200.0
POLL_INTERVAL = 30
DAG_ID = "uci_exhaust"
REPORT_DAG_ID = "uci_exhaust_report"
ZIP_KEY = "compose-zip-key"  # the emulator's development zip password (docker/write_secrets.py)
SECRET_FILES = ("jwt_secret", "secret_key", "fernet_key", "passwords.json", "emulator_admin_token")
AZURITE = (
    f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
    f"BlobEndpoint=http://127.0.0.1:10000/{AZURITE_ACCOUNT};"
)  # the port the compose file publishes
FILES = {"uci-response-exhaust.csv", "uci-private-exhaust.zip", "uci-private-exhaust.csv"}
#: a bot's step that copies or loads (the design's shape), or the compact shape's whole bot
COPY_OR_LOAD = re.compile(r"(bot|copy|join_and_load)$")
SEEDED = re.compile(r"bot ([0-9a-f-]{36}) .*: (\d+) response rows")
TIMES: dict[str, float] = {}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    with docker_engine(tmp_path_factory.mktemp("engine")) as running:
        yield running


@pytest.fixture(scope="module")
def stack(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    started = time.monotonic()
    for name, seconds in build_images(engine).items():
        TIMES[f"build {name}"] = seconds
    TIMES["build (all)"] = time.monotonic() - started
    folder = tmp_path_factory.mktemp("compose")
    running = Stack(engine, env_file=folder / "compose.env", log_dir=folder)
    running.compose("down", "--volumes", "--remove-orphans", check=False)  # a run stopped half-way before
    try:
        yield running
    finally:
        print(f"\n[compose] logs: {running.save_logs('stack')}")
        running.compose("down", "--volumes", "--remove-orphans", check=False)
        with open("/proc/loadavg") as load:
            print(
                "[compose] "
                + "; ".join(f"{name} {seconds:.0f} s" for name, seconds in TIMES.items())
                + f" (load average {load.read().split()[0]})"
            )


@pytest.fixture(scope="module")
def seen() -> dict[str, Any]:
    """What one test found for the next: the secrets, the seed, the warehouse."""
    return {}


def read_secrets(stack: Stack) -> dict[str, str]:
    return {
        name: stack.exec("airflow-apiserver", "cat", f"/opt/airflow/secrets/{name}") for name in SECRET_FILES
    }


def admin_password(stack: Stack) -> str:
    """The admin password as docs/production.md says to read it: the api-server's passwords file."""
    return json.loads(stack.exec("airflow-apiserver", "cat", "/opt/airflow/secrets/passwords.json"))["admin"]


def warehouse_url(stack: Stack, database: str = "warehouse", login: str = "airflow:airflow") -> str:
    return f"postgresql://{login}@{stack.ip('postgres')}:5432/{database}"


def emulator_data(stack: Stack, into: Path) -> Path:
    """A copy of the emulator's data folder (its seed, and the files its jobs wrote)."""
    stack.engine.run("cp", f"{stack.container('uci-exhaust-emulator')}:/data", str(into))
    return into


def blobs(container: str, prefix: str) -> dict[str, Any]:
    from azure.storage.blob import BlobServiceClient

    client = BlobServiceClient.from_connection_string(AZURITE).get_container_client(container)
    return {blob.name: blob for blob in client.list_blobs(name_starts_with=prefix)}


def blob_bytes(container: str, name: str) -> bytes:
    from azure.storage.blob import BlobServiceClient

    return (
        BlobServiceClient.from_connection_string(AZURITE)
        .get_blob_client(container, name)
        .download_blob()
        .readall()
    )


def blob_text(container: str, name: str) -> str:
    return blob_bytes(container, name).decode("utf-8")


def assert_files(container: str, prefix: str, seeded: dict[str, int], days: list[str]) -> None:
    """Each bot's three files under ``<prefix>/<bot>/<start>_<end>/``, its response file holding its seed's rows."""
    from airflow_provider_uci.exhaust.spark_csv import read_records

    for bot, count in seeded.items():
        folder = f"{prefix}/{bot}/{days[0]}_{days[-1]}/"
        found = blobs(container, folder)
        assert {name[len(folder) :] for name in found} >= FILES, (folder, sorted(found))
        records = list(
            read_records(io.StringIO(blob_text(container, folder + "uci-response-exhaust.csv"), newline=""))
        )
        assert len(records) - 1 == count, (
            f"{bot}: {len(records) - 1} response records in Azurite, seed said {count}"
        )


def test_up_every_service_healthy_and_init_exits_0(stack: Stack, seen: dict[str, Any]) -> None:
    took = stack.up(UP_TIMEOUT)
    TIMES["up to healthy"] = took
    states = stack.states()
    assert states[INIT] == ("exited", None, 0)
    assert {name for name, (_, health, _) in states.items() if health == "healthy"} == set(states) - {INIT}
    print(
        f"\n[compose] every service healthy, {INIT} exited 0, {took:.0f} s after up (stated limit {UP_TIMEOUT:.0f})"
    )
    seen["secrets"] = read_secrets(stack)
    assert all(seen["secrets"].values())
    seen["seeded"] = {
        bot: int(count) for bot, count in SEEDED.findall(stack.logs("uci-exhaust-emulator", 5000))
    }
    assert len(seen["seeded"]) == 3, stack.logs("uci-exhaust-emulator")
    raw = stack.exec("uci-exhaust-emulator", "ls", "/data/blobs/telemetry-data-store/unique/raw").split()
    seen["days"] = sorted({name[:10] for name in raw})
    assert len(seen["days"]) == 3, raw


def test_login_with_the_generated_admin_password(stack: Stack, seen: dict[str, Any]) -> None:
    password = admin_password(stack)
    assert len(password) >= 12
    api = Rest(password)
    assert api.get("version")["version"].startswith("3.3")
    refused = requests.post(
        f"{api.base}/auth/token", json={"username": "admin", "password": password + "x"}, timeout=30
    )
    assert refused.status_code == 401, refused.text
    seen["api"] = api


def wait_for_dags(api: Rest, timeout: float = 300.0) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        dags = {dag["dag_id"]: dag for dag in api.get("dags", limit=100)["dags"]}
        errors = api.get("importErrors")
        assert errors["total_entries"] == 0, errors
        if {DAG_ID, REPORT_DAG_ID} <= set(dags):
            return dags
        assert time.monotonic() < deadline, f"DAGs not parsed after {timeout:.0f} s: {sorted(dags)}"
        time.sleep(5)


def run_and_check(
    stack: Stack, seen: dict[str, Any], name: str, *, during: Any = None, timeout: float = RUN_TIMEOUT
) -> str:
    """Trigger a run of the seeded bots (the compose's Variable) over the seeded days; it must end green."""
    api: Rest = seen["api"]
    days: list[str] = seen["days"]
    started = time.monotonic()
    # polled as often as the emulator runs its jobs (--jobs-every 30), not every 600 s (the default)
    run_id = api.trigger(
        DAG_ID, {"start_date": days[0], "end_date": days[-1], "poll_interval": POLL_INTERVAL}
    )
    state, tis = api.wait_run(DAG_ID, run_id, timeout, during)
    TIMES[name] = time.monotonic() - started
    assert state == "success", (
        f"{run_id} {state}: {summary(tis)}\n(logs: {stack.save_logs(name.replace(' ', '-'))})"
    )
    seen["last_tis"] = tis
    return run_id


def test_the_dag_runs_green_in_the_image_with_exact_rows_and_files(
    stack: Stack, seen: dict[str, Any], tmp_path: Path
) -> None:
    api: Rest = seen["api"]
    dags = wait_for_dags(api)
    assert not dags[DAG_ID]["is_paused"] and not dags[REPORT_DAG_ID]["is_paused"], "unpaused at creation"
    run_check = run_and_check(stack, seen, "first run")
    seen["first_run"] = run_check
    bots = list(seen["seeded"])
    data = emulator_data(stack, tmp_path / "emulator")
    rows = assert_table_matches(
        warehouse_url(stack), data, bots, seen["days"], ZIP_KEY, sum(seen["seeded"].values())
    )
    seen["rows"] = rows
    assert_files("exhaust", "uci", seen["seeded"], seen["days"])
    print(f"\n[compose] {run_check}: {len(rows)} rows of {len(bots)} bots in {TIMES['first run']:.0f} s")


def ended(tis: list[dict[str, Any]]) -> str:
    """When the run's last copy-or-load step ended (ISO text, comparable)."""
    ends = [ti["end_date"] for ti in tis if COPY_OR_LOAD.search(ti["task_id"]) and ti.get("end_date")]
    assert ends, summary(tis)
    return max(ends)


def test_the_report_dag_writes_its_pages_after_the_loads(stack: Stack, seen: dict[str, Any]) -> None:
    api: Rest = seen["api"]
    loads_ended = ended(seen["last_tis"])
    deadline = time.monotonic() + REPORT_TIMEOUT
    while True:
        runs = [run for run in api.runs(REPORT_DAG_ID) if (run.get("start_date") or "") >= loads_ended]
        if any(run["state"] == "success" for run in runs):
            break
        assert not [run for run in runs if run["state"] == "failed"], runs
        assert time.monotonic() < deadline, f"no report run after {loads_ended}: {api.runs(REPORT_DAG_ID)}"
        time.sleep(3)
    pages = blobs("exhaust", "uci/")
    fleet = pages["uci/report.html"]
    assert fleet.content_settings.content_type.startswith("text/html")
    text = blob_text("exhaust", "uci/report.html")
    for bot in seen["seeded"]:
        assert f'id="bot-{bot}"' in text, bot
        assert f"uci/{bot}/report.html" in pages, sorted(pages)
        assert bot in blob_text("exhaust", f"uci/{bot}/report.html")


def test_down_then_up_keeps_the_secrets_and_initialises_nothing_again(
    stack: Stack, seen: dict[str, Any]
) -> None:
    stack.compose("down")
    TIMES["up again to healthy"] = stack.up(UP_TIMEOUT)
    assert read_secrets(stack) == seen["secrets"]
    init = stack.logs(INIT, 200)
    assert all(f"{name} kept" in init for name in SECRET_FILES), init
    assert "Skipping initialization" in stack.logs("postgres", 200)
    assert not SEEDED.search(stack.logs("uci-exhaust-emulator", 5000)), "the emulator was seeded again"
    api = Rest(admin_password(stack))
    assert seen["first_run"] in {run["dag_run_id"] for run in api.runs(DAG_ID)}, "Airflow's database kept"
    assert set(table_rows(warehouse_url(stack), list(seen["seeded"]))) == set(seen["rows"])
    seen["api"] = api


def test_a_second_run_survives_the_worker_killed_while_a_bot_copies_or_loads(
    stack: Stack, seen: dict[str, Any], tmp_path: Path
) -> None:
    killed: list[dict[str, Any]] = []

    def kill_once(tis: list[dict[str, Any]]) -> None:
        if killed:
            return
        busy = [ti for ti in tis if ti.get("state") == "running" and COPY_OR_LOAD.search(ti["task_id"])]
        if busy:
            pid = stack.inspect("airflow-worker")["State"]["Pid"]
            os.kill(pid, signal.SIGKILL)  # the container's PID 1: the whole container dies, as in a crash
            killed.append(busy[0])

    loads_before = load_count(warehouse_url(stack))
    restarts = stack.inspect("airflow-worker")["RestartCount"]
    run_id = run_and_check(
        stack, seen, "run with the worker killed", during=kill_once, timeout=KILLED_RUN_TIMEOUT
    )
    assert killed, "no bot was seen copying or loading: the worker was never killed"
    victim = next(
        ti
        for ti in seen["last_tis"]
        if (ti["task_id"], ti.get("map_index")) == (killed[0]["task_id"], killed[0].get("map_index"))
    )
    assert victim["try_number"] > killed[0]["try_number"], f"not retried: {victim}"
    assert stack.inspect("airflow-worker")["RestartCount"] > restarts, (
        "the restart policy started the worker again"
    )
    rows = table_rows(warehouse_url(stack), list(seen["seeded"]))  # fails on any key held twice
    assert len(rows) == sum(seen["seeded"].values()) and content(rows) == content(seen["rows"])
    assert load_count(warehouse_url(stack)) >= loads_before + len(seen["seeded"]), (
        "the second run loaded again"
    )
    print(
        f"\n[compose] {run_id}: worker killed while {killed[0]['task_id']}[{killed[0].get('map_index')}] ran "
        f"(try {killed[0]['try_number']}); green after try {victim['try_number']}, "
        f"{TIMES['run with the worker killed']:.0f} s"
    )


def content(rows: dict[tuple, dict]) -> dict[tuple, dict]:
    """The rows without what differs from one load to the next (which load wrote them)."""
    return {
        key: {column: value for column, value in row.items() if column != "load_id"}
        for key, row in rows.items()
    }


def load_count(url: str) -> int:
    import psycopg2

    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM uci_responses_loads")
        return cursor.fetchone()[0]


def test_an_env_file_with_its_own_secrets_and_production_settings_is_honoured(
    stack: Stack, seen: dict[str, Any]
) -> None:
    from cryptography.fernet import Fernet

    loader_password = "Pr0d@loader/" + secrets.token_hex(4)
    stack.exec(
        "postgres",
        "psql",
        "-v",
        "ON_ERROR_STOP=1",
        "-U",
        "airflow",
        "-d",
        "postgres",
        "-c",
        f"CREATE ROLE analytics_loader LOGIN PASSWORD '{loader_password}'",
    )
    stack.exec(
        "postgres",
        "psql",
        "-v",
        "ON_ERROR_STOP=1",
        "-U",
        "airflow",
        "-d",
        "postgres",
        "-c",
        "CREATE DATABASE analytics OWNER analytics_loader",
    )
    env = {
        "AIRFLOW_JWT_SECRET": secrets.token_urlsafe(64),
        "AIRFLOW_SECRET_KEY": secrets.token_urlsafe(64),
        "AIRFLOW_FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW_ADMIN_PASSWORD": secrets.token_urlsafe(18),
        "UCI_EMULATOR_ADMIN_TOKEN": secrets.token_urlsafe(32),
        "UCI_EXHAUST_ENCRYPTION_KEY": "prod-zip-" + secrets.token_hex(6),
        "UCI_EXHAUST_REQUESTED_BY": "data-team",
        "UCI_WAREHOUSE_URL": f"postgresql://analytics_loader:{quote(loader_password, safe='')}@postgres:5432/analytics",
        "UCI_EXHAUST_DESTINATION": "wasb://nightly-exhaust/prod/uci",
    }
    stack.env_file.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
    # as docs/production.md says for changed secrets: every service reads its secrets when it starts
    TIMES["up with .env to healthy"] = stack.up(UP_TIMEOUT, "--force-recreate")
    init = stack.logs(INIT, 200)
    assert all(f"{name} changed" in init for name in SECRET_FILES), init
    written = read_secrets(stack)
    assert json.loads(written.pop("passwords.json")) == {"admin": env["AIRFLOW_ADMIN_PASSWORD"]}
    assert written == {
        "jwt_secret": env["AIRFLOW_JWT_SECRET"],
        "secret_key": env["AIRFLOW_SECRET_KEY"],
        "fernet_key": env["AIRFLOW_FERNET_KEY"],
        "emulator_admin_token": env["UCI_EMULATOR_ADMIN_TOKEN"],
    }
    old = requests.post(
        "http://127.0.0.1:8080/auth/token",
        json={"username": "admin", "password": admin_password_from(seen["secrets"])},
        timeout=30,
    )
    assert old.status_code == 401, "the generated password no longer logs in"
    seen["api"] = Rest(env["AIRFLOW_ADMIN_PASSWORD"])
    url = f"postgresql://analytics_loader:{quote(loader_password, safe='')}@{stack.ip('postgres')}:5432/analytics"
    run_and_check(stack, seen, "run with .env")
    rows = table_rows(url, list(seen["seeded"]))
    assert content(rows) == content(seen["rows"]), "the other warehouse holds the same rows, phones included"
    assert_files("nightly-exhaust", "prod/uci", seen["seeded"], seen["days"])
    # the service encrypted the private files with the .env's zip password (only it opens them)
    days = seen["days"]
    for bot in seen["seeded"]:
        archive = blob_bytes(
            "nightly-exhaust", f"prod/uci/{bot}/{days[0]}_{days[-1]}/uci-private-exhaust.zip"
        )
        with zipfile.ZipFile(io.BytesIO(archive)) as opened:
            member = opened.namelist()[0]
            assert opened.read(member, pwd=env["UCI_EXHAUST_ENCRYPTION_KEY"].encode())
            with pytest.raises(RuntimeError):
                opened.read(member, pwd=ZIP_KEY.encode())


def admin_password_from(found: dict[str, str]) -> str:
    return json.loads(found["passwords.json"])["admin"]
