"""Benchmark: how many calls the deferrable wait makes for one response exhaust job, beside a poke sensor.

Starts an emulator (without its own schedule) with its clock at 10:00 IST, submits one response exhaust
request there, then runs :class:`ExhaustJobTrigger` on a simulated clock: each sleep moves the simulated
clock on at once and the emulator's clock with it. When simulated time passes that night's run (02:00 IST,
plus ``--run-minutes`` for the run's own length) the script marks the job SUCCESS through the emulator's
admin route, as the nightly run would. It counts the trigger's reads until its success event and prints
them beside what a sensor poking every 60 seconds would make over the same span.

Target: <= 5 calls for the wait (against ~960 for a 60-second poke sensor).

    uv run python tests/benchmarks/sensor_calls.py [--grace 600] [--poll 600] [--run-minutes 0]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import tempfile
import time
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="uci-bench-airflow-home-"))
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"

import requests  # noqa: E402

from tests.support.connections import uci_connection  # noqa: E402
from tests.support.services import Emulator, run_emulator  # noqa: E402

if TYPE_CHECKING:
    from airflow_provider_uci.triggers.exhaust import ExhaustJobTrigger

IST = ZoneInfo("Asia/Kolkata")
BOT = "c63b6faa-11a9-4259-b941-11cd2f8446c6"
TARGET_CALLS = 5
POKE_INTERVAL = 60.0


def ist_text(instant: float) -> str:
    return datetime.fromtimestamp(instant, IST).strftime("%Y-%m-%d %H:%M:%S IST")


class SimulatedNight:
    """The trigger's clock and sleep: sleeping moves the simulated clock, the emulator's clock, and the job."""

    def __init__(self, emulator: Emulator, start: float, run_done: float, tag: str, request_id: str) -> None:
        self.emulator = emulator
        self.now = start
        self.run_done = run_done
        self.tag = tag
        self.request_id = request_id
        self.succeeded_at: float | None = None
        self.wakes: list[float] = []

    def clock(self) -> float:
        return self.now

    def move_emulator(self, instant: float) -> None:
        self.emulator.set_clock(datetime.fromtimestamp(instant, IST).isoformat())

    def finish_run(self) -> float:
        """Mark the job SUCCESS with a file at the run's end, as the nightly run would; return when."""
        self.move_emulator(self.run_done)
        answer = requests.post(
            f"{self.emulator.root}/admin/jobs/{self.request_id}/file",
            params={"tag": self.tag},
            data=b"Message ID,Device ID\nm-1,d-1\n",
            timeout=10,
        )
        answer.raise_for_status()
        return answer.json()["jobStats"]["dtJobCompleted"] / 1000

    async def sleep(self, seconds: float) -> None:
        wake = self.now + seconds
        if self.succeeded_at is None and wake >= self.run_done:  # the run finishes while the trigger sleeps
            self.succeeded_at = await asyncio.to_thread(self.finish_run)
        await asyncio.to_thread(self.move_emulator, wake)
        self.now = wake
        self.wakes.append(wake)


async def wait(trigger: ExhaustJobTrigger, night: SimulatedNight) -> dict:
    trigger.clock = night.clock
    trigger.sleep = night.sleep
    events = [event.payload async for event in trigger.run()]
    if len(events) != 1:
        raise RuntimeError(f"expected one event from the trigger, got {events}")
    return events[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--grace", type=float, default=600.0, help="seconds after the run to look first (600)"
    )
    parser.add_argument(
        "--poll", type=float, default=600.0, help="seconds between looks during the run (600)"
    )
    parser.add_argument(
        "--run-minutes",
        type=float,
        default=0.0,
        help="how long the nightly run takes after 02:00 IST before the job is SUCCESS (0)",
    )
    parser.add_argument("--day", default="2024-06-12", help="the day of submission, YYYY-MM-DD (2024-06-12)")
    options = parser.parse_args()

    day = date.fromisoformat(options.day)
    submit_at = datetime(day.year, day.month, day.day, 10, 0, tzinfo=IST)
    with (
        tempfile.TemporaryDirectory(prefix="uci-bench-sensor-") as tmp,
        run_emulator(Path(tmp), "--no-schedule", "--now", submit_at.isoformat()) as emulator,
    ):
        os.environ["AIRFLOW_CONN_UCI_EXHAUST_DEFAULT"] = uci_connection(
            emulator.api, requested_by="benchmark"
        )

        from airflow_provider_uci.hooks.exhaust import UciExhaustHook
        from airflow_provider_uci.schedule import NIGHTLY_RUN, NightlySchedule
        from airflow_provider_uci.triggers.exhaust import ExhaustJobTrigger

        hook = UciExhaustHook()
        emulator.set_clock(submit_at.isoformat())  # its clock ticked on while it started
        job = hook.submit_request(
            hook.request_for(BOT, "response", "2024-06-01", "2024-06-11", f"sensor-calls-{time.time_ns()}")
        )
        assert job.submitted_at is not None
        submitted_at = job.submitted_at.timestamp()
        schedule = NightlySchedule(run_at=NIGHTLY_RUN[job.dataset])
        run_start = datetime.combine(day, schedule.run_time(), IST).timestamp() + 86400
        night = SimulatedNight(
            emulator, submitted_at, run_start + options.run_minutes * 60, job.tag, job.request_id
        )
        trigger = ExhaustJobTrigger(
            jobs=[
                {
                    "tag": job.tag,
                    "request_id": job.request_id,
                    "dataset": job.dataset,
                    "run_at": schedule.run_at,
                }
            ],
            deadline=submitted_at + 48 * 3600,
            grace_seconds=options.grace,
            poll_interval=options.poll,
        )
        began = time.perf_counter()
        payload = asyncio.run(wait(trigger, night))
        elapsed = time.perf_counter() - began

    if payload["status"] != "success" or night.succeeded_at is None:
        print(f"the trigger ended with {payload['status']}: {payload['message']}")
        return 1
    calls = trigger.reads
    span = night.succeeded_at - submitted_at
    poke_calls = math.ceil(span / POKE_INTERVAL) + 1
    print(
        f"response exhaust submitted {ist_text(submitted_at)}; nightly run {ist_text(run_start)}, "
        f"job SUCCESS {ist_text(night.succeeded_at)} ({span / 3600:.2f} h later)"
    )
    print(
        f"grace {options.grace:.0f} s, poll {options.poll:.0f} s; trigger looked at: "
        + ", ".join([ist_text(submitted_at)[11:19]] + [ist_text(wake)[11:19] for wake in night.wakes])
    )
    print(
        f"deferrable trigger:      {calls} calls to the API until the success event "
        f"({calls + 1} with the sensor's first poke before deferring); simulated in {elapsed:.2f} s"
    )
    print(
        f"60-second poke sensor:   {poke_calls} calls over the same span "
        f"(({span:.0f} s) / 60 + 1), {poke_calls / calls:.0f}x as many"
    )
    print(f"target <= {TARGET_CALLS} calls: {'PASS' if calls <= TARGET_CALLS else 'MISS'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
