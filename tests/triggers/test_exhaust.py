"""ExhaustJobTrigger against the emulator over HTTP: one event per run, waits derived from absolute times.

The trigger's clock and sleep are replaced by a simulated clock, so a night passes in no time. The emulator
runs without its own schedule and its clock follows the simulated one; the job's state is moved on through
its admin routes, as its nightly run would.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterator
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from airflow.triggers.base import TriggerEvent

from airflow_provider_uci.hooks.exhaust import UciExhaustAsyncHook
from airflow_provider_uci.retry import RetryPolicy
from airflow_provider_uci.triggers.exhaust import ExhaustJobTrigger, TriggerArgs
from tests.support.api import ExhaustApi, new_tag, submit_body
from tests.support.connections import set_uci_connection
from tests.support.services import Emulator, run_emulator

IST = ZoneInfo("Asia/Kolkata")
CHANNEL = "dev-channel"
GRACE = 600.0
POLL = 600.0
DAY = 86400.0


class Crash(Exception):
    """Stands in for a triggerer that dies while the trigger sleeps."""


class FakeTime:
    """A simulated clock; its sleep moves the clock (and the emulator's, if given) to the wake-up, records
    it, then runs ``on_sleep`` with the number of sleeps so far."""

    def __init__(self, start: float, follower: Emulator | None = None) -> None:
        self.now = float(start)
        self.follower = follower
        self.sleeps: list[float] = []
        self.wakes: list[float] = []
        self.on_sleep: Callable[[int], None] | None = None

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.wakes.append(self.now + seconds)
        self.now += seconds
        if self.follower is not None:
            self.follower.set_clock(iso(self.now))
        if self.on_sleep is not None:
            self.on_sleep(len(self.sleeps))


class Jobs:
    """Submits jobs with a plain HTTP client and moves them on with the emulator's admin routes."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.api = ExhaustApi(emulator.api)

    def submit(self, **options: Any) -> dict[str, Any]:
        answer = self.api.submit(submit_body(new_tag(), **options))
        answer.raise_for_status()
        return answer.json()["result"]

    def succeed(self, job: dict[str, Any], content: bytes = b"Message ID,Device ID\nm-1,d-1\n") -> None:
        requests.post(
            f"{self.emulator.root}/admin/jobs/{job['requestId']}/file",
            params={"tag": job["tag"]},
            data=content,
            timeout=10,
        ).raise_for_status()

    def fail(self, job: dict[str, Any], message: str) -> dict[str, Any]:
        answer = requests.post(
            f"{self.emulator.root}/admin/jobs/{job['requestId']}/fail",
            params={"tag": job["tag"]},
            json={"message": message},
            timeout=10,
        )
        answer.raise_for_status()
        return answer.json()


def ist(year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> float:
    """Epoch seconds of a wall-clock time in India."""
    return datetime(year, month, day, hour, minute, second, tzinfo=IST).timestamp()


def iso(instant: float) -> str:
    return datetime.fromtimestamp(instant, IST).isoformat()


#: The quiet emulator's clock at the start of each test: 10:00 IST, when the jobs are submitted.
SUBMITTED = ist(2024, 6, 12, 10, 0)
#: The trigger starts a few seconds later; its first look is the next night's run plus the grace period.
STARTED = SUBMITTED + 5
FIRST_LOOK = ist(2024, 6, 13, 2, 10)


def bare(job: dict[str, Any]) -> str:
    return job["tag"].removesuffix(f":{CHANNEL}")


def seconds(epoch_ms: int) -> float:
    return epoch_ms / 1000


def make_trigger(
    job: dict[str, Any] | None,
    fake: FakeTime,
    *,
    request_id: str | None = None,
    deadline: float | None = None,
    run_at: str | None = "02:00",
    **options: Any,
) -> ExhaustJobTrigger:
    """A trigger waiting for ``job`` (or for a job the service does not know), on ``fake``'s clock."""
    tag, known_id = (bare(job), job["requestId"]) if job else (new_tag(), "0" * 32)
    trigger = ExhaustJobTrigger(
        jobs=[
            {
                "tag": tag,
                "request_id": request_id or known_id,
                "dataset": job["dataset"] if job else None,
                "run_at": run_at,
            }
        ],
        deadline=fake.now + 3 * DAY if deadline is None else deadline,
        grace_seconds=GRACE,
        poll_interval=POLL,
        **options,
    )
    trigger.clock = fake.clock
    trigger.sleep = fake.sleep
    return trigger


async def only_event(trigger: ExhaustJobTrigger) -> dict[str, Any]:
    """Run the trigger to its end and return the payload of its one event."""
    events = [event async for event in trigger.run()]
    assert len(events) == 1, f"expected exactly one event, got {[event.payload for event in events]}"
    assert isinstance(events[0], TriggerEvent)
    return events[0].payload


@pytest.fixture(scope="module")
def quiet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """An emulator that never runs its nightly jobs by itself, so its clock can follow the simulated one."""
    with run_emulator(tmp_path_factory.mktemp("trigger-emulator"), "--no-schedule") as running:
        yield running


@pytest.fixture
def jobs(quiet: Emulator, monkeypatch: pytest.MonkeyPatch) -> Jobs:
    set_uci_connection(monkeypatch, quiet.api)
    quiet.set_clock(iso(SUBMITTED))
    return Jobs(quiet)


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Emulator]]:
    stack = []

    def starter(*args: str) -> Emulator:
        context = run_emulator(tmp_path / f"emulator-{len(stack)}", "--no-schedule", *args)
        stack.append(context)
        return context.__enter__()

    yield starter
    for context in reversed(stack):
        context.__exit__(None, None, None)


def without_retries(trigger: ExhaustJobTrigger, monkeypatch: pytest.MonkeyPatch) -> None:
    """Give the trigger a hook that tries each read once and never waits, so every failing read counts."""

    async def no_wait(_: float) -> None:
        return None

    def factory() -> UciExhaustAsyncHook:
        hook = UciExhaustAsyncHook(trigger.args.uci_exhaust_conn_id, retry=RetryPolicy(attempts=1))
        hook.sleep = no_wait
        return hook

    monkeypatch.setattr(trigger, "hook", factory)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {
            "timezone": "UTC",
            "fail_on_first_failure": True,
            "max_transient_failures": 2,
            "uci_exhaust_conn_id": "other",
            "conversation_id": "c63b6faa-11a9-4259-b941-11cd2f8446c6",
            "end_from_trigger": True,
        },
    ],
)
def test_serialize_round_trip(options: dict[str, Any]) -> None:
    jobs = [
        {"tag": "t-1", "request_id": "ABC", "dataset": "uci-response-exhaust", "run_at": "02:00"},
        {"tag": "t-2", "request_id": "DEF", "dataset": "uci-private-exhaust", "run_at": None},
    ]
    trigger = ExhaustJobTrigger(jobs=jobs, deadline=1718150400, **options)
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    assert getattr(importlib.import_module(module), name) is ExhaustJobTrigger
    assert all(
        value is None or type(value) in (str, float, int, bool)
        for key, value in kwargs.items()
        if key != "jobs"
    ), kwargs
    assert all(value is None or type(value) is str for job in kwargs["jobs"] for value in job.values())
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert kwargs["deadline"] == 1718150400.0
    assert kwargs["jobs"] == jobs
    assert set(kwargs) == {item.name for item in fields(TriggerArgs)}, "every argument, written once"
    assert {key: kwargs[key] for key in options} == options
    assert ExhaustJobTrigger(**kwargs).serialize() == (classpath, kwargs)


def test_the_jobs_are_required_and_read_as_strings() -> None:
    with pytest.raises(ValueError, match="jobs must not be empty"):
        ExhaustJobTrigger(deadline=1718150400)
    trigger = ExhaustJobTrigger(
        jobs=[{"tag": 7, "request_id": 123, "dataset": "uci-response-exhaust"}],
        deadline="1718150400",
        poll_interval="60",
        max_attempts="3",
    )
    assert trigger.args.jobs == [
        {"tag": "7", "request_id": "123", "dataset": "uci-response-exhaust", "run_at": None}
    ]
    assert (trigger.args.deadline, trigger.args.poll_interval, trigger.args.max_attempts) == (
        1718150400.0,
        60.0,
        3,
    )


@pytest.mark.asyncio
async def test_pending_job_sleeps_to_the_nightly_run_then_succeeds(jobs: Jobs, quiet: Emulator) -> None:
    job = jobs.submit()
    now = datetime.fromisoformat(
        requests.get(f"{quiet.root}/admin/clock", timeout=10).json()["now"]
    ).timestamp()
    assert job["status"] == "SUBMITTED" and SUBMITTED <= seconds(job["jobStats"]["dtJobSubmitted"]) <= now, (
        "submitted on the emulator's clock, moved to SUBMITTED"
    )
    fake = FakeTime(STARTED, quiet)
    trigger = make_trigger(job, fake)
    fake.on_sleep = lambda count: jobs.succeed(job)  # the night's run has finished by the first look
    payload = await only_event(trigger)

    assert fake.wakes == [FIRST_LOOK], "10:00 IST -> sleep through the day to 02:00 IST plus the grace period"
    assert fake.sleeps == [FIRST_LOOK - STARTED]
    assert trigger.reads == 2, "one look now, one after the night's run"
    assert payload["status"] == "success"
    answered = {
        "request_id": job["requestId"],
        "tag": bare(job),
        "dataset": "uci-response-exhaust",
        "conversation_id": "c63b6faa-11a9-4259-b941-11cd2f8446c6",
        "start_date": "2022-03-01",
        "end_date": "2022-04-01",
        "status": "SUCCESS",
        "attempts": 0,
        "file_count": 1,
        "outcome": "files",
    }
    assert payload["job"] == answered and payload["jobs"] == [answered], (
        "the answered job, as a wait hands it on"
    )
    text = json.dumps(payload)
    assert "sig=" not in text and "://" not in text and "blob" not in text, "no URL travels in the event"


@pytest.mark.asyncio
async def test_pending_job_polls_while_the_run_works(jobs: Jobs, quiet: Emulator) -> None:
    job = jobs.submit()
    fake = FakeTime(STARTED, quiet)
    trigger = make_trigger(job, fake)
    fake.on_sleep = lambda count: jobs.succeed(job) if count == 3 else None  # the run takes a while
    payload = await only_event(trigger)
    assert payload["status"] == "success"
    assert fake.wakes == [FIRST_LOOK, FIRST_LOOK + POLL, FIRST_LOOK + 2 * POLL] and trigger.reads == 4


@pytest.mark.asyncio
async def test_private_exhaust_sleeps_to_three(jobs: Jobs, quiet: Emulator) -> None:
    job = jobs.submit(dataset="uci-private-exhaust")
    fake = FakeTime(STARTED, quiet)
    trigger = make_trigger(job, fake, run_at="03:00")
    fake.on_sleep = lambda count: jobs.succeed(job, b"PK")
    assert (await only_event(trigger))["status"] == "success"
    assert fake.wakes == [ist(2024, 6, 13, 3, 10)]


@pytest.mark.asyncio
async def test_finished_job_answers_at_once(jobs: Jobs) -> None:
    job = jobs.submit()
    jobs.succeed(job)
    fake = FakeTime(STARTED)
    trigger = make_trigger(job, fake)
    payload = await only_event(trigger)
    assert payload["status"] == "success" and payload["job"]["file_count"] == 1
    assert fake.sleeps == [] and trigger.reads == 1


@pytest.mark.asyncio
async def test_failed_three_times_is_final_with_the_service_message(jobs: Jobs) -> None:
    job = jobs.submit()
    for night in (1, 2, 3):
        failed = jobs.fail(job, f"No data found for night {night}")
    assert failed["attempts"] == 3
    fake = FakeTime(STARTED)
    payload = await only_event(make_trigger(job, fake))
    assert payload["status"] == "failed"
    assert payload["message"] == "No data found for night 3"
    assert payload["job"]["attempts"] == 3 and payload["job"]["status"] == "FAILED"
    assert payload["job"]["status_message"] == "No data found for night 3"
    assert fake.sleeps == []


@pytest.mark.asyncio
async def test_first_failures_wait_for_the_nightly_retry(jobs: Jobs, quiet: Emulator) -> None:
    job = jobs.submit()
    quiet.set_clock(iso(ist(2024, 6, 13, 2, 40)))
    assert jobs.fail(job, "Spark job lost its executor")["attempts"] == 1  # the first night's run failed
    fake = FakeTime(ist(2024, 6, 13, 2, 45), quiet)
    trigger = make_trigger(job, fake)

    def night(count: int) -> None:
        if count == 1:
            assert jobs.fail(job, "Spark job lost its executor again")["attempts"] == 2  # still not final
        else:
            jobs.succeed(job)

    fake.on_sleep = night
    payload = await only_event(trigger)
    assert payload["status"] == "success" and payload["job"]["attempts"] == 2
    assert fake.wakes == [ist(2024, 6, 14, 2, 10), ist(2024, 6, 15, 2, 10)], (
        "each FAILED attempt waits for the next night's retry"
    )
    assert trigger.reads == 3


@pytest.mark.asyncio
async def test_fail_on_first_failure(jobs: Jobs) -> None:
    job = jobs.submit()
    jobs.fail(job, "Invalid request")
    fake = FakeTime(STARTED)
    payload = await only_event(make_trigger(job, fake, fail_on_first_failure=True))
    assert payload["status"] == "failed" and payload["message"] == "Invalid request"
    assert payload["job"]["attempts"] == 1 and fake.sleeps == []


@pytest.mark.asyncio
async def test_unknown_job_is_one_error_event(jobs: Jobs) -> None:
    fake = FakeTime(STARTED)
    trigger = make_trigger(None, fake, request_id="F" * 32)
    payload = await only_event(trigger)
    assert payload["status"] == "error" and "F" * 32 in payload["message"]
    assert "job" not in payload and fake.sleeps == [] and trigger.reads == 1


@pytest.mark.asyncio
async def test_deadline_passed_is_a_timeout_without_reading(jobs: Jobs) -> None:
    job = jobs.submit()
    fake = FakeTime(STARTED)
    trigger = make_trigger(job, fake, deadline=STARTED - 1)
    payload = await only_event(trigger)
    assert payload["status"] == "timeout" and job["requestId"] in payload["message"]
    assert trigger.reads == 0 and fake.sleeps == []


@pytest.mark.asyncio
async def test_deadline_before_the_night_sleeps_to_the_deadline_then_times_out(jobs: Jobs) -> None:
    job = jobs.submit()
    fake = FakeTime(STARTED)
    trigger = make_trigger(job, fake, deadline=ist(2024, 6, 12, 18, 0))
    payload = await only_event(trigger)
    assert payload["status"] == "timeout"
    assert fake.wakes == [ist(2024, 6, 12, 18, 0)] and trigger.reads == 1


@pytest.mark.asyncio
async def test_transient_failures_within_the_limit_are_borne(start, monkeypatch: pytest.MonkeyPatch) -> None:
    # seed 136 draws five 500s in a row on the read route before its first good read: exactly the limit
    flaky = start("--fault-500", "read=0.5", "--fault-seed", "136")
    set_uci_connection(monkeypatch, flaky.api)
    flaky_jobs = Jobs(flaky)
    job = flaky_jobs.submit()
    flaky_jobs.succeed(job)
    fake = FakeTime(seconds(job["jobStats"]["dtJobSubmitted"]) + 1)
    trigger = make_trigger(job, fake, max_transient_failures=5)
    without_retries(trigger, monkeypatch)
    payload = await only_event(trigger)
    assert payload["status"] == "success" and payload["job"]["request_id"] == job["requestId"]
    assert trigger.reads == 6, "five failed reads, then the good one"
    assert fake.sleeps == [POLL] * 5, "each failed read waits one poll interval"


@pytest.mark.asyncio
async def test_transient_failures_beyond_the_limit_are_one_error(
    start, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = start("--fault-500", "read=1")
    set_uci_connection(monkeypatch, broken.api)
    job = Jobs(broken).submit()
    fake = FakeTime(seconds(job["jobStats"]["dtJobSubmitted"]) + 1)
    trigger = make_trigger(job, fake, max_transient_failures=3)
    without_retries(trigger, monkeypatch)
    payload = await only_event(trigger)
    assert payload["status"] == "error"
    assert "4 consecutive failures" in payload["message"] and "HTTP 500" in payload["message"]
    assert trigger.reads == 4 and fake.sleeps == [POLL] * 3


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "restarted_at",
    [
        ist(2024, 6, 12, 10, 1),  # right after the first look
        ist(2024, 6, 12, 21, 0),  # in the evening
        ist(2024, 6, 13, 0, 30),  # after midnight in India (19:00 UTC the day before)
        ist(2024, 6, 13, 2, 5),  # the run has started, the grace period has not passed
    ],
    ids=["10:01", "21:00", "00:30", "02:05"],
)
async def test_restarted_trigger_wakes_at_the_same_time(jobs: Jobs, restarted_at: float) -> None:
    job = jobs.submit()
    first_clock = FakeTime(STARTED)
    first = make_trigger(job, first_clock)

    def crash(count: int) -> None:
        raise Crash

    first_clock.on_sleep = crash
    seen = []
    with pytest.raises(Crash):
        async for event in first.run():
            seen.append(event)
    assert seen == [] and first_clock.wakes == [FIRST_LOOK]

    classpath, kwargs = first.serialize()
    module, _, name = classpath.rpartition(".")
    second_clock = FakeTime(restarted_at)
    second = getattr(importlib.import_module(module), name)(**kwargs)
    second.clock, second.sleep = second_clock.clock, second_clock.sleep
    second_clock.on_sleep = lambda count: jobs.succeed(job)
    payload = await only_event(second)
    assert payload["status"] == "success"
    assert second_clock.wakes == [FIRST_LOOK], "the restart neither lengthens nor shortens the wait"
    assert second.reads == 2, "it looks once on starting, then sleeps to the same wake-up"


@pytest.mark.asyncio
async def test_end_from_trigger_ends_the_task_with_the_waits_return_value(
    jobs: Jobs, quiet: Emulator
) -> None:
    from airflow.triggers.base import TaskSuccessEvent

    job = jobs.submit()
    jobs.succeed(job)
    trigger = ExhaustJobTrigger(
        jobs=[
            {
                "tag": job["tag"],
                "request_id": job["requestId"],
                "dataset": "uci-response-exhaust",
                "run_at": None,
            }
        ],
        deadline=SUBMITTED + DAY,
        poll_interval=1,
        end_from_trigger=True,
    )
    trigger.clock = lambda: SUBMITTED
    events = [event async for event in trigger.run()]
    assert len(events) == 1 and isinstance(events[0], TaskSuccessEvent)
    value = events[0].xcoms["return_value"]
    assert set(value) == {"uci-response-exhaust"}
    assert (
        value["uci-response-exhaust"]["outcome"] == "files"
        and value["uci-response-exhaust"]["file_count"] == 1
    )
    assert "://" not in json.dumps(value), "no URL travels in XCom"


@pytest.mark.asyncio
async def test_one_trigger_waits_for_both_jobs_each_on_its_night(jobs: Jobs, quiet: Emulator) -> None:
    from airflow.triggers.base import TaskSuccessEvent

    response, private = jobs.submit(), jobs.submit(dataset="uci-private-exhaust")
    fake = FakeTime(STARTED, quiet)
    trigger = ExhaustJobTrigger(
        jobs=[
            {
                "tag": bare(response),
                "request_id": response["requestId"],
                "dataset": "uci-response-exhaust",
                "run_at": "02:00",
            },
            {
                "tag": bare(private),
                "request_id": private["requestId"],
                "dataset": "uci-private-exhaust",
                "run_at": "03:00",
            },
        ],
        deadline=STARTED + 3 * DAY,
        grace_seconds=GRACE,
        poll_interval=POLL,
        end_from_trigger=True,
        conversation_id="c63b6faa-11a9-4259-b941-11cd2f8446c6",
    )
    trigger.clock, trigger.sleep = fake.clock, fake.sleep

    def night(count: int) -> None:
        if count == 1:
            jobs.succeed(response)  # the 02:00 run made the response exhaust
        else:
            jobs.fail(private, "No data found")  # the 03:00 run found no users in the range

    fake.on_sleep = night
    events = [event async for event in trigger.run()]
    assert len(events) == 1 and isinstance(events[0], TaskSuccessEvent)
    assert fake.wakes == [FIRST_LOOK, ist(2024, 6, 13, 3, 10)], "each job looked at after its own night's run"
    assert trigger.reads == 5, "both at once, both at 02:10, the private one at 03:10"
    value = events[0].xcoms["return_value"]
    assert list(value) == ["uci-response-exhaust", "uci-private-exhaust"]
    assert (
        value["uci-response-exhaust"]["outcome"] == "files"
        and value["uci-response-exhaust"]["file_count"] == 1
    )
    assert (
        value["uci-private-exhaust"]["outcome"] == "empty" and value["uci-private-exhaust"]["file_count"] == 0
    )
    assert value["uci-private-exhaust"]["request_id"] == private["requestId"]
    assert "://" not in json.dumps(value), "no URL travels in XCom"
