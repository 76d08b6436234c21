"""Running the tests' DAGs with ``dag.test()`` and reading what the run left behind."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_dag(folder: Path, dag_id: str) -> Any:
    """Parse the DAGs folder as the dag-processor would and return one DAG."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=folder)
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id]


def xcoms(dag_id: str, run_id: str) -> dict[str, Any]:
    """Every XCom value of one run, by ``task_id`` (and ``task_id:key`` for keys other than return_value)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    values: dict[str, Any] = {}
    with create_session() as session:
        for row in session.query(XComModel).filter(XComModel.dag_id == dag_id, XComModel.run_id == run_id):
            name = row.task_id if row.key == "return_value" else f"{row.task_id}:{row.key}"
            if row.map_index >= 0:
                name += f"[{row.map_index}]"
            values[name] = row.value
    return values


def task_states(run: Any) -> dict[str, str]:
    return {
        ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): str(ti.state)
        for ti in run.get_task_instances()
    }
