"""ExhaustJobTrigger: waits in the triggerer for a bot's exhaust jobs to finish, sleeping through the day.

It only reads (never submits), so a restarted triggerer cannot submit twice; its kwargs are
primitives (strings, epoch floats, ints, and a list of small dicts of them), and every wait is derived
from the absolute times in them, so running it again from the start after a restart neither lengthens
nor repeats anything. One trigger waits for all of a bot's jobs (the response and the private exhaust,
each on its own nightly run), so a bot holds one trigger, not two. It yields exactly one event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from airflow.triggers.base import BaseTrigger, TaskSuccessEvent, TriggerEvent

from airflow_provider_uci.hooks.wire import DEFAULT_CONN_ID
from airflow_provider_uci.models import (
    MAX_ATTEMPTS,
    ExhaustApiError,
    ExhaustJob,
    ExhaustJobNotFound,
    JobStatus,
    Outcome,
)
from airflow_provider_uci.schedule import (
    DEFAULT_GRACE_SECONDS,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_WINDOW_SECONDS,
    SCHEDULE_TIMEZONE,
    NightlySchedule,
    describe_instant,
)


def describe_job(job: ExhaustJob, outcome: Outcome) -> dict[str, Any]:
    """What an event says of a job: identifiers, state and outcome (never URLs)."""
    return {**job.describe(), "outcome": outcome.value}


#: What a wait hands on of each job (identifiers, state, outcome): never URLs.
RESULT_KEYS = ("request_id", "tag", "dataset", "conversation_id", "start_date", "end_date", "status", "attempts",
               "file_count", "outcome")


def wait_result(answered: Sequence[dict[str, Any]], by_dataset: bool) -> dict[str, Any]:
    """The wait's return value: ``{dataset: job}`` when ``by_dataset``, else the one job (or ``{"jobs": [...]}``)."""
    described = [{key: job[key] for key in RESULT_KEYS if key in job} for job in answered]
    if by_dataset:
        return {str(job.get("dataset") or job["request_id"]): job for job in described}
    return described[0] if len(described) == 1 else {"jobs": described}


def job_event(status: str, job: ExhaustJob | None, message: str, outcome: Outcome | None = None,
              **extra: Any) -> TriggerEvent:
    """An event carrying identifiers only (no URLs): the sensor reads them again when it needs them."""
    payload: dict[str, Any] = {"status": status, "message": message}
    if job is not None:
        payload["job"] = describe_job(job, outcome or job.outcome())
    payload.update(extra)
    return TriggerEvent(payload)


class ExhaustJobTrigger(BaseTrigger):
    """Poll one bot's jobs across nightly runs until each has answered, one fails for good, or the deadline passes.

    A job has answered when it succeeded (its files are ready) or failed with exactly ``No data found``
    (nothing in the range; the service's retry would find the same). A FAILED job with a nightly retry
    to come is waited for; one failed for good, or of a bot the channel does not own, ends the wait at
    once. The event: ``success`` with ``jobs`` (each with its ``outcome``: ``files`` or ``empty``),
    ``failed`` with the ``job`` at fault, ``timeout``, or ``error``.

    :param jobs: the jobs, each ``{"tag", "request_id", "dataset", "run_at"}`` (``run_at``: ``HH:MM`` of
        its nightly run, or ``None`` to poll every ``poll_interval``). Or give one job as ``tag``,
        ``request_id`` and ``run_at``.
    :param deadline: epoch seconds after which the wait ends with a ``timeout`` event.
    :param uci_exhaust_conn_id: the Airflow connection id.
    :param conversation_id: the bot, named in log lines.
    :param timezone: zone of the ``run_at`` times.
    :param grace_seconds: first look this long after a run starts.
    :param window_seconds: how long a run can take.
    :param poll_interval: seconds between looks while a run may be working.
    :param fail_on_first_failure: end at the first FAILED instead of waiting for the nightly retries.
    :param max_transient_failures: consecutive failed reads (each already retried by the hook) to bear.
    :param end_from_trigger: on success, end the task from the triggerer (a ``TaskSuccessEvent`` carrying
        the wait's return value as XCom, shaped by ``result_by_dataset``), so no worker runs it again;
        any other end still resumes the task on a worker, which raises the right error.
    :param result_by_dataset: the return value's shape (see :func:`wait_result`).
    """

    def __init__(self, *, deadline: float, jobs: Sequence[dict[str, Any]] | None = None, tag: str | None = None,
                 request_id: str | None = None, run_at: str | None = "02:00",
                 uci_exhaust_conn_id: str = DEFAULT_CONN_ID, conversation_id: str | None = None,
                 timezone: str = SCHEDULE_TIMEZONE, grace_seconds: float = DEFAULT_GRACE_SECONDS,
                 window_seconds: float = DEFAULT_WINDOW_SECONDS, poll_interval: float = DEFAULT_POLL_INTERVAL,
                 fail_on_first_failure: bool = False, max_transient_failures: int = 5,
                 max_attempts: int = MAX_ATTEMPTS, end_from_trigger: bool = False,
                 result_by_dataset: bool = False) -> None:
        super().__init__()
        self.end_from_trigger = bool(end_from_trigger)
        self.result_by_dataset = bool(result_by_dataset)
        if jobs is None:
            if not (tag and request_id):
                raise ValueError("ExhaustJobTrigger: give jobs, or tag and request_id")
            jobs = [{"tag": tag, "request_id": request_id, "dataset": None, "run_at": run_at}]
        if not jobs:
            raise ValueError("ExhaustJobTrigger: jobs must not be empty")
        self.jobs = [{"tag": str(job["tag"]), "request_id": str(job["request_id"]),
                      "dataset": job.get("dataset"), "run_at": job.get("run_at")} for job in jobs]
        self.deadline = float(deadline)
        self.uci_exhaust_conn_id = uci_exhaust_conn_id
        self.conversation_id = conversation_id
        self.timezone = timezone
        self.grace_seconds = float(grace_seconds)
        self.window_seconds = float(window_seconds)
        self.poll_interval = float(poll_interval)
        self.schedules = [NightlySchedule(run_at=job["run_at"], timezone=timezone, grace_seconds=self.grace_seconds,
                                          window_seconds=self.window_seconds, poll_interval=self.poll_interval)
                          for job in self.jobs]
        self.fail_on_first_failure = bool(fail_on_first_failure)
        self.max_transient_failures = int(max_transient_failures)
        self.max_attempts = int(max_attempts)
        self.clock = time.time
        self.sleep = asyncio.sleep
        self.reads = 0

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "jobs": [dict(job) for job in self.jobs], "deadline": self.deadline,
                "uci_exhaust_conn_id": self.uci_exhaust_conn_id, "conversation_id": self.conversation_id,
                "timezone": self.timezone, "grace_seconds": self.grace_seconds,
                "window_seconds": self.window_seconds, "poll_interval": self.poll_interval,
                "fail_on_first_failure": self.fail_on_first_failure,
                "max_transient_failures": self.max_transient_failures, "max_attempts": self.max_attempts,
                "end_from_trigger": self.end_from_trigger, "result_by_dataset": self.result_by_dataset,
            },
        )

    def hook(self) -> Any:
        """The async hook (imported here: the triggerer imports this module inside its event loop)."""
        from airflow_provider_uci.hooks.exhaust import UciExhaustAsyncHook

        return UciExhaustAsyncHook(self.uci_exhaust_conn_id)

    def _who(self, job: dict[str, Any]) -> str:
        bot = f"Bot {self.conversation_id}: " if self.conversation_id else ""
        dataset = f"{job['dataset']} " if job.get("dataset") else ""
        return f"{bot}{dataset}job {job['request_id']}"

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self.hook()
        try:
            async for event in self._wait(hook):
                yield event
        finally:
            if hasattr(hook, "aclose"):
                await hook.aclose()

    async def _wait(self, hook: Any) -> AsyncIterator[TriggerEvent]:
        """The one event of the wait, read through ``hook``."""
        waiting = list(range(len(self.jobs)))
        answered: dict[int, dict[str, Any]] = {}
        failures = 0
        while True:
            now = self.clock()
            if now >= self.deadline:
                names = ", ".join(self._who(self.jobs[index]) for index in waiting)
                yield job_event("timeout", None, f"{names}: did not finish before the sensor's timeout",
                                jobs=list(answered.values()))
                return
            wakes: list[float] = []
            transient: Exception | None = None
            for index in list(waiting):
                spec = self.jobs[index]
                try:
                    self.reads += 1
                    job = await hook.read_request(spec["tag"], spec["request_id"])
                except ExhaustJobNotFound as exc:
                    yield job_event("error", None, f"{self._who(spec)} under tag {spec['tag']!r}: {exc}")
                    return
                except ExhaustApiError as exc:
                    yield job_event("error", None, f"{self._who(spec)}: {exc}", fatal=True)
                    return
                except Exception as exc:  # noqa: BLE001 - transient: bear a bounded run of them
                    transient = exc
                    break
                outcome = job.outcome(self.fail_on_first_failure, self.max_attempts)
                if outcome.is_answer:
                    answered[index] = describe_job(job, outcome)
                    waiting.remove(index)
                    self.log.info("%s: %s (%s)", self._who(spec), job.status_text,
                                  "files ready" if outcome is Outcome.FILES else "no data in the range")
                    continue
                if outcome.is_final:
                    yield job_event("failed", job, job.status_message or "the job failed", outcome,
                                    jobs=list(answered.values()))
                    return
                if job.status is JobStatus.FAILED:
                    self.log.info("%s failed (attempt %d of %d): %s; the service retries it at its next run",
                                  self._who(spec), job.attempts, self.max_attempts, job.status_message)
                    waiting_since = job.completed_at.timestamp() if job.completed_at else None
                else:
                    waiting_since = job.submitted_at.timestamp() if job.submitted_at else None
                wake = min(self.schedules[index].next_check(now, waiting_since), self.deadline)
                self.log.info("%s is %s; next look at %s", self._who(spec), job.status_text,
                              describe_instant(wake, self.timezone))
                wakes.append(wake)
            if transient is not None:
                failures += 1
                self.log.warning("Reading %s failed (%d in a row, %d allowed): %s", self._who(self.jobs[waiting[0]]),
                                 failures, self.max_transient_failures, transient)
                if failures > self.max_transient_failures:
                    yield job_event("error", None, f"gave up reading {self._who(self.jobs[waiting[0]])} after "
                                                   f"{failures} consecutive failures; last: {transient}")
                    return
                await self.sleep(max(0.0, min(self.poll_interval, self.deadline - now)))
                continue
            failures = 0
            if not waiting:
                ordered = [answered[index] for index in sorted(answered)]
                if self.end_from_trigger:
                    self.log.info("Bot %s: every job answered; the task ends here, in the triggerer",
                                  self.conversation_id or "(unknown)")
                    yield TaskSuccessEvent(xcoms={"return_value": wait_result(ordered, self.result_by_dataset)})
                    return
                yield TriggerEvent({"status": "success", "message": "every job answered", "jobs": ordered,
                                    "job": ordered[0] if len(ordered) == 1 else None})
                return
            await self.sleep(max(0.0, min(wakes) - self.clock()))
