"""Operators are built from parts, not from each other: no operator class of the package inherits another.

Each operator is a flat ``BaseOperator`` (or ``BaseSensorOperator``) that builds the plain parts it needs
(a submitter, a job waiter, a copier, a loader); sharing code by inheriting another of the package's
operators (or a ``BaseOperator`` used as a mixin) is what this test refuses.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "airflow_provider_uci"
AIRFLOW_BASES = {"BaseOperator", "BaseSensorOperator"}


def class_bases(root: Path = ROOT) -> dict[str, list[str]]:
    """Every class of the package (by name) and the names of its bases."""
    found: dict[str, list[str]] = {}
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.ClassDef):
                found[node.name] = [
                    base.id if isinstance(base, ast.Name) else ast.unparse(base).rsplit(".", 1)[-1]
                    for base in node.bases
                ]
    return found


def inherited_operators(bases: dict[str, list[str]]) -> list[str]:
    """``Child(Parent)`` for each class that inherits an operator class of the package."""
    operators: set[str] = set()
    grew = True
    while grew:  # operator classes: those whose bases reach Airflow's operator classes
        known = AIRFLOW_BASES | operators
        grown = {name for name, parents in bases.items() if set(parents) & known}
        grew = bool(grown - operators)
        operators |= grown
    return sorted(
        f"{name}({parent})" for name, parents in bases.items() for parent in parents if parent in operators
    )


def test_no_operator_class_inherits_another_of_the_package() -> None:
    bases = class_bases()
    assert {
        "SubmitExhaustOperator",
        "ExhaustJobSensor",
        "CopyExhaustFilesOperator",
        "LoadExhaustOperator",
        "ExhaustToWarehouseOperator",
    } <= set(bases)
    assert inherited_operators(bases) == []


def test_the_check_finds_an_operator_built_on_another_or_on_a_mixin_operator(tmp_path: Path) -> None:
    (tmp_path / "ops.py").write_text(
        "class WaitsForJobs(BaseOperator): ...\n"
        "class Submit(BaseOperator): ...\n"
        "class Request(WaitsForJobs, Submit): ...\n"
        "class Part: ...\n"
        "class Flat(BaseSensorOperator): ...\n"
    )
    assert inherited_operators(class_bases(tmp_path)) == ["Request(Submit)", "Request(WaitsForJobs)"]
