"""Test-wide set-up: Airflow's settings come first, before anything imports airflow."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="uci-airflow-home-"))
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from tests.support.services import Azurite, Emulator, run_azurite, run_emulator  # noqa: E402

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """One emulator with the default configuration (local storage, SQLite), shared by the session.

    Tests use their own fresh tags, so they do not see each other's jobs; a test that moves the clock
    puts it back.
    """
    with run_emulator(tmp_path_factory.mktemp("emulator")) as running:
        yield running


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """Azurite's blob service, started from the pinned npm package for the session."""
    with run_azurite(tmp_path_factory.mktemp("azurite")) as running:
        yield running
