"""docker-compose.yaml: valid, started in order, healthy before use, sharing one set of secrets.

The fast checks of the file: as data (Compose Specification form, dependencies with conditions, a
healthcheck on every long-running service), validated by docker-compose itself, and its parts that
run outside a container are run: the emulator's seed command (its bots must be the ones the DAG's
Variable names) and the script that writes the secrets and connections. The stack itself is started
by ``tests/compose`` (``pytest -m compose``).
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
AIRFLOW_SERVICES = {
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
}
SECRETS = {
    "jwt_secret": "AIRFLOW_JWT_SECRET",
    "secret_key": "AIRFLOW_SECRET_KEY",
    "fernet_key": "AIRFLOW_FERNET_KEY",
    "passwords.json": "AIRFLOW_ADMIN_PASSWORD",
    "emulator_admin_token": "UCI_EMULATOR_ADMIN_TOKEN",
}
CONNECTIONS = "/opt/airflow/secrets/connections.json"
#: Values that pass write-secrets' rules.
GOOD = {
    "AIRFLOW_JWT_SECRET": "j" * 32,
    "AIRFLOW_SECRET_KEY": "s" * 40,
    "AIRFLOW_FERNET_KEY": "0DjNnhWdl1x2MCbbQ_oAfwPqPJTaEPPMtf6GgjSNWYU=",
    "AIRFLOW_ADMIN_PASSWORD": "twelve-chars",
    "UCI_EMULATOR_ADMIN_TOKEN": "t" * 16,
}
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
    return {
        key: interpolate(str(value)) for key, value in (services()[service].get("environment") or {}).items()
    }


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
    return subprocess.run(
        [docker_compose(), "--env-file", str(env_file), "-f", str(COMPOSE), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )


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
    assert worker["AIRFLOW__SECRETS__BACKEND"] == "airflow.secrets.local_filesystem.LocalFilesystemBackend"
    assert json.loads(worker["AIRFLOW__SECRETS__BACKEND_KWARGS"]) == {"connections_file_path": CONNECTIONS}
    assert json.loads(worker["AIRFLOW_VAR_UCI_EXHAUST_CONVERSATION_IDS"]) == seeded_ids_in_compose()
    for name, service in rendered.items():  # connections (and their secrets) only in init's file
        assert not [key for key in service.get("environment") or {} if key.startswith("AIRFLOW_CONN_")], name


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
    assert "/admin/health" in healthcheck(
        EMULATOR
    ) and "@/opt/airflow/secrets/emulator_admin_header" in healthcheck(EMULATOR)
    assert "http://localhost:8080/api/v2/version" in healthcheck("airflow-apiserver")
    for name, job in (
        ("airflow-scheduler", "SchedulerJob"),
        ("airflow-dag-processor", "DagProcessorJob"),
        ("airflow-triggerer", "TriggererJob"),
    ):
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
        assert not {"AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"} & set(env), (
            "no secret in the file"
        )
        assert any(
            volume.startswith("airflow-secrets:/opt/airflow/secrets")
            for volume in services()[name]["volumes"]
        )
    assert (
        environment("airflow-apiserver")["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
        == "/opt/airflow/secrets/passwords.json"
    )
    assert services()["airflow-apiserver"]["volumes"] == ["airflow-secrets:/opt/airflow/secrets"], (
        "writable: the simple auth manager opens its passwords file for writing"
    )
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
    result = subprocess.run(
        [str(BIN / "uci-exhaust"), *argv[1:], "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        check=True,
    )
    seeded = [bot["id"] for bot in json.loads(result.stdout)["bots"]]
    assert len(seeded) == 3
    for name in AIRFLOW_SERVICES:
        assert json.loads(environment(name)["AIRFLOW_VAR_UCI_EXHAUST_CONVERSATION_IDS"]) == seeded, name
    assert environment("airflow-scheduler")["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "false", (
        "the first scheduled run happens without anyone unpausing the DAG"
    )


def write_secrets(folder: Path, **values: str) -> subprocess.CompletedProcess[str]:
    """Run docker/write-secrets.sh into ``folder`` with only ``values`` of the compose's variables set."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in compose_variables() | set(SECRETS.values())
    }
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

    given = write_secrets(
        folder, AIRFLOW_JWT_SECRET=GOOD["AIRFLOW_JWT_SECRET"], AIRFLOW_ADMIN_PASSWORD="pw-from-env-1"
    )
    assert given.returncode == 0, given.stderr
    assert "jwt_secret changed" in given.stdout and "--force-recreate" in given.stdout, given.stdout
    assert (folder / "jwt_secret").read_text() == GOOD["AIRFLOW_JWT_SECRET"]
    assert json.loads((folder / "passwords.json").read_text()) == {"admin": "pw-from-env-1"}
    assert (folder / "secret_key").read_text() == generated["secret_key"]

    placeholders = dict(
        re.findall(r"^([A-Z_]+)=(change-me\S*)$", ENV_EXAMPLE.read_text(encoding="utf-8"), re.M)
    )
    refused = write_secrets(tmp_path / "other", **placeholders)
    assert refused.returncode != 0
    assert "AIRFLOW_JWT_SECRET" in refused.stderr and ".env.example" in refused.stderr


def test_airflow_reads_the_secrets_as_written(tmp_path: Path) -> None:
    """Airflow's ``_CMD`` settings give exactly the files' contents (no trailing newline)."""
    folder = tmp_path / "secrets"
    assert write_secrets(folder).returncode == 0
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    env.update(
        {
            key: value.replace("/opt/airflow/secrets", str(folder))
            for key, value in environment("airflow-scheduler").items()
            if key.endswith("_CMD")
        },
        AIRFLOW_HOME=str(tmp_path / "home"),
    )
    script = (
        "import json; from airflow.configuration import conf; print(json.dumps([conf.get('api_auth', "
        "'jwt_secret'), conf.get('api', 'secret_key'), conf.get('core', 'fernet_key')]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env, check=True
    )
    read = json.loads(result.stdout.strip().splitlines()[-1])
    assert read == [(folder / name).read_text() for name in ("jwt_secret", "secret_key", "fernet_key")]


def as_run_here(text: str, tmp_path: Path, port: int) -> str:
    """The emulator service's shell text, pointed at folders under ``tmp_path`` and a free loopback port."""
    return (
        interpolate(text)
        .replace("/opt/airflow/secrets", str(tmp_path / "secrets"))
        .replace("/data", str(tmp_path / "data"))
        .replace("--host 0.0.0.0", "--host 127.0.0.1")
        .replace(":9000", f":{port}")
        .replace("--port 9000", f"--port {port}")
    )


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
        process = subprocess.Popen(
            ["bash", "-c", as_run_here(" ".join(service["command"]), tmp_path, port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    try:
        wait_for_port(port, process, 120, "the emulator as the compose runs it", log)
        # curl on PATH records the command line it was given (what ps shows), then runs the real curl
        shims = tmp_path / "shims"
        shims.mkdir()
        argv_log = tmp_path / "curl-argv"
        (shims / "curl").write_text(
            f'#!/bin/bash\nprintf "%s\\n" "$@" >>{shlex.quote(str(argv_log))}\n'
            f'exec {shlex.quote(str(shutil.which("curl")))} "$@"\n'
        )
        (shims / "curl").chmod(0o755)
        kind, *check = service["healthcheck"]["test"]
        argv = ["bash", "-c", check[0]] if kind == "CMD-SHELL" else check
        healthy = subprocess.run(
            [as_run_here(arg, tmp_path, port) for arg in argv],
            capture_output=True,
            text=True,
            timeout=60,
            env={**env, "PATH": f"{shims}{os.pathsep}{env['PATH']}"},
        )
        assert healthy.returncode == 0, healthy.stderr
        token = (tmp_path / "secrets" / "emulator_admin_token").read_text()
        assert argv_log.read_text().strip() and token not in argv_log.read_text(), (
            "the admin token was on curl's command line (visible in ps)"
        )
        without_token = subprocess.run(
            ["curl", "--fail", "--silent", f"http://127.0.0.1:{port}/admin/health"],
            capture_output=True,
            timeout=60,
        )
        assert without_token.returncode != 0, "the admin routes ask for the token"
        assert (tmp_path / "data" / ".seeded").exists()
    finally:
        stop(process)


@pytest.mark.parametrize(
    ("variable", "value", "rule"),
    [
        ("UCI_EMULATOR_ADMIN_TOKEN", "short", "at least 16"),
        ("AIRFLOW_FERNET_KEY", "notafernetkey", "not a Fernet key"),
        (
            "AIRFLOW_FERNET_KEY",
            "0DjNnhWdl1x2MCbbQ_oAfwPqPJTaEPPMtf6GgjSNWYU=,notafernetkey",
            "not a Fernet key",
        ),
        ("AIRFLOW_JWT_SECRET", "x" * 31, "at least 32"),
        ("AIRFLOW_SECRET_KEY", "x" * 10, "at least 32"),
        ("AIRFLOW_ADMIN_PASSWORD", "admin", "at least 12"),
    ],
)
def test_a_secret_that_breaks_its_rule_stops_init_with_one_line(
    variable: str, value: str, rule: str, tmp_path: Path
) -> None:
    folder = tmp_path / "secrets"
    refused = write_secrets(folder, **{**GOOD, variable: value})
    assert refused.returncode != 0
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and variable in lines[0] and rule in lines[0], refused.stderr
    assert value not in refused.stderr + refused.stdout, "the refused value is not echoed"
    assert not folder.exists() or not any(folder.iterdir()), "nothing written before every value passed"


def test_good_secrets_and_a_fernet_rotation_pair_are_taken(tmp_path: Path) -> None:
    rotation = f"{GOOD['AIRFLOW_FERNET_KEY']},{'A' * 43}="  # new key first, then the old one
    taken = write_secrets(tmp_path, **{**GOOD, "AIRFLOW_FERNET_KEY": rotation})
    assert taken.returncode == 0, taken.stderr
    assert (tmp_path / "fernet_key").read_text() == rotation
    assert (
        tmp_path / "emulator_admin_header"
    ).read_text() == f"X-Admin-Token: {GOOD['UCI_EMULATOR_ADMIN_TOKEN']}\n"
    assert {path.stat().st_mode & 0o777 for path in tmp_path.iterdir()} == {0o600}
    assert not [value for value in GOOD.values() if value in taken.stdout + taken.stderr], "no secret printed"


def connections_written(folder: Path) -> dict[str, Any]:
    """The connections as Airflow's LocalFilesystemBackend (the compose's secrets backend) reads them."""
    from airflow.secrets.local_filesystem import LocalFilesystemBackend

    backend = LocalFilesystemBackend(connections_file_path=str(folder / "connections.json"))
    found = {}
    for conn_id in ("uci_exhaust_default", "uci_warehouse", "wasb_default"):
        conn = backend.get_connection(conn_id)
        assert conn is not None, conn_id
        found[conn_id] = conn
    return found


def test_without_a_service_url_the_connections_name_the_emulator_azurite_and_the_warehouse(
    tmp_path: Path,
) -> None:
    assert write_secrets(tmp_path).returncode == 0
    found = connections_written(tmp_path)
    service = found["uci_exhaust_default"]
    assert (service.conn_type, service.host, service.password) == (
        "uci_exhaust",
        f"http://{EMULATOR}:9000/api",
        "dev-key",
    )
    assert service.extra_dejson == {
        "channel_id": "dev-channel",
        "requested_by": "airflow",
        "zip_password": "compose-zip-key",
    }
    assert (
        found["uci_warehouse"].get_uri().startswith("postgres")
        and found["uci_warehouse"].schema == "warehouse"
    )
    assert "BlobEndpoint=http://azurite:10000/" in found["wasb_default"].extra_dejson["connection_string"]


@pytest.mark.parametrize(
    "missing", ["UCI_EXHAUST_ZIP_PASSWORD", "UCI_EXHAUST_API_KEY", "UCI_EXHAUST_CHANNEL_ID"]
)
def test_a_real_service_url_gets_no_public_default(missing: str, tmp_path: Path) -> None:
    """With UCI_EXHAUST_API_URL set, the emulator's public zip password (or key, or channel) is never used."""
    production = {
        "UCI_EXHAUST_API_URL": "https://uci.example.org/api",
        "UCI_EXHAUST_API_KEY": "k-123",
        "UCI_EXHAUST_CHANNEL_ID": "org-1",
        "UCI_EXHAUST_ZIP_PASSWORD": "zip-pass-9",
    }
    refused = write_secrets(tmp_path / "refused", **{**production, missing: ""})
    assert refused.returncode != 0
    assert len(refused.stderr.strip().splitlines()) == 1 and missing in refused.stderr, refused.stderr
    assert not (tmp_path / "refused").exists()
    taken = write_secrets(tmp_path / "taken", **production)
    assert taken.returncode == 0, taken.stderr
    service = connections_written(tmp_path / "taken")["uci_exhaust_default"]
    assert (service.host, service.password) == ("https://uci.example.org/api", "k-123")
    assert (
        service.extra_dejson["zip_password"] == "zip-pass-9" and service.extra_dejson["channel_id"] == "org-1"
    )


def test_the_zip_passwords_old_variable_is_still_read_and_init_asks_to_rename_it(tmp_path: Path) -> None:
    production = {
        "UCI_EXHAUST_API_URL": "https://uci.example.org/api",
        "UCI_EXHAUST_API_KEY": "k-123",
        "UCI_EXHAUST_CHANNEL_ID": "org-1",
        "UCI_EXHAUST_ENCRYPTION_KEY": "zip-pass-old",
    }
    taken = write_secrets(tmp_path / "taken", **production)
    assert taken.returncode == 0, taken.stderr
    assert taken.stderr == (
        "write-secrets: DeprecationWarning: UCI_EXHAUST_ENCRYPTION_KEY is deprecated; "
        "name it UCI_EXHAUST_ZIP_PASSWORD in .env\n"
    )
    service = connections_written(tmp_path / "taken")["uci_exhaust_default"]
    assert service.extra_dejson["zip_password"] == "zip-pass-old"

    both = write_secrets(tmp_path / "both", **production, UCI_EXHAUST_ZIP_PASSWORD="zip-pass-new")
    assert both.returncode != 0 and not (tmp_path / "both").exists()
    refusal = both.stderr.strip().splitlines()[-1]
    assert refusal.startswith("write-secrets: UCI_EXHAUST_ZIP_PASSWORD and UCI_EXHAUST_ENCRYPTION_KEY")
    assert "zip-pass-old" not in both.stderr and "zip-pass-new" not in both.stderr


def test_the_connections_are_json_encoded_whatever_the_values_hold(tmp_path: Path) -> None:
    """A key with ``"``, ``\\``, ``}`` or a newline reaches the connection as it is (string interpolation broke it)."""
    hostile = {
        "UCI_EXHAUST_API_URL": "https://uci.example.org/api",
        "UCI_EXHAUST_API_KEY": 'k"ey\\with}"quotes',
        "UCI_EXHAUST_CHANNEL_ID": 'org", "evil": "1',
        "UCI_EXHAUST_ZIP_PASSWORD": 'zip"}\nnext',
        "UCI_EXHAUST_REQUESTED_BY": "data team ✓",
        "AZURE_STORAGE_CONNECTION_STRING": 'AccountName=a;AccountKey=k"==;EndpointSuffix=core.windows.net',
        "UCI_WAREHOUSE_URL": "postgresql://loader:p%40ss%22word@db.example.org:5432/analytics",
    }
    result = write_secrets(tmp_path, **hostile)
    assert result.returncode == 0, result.stderr
    found = connections_written(tmp_path)
    service = found["uci_exhaust_default"]
    assert service.password == hostile["UCI_EXHAUST_API_KEY"]
    assert service.extra_dejson == {
        "channel_id": hostile["UCI_EXHAUST_CHANNEL_ID"],
        "requested_by": "data team ✓",
        "zip_password": hostile["UCI_EXHAUST_ZIP_PASSWORD"],
    }
    assert (
        found["wasb_default"].extra_dejson["connection_string"] == hostile["AZURE_STORAGE_CONNECTION_STRING"]
    )
    warehouse = found["uci_warehouse"]
    assert (warehouse.host, warehouse.login, warehouse.password, warehouse.schema) == (
        "db.example.org",
        "loader",
        'p@ss"word',
        "analytics",
    )


def test_no_json_in_the_compose_file_is_built_by_interpolation() -> None:
    """Compose substitutes variables as raw text: a value of .env inside JSON could break out of its string."""
    for name, service in services().items():
        for key, value in (service.get("environment") or {}).items():
            text = str(value).strip()
            if text.startswith(("{", "[")) and "${" in text:
                assert key == "AIRFLOW_VAR_UCI_EXHAUST_CONVERSATION_IDS" and text.startswith("${"), (
                    name,
                    key,
                )


def test_no_secret_is_put_on_a_command_line() -> None:
    """A secret file is only read into the environment or by the program itself, never expanded into arguments."""
    text = COMPOSE.read_text(encoding="utf-8")
    for substitution in re.findall(r"\$\$\(([^)]*)\)", text):
        line = next(line for line in text.splitlines() if substitution in line)
        assert re.match(r"\s*export \w+=\"\$\$\(", line), (
            f"a secret expanded onto a command line: {line.strip()}"
        )
    script = (ROOT / "docker" / "write-secrets.sh").read_text(encoding="utf-8")
    assert not re.search(r"python3? -c .*\"\$\w", script), "write-secrets passes no value as an argument"


def test_the_image_ships_every_dag_of_the_dags_folder() -> None:
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text(encoding="utf-8")
    run = " ".join(dockerfile.replace("\\\n", " ").split("\nRUN ")[1:])
    copied = set(re.findall(r"airflow_provider_uci/dags/(\w+\.py)", run.split("&& cp", 1)[-1]))
    assert "/opt/airflow/dags/" in run
    assert copied == {path.name for path in (ROOT / "dags").glob("*.py")}, copied
    assert re.search(r"^ARG BASE_IMAGE=apache/airflow:3\.3\.\d+-python3\.11$", dockerfile, re.M)
    assert "FROM ${BASE_IMAGE}" in dockerfile


def test_max_map_length_fits_the_planned_fleet() -> None:
    """Four triggerers' default capacity (1,000 waiting bots each) fits in one mapped run."""
    for name in AIRFLOW_SERVICES:
        assert int(environment(name)["AIRFLOW__CORE__MAX_MAP_LENGTH"]) >= 4 * 1000, name


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(s|m)", value)
    assert match, value
    return int(match.group(1)) * (60 if match.group(2) == "m" else 1)


def test_healthchecks_that_start_a_runtime_give_it_time_on_a_busy_host() -> None:
    """Airflow's CLI, node and curl behind a starting server took over 10 s (2 cores, load 12-20)."""
    for name in (*AIRFLOW_SERVICES, "azurite", EMULATOR):
        check = services()[name]["healthcheck"]
        assert seconds(check["timeout"]) >= 30, name
        assert seconds(check["start_period"]) >= 120, name


def test_every_database_url_names_a_driver_the_project_depends_on() -> None:
    """SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3 (not a dependency): the scheduler died on it."""
    for name in AIRFLOW_SERVICES:
        env = environment(name)
        for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__RESULT_BACKEND"):
            assert re.match(r"(db\+)?postgresql\+psycopg2://", env[key]), (name, key, env[key])
