"""ExhaustJobTrigger: waits in the triggerer for a bot's exhaust jobs to finish, sleeping through the day.

It only reads (never submits), so a restarted triggerer cannot submit twice; its kwargs are
primitives (strings, epoch floats, ints, and a list of small dicts of them), and every wait is derived
from the absolute times in them, so running it again from the start after a restart neither lengthens
nor repeats anything. One trigger waits for all of a bot's jobs (the response and the private exhaust,
each on its own nightly run), so a bot holds one trigger, not two. It yields exactly one event.

Its arguments are written once, as the fields of :class:`TriggerArgs` (the tunables that a sensor and
an operator pass through unchanged are :class:`WaitSettings`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, cast

from airflow.triggers.base import BaseTrigger, TaskSuccessEvent, TriggerEvent

from airflow_provider_uci.botlog import prefix
from airflow_provider_uci.hooks.wire import DEFAULT_CONN_ID
from airflow_provider_uci.models import (
    MAX_ATTEMPTS,
    ExhaustApiError,
    ExhaustJob,
    ExhaustJobNotFound,
    JobStatus,
    Outcome,
)
from airflow_provider_uci.refs import ANSWER_KEYS, AnsweredJob
from airflow_provider_uci.refs import answered as answered_job
from airflow_provider_uci.schedule import (
    DEFAULT_GRACE_SECONDS,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_WINDOW_SECONDS,
    SCHEDULE_TIMEZONE,
    NightlySchedule,
    describe_instant,
)


@dataclass(frozen=True, kw_only=True)
class WaitSettings:
    """How to wait for a bot's jobs: what a sensor or an operator hands the trigger unchanged.

    :param timezone: zone of the nightly runs' ``run_at`` times.
    :param grace_seconds: first look this long after a run starts.
    :param window_seconds: how long a run can take; looks stop after it until the next night.
    :param poll_interval: seconds between looks while a run may be working.
    :param fail_on_first_failure: end at the first FAILED instead of waiting for the nightly retries.
    :param max_transient_failures: consecutive failed reads (each already retried by the hook) to bear.
    :param max_attempts: the service's attempts at a job before its FAILED is final.
    """

    timezone: str = SCHEDULE_TIMEZONE
    grace_seconds: float = DEFAULT_GRACE_SECONDS
    window_seconds: float = DEFAULT_WINDOW_SECONDS
    poll_interval: float = DEFAULT_POLL_INTERVAL
    fail_on_first_failure: bool = False
    max_transient_failures: int = 5
    max_attempts: int = MAX_ATTEMPTS

    def __post_init__(self) -> None:
        for name in ("grace_seconds", "window_seconds", "poll_interval"):
            object.__setattr__(self, name, float(getattr(self, name)))
        object.__setattr__(self, "fail_on_first_failure", bool(self.fail_on_first_failure))
        object.__setattr__(self, "max_transient_failures", int(self.max_transient_failures))
        object.__setattr__(self, "max_attempts", int(self.max_attempts))

    def schedule(self, run_at: str | None) -> NightlySchedule:
        """The schedule of a job whose nightly run starts at ``run_at`` (``None``: poll all day)."""
        return NightlySchedule(
            run_at=run_at,
            timezone=self.timezone,
            grace_seconds=self.grace_seconds,
            window_seconds=self.window_seconds,
            poll_interval=self.poll_interval,
        )


@dataclass(frozen=True, kw_only=True)
class TriggerArgs(WaitSettings):
    """The trigger's arguments, which are also what it serialises.

    :param jobs: the jobs, each ``{"tag", "request_id", "dataset", "run_at"}`` (``run_at``: ``HH:MM`` of
        its nightly run, or ``None`` to poll every ``poll_interval``).
    :param deadline: epoch seconds after which the wait ends with a ``timeout`` event.
    :param uci_exhaust_conn_id: the Airflow connection id.
    :param conversation_id: the bot, named in log lines.
    :param end_from_trigger: on success, end the task from the triggerer (a ``TaskSuccessEvent`` whose
        XCom is the wait's ``{dataset: answered job}``), so no worker runs it again; any other end still
        resumes the task on a worker, which raises the right error.
    """

    jobs: list[dict[str, Any]] = field(default_factory=list)
    deadline: float = 0.0
    uci_exhaust_conn_id: str = DEFAULT_CONN_ID
    conversation_id: str | None = None
    end_from_trigger: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.jobs:
            raise ValueError("ExhaustJobTrigger: jobs must not be empty")
        object.__setattr__(
            self,
            "jobs",
            [
                {
                    "tag": str(job["tag"]),
                    "request_id": str(job["request_id"]),
                    "dataset": job.get("dataset"),
                    "run_at": job.get("run_at"),
                }
                for job in self.jobs
            ],
        )
        object.__setattr__(self, "deadline", float(self.deadline))
        object.__setattr__(self, "end_from_trigger", bool(self.end_from_trigger))

    @classmethod
    def of(cls, settings: WaitSettings, **args: Any) -> TriggerArgs:
        """``settings`` with the wait's own ``args`` (jobs, deadline, connection, bot, end_from_trigger)."""
        return cls(**{item.name: getattr(settings, item.name) for item in fields(WaitSettings)}, **args)


def wait_result(jobs: Sequence[Mapping[str, Any]]) -> dict[str, AnsweredJob]:
    """The wait's value: ``{dataset: answered job}`` (identifiers, state and outcome; never URLs)."""
    return {
        str(job.get("dataset") or job["request_id"]): cast(
            AnsweredJob, {key: job[key] for key in ANSWER_KEYS if key in job}
        )
        for job in jobs
    }


def job_event(
    status: str, job: ExhaustJob | None, message: str, outcome: Outcome | None = None, **extra: Any
) -> TriggerEvent:
    """An event carrying identifiers only (no URLs): the sensor reads them again when it needs them."""
    payload: dict[str, Any] = {"status": status, "message": message}
    if job is not None:
        payload["job"] = {**job.describe(), "outcome": (outcome or job.outcome()).value}
    payload.update(extra)
    return TriggerEvent(payload)


class ExhaustJobTrigger(BaseTrigger):
    """Poll one bot's jobs across nightly runs until each has answered, one fails for good, or the deadline passes.

    A job has answered when it succeeded (its files are ready) or failed with exactly ``No data found``
    (nothing in the range; the service's retry would find the same). A FAILED job with a nightly retry
    to come is waited for; one failed for good, or of a bot the channel does not own, ends the wait at
    once. The event: ``success`` with ``jobs`` (each with its ``outcome``: ``files`` or ``empty``),
    ``failed`` with the ``job`` at fault, ``timeout``, or ``error``.

    Takes the fields of :class:`TriggerArgs` as keyword arguments.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        self.args = TriggerArgs(**kwargs)
        self.schedules = [self.args.schedule(job["run_at"]) for job in self.args.jobs]
        self.clock = time.time
        self.sleep = asyncio.sleep
        self.reads = 0

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", asdict(self.args)

    def hook(self) -> Any:
        """The async hook (imported here: the triggerer imports this module inside its event loop)."""
        from airflow_provider_uci.hooks.exhaust import UciExhaustAsyncHook

        return UciExhaustAsyncHook(self.args.uci_exhaust_conn_id)

    def _who(self, job: dict[str, Any]) -> str:
        bot = prefix(self.args.conversation_id)
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
        waiting = list(range(len(self.args.jobs)))
        answered: dict[int, dict[str, Any]] = {}
        failures = 0
        while True:
            now = self.clock()
            if now >= self.args.deadline:
                yield self._timeout(waiting, answered)
                return
            wakes: list[float] = []
            transient: Exception | None = None
            for index in list(waiting):
                try:
                    self.reads += 1
                    job = await self._read(hook, self.args.jobs[index])
                except Exception as exc:  # the hook already retried it: counted against the bearable failures
                    transient = exc
                    break
                step = (
                    job if isinstance(job, TriggerEvent) else self._judge(index, job, now, answered, waiting)
                )
                if isinstance(step, TriggerEvent):
                    yield step
                    return
                if step is not None:
                    wakes.append(step)
            if transient is not None:
                failures += 1
                if (event := self._bear(failures, transient, waiting)) is not None:
                    yield event
                    return
                await self.sleep(max(0.0, min(self.args.poll_interval, self.args.deadline - now)))
                continue
            failures = 0
            if not waiting:
                yield self._success([answered[index] for index in sorted(answered)])
                return
            await self.sleep(max(0.0, min(wakes) - self.clock()))

    async def _read(self, hook: Any, spec: dict[str, Any]) -> ExhaustJob | TriggerEvent:
        """The job as the service reports it, or the ``error`` event of an answer no retry changes
        (no such job, or a refusal); any other failure is raised."""
        try:
            job: ExhaustJob = await hook.read_request(spec["tag"], spec["request_id"])
        except ExhaustJobNotFound as exc:
            return job_event("error", None, f"{self._who(spec)} under tag {spec['tag']!r}: {exc}")
        except ExhaustApiError as exc:
            return job_event("error", None, f"{self._who(spec)}: {exc}", fatal=True)
        return job

    def _judge(
        self, index: int, job: ExhaustJob, now: float, answered: dict[int, dict[str, Any]], waiting: list[int]
    ) -> TriggerEvent | float | None:
        """What job ``index``'s state means: ``None`` when it has answered (moved from ``waiting`` to
        ``answered``), the ``failed`` event when it failed for good, else when to look at it next."""
        spec = self.args.jobs[index]
        outcome = job.outcome(self.args.fail_on_first_failure, self.args.max_attempts)
        if outcome.is_answer:
            answered[index] = dict(answered_job(job, outcome))
            waiting.remove(index)
            self.log.info(
                "%s: %s (%s)",
                self._who(spec),
                job.status_text,
                "files ready" if outcome is Outcome.FILES else "no data in the range",
            )
            return None
        if outcome.is_final:
            message = job.status_message or "the job failed"
            return job_event("failed", job, message, outcome, jobs=list(answered.values()))
        if job.status is JobStatus.FAILED:
            self.log.info(
                "%s failed (attempt %d of %d): %s; the service retries it at its next run",
                self._who(spec),
                job.attempts,
                self.args.max_attempts,
                job.status_message,
            )
            waiting_since = job.completed_at.timestamp() if job.completed_at else None
        else:
            waiting_since = job.submitted_at.timestamp() if job.submitted_at else None
        wake = min(self.schedules[index].next_check(now, waiting_since), self.args.deadline)
        self.log.info(
            "%s is %s; next look at %s",
            self._who(spec),
            job.status_text,
            describe_instant(wake, self.args.timezone),
        )
        return wake

    def _timeout(self, waiting: list[int], answered: dict[int, dict[str, Any]]) -> TriggerEvent:
        names = ", ".join(self._who(self.args.jobs[index]) for index in waiting)
        message = f"{names}: did not finish before the sensor's timeout"
        return job_event("timeout", None, message, jobs=list(answered.values()))

    def _bear(self, failures: int, transient: Exception, waiting: list[int]) -> TriggerEvent | None:
        """Log the ``failures``-th failed read in a row; the ``error`` event once they are too many."""
        who = self._who(self.args.jobs[waiting[0]])
        self.log.warning(
            "Reading %s failed (%d in a row, %d allowed): %s",
            who,
            failures,
            self.args.max_transient_failures,
            transient,
        )
        if failures <= self.args.max_transient_failures:
            return None
        return job_event(
            "error", None, f"gave up reading {who} after {failures} consecutive failures; last: {transient}"
        )

    def _success(self, ordered: list[dict[str, Any]]) -> TriggerEvent:
        """The end of a wait in which every job answered (``ordered`` as the jobs were given)."""
        if self.args.end_from_trigger:
            self.log.info(
                "%severy job answered; the task ends here, in the triggerer",
                prefix(self.args.conversation_id),
            )
            # JSON all through (refs), though Airflow's JsonValue type cannot see it in a TypedDict
            value: dict[str, Any] = wait_result(ordered)
            return TaskSuccessEvent(xcoms={"return_value": value})
        return TriggerEvent(
            {
                "status": "success",
                "message": "every job answered",
                "jobs": ordered,
                "job": ordered[0] if len(ordered) == 1 else None,
            }
        )
