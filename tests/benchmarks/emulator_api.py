"""Throughput and latency of the emulator's Data Exhaust API under a sustained submit + read load.

What it measures
----------------
The script starts the emulator as its own process (``uci-exhaust emulator serve``, as a user would)
on a free loopback port with a temporary data directory, then runs ``--clients`` concurrent clients
in one asyncio process (aiohttp, keep-alive connections, one connection per client). Each client
loops: it submits a request for a fresh tag (``POST /api/dataset/v1/request/submit``) and then reads
that job back ``--reads`` times (``GET /api/dataset/v1/request/read/<tag>?requestId=<id>``).

Every answer is checked: HTTP 200, ``responseCode: "OK"``, a submit's job carries a request id and
its tag, and a read returns the request id that was submitted. Anything else counts as an error.

After ``--warmup`` seconds (not counted) the script measures for ``--seconds`` seconds and prints
requests/s (total, reads, submits), client-side latency percentiles (p50/p95/p99, in ms, from
sending the request to having read the whole body) for reads and for submits, the number of errors
(over the whole run, warm-up included), the CPU the emulator, the load generator and everything else
on the machine used during the window, and the target check: at least 1,000 reads/s with a read p99
under 50 ms with the SQLite store. The check prints PASS or MISS; the exit code is 0
either way, unless an answer failed verification (exit 1) or the set-up failed (exit 2).

The load generator runs on the same machine and competes with the emulator for CPU; so does any other
busy process, and the script says so when other processes took more than 10% of a core.

Running it
----------
From the repository root::

    uv run python tests/benchmarks/emulator_api.py                       # 50 clients, 20 s, SQLite
    uv run python tests/benchmarks/emulator_api.py --clients 50 --seconds 20 --store sqlite
    uv run python tests/benchmarks/emulator_api.py --store postgres      # needs a local PostgreSQL

With ``--store postgres`` a fresh database is created on the server named by
``UCI_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``), the emulator
is started with ``--database-url`` pointing at it, and the database is dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import Coroutine, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import aiohttp  # noqa: E402

from tests.support.api import submit_body  # noqa: E402
from tests.support.services import Emulator, run_emulator  # noqa: E402

API_KEY = "dev-key"
CHANNEL = "dev-channel"
HEADERS = {"Authorization": f"Bearer {API_KEY}", "X-Channel-ID": CHANNEL}
SUBMIT_HEADERS = {**HEADERS, "Content-Type": "application/json"}

T = TypeVar("T")

TARGET_READS_PER_SECOND = 1000.0
TARGET_READ_P99_MS = 50.0


@dataclass
class Stats:
    """What the clients saw: latencies (seconds) of answers completed inside the window, and errors."""

    window_start: float = 0.0
    window_end: float = 0.0
    read_latencies: list[float] = field(default_factory=list)
    submit_latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    error_examples: list[str] = field(default_factory=list)

    def record(self, kind: str, started: float, finished: float) -> None:
        if self.window_start <= finished <= self.window_end:
            (self.read_latencies if kind == "read" else self.submit_latencies).append(finished - started)

    def error(self, kind: str, what: str, detail: str) -> None:
        key = f"{kind}: {what}"
        self.errors[key] = self.errors.get(key, 0) + 1
        if len(self.error_examples) < 5:
            self.error_examples.append(f"{key}: {detail[:160]}")

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), round(fraction * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


async def client(session: aiohttp.ClientSession, api: str, stats: Stats, stop_at: float, reads: int) -> None:
    """Submit a fresh tag, read it back ``reads`` times; repeat until ``stop_at``."""
    clock = time.perf_counter
    submit_url = f"{api}/dataset/v1/request/submit"
    while clock() < stop_at:
        tag = str(uuid.uuid4())
        payload = json.dumps(submit_body(tag)).encode()
        started = clock()
        try:
            async with session.post(submit_url, data=payload, headers=SUBMIT_HEADERS) as response:
                status, body = response.status, await response.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            stats.error("submit", type(exc).__name__, repr(exc))
            continue
        finished = clock()
        request_id = check(stats, "submit", status, body, expected_tag=f"{tag}:{CHANNEL}")
        if request_id is None:
            continue
        stats.record("submit", started, finished)
        read_url = f"{api}/dataset/v1/request/read/{tag}"
        params = {"requestId": request_id}
        for _ in range(reads):
            if clock() >= stop_at:
                break
            started = clock()
            try:
                async with session.get(read_url, params=params, headers=HEADERS) as response:
                    status, body = response.status, await response.read()
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                stats.error("read", type(exc).__name__, repr(exc))
                continue
            finished = clock()
            if check(stats, "read", status, body, expected_request_id=request_id) is not None:
                stats.record("read", started, finished)


def check(
    stats: Stats,
    kind: str,
    status: int,
    body: bytes,
    *,
    expected_tag: str | None = None,
    expected_request_id: str | None = None,
) -> str | None:
    """Verify one answer; return the job's request id, or ``None`` (and count an error)."""
    if status != 200:
        stats.error(kind, f"HTTP {status}", body.decode("utf-8", "replace"))
        return None
    try:
        envelope = json.loads(body)
    except ValueError:
        stats.error(kind, "not JSON", body.decode("utf-8", "replace"))
        return None
    if envelope.get("responseCode") != "OK" or not isinstance(envelope.get("result"), dict):
        stats.error(kind, f"responseCode {envelope.get('responseCode')!r}", body.decode())
        return None
    job = envelope["result"]
    request_id = job.get("requestId")
    if not isinstance(request_id, str) or not request_id:
        stats.error(kind, "no requestId", body.decode())
        return None
    if expected_request_id is not None and request_id != expected_request_id:
        stats.error(kind, "requestId mismatch", f"expected {expected_request_id}, got {request_id}")
        return None
    if expected_tag is not None and job.get("tag") != expected_tag:
        stats.error(kind, "tag mismatch", f"expected {expected_tag}, got {job.get('tag')}")
        return None
    return request_id


def machine_busy_seconds() -> float | None:
    """CPU seconds all processors spent busy since boot (Linux ``/proc/stat``), or ``None``."""
    try:
        fields = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux ``/proc``), or ``None`` where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


async def run_load(
    emulator: Emulator, clients: int, seconds: float, warmup: float, reads: int
) -> tuple[Stats, dict]:
    stats = Stats()
    connector = aiohttp.TCPConnector(
        limit=clients, limit_per_host=clients, keepalive_timeout=60, force_close=False
    )
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        now = time.perf_counter()
        stats.window_start = now + warmup
        stats.window_end = stats.window_start + seconds
        tasks = [
            asyncio.create_task(client(session, emulator.api, stats, stats.window_end, reads))
            for _ in range(clients)
        ]
        await asyncio.sleep(max(0.0, stats.window_start - time.perf_counter()))
        cpu = {
            "server_start": process_cpu_seconds(emulator.process.pid),
            "client_start": time.process_time(),
            "machine_start": machine_busy_seconds(),
        }
        await asyncio.sleep(max(0.0, stats.window_end - time.perf_counter()))
        cpu["server_end"] = process_cpu_seconds(emulator.process.pid)
        cpu["client_end"] = time.process_time()
        cpu["machine_end"] = machine_busy_seconds()
        await asyncio.gather(*tasks)
    return stats, cpu


def report(stats: Stats, cpu: dict, args: argparse.Namespace) -> bool:
    """Print the figures; return whether the SQLite target was met."""
    window = stats.window_end - stats.window_start
    reads = sorted(stats.read_latencies)
    submits = sorted(stats.submit_latencies)
    read_rate, submit_rate = len(reads) / window, len(submits) / window

    def ms(values: list[float], fraction: float) -> str:
        return f"{percentile(values, fraction) * 1000:7.2f}"

    print()
    print(
        f"emulator API benchmark: store={args.store} clients={args.clients} window={window:.1f}s "
        f"(after {args.warmup:.1f}s warm-up) mix=1 submit + {args.reads} reads per tag"
    )
    print(f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()}")
    print(
        f"requests:  {len(reads) + len(submits):8d} in window   total  {read_rate + submit_rate:9.1f} req/s"
    )
    print(f"           reads   {len(reads):8d}              {read_rate:9.1f} req/s")
    print(f"           submits {len(submits):8d}              {submit_rate:9.1f} req/s")
    print("latency (ms)      p50      p95      p99      max")
    for name, values in (("reads  ", reads), ("submits", submits)):
        top = f"{values[-1] * 1000:7.2f}" if values else "   0.00"
        print(f"  {name}      {ms(values, 0.50)}  {ms(values, 0.95)}  {ms(values, 0.99)}  {top}")
    print(
        f"errors: {stats.error_count}"
        + (
            ""
            if not stats.errors
            else "  " + ", ".join(f"{key} x{count}" for key, count in sorted(stats.errors.items()))
        )
    )
    for example in stats.error_examples:
        print(f"  e.g. {example}")
    if None not in (cpu["server_start"], cpu["server_end"]):
        server_seconds = cpu["server_end"] - cpu["server_start"]
        server = server_seconds / window * 100
        client = (cpu["client_end"] - cpu["client_start"]) / window * 100
        line = f"CPU during window: emulator {server:5.1f}% of one core, load generator {client:5.1f}%"
        other = None
        if None not in (cpu["machine_start"], cpu["machine_end"]):
            other = max((cpu["machine_end"] - cpu["machine_start"]) / window * 100 - server - client, 0.0)
            line += f", everything else on the machine {other:5.1f}%"
            if args.store == "postgres":
                line += " (the PostgreSQL server included)"
        print(line)
        print(f"emulator CPU per request: {server_seconds / max(len(reads) + len(submits), 1) * 1e6:.0f} us")
        if other is not None and other > 10.0 and args.store == "sqlite":
            print(
                f"note: other processes used {other:.0f}% of a core during the window; the figures are lower "
                "than on an idle machine"
            )
    met = read_rate >= TARGET_READS_PER_SECOND and percentile(reads, 0.99) * 1000 < TARGET_READ_P99_MS
    verdict = "PASS" if met else "MISS"
    scope = "" if args.store == "sqlite" else f" (the target is set for SQLite; this run used {args.store})"
    print(
        f"target: >= {TARGET_READS_PER_SECOND:,.0f} reads/s and read p99 < {TARGET_READ_P99_MS:.0f} ms with SQLite: "
        f"{verdict} ({read_rate:,.0f} reads/s, p99 {percentile(reads, 0.99) * 1000:.2f} ms){scope}"
    )
    return met


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop where it is installed (it comes with uvicorn[standard]), to spare the emulator CPU."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


@contextmanager
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards (the tests' helper, outside pytest)."""
    import pytest

    from tests.support.services import postgres_database

    try:
        database = postgres_database()
        url = database.__enter__()
    except (pytest.skip.Exception, pytest.fail.Exception) as exc:
        print(f"PostgreSQL is not available: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        yield url
    finally:
        database.__exit__(None, None, None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (default 50)")
    parser.add_argument(
        "--seconds", type=float, default=20.0, help="length of the measured window (default 20)"
    )
    parser.add_argument(
        "--warmup", type=float, default=3.0, help="warm-up before measuring, in seconds (default 3)"
    )
    parser.add_argument("--reads", type=int, default=4, help="reads of each submitted job (default 4)")
    parser.add_argument(
        "--store", choices=["sqlite", "postgres"], default="sqlite", help="job store (default sqlite)"
    )
    args = parser.parse_args(argv)
    if args.clients < 1 or args.seconds <= 0 or args.warmup < 0 or args.reads < 0:
        parser.error("--clients and --seconds must be positive, --warmup and --reads not negative")

    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="uci-bench-")))
        extra = []
        if args.store == "postgres":
            extra = ["--database-url", stack.enter_context(postgres_url())]
        try:
            emulator = stack.enter_context(run_emulator(tmp / "emulator", *extra))
        except RuntimeError as exc:
            print(f"could not start the emulator: {exc}", file=sys.stderr)
            return 2
        print(
            f"emulator pid {emulator.process.pid} on {emulator.api}; warming up for {args.warmup:.1f}s, "
            f"then measuring for {args.seconds:.1f}s ...",
            flush=True,
        )
        stats, cpu = run_async(run_load(emulator, args.clients, args.seconds, args.warmup, args.reads))
    # The emulator is stopped (and the database dropped) by now.
    report(stats, cpu, args)
    return 1 if stats.error_count else 0


if __name__ == "__main__":
    sys.exit(main())
