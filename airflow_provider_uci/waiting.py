"""Waiting for a bot's exhaust jobs: what the sensor and the request operator share.

:class:`WaitsForJobs` knows the nightly schedule (02:00 response, 03:00 private, Asia/Kolkata), reads
the jobs once, defers to :class:`~airflow_provider_uci.triggers.exhaust.ExhaustJobTrigger` (one trigger
for all of a bot's jobs) and turns the trigger's one event into the task's outcome. A job has answered
when it succeeded, or failed with exactly ``No data found`` (an *empty* outcome: the service makes no
file for a range without data, and its retry would read the same days). A FAILED job with a nightly
retry to come is waited for unless ``fail_on_first_failure``; a job failed for good, or a bot the
connection's channel does not own, fails the task at once, without Airflow's retries.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowSensorTimeout

from airflow_provider_uci.hooks.wire import read_settings
from airflow_provider_uci.models import MAX_ATTEMPTS, ExhaustError, ExhaustFatalError, Outcome, job_failure
from airflow_provider_uci.schedule import (
    DEFAULT_GRACE_SECONDS,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_WINDOW_SECONDS,
    NIGHTLY_RUN,
    SCHEDULE_TIMEZONE,
)
from airflow_provider_uci.triggers.exhaust import ExhaustJobTrigger, describe_job, wait_result

if TYPE_CHECKING:  # imported where the service is called: a task process that never calls it skips the HTTP provider
    from airflow_provider_uci.hooks.exhaust import UciExhaustHook

#: How long a wait lasts at most before it fails (two nights and a day).
DEFAULT_WAIT_TIMEOUT = 48 * 3600.0


class WaitsForJobs(BaseOperator):
    """Base of an operator that waits for exhaust jobs in the triggerer (an operator itself, so that Airflow's
    ``partial()`` knows its parameters).

    :param run_at: ``"nightly"`` (each dataset's run time, the default), a run time ``HH:MM``, or ``None``
        / ``"continuous"`` to poll every ``poll_interval`` all day. Templated.
    :param poll_interval: seconds between looks while a run may be working. Templated.
    :param schedule_timezone: the time zone of the nightly runs.
    :param grace_seconds: how long after a run's start the first look comes.
    :param window_seconds: how long after a run's start looks go on before sleeping to the next night.
    :param fail_on_first_failure: fail on a FAILED job even when the service will retry it.
    :param max_transient_failures: consecutive failed reads the trigger bears before it gives up.
    :param end_from_trigger: when the jobs have answered, end the task in the triggerer (default), so no
        worker process runs again for it; a failure still resumes it on a worker to raise its error.
    """

    conversation_id: Any
    uci_exhaust_conn_id: str

    def __init__(self, *, run_at: str | None = "nightly", poll_interval: float | str = DEFAULT_POLL_INTERVAL,
                 schedule_timezone: str = SCHEDULE_TIMEZONE, grace_seconds: float = DEFAULT_GRACE_SECONDS,
                 window_seconds: float = DEFAULT_WINDOW_SECONDS, fail_on_first_failure: bool = False,
                 max_transient_failures: int = 5, end_from_trigger: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.run_at = run_at
        self.poll_interval = poll_interval
        self.schedule_timezone = schedule_timezone
        self.grace_seconds = grace_seconds
        self.window_seconds = window_seconds
        self.fail_on_first_failure = fail_on_first_failure
        self.max_transient_failures = max_transient_failures
        self.end_from_trigger = end_from_trigger

    def _bot(self, jobs: list[dict[str, Any]]) -> str:
        return str(self.conversation_id or (jobs[0].get("conversation_id") if jobs else None) or "(unknown bot)")

    def _run_at(self, dataset: str | None) -> str | None:
        run_at = None if self.run_at is None else str(self.run_at).strip()
        if run_at == "nightly":
            return NIGHTLY_RUN.get(dataset or "", "02:00")
        if run_at in (None, "", "none", "None", "continuous"):
            return None
        return run_at

    def _log_answers(self, bot: str, answered: list[dict[str, Any]]) -> None:
        for job in answered:
            if job.get("outcome") == Outcome.EMPTY.value:
                self.log.info("Bot %s: %s job %s found no data in %s..%s (nothing to copy)", bot, job.get("dataset"),
                              job.get("request_id"), job.get("start_date"), job.get("end_date"))
            else:
                self.log.info("Bot %s: %s job %s succeeded with %d file(s)", bot, job.get("dataset"),
                              job.get("request_id"), job.get("file_count", 0))

    def _look(self, jobs: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        """Read each job once: the answers when all have answered, else ``None``; raise for a failure."""
        bot = self._bot(jobs)
        from airflow_provider_uci.hooks.exhaust import UciExhaustHook
        hook = UciExhaustHook(self.uci_exhaust_conn_id)
        answered = []
        for ref in jobs:
            job = hook.read_request(ref["tag"], ref["request_id"])
            outcome = job.outcome(self.fail_on_first_failure, MAX_ATTEMPTS)
            self.log.info("Bot %s: %s job %s is %s, attempts %d", bot, job.dataset, job.request_id, job.status_text,
                          job.attempts)
            if outcome.is_final and not outcome.is_answer:
                raise job.failure()
            if outcome.is_answer:
                answered.append(describe_job(job, outcome))
        if len(answered) < len(jobs):
            return None
        self._log_answers(bot, answered)
        return answered

    def _defer_wait(self, jobs: list[dict[str, Any]], *, by_dataset: bool, timeout: float,
                    resume: dict[str, Any] | None = None) -> None:
        """Hand the wait to the triggerer; ``execute_complete`` gets the event (and ``resume`` as kwargs)."""
        self.defer(  # type: ignore[attr-defined]
            trigger=ExhaustJobTrigger(
                jobs=[{"tag": job["tag"], "request_id": job["request_id"], "dataset": job.get("dataset"),
                       "run_at": self._run_at(job.get("dataset"))} for job in jobs],
                deadline=time.time() + timeout, uci_exhaust_conn_id=self.uci_exhaust_conn_id,
                conversation_id=self._bot(jobs), timezone=self.schedule_timezone,
                grace_seconds=self.grace_seconds, window_seconds=self.window_seconds,
                poll_interval=float(self.poll_interval), fail_on_first_failure=self.fail_on_first_failure,
                max_transient_failures=self.max_transient_failures, end_from_trigger=self.end_from_trigger,
                result_by_dataset=by_dataset,
            ),
            method_name="execute_complete",
            kwargs=resume,
            timeout=timedelta(seconds=timeout + 300),
        )

    def _finish(self, event: dict[str, Any] | str, jobs: list[dict[str, Any]], by_dataset: bool) -> Any:
        """Turn the trigger's one event into the task's return value, or raise its failure."""
        if event == "success":  # a TaskSuccessEvent resumed on a worker (``dag.test()`` does so): read again
            answered = self._look(jobs)
            if answered is None:
                raise ExhaustError("the trigger ended the wait, but the jobs have not all answered")
            return wait_result(answered, by_dataset)
        if not isinstance(event, dict):
            raise ExhaustError(f"unexpected trigger event {event!r}")
        status = event.get("status")
        if status == "success":
            answered = list(event.get("jobs") or [event["job"]])
            self._log_answers(self._bot(answered), answered)
            return wait_result(answered, by_dataset)
        if status == "timeout":
            raise AirflowSensorTimeout(event.get("message", "the exhaust jobs did not finish in time"))
        if status == "failed":
            job = dict(event.get("job") or {})
            job["status_message"] = job.get("status_message") or event.get("message")
            if not job.get("channel"):
                job["channel"] = read_settings(self.uci_exhaust_conn_id).channel
            raise job_failure(job)
        message = event.get("message", f"unexpected trigger event {status!r}")
        if event.get("fatal"):
            raise ExhaustFatalError(message)
        raise ExhaustError(message)
