"""ExhaustJobTrigger: waits in the triggerer for an exhaust job to finish, sleeping through the day.

It only reads (never submits), so a restarted triggerer cannot submit twice; its kwargs are
primitives (strings, epoch floats, ints), and every wait is derived from the absolute times in them,
so running it again from the start after a restart neither lengthens nor repeats anything. It yields
exactly one event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_uci.hooks.wire import DEFAULT_CONN_ID
from airflow_provider_uci.models import (
    MAX_ATTEMPTS,
    ExhaustApiError,
    ExhaustJob,
    ExhaustJobNotFound,
    JobStatus,
)
from airflow_provider_uci.schedule import NightlySchedule


def job_event(status: str, job: ExhaustJob | None, message: str, **extra: Any) -> TriggerEvent:
    """An event carrying identifiers only (no URLs): the sensor reads them again when it needs them."""
    payload: dict[str, Any] = {"status": status, "message": message}
    if job is not None:
        payload["job"] = {**job.identifiers(), "status": job.status_text, "attempts": job.attempts,
                          "file_count": len(job.download_urls), "status_message": job.status_message}
    payload.update(extra)
    return TriggerEvent(payload)


class ExhaustJobTrigger(BaseTrigger):
    """Poll one job across nightly runs until it succeeds, fails for good, or the deadline passes.

    :param tag: the job's tag (bare or ``tag:channel``).
    :param request_id: the job's request id.
    :param deadline: epoch seconds after which the wait ends with a ``timeout`` event.
    :param uci_exhaust_conn_id: the Airflow connection id.
    :param run_at: ``HH:MM`` of the nightly run, or ``None`` to poll every ``poll_interval``.
    :param timezone: zone of ``run_at``.
    :param grace_seconds: first look this long after the run starts.
    :param window_seconds: how long a run can take.
    :param poll_interval: seconds between looks while a run may be working.
    :param fail_on_first_failure: end at the first FAILED instead of waiting for the nightly retries.
    :param max_transient_failures: consecutive failed reads (each already retried by the hook) to bear.
    """

    def __init__(self, *, tag: str, request_id: str, deadline: float, uci_exhaust_conn_id: str = DEFAULT_CONN_ID,
                 run_at: str | None = "02:00", timezone: str = "Asia/Kolkata", grace_seconds: float = 600.0,
                 window_seconds: float = 4 * 3600.0, poll_interval: float = 600.0,
                 fail_on_first_failure: bool = False, max_transient_failures: int = 5,
                 max_attempts: int = MAX_ATTEMPTS) -> None:
        super().__init__()
        self.tag = tag
        self.request_id = request_id
        self.deadline = float(deadline)
        self.uci_exhaust_conn_id = uci_exhaust_conn_id
        self.schedule = NightlySchedule(run_at=run_at, timezone=timezone, grace_seconds=float(grace_seconds),
                                        window_seconds=float(window_seconds), poll_interval=float(poll_interval))
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
                "tag": self.tag, "request_id": self.request_id, "deadline": self.deadline,
                "uci_exhaust_conn_id": self.uci_exhaust_conn_id, "run_at": self.schedule.run_at,
                "timezone": self.schedule.timezone, "grace_seconds": self.schedule.grace_seconds,
                "window_seconds": self.schedule.window_seconds, "poll_interval": self.schedule.poll_interval,
                "fail_on_first_failure": self.fail_on_first_failure,
                "max_transient_failures": self.max_transient_failures, "max_attempts": self.max_attempts,
            },
        )

    def hook(self) -> Any:
        """The async hook (imported here: the triggerer imports this module inside its event loop)."""
        from airflow_provider_uci.hooks.exhaust import UciExhaustAsyncHook

        return UciExhaustAsyncHook(self.uci_exhaust_conn_id)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self.hook()
        failures = 0
        while True:
            now = self.clock()
            if now >= self.deadline:
                yield job_event("timeout", None, f"job {self.request_id} did not finish before the sensor's timeout")
                return
            try:
                self.reads += 1
                job = await hook.read_request(self.tag, self.request_id)
            except ExhaustJobNotFound as exc:
                yield job_event("error", None, f"job {self.request_id} under tag {self.tag!r}: {exc}")
                return
            except ExhaustApiError as exc:
                yield job_event("error", None, str(exc))
                return
            except Exception as exc:  # noqa: BLE001 - transient: bear a bounded run of them
                failures += 1
                self.log.warning("Reading job %s failed (%d in a row, %d allowed): %s", self.request_id, failures,
                                 self.max_transient_failures, exc)
                if failures > self.max_transient_failures:
                    yield job_event("error", None, f"gave up reading job {self.request_id} after {failures} "
                                                   f"consecutive failures; last: {exc}")
                    return
                await self.sleep(max(0.0, min(self.schedule.poll_interval, self.deadline - now)))
                continue
            failures = 0
            if job.status is JobStatus.SUCCESS:
                yield job_event("success", job, f"job {job.request_id} succeeded")
                return
            if job.status is JobStatus.FAILED:
                if self.fail_on_first_failure or job.attempts >= self.max_attempts:
                    yield job_event("failed", job, job.status_message or "the job failed")
                    return
                waiting_since = job.completed_at.timestamp() if job.completed_at else None
                self.log.info("Job %s failed (attempt %d of %d): %s; the service retries it at its next run",
                              job.request_id, job.attempts, self.max_attempts, job.status_message)
            else:
                waiting_since = job.submitted_at.timestamp() if job.submitted_at else None
            wake = min(self.schedule.next_check(now, waiting_since), self.deadline)
            self.log.info("Job %s is %s; next look at %s", job.request_id, job.status_text,
                          time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(wake)))
            await self.sleep(max(0.0, wake - self.clock()))
