"""Benchmark: bots loaded per minute by the ``uci_exhaust`` DAG on Airflow's real processes.

Seeds the emulator with ``--bots`` bots, each with answers (and, with ``--compare``, a second fleet on
the next day), starts Airflow's scheduler, triggerer, dag-processor and api-server as ``tests/e2e``
does (LocalExecutor, ``--parallelism`` 8, PostgreSQL metadata), the emulator in fast mode behind a
counting proxy, a PostgreSQL warehouse and a local-folder destination; then triggers one run over the
whole fleet and prints:

- bots loaded per minute, from the trigger to the end of the last bot's task;
- task instances per bot (and task processes: a task that defers and resumes is two);
- the triggerer's peak RSS (its whole process tree, sampled every half second);
- API calls per job (submit, read, list; downloads apart), counted by the proxy;
- the machine's load average before and after.

Target on a 2-core machine: >= 40 bots a minute at 100 bots, and the same rate within 25% at 300.

    uv run python tests/benchmarks/fleet.py [--bots 100] [--compare 300] [--jobs-every 10]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import requests  # noqa: E402

from tests.e2e.system import UCI_EXHAUST, AirflowSystem, EmulatorService  # noqa: E402
from tests.support.connections import uci_connection  # noqa: E402
from tests.support.services import free_port, postgres_database  # noqa: E402

DAG_ID = "uci_exhaust"
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
                route = ("submit" if "/request/submit" in self.path else "read" if "/request/read/" in self.path
                         else "list" if "/request/list/" in self.path else "download" if "/blob/" in self.path
                         else "other")
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


class TaskCpu:
    """CPU seconds of each task process (titled ``airflow worker -- <task instance id>``), sampled in a thread.

    A process is read every ``every`` seconds until it ends, so its figure misses at most its last interval.
    """

    def __init__(self, every: float = 0.2) -> None:
        self.every, self.seconds = every, {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while not self.done.wait(self.every):
            for process in psutil.process_iter(["cmdline"]):
                words = " ".join(process.info["cmdline"] or []).split()
                if len(words) == 4 and words[:3] == ["airflow", "worker", "--"] and len(words[3]) == 36:
                    try:
                        times = process.cpu_times()
                    except psutil.Error:
                        continue
                    self.seconds[words[3]] = times.user + times.system

    def stop(self) -> dict[str, float]:
        self.done.set()
        self.thread.join()
        return self.seconds


def cpu_seconds(roots: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each named process tree (reaped children included), and PostgreSQL's."""
    def tree(pid: int) -> float:
        try:
            root = psutil.Process(pid)
            total = 0.0
            for process in [root, *root.children(recursive=True)]:
                times = process.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
            return total
        except psutil.Error:
            return 0.0

    used = {name: tree(pid) for name, pid in roots.items() if pid != os.getpid()}
    try:  # the scheduler apart from its executor's workers (each a task's supervisor) and their tasks
        scheduler = psutil.Process(roots["scheduler"])
        own = scheduler.cpu_times()
        used["scheduler itself"] = own.user + own.system
    except (KeyError, psutil.Error):
        pass
    own = psutil.Process().cpu_times()  # this process alone: the services are its children
    used["benchmark + proxy"] = own.user + own.system
    postmasters = [p for p in psutil.process_iter(["name", "ppid"])
                   if p.info["name"] == "postgres" and p.info["ppid"] == 1]
    used["postgresql"] = sum(tree(p.pid) for p in postmasters)
    return used


def seed(data: Path, bots: int, day: str, seed_number: int) -> list[str]:
    """Seed bots on ``day`` (some more than ``bots``: the seed leaves a few without answers); return the ids
    of ``bots`` of them that have answers."""
    seeded = bots + bots // 5 + 3
    summary = json.loads(subprocess.run(
        [str(UCI_EXHAUST), "emulator", "seed", "--data-dir", str(data), "--bots", str(seeded), "--users",
         str(max(20, bots * 2)), "--events", str(bots * 40), "--start", day, "--days", "1", "--seed",
         str(seed_number), "--json"], check=True, capture_output=True, text=True, timeout=600).stdout)
    ids = [bot["id"] for bot in summary["bots"] if sum(bot["events_by_day"].values()) > 0]
    assert len(ids) >= bots, f"only {len(ids)} of {seeded} seeded bots have answers"
    return ids[:bots]


def run_fleet(airflow: AirflowSystem, proxy: CountingProxy, bots: list[str], day: str,
              roots: dict[str, int]) -> dict[str, Any]:
    """Trigger one run over ``bots`` for ``day`` and measure it."""
    proxy.counts.clear()
    cpu_before = cpu_seconds(roots)
    task_cpu = TaskCpu()
    rss = PeakRss(airflow.processes["triggerer"].pid)
    began = time.time()
    run_id = airflow.trigger(DAG_ID, {"conversation_ids": bots, "start_date": day, "end_date": day,
                                      "poll_continuously": True, "poll_interval": 2})
    deadline = time.monotonic() + 3600
    state = "queued"
    while time.monotonic() < deadline:
        try:
            state = airflow.run_state(DAG_ID, run_id)
        except requests.RequestException:  # a busy api-server: ask again
            continue
        if state in ("success", "failed"):
            break
        time.sleep(2)
    peak = rss.stop()
    cpu_after = cpu_seconds(roots)
    cpu_by_ti = task_cpu.stop()
    tis: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = airflow.call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances",
                            params={"limit": 2000, "offset": offset, "order_by": "id"}).json()["task_instances"]
        tis += page
        offset += len(page)
        if len(page) < 2000:
            break
    tis = list({(ti["task_id"], ti.get("map_index")): ti for ti in tis}.values())  # pages may overlap
    ran = [ti for ti in tis if ti.get("state") != "skipped"]
    per_bot = [ti for ti in ran if (ti.get("map_index") if ti.get("map_index") is not None else -1) >= 0]
    loads = per_bot  # one task per bot: it submits, waits, copies and loads
    last_load = max(ti["end_date"] for ti in loads) if loads else None
    ended = stamp(last_load) if last_load else time.time()
    seconds = ended - began
    jobs = 2 * len(bots)
    steps: dict[str, dict[str, float]] = {}
    for task_id in sorted({ti["task_id"] for ti in per_bot}, key=lambda t: min(
            stamp(ti["start_date"]) for ti in per_bot if ti["task_id"] == t and ti.get("start_date"))):
        done = [ti for ti in per_bot if ti["task_id"] == task_id and ti.get("start_date") and ti.get("end_date")]
        if done:
            steps[task_id] = {
                "mean_s": sum(stamp(ti["end_date"]) - stamp(ti["start_date"]) for ti in done) / len(done),
                "cpu_s": sum(cpu_by_ti.get(ti["id"], 0.0) for ti in done) / len(done),
                "first_end": min(stamp(ti["end_date"]) for ti in done) - began,
                "last_end": max(stamp(ti["end_date"]) for ti in done) - began,
            }
    api_calls = proxy.counts["submit"] + proxy.counts["read"] + proxy.counts["list"]
    return {
        "bots": len(bots), "state": state, "loaded": sum(1 for ti in loads if ti.get("state") == "success"),
        "seconds": seconds, "bots_per_minute": len(loads) / seconds * 60 if seconds > 0 else 0.0,
        "task_instances_per_bot": len(per_bot) / len(bots),
        # a bot's task is two worker processes: it submits and defers, then resumes to copy and load
        "task_processes_per_bot": 2 * len(per_bot) / len(bots),
        "run_tasks": len(ran) - len(per_bot), "retried": sum(1 for ti in ran if (ti.get("try_number") or 1) > 1),
        "triggerer_peak_rss_mb": peak / 1e6, "api_calls_per_job": api_calls / jobs,
        "calls": dict(proxy.counts), "steps": steps,
        "cpu": {name: cpu_after[name] - cpu_before.get(name, 0.0) for name in cpu_after},
    }


def stamp(text: str) -> float:
    """A REST timestamp as seconds since the epoch."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop every process on a kill, too
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bots", type=int, default=100)
    parser.add_argument("--compare", type=int, default=0, help="a second run over this many bots (e.g. 300)")
    parser.add_argument("--parallelism", type=int, default=8)
    parser.add_argument("--jobs-every", type=float, default=10.0, help="the emulator's fast schedule, seconds")
    parser.add_argument("--test-intervals", action="store_true",
                        help="keep the e2e tests' short scheduler, heartbeat and parsing intervals (more CPU a bot)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs) afterwards")
    parser.add_argument("--max-map-length", type=int, default=0,
                        help="[core] max_map_length (default: Airflow's, 1,024): bots per mapped group")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="uci-fleet-bench-"))
    data = root / "emulator"
    began = time.monotonic()
    fleets = [seed(data, args.bots, DAYS[0], 7)]
    if args.compare:
        fleets.append(seed(data, args.compare, DAYS[1], 8))
    print(f"seeded {' + '.join(str(len(f)) for f in fleets)} bots in {time.monotonic() - began:.1f} s", flush=True)
    results = []
    with postgres_database() as metadata, postgres_database() as warehouse:
        airflow = AirflowSystem.configure(root, metadata)
        airflow.env["AIRFLOW__CORE__PARALLELISM"] = str(args.parallelism)
        if not args.test_intervals:  # a deployment's intervals: the e2e tests shorten them, buying latency with CPU
            for key in DEPLOYMENT_RESTORES:
                airflow.env.pop(key, None)
        airflow.env["AIRFLOW__API__MAXIMUM_PAGE_LIMIT"] = "2000"  # the run's task instances in few pages
        if args.max_map_length:
            airflow.env["AIRFLOW__CORE__MAX_MAP_LENGTH"] = str(args.max_map_length)
        emulator = EmulatorService(data, airflow.log_path("emulator"), args.jobs_every,
                                   {k: v for k, v in airflow.env.items() if not k.startswith("AIRFLOW")})
        emulator.restart(None)
        proxy = CountingProxy(emulator.port)
        airflow.env.update({
            "AIRFLOW_CONN_UCI_EXHAUST_DEFAULT": uci_connection(proxy.api, encryption_key=ZIP_KEY),
            "AIRFLOW_CONN_UCI_WAREHOUSE": warehouse,
            "AIRFLOW_VAR_UCI_EXHAUST_WAREHOUSE_CONN_ID": "uci_warehouse",
            "AIRFLOW_VAR_UCI_EXHAUST_DESTINATION": str(root / "files"),
            "AIRFLOW_VAR_UCI_EXHAUST_POLL_CONTINUOUSLY": "true",
        })
        shutil.copy(ROOT / "dags" / "uci_exhaust.py", airflow.dags_folder / "uci_exhaust.py")
        try:
            airflow.migrate()
            airflow.start_all()
            airflow.wait_healthy(180)
            airflow.warm_up_execution_api()
            airflow.login()
            airflow.wait_for_dag(DAG_ID, 180)
            airflow.unpause(DAG_ID)
            for fleet, day in zip(fleets, DAYS):
                load_before = os.getloadavg()
                roots = {name: process.pid for name, process in airflow.processes.items()}
                roots["emulator"] = emulator.process.pid if emulator.process else 0
                result = run_fleet(airflow, proxy, fleet, day, roots)
                result["load_before"], result["load_after"] = load_before, os.getloadavg()
                results.append(result)
                print(f"{result['bots']} bots: {result['state']}, {result['loaded']} loaded in "
                      f"{result['seconds']:.1f} s = {result['bots_per_minute']:.1f} bots/min; "
                      f"{result['task_instances_per_bot']:.1f} task instances per bot "
                      f"({result['task_processes_per_bot']:.1f} task processes) + {result['run_tasks']} per run; "
                      f"{result['retried']} retried; triggerer peak RSS {result['triggerer_peak_rss_mb']:.0f} MB; "
                      f"{result['api_calls_per_job']:.2f} API calls per job {result['calls']}; load average "
                      f"{result['load_before'][0]:.1f} before, {result['load_after'][0]:.1f} after", flush=True)
                print("  CPU seconds: " + ", ".join(f"{name} {seconds:.0f}" for name, seconds in
                                                    sorted(result["cpu"].items(), key=lambda kv: -kv[1])), flush=True)
                for task_id, step in result["steps"].items():
                    print(f"  {task_id:<14} {step['mean_s']:5.1f} s a task, {step['cpu_s']:4.2f} CPU-s in its process; ended {step['first_end']:6.1f} s to "
                          f"{step['last_end']:6.1f} s after the trigger", flush=True)
        finally:
            airflow.stop_all()
            proxy.stop()
            emulator.stop()
    if len(results) == 2:
        ratio = results[1]["bots_per_minute"] / results[0]["bots_per_minute"]
        print(f"rate at {results[1]['bots']} bots = {ratio:.0%} of the rate at {results[0]['bots']} "
              f"({'PASS' if ratio >= 0.75 else 'MISS'}: within 25%)")
    if results:
        first = results[0]
        print(f"target >= 40 bots/min at {first['bots']} bots: {first['bots_per_minute']:.1f} "
              f"({'PASS' if first['bots_per_minute'] >= 40 else 'MISS'})")
    if args.keep:
        print(f"work folder kept: {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if results and all(r["state"] == "success" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
