"""One whole system per test module: Airflow's four processes on PostgreSQL, the emulator, Azurite, a warehouse."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.deployment import Deployment, deploy
from tests.e2e.system import AIRFLOW, UCI_EXHAUST
from tests.support.services import Azurite, unavailable


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, azurite: Azurite) -> Iterator[Deployment]:
    """Start the whole system once for the module, and stop it (every process group) afterwards."""
    if not AIRFLOW.exists() or not UCI_EXHAUST.exists():
        unavailable(f"the airflow and uci-exhaust commands are not installed beside {AIRFLOW.parent}")
    with deploy(tmp_path_factory.mktemp("e2e"), azurite) as running:
        yield running
