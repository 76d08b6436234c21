"""The package's layers: what each part may not load, checked by importing it in a fresh interpreter.

``exhaust/`` is data code that knows nothing about Airflow (it is tested and benchmarked alone, and
runs wherever pandas and pyarrow do): no module of it may load ``airflow``, directly or through
another module of the package. Every task process parses the DAG file: parsing it may not load the
hooks and the HTTP provider under them (requests, aiohttp), which only the tasks that call the
service import. Nor may the DAG files, the UI plugin (which Airflow loads wherever it parses a DAG
or runs a task) and the command line load the modules of an extra (``extras.EXTRAS``): the base
install has none of them, and those it has through Airflow cost every task their import.
"""

from __future__ import annotations

import pytest

from tests.support.layers import loaded_by, modules_under

EXHAUST = "airflow_provider_uci.exhaust"

#: (modules, packages none of them may load)
LAYERS = [
    pytest.param(modules_under(EXHAUST), {"airflow"}, id="exhaust-without-airflow"),
    pytest.param(
        ["airflow_provider_uci.dags.uci_exhaust"],
        {"airflow_provider_uci.hooks.exhaust", "airflow.providers.http.hooks", "aiohttp"},
        id="dag-parse-without-the-http-hooks",
    ),
    pytest.param(
        [
            "airflow_provider_uci.dags.uci_exhaust",
            "airflow_provider_uci.dags.uci_exhaust_report",
            "airflow_provider_uci.ui_plugin",
            "airflow_provider_uci.cli",
        ],
        {"fastapi", "starlette", "uvicorn", "matplotlib", "pandas"},
        id="dags-plugin-and-cli-without-the-extras",
    ),
]


def test_the_exhaust_modules_are_all_found() -> None:
    found = modules_under(EXHAUST)
    assert EXHAUST in found and f"{EXHAUST}.download" in found and f"{EXHAUST}.warehouse.postgres" in found
    assert len(found) > 15


@pytest.mark.parametrize(("modules", "forbidden"), LAYERS)
def test_no_module_of_a_layer_loads_what_it_must_not(modules: list[str], forbidden: set[str]) -> None:
    found = loaded_by(modules, forbidden)
    assert not found, f"modules loading what their layer must not: {found}"


def test_the_check_names_the_module_that_loads_a_forbidden_package() -> None:
    """The harness is able to fail: the Airflow-facing models load airflow, and are blamed for it."""
    found = loaded_by(
        [f"{EXHAUST}.spark_csv", "airflow_provider_uci.models", "airflow_provider_uci.hooks.exhaust"],
        {"airflow", "fastapi", "airflow.providers.http.hooks"},
    )
    assert found == {
        "airflow_provider_uci.models": ["airflow"],
        "airflow_provider_uci.hooks.exhaust": ["airflow.providers.http.hooks"],
    }
