"""Test-wide set-up: Airflow's settings come first, before anything imports airflow."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

AIRFLOW_HOME = tempfile.mkdtemp(prefix="uci-airflow-home-")
atexit.register(shutil.rmtree, AIRFLOW_HOME, True)
os.environ["AIRFLOW_HOME"] = AIRFLOW_HOME
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = os.path.join(AIRFLOW_HOME, "dags")
# `hashed` phones are keyed: every test (and the commands it runs) has a secret, unless it removes it
os.environ["UCI_EXHAUST_PHONE_HASH_SECRET"] = "tests-phone-hash-secret-7d41c0e2"  # tests/support/phones.py

from collections.abc import Callable, Iterator  # noqa: E402
from contextlib import ExitStack  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas  # noqa: E402,F401 - before any load task runs in this process (dag.test): see arrow_without_pandas
import pytest  # noqa: E402

from tests.support.services import Azurite, Emulator, run_azurite, run_emulator  # noqa: E402

FIXTURES = Path(__file__).resolve().parent / "fixtures"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Airflow's metadata database (SQLite in the temporary AIRFLOW_HOME) and its DAGs folder.

    The folder holds the project's DAGs, its example DAGs and the tests' own (``dag.test()`` needs a DAG's
    file there).
    """
    dags = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    dags.mkdir(parents=True, exist_ok=True)
    for folder in (ROOT / "dags", ROOT / "docs" / "examples", ROOT / "tests" / "dags"):
        for source in sorted(folder.glob("*.py")):
            shutil.copy(source, dags / source.name)
    from airflow.utils import db

    db.initdb()
    return dags


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """One emulator with the default configuration (local storage, SQLite), shared by the session.

    Tests use their own fresh tags, so they do not see each other's jobs; a test that moves the clock
    puts it back.
    """
    with run_emulator(tmp_path_factory.mktemp("emulator")) as running:
        yield running


@pytest.fixture
def start_emulator(tmp_path: Path) -> Iterator[Callable[..., Emulator]]:
    """Start emulators with extra ``serve`` flags (and environment) for one test; all stop afterwards."""
    with ExitStack() as stack:
        started: list[Emulator] = []

        def start(*args: str, env: dict[str, str] | None = None) -> Emulator:
            started.append(
                stack.enter_context(run_emulator(tmp_path / f"emulator-{len(started)}", *args, env=env))
            )
            return started[-1]

        yield start


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """Azurite's blob service, started from the pinned npm package for the session."""
    with run_azurite(tmp_path_factory.mktemp("azurite")) as running:
        yield running
