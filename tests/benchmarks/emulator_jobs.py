"""Benchmark: the emulator's response exhaust job over a large seeded telemetry store.

Seeds N ASSESS events (default 1,000,000) over ``--days`` sync days into a temporary data dir, submits
one response exhaust request covering the whole range for one bot, and runs the nightly job in a
fresh child process, which measures its own wall time and peak RSS. The job reads every event of
the range (all bots), so the rate is telemetry events read per second.

Targets on a 2-core machine: >= 100,000 events/s (1M events in <= 10 s) with peak RSS < 1 GB, and
the same peak RSS within 20% at 5M events (``--events 5000000``): memory is bounded by the output's
width, not the input's length.

    uv run python tests/benchmarks/emulator_jobs.py [--events 1000000] [--compare 5000000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from datetime import datetime, timezone
from airflow_provider_uci.emulator.service import Service
from airflow_provider_uci.emulator.config import EmulatorSettings

data_dir, bot, start, end = sys.argv[1:5]
service = Service(EmulatorSettings(data_dir=data_dir, schedule=False))
service.store.submit(tag="bench:dev-channel", request_id="BENCH" + str(time.time_ns()), job_id="uci-response-exhaust",
                     request_data={"type": "uci-response-exhaust", "conversationId": bot, "startDate": start,
                                   "endDate": end},
                     requested_by="bench", requested_channel="dev-channel", zip_password=None,
                     now=datetime.now(timezone.utc))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
began = time.perf_counter()
(outcome,) = service.run_jobs(("uci-response-exhaust",))
seconds = time.perf_counter() - began
print(json.dumps({"seconds": seconds, "status": outcome.status, "message": outcome.message,
                  "rss_before_mb": before / 1024,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def seed(data_dir: Path, events: int, days: int) -> dict:
    script = Path(sys.executable).with_name("uci-exhaust")
    began = time.perf_counter()
    out = subprocess.run(
        [
            str(script),
            "emulator",
            "seed",
            "--data-dir",
            str(data_dir),
            "--events",
            str(events),
            "--days",
            str(days),
            "--start",
            "2026-01-01",
            "--bots",
            "3",
            "--users",
            "5000",
            "--json",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    summary = json.loads(out)
    summary["seed_seconds"] = time.perf_counter() - began
    return summary


def measure(events: int, days: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="uci-bench-jobs-") as tmp:
        data_dir = Path(tmp)
        summary = seed(data_dir, events, days)
        bot = summary["bots"][0]
        days_seen = sorted({day for b in summary["bots"] for day in b["events_by_day"]})
        child = subprocess.run(
            [sys.executable, "-c", CHILD, str(data_dir), bot["id"], days_seen[0], days_seen[-1]],
            check=True,
            capture_output=True,
            text=True,
        )
        result = json.loads(child.stdout.strip().splitlines()[-1])
        result.update(
            events=summary["events"]["kept"],
            rows=sum(bot["events_by_day"].values()),
            seed_seconds=summary["seed_seconds"],
        )
        return result


def report(label: str, result: dict) -> None:
    rate = result["events"] / result["seconds"]
    print(
        f"{label}: {result['events']:,} events read, {result['rows']:,} rows written, "
        f"job {result['seconds']:.2f} s = {rate:,.0f} events/s, peak RSS {result['peak_rss_mb']:.0f} MB "
        f"(seeding took {result['seed_seconds']:.1f} s; job status {result['status']})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument(
        "--compare", type=int, default=0, help="also run at this many events and compare peak RSS"
    )
    parser.add_argument(
        "--days", type=int, default=12, help="sync days (86,400 distinct seconds a day at most)"
    )
    args = parser.parse_args()

    first = measure(args.events, args.days)
    report(f"{args.events:,} events", first)
    rate = first["events"] / first["seconds"]
    print(
        f"target >= 100,000 events/s and peak RSS < 1 GB: "
        f"{'PASS' if rate >= 100_000 and first['peak_rss_mb'] < 1024 else 'MISS'}"
    )
    if args.compare:
        days = max(args.days, -(-args.compare // 80_000))
        second = measure(args.compare, days)
        report(f"{args.compare:,} events", second)
        growth = second["peak_rss_mb"] / first["peak_rss_mb"] - 1
        print(
            f"peak RSS growth {first['peak_rss_mb']:.0f} -> {second['peak_rss_mb']:.0f} MB = {growth:+.1%}: "
            f"{'PASS' if abs(growth) <= 0.2 else 'MISS'} (target within 20%)"
        )
    return 0 if first["status"] == "SUCCESS" else 1


if __name__ == "__main__":
    sys.exit(main())
