"""Benchmark: what importing the hooks costs a task process (CPU seconds), with and without the HTTP provider loaded.

Each figure is taken in a fresh interpreter that has first imported what every task process has
loaded already (``--baseline``: Airflow's task SDK and task runner), then imports
``airflow_provider_uci.hooks.exhaust`` and reads ``time.process_time()`` around that import alone:

- *cold*: the HTTP provider (``airflow.providers.http.hooks.http``: requests, aiohttp) not loaded yet,
  as in a task that imports the hook where it calls the service;
- *provider loaded*: the HTTP provider imported beforehand, leaving the cost of this package's modules.

Beside them, whether parsing the DAG file imports the hooks (then every task process of the DAG pays
the cold figure, whether it calls the service or not). Figures are medians of ``--repeat`` runs; the
machine's load is printed with them (other work on the machine inflates them).

    uv run python tests/benchmarks/hook_import.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOOKS = "airflow_provider_uci.hooks.exhaust"
PROVIDER = "airflow.providers.http.hooks.http"
DAG = "airflow_provider_uci.dags.uci_exhaust"
#: What a task process has imported before it runs a task's code.
BASELINE = ("airflow.sdk", "airflow.sdk.execution_time.task_runner")

_PROBE = f"""
import importlib, json, sys, time
baseline, before, target = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
for name in baseline + before:
    importlib.import_module(name)
loaded = set(sys.modules)
cpu, wall = time.process_time(), time.perf_counter()
importlib.import_module(target)
cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
added = sorted({{name.partition(".")[0] for name in set(sys.modules) - loaded}})
print(json.dumps({{"cpu": cpu, "wall": wall, "modules": len(set(sys.modules) - loaded), "packages": added,
                  "hooks_loaded": {HOOKS!r} in sys.modules}}))
"""


def probe(target: str, before: list[str], baseline: list[str]) -> dict:
    """Import ``target`` in a fresh interpreter after ``baseline`` and ``before``; its cost and what it added."""
    env = {**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    env.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="uci-bench-airflow-home-"))
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(baseline), json.dumps(before), target],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise SystemExit(f"importing {target} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure(target: str, before: list[str], baseline: list[str], repeat: int) -> dict:
    runs = [probe(target, before, baseline) for _ in range(repeat)]
    return {
        "cpu": statistics.median(run["cpu"] for run in runs),
        "wall": statistics.median(run["wall"] for run in runs),
        "modules": runs[-1]["modules"],
        "packages": runs[-1]["packages"],
        "hooks_loaded": runs[-1]["hooks_loaded"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="fresh interpreters per figure (median)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat: must be at least 1, got {args.repeat}")
    baseline = list(BASELINE)
    load_before = os.getloadavg()
    figures = {
        "cold": measure(HOOKS, [], baseline, args.repeat),
        "provider_loaded": measure(HOOKS, [PROVIDER], baseline, args.repeat),
        "dag_parse": measure(DAG, [], baseline, args.repeat),
    }
    figures["load_before"], figures["load_after"] = load_before, os.getloadavg()
    if args.json:
        print(json.dumps(figures))
        return 0
    print(
        f"import {HOOKS} in a fresh task-like interpreter (median of {args.repeat}; baseline: {', '.join(baseline)})"
    )
    for name, label in (("cold", "HTTP provider not loaded"), ("provider_loaded", "HTTP provider loaded")):
        figure = figures[name]
        print(
            f"  {label:26s} {figure['cpu']:.3f} CPU s ({figure['wall']:.3f} s wall), {figure['modules']} modules"
            f" of {len(figure['packages'])} packages: {', '.join(figure['packages'])}"
        )
    dag = figures["dag_parse"]
    print(
        f"parsing {DAG}: {dag['cpu']:.3f} CPU s; imports the hooks: {'yes' if dag['hooks_loaded'] else 'no'}"
    )
    print(
        "load average before / after: "
        + " / ".join(
            ", ".join(f"{value:.2f}" for value in load) for load in (load_before, figures["load_after"])
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
