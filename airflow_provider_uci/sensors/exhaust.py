"""ExhaustJobSensor: wait for an exhaust job without holding a worker, knowing the nightly schedule."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator, Context, PokeReturnValue
from airflow.sdk.exceptions import AirflowSensorTimeout

from airflow_provider_uci.hooks.exhaust import UciExhaustHook
from airflow_provider_uci.hooks.wire import DEFAULT_CONN_ID
from airflow_provider_uci.models import (
    MAX_ATTEMPTS,
    ExhaustError,
    ExhaustJob,
    ExhaustJobFailed,
    JobStatus,
)
from airflow_provider_uci.schedule import NIGHTLY_RUN, SCHEDULE_TIMEZONE
from airflow_provider_uci.triggers.exhaust import ExhaustJobTrigger
from airflow_provider_uci.xcom import pull_from

DEFAULT_TIMEOUT = 48 * 3600.0


class ExhaustJobSensor(BaseSensorOperator):
    """Wait until an exhaust job succeeds; fail when it fails for good.

    Pokes once; if the job is not finished, defers to :class:`ExhaustJobTrigger`, which sleeps until
    the service's nightly run (02:00 response, 03:00 private, Asia/Kolkata) plus ``grace_seconds``,
    polls every ``poll_interval`` while the run may be working, and sleeps to the next night otherwise.
    A FAILED job with fewer than 3 attempts is retried by the service at its next run, so the sensor
    keeps waiting unless ``fail_on_first_failure``. Returns the job's identifiers and file count.

    Give the job as ``tag`` and ``request_id`` (templated), or as ``submit_task_id``: the task id of a
    :class:`~airflow_provider_uci.operators.exhaust.SubmitExhaustOperator` whose XCom holds them.

    :param dataset: picks the nightly run time (``uci-response-exhaust`` 02:00, ``uci-private-exhaust`` 03:00).
    :param run_at: ``"nightly"`` (the dataset's run time, the default), a run time ``HH:MM``, or ``None``
        / ``"continuous"`` to poll every ``poll_interval`` all day. Templated.
    :param poll_interval: seconds between looks while a run may be working. Templated.
    :param timeout: seconds before the sensor fails without retry (default 48 h); ``soft_fail`` skips instead.
    :param max_transient_failures: consecutive failed reads the trigger bears before it gives up.
    """

    template_fields: Sequence[str] = ("tag", "request_id", "dataset", "uci_exhaust_conn_id", "run_at", "poll_interval")
    ui_color = "#e8f4f0"

    def __init__(self, *, tag: str | None = None, request_id: str | None = None, submit_task_id: str | None = None,
                 dataset: str | None = None, uci_exhaust_conn_id: str = DEFAULT_CONN_ID,
                 run_at: str | None = "nightly", schedule_timezone: str = SCHEDULE_TIMEZONE,
                 grace_seconds: float = 600.0, window_seconds: float = 4 * 3600.0, poll_interval: float | str = 600.0,
                 fail_on_first_failure: bool = False, max_transient_failures: int = 5, deferrable: bool = True,
                 timeout: float = DEFAULT_TIMEOUT, **kwargs: Any) -> None:
        kwargs.setdefault("mode", "reschedule" if not deferrable else "poke")
        if isinstance(poll_interval, (int, float)):
            kwargs.setdefault("poke_interval", poll_interval)  # a templated value is rendered at run time
        super().__init__(timeout=timeout, **kwargs)
        if not submit_task_id and not (tag and request_id):
            raise ValueError("ExhaustJobSensor: give tag and request_id, or submit_task_id")
        self.tag = tag
        self.request_id = request_id
        self.submit_task_id = submit_task_id
        self.dataset = dataset
        self.uci_exhaust_conn_id = uci_exhaust_conn_id
        self.run_at = run_at
        self.schedule_timezone = schedule_timezone
        self.grace_seconds = grace_seconds
        self.window_seconds = window_seconds
        self.poll_interval = poll_interval
        self.fail_on_first_failure = fail_on_first_failure
        self.max_transient_failures = max_transient_failures
        self.deferrable = deferrable

    def _job_ref(self, context: Context) -> tuple[str, str, str | None]:
        if self.submit_task_id:
            pushed = pull_from(context, self.submit_task_id)
            if not isinstance(pushed, dict) or "request_id" not in pushed:
                raise ExhaustError(f"task {self.submit_task_id!r} pushed no exhaust job to XCom")
            return pushed["tag"], pushed["request_id"], self.dataset or pushed.get("dataset")
        assert self.tag and self.request_id
        return self.tag, self.request_id, self.dataset

    def _run_at(self, dataset: str | None) -> str | None:
        run_at = None if self.run_at is None else str(self.run_at).strip()
        if run_at == "nightly":
            return NIGHTLY_RUN.get(dataset or "", "02:00")
        if run_at in (None, "", "none", "None", "continuous"):
            return None
        return run_at

    @staticmethod
    def _result(job: ExhaustJob) -> dict[str, Any]:
        return {**job.identifiers(), "status": job.status_text, "attempts": job.attempts,
                "file_count": len(job.download_urls)}

    def _check(self, job: ExhaustJob) -> bool:
        """True when done; raise when failed for good; False to keep waiting."""
        if job.status is JobStatus.SUCCESS:
            return True
        if job.status is JobStatus.FAILED and (self.fail_on_first_failure or job.attempts >= MAX_ATTEMPTS):
            raise ExhaustJobFailed(job)
        return False

    def poke(self, context: Context) -> PokeReturnValue:
        tag, request_id, _ = self._job_ref(context)
        job = UciExhaustHook(self.uci_exhaust_conn_id).read_request(tag, request_id)
        self.log.info("Job %s (%s): %s, attempts %d", job.request_id, job.dataset, job.status_text, job.attempts)
        done = self._check(job)
        return PokeReturnValue(is_done=done, xcom_value=self._result(job) if done else None)

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        first = self.poke(context)
        if first.is_done:
            return first.xcom_value
        tag, request_id, dataset = self._job_ref(context)
        deadline = time.time() + self.timeout
        self.defer(
            trigger=ExhaustJobTrigger(
                tag=tag, request_id=request_id, deadline=deadline, uci_exhaust_conn_id=self.uci_exhaust_conn_id,
                run_at=self._run_at(dataset), timezone=self.schedule_timezone, grace_seconds=self.grace_seconds,
                window_seconds=self.window_seconds, poll_interval=float(self.poll_interval),
                fail_on_first_failure=self.fail_on_first_failure,
                max_transient_failures=self.max_transient_failures,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout + 300),
        )
        return None

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Turn the trigger's one event into the task's outcome."""
        status = event.get("status")
        job = event.get("job") or {}
        if status == "success":
            self.log.info("Job %s succeeded with %d file(s)", job.get("request_id"), job.get("file_count", 0))
            return {key: job[key] for key in ("request_id", "tag", "dataset", "conversation_id", "start_date",
                                              "end_date", "status", "attempts", "file_count") if key in job}
        if status == "timeout":
            raise AirflowSensorTimeout(event.get("message", "the exhaust job did not finish in time"))
        if status == "failed":
            raise ExhaustError(f"exhaust job {job.get('request_id')} ({job.get('dataset')}) failed after "
                               f"{job.get('attempts')} attempt(s): {event.get('message')}")
        raise ExhaustError(event.get("message", f"unexpected trigger event {status!r}"))
