"""Which packages a module drags in: each module imported in a fresh interpreter, its new modules read.

A layer rule reads "these modules load none of ``forbidden``": :func:`modules_under` lists a
package's modules from its files, :func:`loaded_by` imports them one after another in a new Python
process and reports, per module, the forbidden packages or modules (``airflow``, ``fastapi``,
``airflow.providers.http.hooks``) that importing it added to ``sys.modules``, itself or a submodule; a
module blamed is the first that pulled one in.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent

#: Run in the fresh interpreter: import each module in turn, print what each one added.
_PROBE = """
import importlib, json, sys
names, watched = json.loads(sys.argv[1]), set(json.loads(sys.argv[2]))

def tops():
    found = set()
    for name in sys.modules:
        parts = name.split(".")
        found.update(".".join(parts[:depth]) for depth in range(1, len(parts) + 1))
    return found & watched

found, seen = {}, tops()
at_start = seen
for name in names:
    importlib.import_module(name)
    now = tops()
    found[name] = sorted(now - seen)
    seen = now
print(json.dumps({"at_start": sorted(at_start), "found": found}))
"""


def modules_under(package: str) -> list[str]:
    """Every module of ``package`` (dotted, e.g. ``airflow_provider_uci.exhaust``), the package included."""
    folder = ROOT.joinpath(*package.split("."))
    names = []
    for path in sorted(folder.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names.append(".".join(parts))
    return names


def loaded_by(modules: Iterable[str], forbidden: Iterable[str]) -> dict[str, list[str]]:
    """The ``forbidden`` packages each of ``modules`` loads, imported in order in a fresh interpreter.

    :param modules: dotted module names, imported one after another.
    :param forbidden: dotted names to look for (``airflow``, ``fastapi``, ``airflow.providers.http.hooks``...): one
        counts as loaded when it or any module under it is.
    :returns: module -> the forbidden packages its import added; only modules that added any.
    """
    names, watched = list(modules), sorted(set(forbidden))
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(names), json.dumps(watched)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise AssertionError(f"importing {names} failed:\n{result.stderr[-3000:]}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    if report["at_start"]:
        raise AssertionError(
            f"{report['at_start']} loaded before any import: the check cannot tell who loads them"
        )
    found = report["found"]
    assert set(found) == set(names), "every module was imported"
    return {name: packages for name, packages in found.items() if packages}
