"""Benchmark: bots loaded per minute by an exhaust DAG on Airflow's real processes, and what each part costs.

Seeds the emulator with ``--bots`` bots, each with answers (and, with ``--compare``, a second fleet on
the next day), starts Airflow's scheduler, triggerer, dag-processor and api-server as ``tests/e2e``
does (LocalExecutor, ``--parallelism`` 8, PostgreSQL metadata, Airflow's default intervals), the
emulator in fast mode behind a counting proxy, a PostgreSQL warehouse and a local-folder destination;
copies the DAG file (``--dag-file``, default ``dags/uci_exhaust.py``) into the DAGs folder, triggers
one run of ``--dag-id`` over the whole fleet and prints:

- bots loaded per minute, from the trigger to the end of the last bot's load. A bot counts as loaded
  when its load task (``--load-task``: by default ``join_and_load`` if the DAG has one, else ``bot``)
  succeeded and the warehouse's ``<table>_loads`` holds its load of the day;
- the warehouse's rows checked against what the emulator wrote from its seed, row by row;
- CPU seconds by component: the task processes (the scheduler's executor workers, which supervise
  the tasks, and the task processes they start), the scheduler itself, the api-server, the triggerer,
  the dag-processor, and the database (the server's backends of the run's two databases). Each is
  the process tree's CPU, its ended children included; the task processes are also sampled one by
  one (by pid: a task that defers and resumes is two processes under one task instance id);
- task instances and task processes per bot, the triggerer's peak RSS, API calls per job;
- the machine's load average before and after.

With ``--waiting-minutes M`` the emulator's jobs do not run by themselves: once every bot waits
deferred, the CPU of each component is measured for M minutes (what a fleet costs while it waits
for the nightly runs), then the jobs are run and the run finishes as above.

    uv run python tests/benchmarks/fleet.py [--bots 100] [--compare 300] [--dag-file F --dag-id D]
        [--load-task T] [--waiting-minutes M]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import requests  # noqa: E402

from tests.e2e.system import UCI_EXHAUST, AirflowSystem, EmulatorService, stamp  # noqa: E402
from tests.support.connections import uci_connection  # noqa: E402
from tests.support.expected import TABLE, assert_table_matches  # noqa: E402
from tests.support.services import free_port, postgres_database  # noqa: E402

DAYS = ["2026-05-01", "2026-05-02"]
ZIP_KEY = "fleet-bench-zip-key"
#: Intervals the e2e tests shorten for latency; a fleet runs on Airflow's defaults (idle sleep 1 s, a task's
#: heartbeat every 5 s, the DAG file parsed every 30 s).
DEPLOYMENT_RESTORES = (
    "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME",
    "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL",
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL",
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL",
)
#: The components whose CPU is split out, in the order printed.
COMPONENTS = ("task processes", "scheduler", "api-server", "triggerer", "dag-processor", "database")
#: The load task's name when the DAG has it, in order of preference (a task id's last dotted part).
LOAD_TASKS = ("join_and_load", "bot")
TASK_TITLE = re.compile(r"^airflow worker -- ([0-9a-f-]{36})$")  # as the task runner sets it


class CountingProxy:
    """A pass-through HTTP proxy in front of the emulator that counts calls by route."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: Any) -> None:
                return None

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                route = (
                    "submit"
                    if "/request/submit" in self.path
                    else "read"
                    if "/request/read/" in self.path
                    else "list"
                    if "/request/list/" in self.path
                    else "download"
                    if "/blob/" in self.path
                    else "other"
                )
                with proxy.lock:
                    proxy.counts[route] += 1
                upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=120)
                headers = {key: value for key, value in self.headers.items() if key.lower() != "host"}
                upstream.request(self.command, self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                payload = answer.read()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                upstream.close()

            do_GET = do_POST = do_HEAD = _forward

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def stop(self) -> None:
        self.server.shutdown()


class PeakRss:
    """The peak resident memory of a process and its children, sampled in a thread."""

    def __init__(self, pid: int, every: float = 0.5) -> None:
        self.pid, self.every, self.peak = pid, every, 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while not self.done.wait(self.every):
            try:
                root = psutil.Process(self.pid)
                total = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
            except psutil.Error:
                continue
            self.peak = max(self.peak, total)

    def stop(self) -> int:
        self.done.set()
        self.thread.join()
        return self.peak


class ProcessSampler:
    """CPU seconds of each task process and of each database backend of the run, by process, in a thread.

    A task process is titled ``airflow worker -- <task instance id>``; a task that defers and resumes
    is two processes under one id, each kept. A backend is a ``postgres:`` process of one of
    ``databases``. Each is read every ``every`` seconds until it ends, so its figure misses at most its
    last interval.
    """

    def __init__(self, databases: list[str], every: float = 0.25) -> None:
        self.databases, self.every = databases, every
        self.tasks: dict[tuple[int, float], tuple[str, float]] = {}
        self.backends: dict[tuple[int, float], float] = {}
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while not self.done.wait(self.every):
            for process in psutil.process_iter(["cmdline", "create_time"]):
                title = " ".join(
                    " ".join(process.info["cmdline"] or []).split()
                )  # setproctitle pads with blanks
                task = TASK_TITLE.match(title)
                backend = title.startswith("postgres:") and any(
                    f" {name} " in title for name in self.databases
                )
                if not task and not backend:
                    continue
                try:
                    times = process.cpu_times()
                except psutil.Error:
                    continue
                key = (process.pid, process.info["create_time"])
                with self.lock:
                    if task:
                        self.tasks[key] = (task.group(1), times.user + times.system)
                    else:
                        self.backends[key] = times.user + times.system

    def backend_seconds(self) -> dict[tuple[int, float], float]:
        with self.lock:
            return dict(self.backends)

    def by_task_instance(self) -> dict[str, list[float]]:
        """Each task instance id's processes' CPU seconds."""
        found: dict[str, list[float]] = {}
        with self.lock:
            for ti_id, seconds in self.tasks.values():
                found.setdefault(ti_id, []).append(seconds)
        return found

    def stop(self) -> None:
        self.done.set()
        self.thread.join()


def tree_seconds(pid: int) -> tuple[float, float]:
    """CPU seconds of a process tree (its ended and reaped children included), and of its root alone."""
    try:
        root = psutil.Process(pid)
        own = root.cpu_times()
        total = 0.0
        for process in [root, *root.children(recursive=True)]:
            times = process.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
        return total, own.user + own.system
    except psutil.Error:
        return 0.0, 0.0


def component_seconds(roots: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each component but the database, and by what stands beside them."""
    used = {}
    scheduler, itself = tree_seconds(roots["scheduler"])
    used["scheduler"] = itself
    used["task processes"] = scheduler - itself  # the executor's workers: each supervises tasks it starts
    for name in ("api-server", "triggerer", "dag-processor", "emulator"):
        used[name] = tree_seconds(roots[name])[0] if roots.get(name) else 0.0
    own = psutil.Process().cpu_times()  # this process alone: the services are its children
    used["this script and its proxy"] = own.user + own.system
    postmasters = [
        p
        for p in psutil.process_iter(["name", "ppid"])
        if p.info["name"] == "postgres" and p.info["ppid"] == 1
    ]
    used["the whole PostgreSQL server"] = sum(tree_seconds(p.pid)[0] for p in postmasters)
    return used


def database_seconds(before: dict[tuple[int, float], float], after: dict[tuple[int, float], float]) -> float:
    return sum(seconds - before.get(key, 0.0) for key, seconds in after.items())


def seed(data: Path, bots: int, day: str, seed_number: int) -> dict[str, int]:
    """Seed bots on ``day`` (some more than ``bots``: the seed leaves a few without answers); return
    ``bots`` of them that have answers, with how many each has."""
    seeded = bots + bots // 5 + 3
    summary = json.loads(
        subprocess.run(
            [
                str(UCI_EXHAUST),
                "emulator",
                "seed",
                "--data-dir",
                str(data),
                "--bots",
                str(seeded),
                "--users",
                str(max(20, bots * 2)),
                "--events",
                str(bots * 40),
                "--start",
                day,
                "--days",
                "1",
                "--seed",
                str(seed_number),
                "--json",
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        ).stdout
    )
    answers = {bot["id"]: bot["events_by_day"].get(day, 0) for bot in summary["bots"]}
    ids = [bot for bot, count in answers.items() if count > 0]
    if len(ids) < bots:
        raise SystemExit(f"only {len(ids)} of {seeded} seeded bots have answers")
    return {bot: answers[bot] for bot in ids[:bots]}


def task_instances(airflow: AirflowSystem, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    tis: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = airflow.call(
            "GET",
            f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances",
            params={"limit": 2000, "offset": offset, "order_by": "id"},
        ).json()["task_instances"]
        tis += page
        offset += len(page)
        if len(page) < 2000:
            break
    return list({(ti["task_id"], ti.get("map_index")): ti for ti in tis}.values())  # pages may overlap


def step(task_id: str) -> str:
    """A task id without its group: ``bot.join_and_load`` -> ``join_and_load``."""
    return task_id.rsplit(".", 1)[-1]


def load_task_of(per_bot: list[dict[str, Any]], wanted: str | None) -> str:
    """The step that loads a bot: ``wanted``, else the first of :data:`LOAD_TASKS` the run has (batches
    ``bot_2``... count as ``bot``)."""
    steps = {re.sub(r"_\d+$", "", step(ti["task_id"])) for ti in per_bot}
    for name in [wanted] if wanted else LOAD_TASKS:
        if name in steps:
            return name
    raise SystemExit(
        f"no load task {wanted or ' or '.join(LOAD_TASKS)} among the run's mapped steps {sorted(steps)}; "
        "name it with --load-task"
    )


def wait_for(
    airflow: AirflowSystem, dag_id: str, run_id: str, done: Any, timeout: float, every: float = 2.0
) -> str:
    """Poll the run until ``done(state, task instances)``; return the run's state."""
    deadline = time.monotonic() + timeout
    state = "queued"
    while time.monotonic() < deadline:
        try:
            state = airflow.run_state(dag_id, run_id)
            if state in ("success", "failed") or done(state, airflow, run_id):
                return state
        except requests.RequestException:  # a busy api-server: ask again
            pass
        time.sleep(every)
    return state


def run_fleet(
    airflow: AirflowSystem,
    emulator: EmulatorService,
    proxy: CountingProxy,
    fleet: dict[str, int],
    day: str,
    options: argparse.Namespace,
    databases: list[str],
    warehouse: str,
) -> dict[str, Any]:
    """Trigger one run over the bots of ``fleet`` for ``day`` and measure it."""
    bots, dag_id = list(fleet), options.dag_id
    roots = {name: process.pid for name, process in airflow.processes.items()}
    roots["emulator"] = emulator.process.pid if emulator.process else 0
    result: dict[str, Any] = {"bots": len(bots), "load_before": os.getloadavg()}
    proxy.counts.clear()
    sampler = ProcessSampler(databases)
    rss = PeakRss(airflow.processes["triggerer"].pid)
    cpu_before, db_before = component_seconds(roots), sampler.backend_seconds()
    began = time.time()
    run_id = airflow.trigger(
        dag_id,
        {
            "conversation_ids": bots,
            "start_date": day,
            "end_date": day,
            "poll_continuously": True,
            "poll_interval": options.poll_interval,
        },
    )
    if options.waiting_minutes:

        def all_waiting(_: str, system: AirflowSystem, run: str) -> bool:
            return sum(ti.get("state") == "deferred" for ti in task_instances(system, dag_id, run)) >= len(
                bots
            )

        state = wait_for(airflow, dag_id, run_id, all_waiting, 3600, every=5)
        if state in ("success", "failed"):
            raise SystemExit(f"the run ended ({state}) before every bot waited deferred")
        time.sleep(5)  # the last deferrals settle
        start, db_start, clock = component_seconds(roots), sampler.backend_seconds(), time.monotonic()
        time.sleep(options.waiting_minutes * 60)
        end, db_end = component_seconds(roots), sampler.backend_seconds()
        minutes = (time.monotonic() - clock) / 60
        waiting = {name: (end[name] - start[name]) / minutes for name in end}
        waiting["database"] = database_seconds(db_start, db_end) / minutes
        result["waiting"] = waiting
        began = time.time()  # the rate counts from the jobs' answers
        requests.post(f"{emulator.root}/admin/run-jobs", timeout=3600).raise_for_status()
    state = wait_for(airflow, dag_id, run_id, lambda *_: False, 3600)
    peak = rss.stop()
    cpu_after, db_after = component_seconds(roots), sampler.backend_seconds()
    sampler.stop()
    cpu = {name: cpu_after[name] - cpu_before[name] for name in cpu_after}
    cpu["database"] = database_seconds(db_before, db_after)

    tis = task_instances(airflow, dag_id, run_id)
    ran = [ti for ti in tis if ti.get("state") != "skipped"]
    per_bot = [ti for ti in ran if (ti.get("map_index") if ti.get("map_index") is not None else -1) >= 0]
    load_step = load_task_of(per_bot, options.load_task)
    loads = [
        ti
        for ti in per_bot
        if re.sub(r"_\d+$", "", step(ti["task_id"])) == load_step and ti.get("state") == "success"
    ]
    recorded = load_rows(warehouse, bots, day)
    labels = {ti.get("rendered_map_index") for ti in loads}
    if labels <= set(bots):  # each load task labelled with its bot
        loaded = len(labels & recorded)
    else:
        loaded = min(len(loads), len(recorded))
    ended = max((stamp(ti["end_date"]) for ti in loads if ti.get("end_date")), default=time.time())
    seconds = ended - began
    processes = sampler.by_task_instance()
    bot_cpu = sum(sum(processes.get(ti["id"], [])) for ti in per_bot)
    steps: dict[str, dict[str, float]] = {}
    for name in dict.fromkeys(
        step(ti["task_id"]) for ti in sorted(per_bot, key=lambda ti: ti.get("start_date") or "")
    ):
        done = [
            ti
            for ti in per_bot
            if step(ti["task_id"]) == name and ti.get("start_date") and ti.get("end_date")
        ]
        if done:
            steps[name] = {
                "mean_s": sum(stamp(ti["end_date"]) - stamp(ti["start_date"]) for ti in done) / len(done),
                "cpu_s": sum(sum(processes.get(ti["id"], [])) for ti in done) / len(done),
                "processes": sum(len(processes.get(ti["id"], [])) for ti in done) / len(done),
                "first_end": min(stamp(ti["end_date"]) for ti in done) - began,
                "last_end": max(stamp(ti["end_date"]) for ti in done) - began,
            }
    try:
        rows = len(
            assert_table_matches(warehouse, emulator.data_dir, bots, [day], ZIP_KEY, sum(fleet.values()))
        )
        checked = f"{rows:,} rows = the emulator's {sum(fleet.values()):,} answers of those bots, checked row by row"
    except AssertionError as exc:
        rows, checked = -1, f"MISMATCH with the emulator's {sum(fleet.values()):,} answers: {str(exc)[:300]}"
    api_calls = proxy.counts["submit"] + proxy.counts["read"] + proxy.counts["list"]
    result.update(
        {
            "state": state,
            "load_step": load_step,
            "loaded": loaded,
            "load_tasks_succeeded": len(loads),
            "recorded": len(recorded),
            "seconds": seconds,
            "bots_per_minute": loaded / seconds * 60 if seconds > 0 else 0.0,
            "rows": rows,
            "checked": checked,
            "task_instances_per_bot": len(per_bot) / len(bots),
            "run_tasks": len(ran) - len(per_bot),
            "task_processes_per_bot": sum(len(processes.get(ti["id"], [])) for ti in per_bot) / len(bots),
            "bot_task_cpu": bot_cpu,
            "retried": sum(1 for ti in ran if (ti.get("try_number") or 1) > 1),
            "triggerer_peak_rss_mb": peak / 1e6,
            "api_calls_per_job": api_calls / (2 * len(bots)),
            "calls": dict(proxy.counts),
            "steps": steps,
            "cpu": cpu,
            "load_after": os.getloadavg(),
        }
    )
    return result


def load_rows(warehouse: str, bots: list[str], day: str) -> set[str]:
    """The bots whose load of ``day`` the warehouse's ``<table>_loads`` records."""
    from airflow_provider_uci.exhaust.warehouse import open_warehouse

    try:
        with open_warehouse(warehouse) as opened:
            rows = opened.loads(TABLE)
    except Exception as exc:
        print(f"  (no {TABLE}_loads to read: {exc})")
        return set()
    return {
        row["conversation_id"]
        for row in rows
        if row["conversation_id"] in set(bots) and (row["from_date"], row["to_date"]) == (day, day)
    }


def report(result: dict[str, Any], options: argparse.Namespace) -> None:
    """Print one fleet's figures: the lines docs/benchmarks.md quotes."""
    bots, cpu = result["bots"], result["cpu"]
    before, after = result["load_before"], result["load_after"]
    print(
        f"{bots} bots: run {result['state']}; {result['loaded']} loaded ({result['load_step']} succeeded: "
        f"{result['load_tasks_succeeded']}; recorded in {TABLE}_loads: {result['recorded']}) in "
        f"{result['seconds']:.1f} s = {result['bots_per_minute']:.1f} bots/min; warehouse: {result['checked']}"
    )
    print(
        f"  {result['task_instances_per_bot']:.1f} task instances per bot + {result['run_tasks']} per run; "
        f"{result['task_processes_per_bot']:.1f} task processes per bot (by pid); {result['retried']} retried; "
        f"triggerer peak RSS {result['triggerer_peak_rss_mb']:.0f} MB; {result['api_calls_per_job']:.2f} API calls "
        f"per job {result['calls']}"
    )
    total = sum(cpu[name] for name in COMPONENTS)
    print(
        "  CPU-s by component: "
        + ", ".join(f"{name} {cpu[name]:.1f} ({cpu[name] / bots:.2f} a bot)" for name in COMPONENTS)
        + f"; together {total:.1f} = {total / bots:.2f} a bot"
    )
    print(
        f"    of the task processes, the bots' own (sampled by pid): {result['bot_task_cpu']:.1f} = "
        f"{result['bot_task_cpu'] / bots:.2f} a bot; the rest is the executor's workers supervising them; "
        f"beside: emulator {cpu['emulator']:.1f}, this script and its proxy {cpu['this script and its proxy']:.1f}, "
        f"the whole PostgreSQL server {cpu['the whole PostgreSQL server']:.1f} (other databases included)"
    )
    for name, figures in result["steps"].items():
        print(
            f"  {name:<14} {figures['mean_s']:5.1f} s a task, {figures['processes']:.1f} processes, "
            f"{figures['cpu_s']:4.2f} CPU-s in them; ended {figures['first_end']:6.1f} s to "
            f"{figures['last_end']:6.1f} s after the {'jobs ran' if options.waiting_minutes else 'trigger'}"
        )
    if "waiting" in result:
        waiting = result["waiting"]
        print(
            f"  while {bots} bots waited deferred for {options.waiting_minutes:g} min (their jobs not run; polling "
            f"every {options.poll_interval} s), CPU-s a minute: "
            + ", ".join(f"{name} {waiting[name]:.2f}" for name in COMPONENTS)
            + f"; the whole PostgreSQL server {waiting['the whole PostgreSQL server']:.2f}"
        )
    print(
        f"  load average (1, 5, 15 min) {before[0]:.2f} {before[1]:.2f} {before[2]:.2f} before, "
        f"{after[0]:.2f} {after[1]:.2f} {after[2]:.2f} after, on {os.cpu_count()} CPUs",
        flush=True,
    )


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop every process on a kill, too
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bots", type=int, default=100)
    parser.add_argument("--compare", type=int, default=0, help="a second run over this many bots (e.g. 300)")
    parser.add_argument(
        "--dag-file",
        type=Path,
        default=ROOT / "dags" / "uci_exhaust.py",
        help="the DAG file to copy into the DAGs folder (default dags/uci_exhaust.py)",
    )
    parser.add_argument("--dag-id", default="uci_exhaust", help="the DAG to trigger (default uci_exhaust)")
    parser.add_argument("--load-task", help=f"the step that loads a bot (default: {' or '.join(LOAD_TASKS)})")
    parser.add_argument(
        "--waiting-minutes",
        type=float,
        default=0.0,
        help="measure the CPU of every component while the bots wait deferred for this long",
    )
    parser.add_argument(
        "--poll-interval",
        type=int,
        default=None,
        help="the run's poll_interval, seconds (default 2; 60 with --waiting-minutes)",
    )
    parser.add_argument("--parallelism", type=int, default=8)
    parser.add_argument(
        "--jobs-every", type=float, default=10.0, help="the emulator's fast schedule, seconds"
    )
    parser.add_argument(
        "--test-intervals",
        action="store_true",
        help="keep the e2e tests' short scheduler, heartbeat and parsing intervals (more CPU a bot)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs) afterwards")
    parser.add_argument(
        "--max-map-length",
        type=int,
        default=0,
        help="[core] max_map_length (default: Airflow's, 1,024): bots per mapped task",
    )
    options = parser.parse_args()
    if options.poll_interval is None:
        options.poll_interval = 60 if options.waiting_minutes else 2
    dag_file = options.dag_file.absolute()
    shown = dag_file.relative_to(ROOT) if dag_file.is_relative_to(ROOT) else dag_file
    print(
        f"fleet.py {' '.join(sys.argv[1:])}: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs; "
        f"DAG {options.dag_id} from {shown}",
        flush=True,
    )

    root = Path(tempfile.mkdtemp(prefix="uci-fleet-bench-"))
    data = root / "emulator"
    began = time.monotonic()
    fleets = [seed(data, options.bots, DAYS[0], 7)]
    if options.compare:
        fleets.append(seed(data, options.compare, DAYS[1], 8))
    print(
        f"seeded {' + '.join(str(len(f)) for f in fleets)} bots in {time.monotonic() - began:.1f} s",
        flush=True,
    )
    results = []
    with postgres_database() as metadata, postgres_database() as warehouse:
        airflow = AirflowSystem.configure(root, metadata)
        airflow.env["AIRFLOW__CORE__PARALLELISM"] = str(options.parallelism)
        if (
            not options.test_intervals
        ):  # a deployment's intervals: the e2e tests shorten them, buying latency with CPU
            for key in DEPLOYMENT_RESTORES:
                airflow.env.pop(key, None)
        airflow.env["AIRFLOW__API__MAXIMUM_PAGE_LIMIT"] = "2000"  # the run's task instances in few pages
        if options.max_map_length:
            airflow.env["AIRFLOW__CORE__MAX_MAP_LENGTH"] = str(options.max_map_length)
        jobs_every = (
            10**6 if options.waiting_minutes else options.jobs_every
        )  # waiting: the jobs run when asked
        emulator = EmulatorService(
            data,
            airflow.log_path("emulator"),
            jobs_every,
            {k: v for k, v in airflow.env.items() if not k.startswith("AIRFLOW")},
        )
        emulator.restart(None)
        proxy = CountingProxy(emulator.port)
        airflow.env.update(
            {
                "AIRFLOW_CONN_UCI_EXHAUST_DEFAULT": uci_connection(proxy.api, encryption_key=ZIP_KEY),
                "AIRFLOW_CONN_UCI_WAREHOUSE": warehouse,
                "AIRFLOW_VAR_UCI_EXHAUST_WAREHOUSE_CONN_ID": "uci_warehouse",
                "AIRFLOW_VAR_UCI_EXHAUST_DESTINATION": str(root / "files"),
                "AIRFLOW_VAR_UCI_EXHAUST_POLL_CONTINUOUSLY": "true",
            }
        )
        shutil.copy(dag_file, airflow.dags_folder / dag_file.name)
        databases = [url.rsplit("/", 1)[1] for url in (metadata, warehouse)]
        try:
            airflow.migrate()
            airflow.start_all()
            airflow.wait_healthy(180)
            airflow.warm_up_execution_api()
            airflow.login()
            airflow.wait_for_dag(options.dag_id, 180)
            airflow.unpause(options.dag_id)
            for fleet, day in zip(fleets, DAYS, strict=False):
                results.append(run_fleet(airflow, emulator, proxy, fleet, day, options, databases, warehouse))
                report(results[-1], options)
        finally:
            airflow.stop_all()
            proxy.stop()
            emulator.stop()
    if len(results) == 2:
        ratio = results[1]["bots_per_minute"] / results[0]["bots_per_minute"]
        print(f"rate at {results[1]['bots']} bots = {ratio:.0%} of the rate at {results[0]['bots']}")
    if options.keep:
        print(f"work folder kept: {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    whole = all(r["state"] == "success" and r["loaded"] == r["bots"] and r["rows"] >= 0 for r in results)
    return 0 if results and whole else 1


if __name__ == "__main__":
    sys.exit(main())
