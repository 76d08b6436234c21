"""docker-compose.yaml: valid, started in order, healthy before use, sharing one set of secrets.

No Docker engine runs the stack here: the file is checked as data (Compose Specification form,
dependencies with conditions, a healthcheck on every long-running service), validated by
docker-compose itself, and its parts that run outside a container are run: the emulator's seed
command (its bots must be the ones the DAG's Variable names) and the script that writes the secrets.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.services import free_port, stop, unavailable, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
WRITE_SECRETS = ROOT / "docker" / "write-secrets.sh"
BIN = Path(sys.executable).parent
INIT = "airflow-init"
EMULATOR = "uci-exhaust-emulator"
AIRFLOW_SERVICES = {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                    "airflow-worker"}
SECRETS = {"jwt_secret": "AIRFLOW_JWT_SECRET", "secret_key": "AIRFLOW_SECRET_KEY", "fernet_key": "AIRFLOW_FERNET_KEY",
           "passwords.json": "AIRFLOW_ADMIN_PASSWORD", "emulator_admin_token": "UCI_EMULATOR_ADMIN_TOKEN"}
#: ``$$`` (an escaped ``$``), or ``${VAR}`` / ``${VAR:-default}``
VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?::-([^}]*))?\}")


def raw() -> dict[str, Any]:
    """The file as YAML (anchors and merge keys resolved), before variable interpolation."""
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def interpolate(value: str) -> str:
    """What compose makes of ``value`` with no .env and no variable set: each ``${VAR:-default}`` its default."""
    return VARIABLE.sub(lambda match: "$" if match.group(0) == "$$" else match.group(2) or "", value)


def services() -> dict[str, dict[str, Any]]:
    return raw()["services"]


def environment(service: str) -> dict[str, str]:
    return {key: interpolate(str(value)) for key, value in (services()[service].get("environment") or {}).items()}


def compose_variables() -> set[str]:
    return {name for name, _ in VARIABLE.findall(COMPOSE.read_text(encoding="utf-8")) if name}


def docker_compose() -> str:
    binary = shutil.which("docker-compose")
    if binary is None:
        unavailable("docker-compose is not installed (Debian package docker-compose; .ci/run installs it)")
    return str(binary)


def run_compose(*args: str, env_file: Path) -> subprocess.CompletedProcess[str]:
    """docker-compose on the file, with only ``env_file`` for variables (a developer's .env is not read)."""
    env = {key: value for key, value in os.environ.items() if key not in compose_variables()}
    return subprocess.run([docker_compose(), "--env-file", str(env_file), "-f", str(COMPOSE), *args],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)


@pytest.mark.parametrize("env_file", ["none", ".env.example"])
def test_docker_compose_validates_the_file(env_file: str, tmp_path: Path) -> None:
    """``docker-compose config -q`` passes without a .env, and with every variable .env.example sets."""
    path = ENV_EXAMPLE if env_file == ".env.example" else tmp_path / "empty.env"
    if env_file == "none":
        path.write_text("")
    check = run_compose("config", "-q", env_file=path)
    assert check.returncode == 0, check.stderr
    assert "is not set" not in check.stderr, check.stderr
    rendered = yaml.safe_load(run_compose("config", env_file=path).stdout)["services"]
    assert {"postgres", "redis", "azurite", EMULATOR, INIT, *AIRFLOW_SERVICES} == set(rendered)
    worker = rendered["airflow-worker"]["environment"]
    assert worker["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    connection = json.loads(worker["AIRFLOW_CONN_UCI_EXHAUST_DEFAULT"])
    assert connection["conn_type"] == "uci_exhaust"
    assert connection["host"] == "http://uci-exhaust-emulator:9000/api"
    assert json.loads(worker["AIRFLOW_VAR_UCI_EXHAUST_CONVERSATION_IDS"]) == seeded_ids_in_compose()


def test_compose_specification_form() -> None:
    data = raw()
    assert "version" not in data, "the Compose Specification has no version key"
    assert (ROOT / services()[INIT]["build"]["dockerfile"]).is_file()
    for name in (EMULATOR, *AIRFLOW_SERVICES):  # built, not pulled: the image exists only once built
        assert services()[name]["image"] == "airflow-provider-uci:local"
        assert services()[name]["build"] == services()[INIT]["build"], name


def test_every_service_but_init_has_a_healthcheck_and_a_restart_policy() -> None:
    for name, service in services().items():
        if name == INIT:
            assert "healthcheck" not in service
            assert service.get("restart") == "no", "a one-off: never restarted"
            continue
        check = service.get("healthcheck") or {}
        assert check.get("test"), f"{name} has no healthcheck"
        assert check.get("interval") and check.get("retries"), name
        assert service.get("restart") == "always", name


def healthcheck(name: str) -> str:
    return " ".join(services()[name]["healthcheck"]["test"])


def test_healthchecks_ask_each_component_itself() -> None:
    assert "pg_isready" in healthcheck("postgres") and "warehouse" in healthcheck("postgres")
    assert "redis-cli ping" in healthcheck("redis")
    assert "127.0.0.1:10000" in healthcheck("azurite")
    assert "/admin/health" in healthcheck(EMULATOR) and "emulator_admin_token" in healthcheck(EMULATOR)
    assert "http://localhost:8080/api/v2/version" in healthcheck("airflow-apiserver")
    for name, job in (("airflow-scheduler", "SchedulerJob"), ("airflow-dag-processor", "DagProcessorJob"),
                      ("airflow-triggerer", "TriggererJob")):
        assert f'airflow jobs check --job-type {job} --hostname "$${{HOSTNAME}}"' in healthcheck(name), name
    assert 'inspect ping -d "celery@$${HOSTNAME}"' in healthcheck("airflow-worker")


def test_every_dependency_waits_on_a_condition() -> None:
    """Each dependency names its condition: init must have completed, any other service be healthy."""
    for name, service in services().items():
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on as a list starts without waiting for anything"
        for dependency, rule in depends.items():
            assert dependency in services(), (name, dependency)
            want = "service_completed_successfully" if dependency == INIT else "service_healthy"
            assert (rule or {}).get("condition") == want, (name, dependency, rule)


def test_init_completes_before_the_project_services_start_and_after_their_stores() -> None:
    assert set(services()[INIT]["depends_on"]) == {"postgres", "redis"}
    for name in (EMULATOR, *AIRFLOW_SERVICES):
        assert INIT in services()[name]["depends_on"], name
    for name in AIRFLOW_SERVICES:
        assert {"postgres", "redis"} <= set(services()[name]["depends_on"]), name
    worker = services()["airflow-worker"]["depends_on"]
    assert {"airflow-apiserver", "azurite", EMULATOR} <= set(worker), "a worker talks to all three"
    assert EMULATOR in services()["airflow-triggerer"]["depends_on"], "the triggerer polls the emulator"


def test_one_set_of_secrets_for_every_component() -> None:
    """Every Airflow component reads the same JWT secret, secret key and Fernet key: files that init writes."""
    for name in AIRFLOW_SERVICES:
        env = environment(name)
        assert env["AIRFLOW__API_AUTH__JWT_SECRET_CMD"] == "cat /opt/airflow/secrets/jwt_secret", name
        assert env["AIRFLOW__API__SECRET_KEY_CMD"] == "cat /opt/airflow/secrets/secret_key", name
        assert env["AIRFLOW__CORE__FERNET_KEY_CMD"] == "cat /opt/airflow/secrets/fernet_key", name
        assert not {"AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"} & set(env), "no secret in the file"
        assert any(volume.startswith("airflow-secrets:/opt/airflow/secrets") for volume in services()[name]["volumes"])
    assert environment("airflow-apiserver")["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] == \
        "/opt/airflow/secrets/passwords.json"
    assert services()["airflow-apiserver"]["volumes"] == ["airflow-secrets:/opt/airflow/secrets"], \
        "writable: the simple auth manager opens its passwords file for writing"
    init = services()[INIT]
    assert "docker/write-secrets.sh" in " ".join(init["command"])
    assert set(SECRETS.values()) <= set(environment(INIT)), "init receives every secret of .env"


def test_env_example_names_every_variable_the_file_reads() -> None:
    example = ENV_EXAMPLE.read_text(encoding="utf-8")
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", example, flags=re.M))
    assert documented == compose_variables()
    for variable in SECRETS.values():  # set, to placeholders that init refuses
        assert re.search(rf"^{variable}=change-me", example, flags=re.M), variable


def seed_command() -> list[str]:
    """The emulator's seed command, as its service runs it."""
    script = interpolate(" ".join(services()[EMULATOR]["command"]))
    (line,) = [line.strip() for line in script.splitlines() if "uci-exhaust emulator seed" in line]
    return shlex.split(line)


def seeded_ids_in_compose() -> list[str]:
    return json.loads(environment("airflow-scheduler")["AIRFLOW_VAR_UCI_EXHAUST_CONVERSATION_IDS"])


def test_the_dag_variable_names_the_bots_the_emulator_seeds(tmp_path: Path) -> None:
    """Run the compose's seed command (same flags, another data dir) and compare its bots with the Variable."""
    argv = seed_command()
    assert argv[:3] == ["uci-exhaust", "emulator", "seed"] and "--seed" in argv, argv
    argv[argv.index("--data-dir") + 1] = str(tmp_path / "data")
    result = subprocess.run([str(BIN / "uci-exhaust"), *argv[1:], "--json"], capture_output=True, text=True,
                            timeout=300, cwd=tmp_path, check=True)
    seeded = [bot["id"] for bot in json.loads(result.stdout)["bots"]]
    assert len(seeded) == 3
    for name in AIRFLOW_SERVICES:
        assert json.loads(environment(name)["AIRFLOW_VAR_UCI_EXHAUST_CONVERSATION_IDS"]) == seeded, name
    assert environment("airflow-scheduler")["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "false", \
        "the first scheduled run happens without anyone unpausing the DAG"


def write_secrets(folder: Path, **values: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in SECRETS.values()}
    env.update(values, UCI_SECRETS_DIR=str(folder), PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
    return subprocess.run(["bash", str(WRITE_SECRETS)], capture_output=True, text=True, timeout=60, env=env)


def test_init_generates_each_secret_once_and_takes_the_env_files(tmp_path: Path) -> None:
    folder = tmp_path / "secrets"
    first = write_secrets(folder)
    assert first.returncode == 0, first.stderr
    generated = {name: (folder / name).read_text() for name in SECRETS}
    secrets = [value for name, value in generated.items() if name != "passwords.json"]
    assert all(len(value) >= 32 and value == value.strip() for value in secrets), generated
    assert json.loads(generated["passwords.json"]).keys() == {"admin"}
    assert len({generated["jwt_secret"], generated["secret_key"], generated["emulator_admin_token"]}) == 3

    again = write_secrets(folder)
    assert again.returncode == 0, again.stderr
    assert {name: (folder / name).read_text() for name in SECRETS} == generated, "kept across restarts"

    given = write_secrets(folder, AIRFLOW_JWT_SECRET="jwt-from-env", AIRFLOW_ADMIN_PASSWORD="pw-from-env")
    assert given.returncode == 0, given.stderr
    assert (folder / "jwt_secret").read_text() == "jwt-from-env"
    assert json.loads((folder / "passwords.json").read_text()) == {"admin": "pw-from-env"}
    assert (folder / "secret_key").read_text() == generated["secret_key"]

    placeholders = dict(re.findall(r"^([A-Z_]+)=(change-me\S*)$", ENV_EXAMPLE.read_text(encoding="utf-8"), re.M))
    refused = write_secrets(tmp_path / "other", **placeholders)
    assert refused.returncode != 0
    assert "AIRFLOW_JWT_SECRET" in refused.stderr and ".env.example" in refused.stderr


def test_airflow_reads_the_secrets_as_written(tmp_path: Path) -> None:
    """Airflow's ``_CMD`` settings give exactly the files' contents (no trailing newline)."""
    folder = tmp_path / "secrets"
    assert write_secrets(folder).returncode == 0
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    env.update({key: value.replace("/opt/airflow/secrets", str(folder)) for key, value in
                environment("airflow-scheduler").items() if key.endswith("_CMD")}, AIRFLOW_HOME=str(tmp_path / "home"))
    script = ("import json; from airflow.configuration import conf; print(json.dumps([conf.get('api_auth', "
              "'jwt_secret'), conf.get('api', 'secret_key'), conf.get('core', 'fernet_key')]))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env,
                            check=True)
    read = json.loads(result.stdout.strip().splitlines()[-1])
    assert read == [(folder / name).read_text() for name in ("jwt_secret", "secret_key", "fernet_key")]


def as_run_here(text: str, tmp_path: Path, port: int) -> str:
    """The emulator service's shell text, pointed at folders under ``tmp_path`` and a free loopback port."""
    return (interpolate(text).replace("/opt/airflow/secrets", str(tmp_path / "secrets"))
            .replace("/data", str(tmp_path / "data")).replace("--host 0.0.0.0", "--host 127.0.0.1")
            .replace(":9000", f":{port}").replace("--port 9000", f"--port {port}"))


def test_the_emulator_starts_as_its_service_runs_it_and_passes_its_healthcheck(tmp_path: Path) -> None:
    """Its command (seed once, then serve with the admin token init wrote) and its healthcheck, outside a container."""
    if shutil.which("curl") is None:
        unavailable("curl is not installed (the image's healthchecks use it)")
    assert write_secrets(tmp_path / "secrets").returncode == 0
    (tmp_path / "data").mkdir()
    port = free_port()
    service = services()[EMULATOR]
    env = {key: value for key, value in os.environ.items() if not key.startswith("UCI_EMULATOR_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    log = tmp_path / "emulator.log"
    with log.open("wb") as out:
        process = subprocess.Popen(["bash", "-c", as_run_here(" ".join(service["command"]), tmp_path, port)],
                                   stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                   start_new_session=True)
    try:
        wait_for_port(port, process, 120, "the emulator as the compose runs it", log)
        kind, check = service["healthcheck"]["test"]
        assert kind == "CMD-SHELL"
        healthy = subprocess.run(["bash", "-c", as_run_here(check, tmp_path, port)], capture_output=True, text=True,
                                 timeout=60, env=env)
        assert healthy.returncode == 0, healthy.stderr
        without_token = subprocess.run(["curl", "--fail", "--silent", f"http://127.0.0.1:{port}/admin/health"],
                                       capture_output=True, timeout=60)
        assert without_token.returncode != 0, "the admin routes ask for the token"
        assert (tmp_path / "data" / ".seeded").exists()
    finally:
        stop(process)
