"""DAG files shipped with the package; copy them into a DAGs folder (``uci-exhaust dags-path`` prints where)."""

from __future__ import annotations

from pathlib import Path

#: The folder holding the shipped DAG files.
DAGS_FOLDER = Path(__file__).resolve().parent


def dag_file(name: str = "uci_exhaust") -> Path:
    """The shipped DAG file ``<name>.py``."""
    return DAGS_FOLDER / f"{name}.py"
