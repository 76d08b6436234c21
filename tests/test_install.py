"""The wheel, installed without extras into a fresh virtual environment, is what runs the DAG.

The wheel is built from this tree (``uv build``) and installed with uv.lock's versions of its base
dependencies (``uv export --no-dev`` as constraints) into a new Python 3.11 environment, outside the
development environment (which has every extra). There, ``airflow providers list`` lists the
provider, Airflow parses the DAGs with no import error and loads the UI plugin, and neither parsing
nor what a task does first (loading the plugins) imports FastAPI, uvicorn, matplotlib or pandas; a
command whose extra is missing says which to install, in one line.

Run alone: ``uv run --locked pytest -m install`` (a minute or two; uv's cache makes the install fast).
It needs uv and a Python 3.11 that uv finds; under ``CI=true`` a missing one fails the test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.services import unavailable

pytestmark = [pytest.mark.install, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parent.parent
PROVIDER = "airflow-provider-uci"
#: The modules of the extras (``extras.EXTRAS``) that parsing the DAG and starting a task may not import.
NOT_IMPORTED = ("fastapi", "starlette", "uvicorn", "matplotlib", "pandas")
INSTALL_ANALYTICS = "pip install 'airflow-provider-uci[analytics]'"

#: Run in the fresh environment: parse the package's DAG files as the DAG processor does, load the
#: plugins as every task does first (``get_template_context``), and tell what was imported.
PARSE = """
import importlib.util, json, sys
import airflow_provider_uci
from airflow_provider_uci.dags import dag_file
from airflow.dag_processing.dagbag import DagBag

bag = DagBag(dag_folder=str(dag_file().parent))
from airflow.sdk.plugins_manager import integrate_macros_plugins
integrate_macros_plugins()
from airflow.sdk.plugins_manager import _get_plugins
plugins, plugin_errors = _get_plugins()
watched = json.loads(sys.argv[1])
print(json.dumps({
    "dags": sorted(bag.dags),
    "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
    "plugins": sorted(str(plugin.name) for plugin in plugins),
    "plugin_errors": {str(k): str(v) for k, v in plugin_errors.items()},
    "imported": sorted(name for name in watched if name in sys.modules),
    "installed": sorted(name for name in watched + ["psycopg2", "airflow.providers.openlineage"]
                        if importlib.util.find_spec(name) is not None),
}))
"""


@dataclass
class Fresh:
    """The fresh environment: its Python's bin folder, and the environment variables to run it with."""

    bin: Path
    env: dict[str, str]
    work: Path

    def run(self, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / argv[0]), *argv[1:]],
            cwd=self.work,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def _uv(*argv: str, cwd: Path = ROOT, timeout: float = 600) -> str:
    uv = shutil.which("uv")
    if uv is None:
        unavailable("uv is not installed: it builds the wheel and the fresh environment")
    done = subprocess.run(
        [uv, *argv],
        cwd=cwd,
        env={name: value for name, value in os.environ.items() if name != "VIRTUAL_ENV"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"uv {' '.join(argv)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fresh]:
    work = tmp_path_factory.mktemp("install")
    _uv("build", "--wheel", "--quiet", "--out-dir", str(work / "dist"))
    (wheel,) = (work / "dist").glob("airflow_provider_uci-*.whl")
    constraints = work / "constraints.txt"
    _uv(
        "export",
        "--locked",
        "--no-dev",
        "--no-hashes",
        "--no-emit-project",
        "--quiet",
        "--output-file",
        str(constraints),
    )
    venv = work / "venv"
    try:
        _uv("venv", "--quiet", "--python", "3.11", str(venv), cwd=work)
    except AssertionError as exc:
        unavailable(f"no Python 3.11 for the fresh environment: {exc}")
    python = venv / "bin" / "python"
    _uv(
        "pip",
        "install",
        "--quiet",
        "--python",
        str(python),
        "--constraints",
        str(constraints),
        str(wheel),
        cwd=work,
    )
    home = work / "airflow-home"
    (home / "dags").mkdir(parents=True)
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AIRFLOW", "UV_", "PYTHON")) and name != "VIRTUAL_ENV"
    }
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
    )
    yield Fresh(bin=venv / "bin", env=env, work=work)


@pytest.fixture(scope="module")
def parsed(fresh: Fresh) -> dict:
    done = fresh.run("python", "-c", PARSE, json.dumps(list(NOT_IMPORTED)))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    report["log"] = done.stdout + done.stderr
    return report


def test_the_base_install_has_none_of_the_extras_that_airflow_does_not_bring(parsed: dict) -> None:
    """The environment is what the test claims: the analytics and postgres extras' packages are absent
    (FastAPI and uvicorn, the emulator's, come with Airflow's api-server)."""
    assert not {"matplotlib", "pandas", "psycopg2", "airflow.providers.openlineage"} & set(
        parsed["installed"]
    )


def test_airflow_lists_the_provider(fresh: Fresh) -> None:
    done = fresh.run("airflow", "providers", "list", "--output", "json")
    assert done.returncode == 0, done.stderr[-3000:]
    providers = {entry["package_name"]: entry for entry in json.loads(done.stdout)}
    assert PROVIDER in providers, sorted(providers)
    assert providers[PROVIDER]["version"] == "0.1.0"


def test_the_dag_parses_and_a_task_starts_without_importing_an_extra(parsed: dict) -> None:
    assert parsed["import_errors"] == {}
    assert "uci_exhaust" in parsed["dags"]
    assert parsed["imported"] == [], (
        f"imported by parsing the DAG or loading the plugins: {parsed['imported']}"
    )


def test_the_report_dag_is_left_out_with_a_line_naming_the_extra(parsed: dict) -> None:
    assert "uci_exhaust_report" not in parsed["dags"]
    assert (
        f"uci_exhaust_report is not defined: the report needs the analytics extra: {INSTALL_ANALYTICS}"
        in (parsed["log"])
    )


def test_the_ui_plugin_loads_without_the_analytics_extra(fresh: Fresh, parsed: dict) -> None:
    assert "uci_exhaust_reports" in parsed["plugins"] and parsed["plugin_errors"] == {}
    done = fresh.run("airflow", "plugins", "--output", "json")
    assert done.returncode == 0, done.stderr[-3000:]
    (plugin,) = [entry for entry in json.loads(done.stdout) if entry["name"] == "uci_exhaust_reports"]
    assert "/uci-reports" in json.dumps(plugin["fastapi_apps"])


def test_a_command_whose_extra_is_missing_says_which_in_one_line(fresh: Fresh) -> None:
    assert fresh.run("uci-exhaust", "--help").returncode == 0
    done = fresh.run(
        "uci-exhaust",
        "report",
        "--warehouse",
        f"sqlite:///{fresh.work}/w.db",
        "--out",
        f"{fresh.work}/r.html",
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"uci-exhaust report: needs the analytics extra: {INSTALL_ANALYTICS}\n"
    assert not (fresh.work / "r.html").exists()
