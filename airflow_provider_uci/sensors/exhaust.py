"""ExhaustJobSensor: wait for a bot's exhaust jobs without holding a worker, knowing the nightly schedule."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator, Context, PokeReturnValue
from airflow.sdk.exceptions import AirflowSensorTimeout

from airflow_provider_uci.hooks.exhaust import UciExhaustHook
from airflow_provider_uci.hooks.wire import DEFAULT_CONN_ID
from airflow_provider_uci.jobrefs import is_job, job_list
from airflow_provider_uci.models import (
    MAX_ATTEMPTS,
    ExhaustError,
    ExhaustFatalError,
    Outcome,
    job_failure,
)
from airflow_provider_uci.schedule import (
    DEFAULT_GRACE_SECONDS,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_WINDOW_SECONDS,
    NIGHTLY_RUN,
    SCHEDULE_TIMEZONE,
)
from airflow_provider_uci.triggers.exhaust import ExhaustJobTrigger, describe_job, wait_result
from airflow_provider_uci.xcom import pull_from

DEFAULT_TIMEOUT = 48 * 3600.0


class ExhaustJobSensor(BaseSensorOperator):
    """Wait until a bot's exhaust jobs have answered; fail at once when one fails for good.

    Pokes once; if a job is not finished, defers to :class:`ExhaustJobTrigger` (one trigger for all
    the jobs), which sleeps until each job's nightly run (02:00 response, 03:00 private,
    Asia/Kolkata) plus ``grace_seconds``, polls every ``poll_interval`` while the run may be working,
    and sleeps to the next night otherwise.

    A job has answered when it succeeded, or failed with exactly ``No data found``: the service makes
    no file for a range without data, and its retry would read the same days, so that is an *empty*
    outcome, not a failure. A FAILED job with fewer than 3 attempts is retried by the service at its
    next run, so the sensor keeps waiting unless ``fail_on_first_failure``. A job failed for good, or
    a bot the connection's channel does not own (``No data found for conversation in DB``), fails the
    task at once, without Airflow's retries.

    Give the jobs as ``jobs`` (templated; e.g. ``submit.output``: one job's identifiers, or a mapping
    of dataset to identifiers), as ``tag`` and ``request_id``, or as ``submit_task_id`` (a task whose
    XCom holds them). Returns, for ``jobs`` given as a mapping, ``{dataset: job}``; otherwise the one
    job: each with its identifiers, ``status``, ``attempts``, ``file_count`` and ``outcome``
    (``files`` or ``empty``).

    :param conversation_id: the bot, for log lines and the task's label (map index). Templated.
    :param dataset: picks the nightly run time of a job given by ``tag``/``request_id``.
    :param run_at: ``"nightly"`` (each dataset's run time, the default), a run time ``HH:MM``, or ``None``
        / ``"continuous"`` to poll every ``poll_interval`` all day. Templated.
    :param poll_interval: seconds between looks while a run may be working. Templated.
    :param timeout: seconds before the sensor fails without retry (default 48 h); ``soft_fail`` skips instead.
    :param max_transient_failures: consecutive failed reads the trigger bears before it gives up.
    :param end_from_trigger: when the jobs have answered, end the task in the triggerer (default), so no
        worker process runs again for it; a failure still resumes it on a worker to raise its error.
    """

    template_fields: Sequence[str] = ("jobs", "tag", "request_id", "dataset", "conversation_id",
                                      "uci_exhaust_conn_id", "run_at", "poll_interval")
    ui_color = "#e8f4f0"

    def __init__(self, *, jobs: Any = None, tag: str | None = None, request_id: str | None = None,
                 submit_task_id: str | None = None, dataset: str | None = None, conversation_id: str | None = None,
                 uci_exhaust_conn_id: str = DEFAULT_CONN_ID, run_at: str | None = "nightly",
                 schedule_timezone: str = SCHEDULE_TIMEZONE, grace_seconds: float = DEFAULT_GRACE_SECONDS,
                 window_seconds: float = DEFAULT_WINDOW_SECONDS,
                 poll_interval: float | str = DEFAULT_POLL_INTERVAL, fail_on_first_failure: bool = False,
                 max_transient_failures: int = 5, deferrable: bool = True, timeout: float = DEFAULT_TIMEOUT,
                 end_from_trigger: bool = True, **kwargs: Any) -> None:
        kwargs.setdefault("mode", "reschedule" if not deferrable else "poke")
        if isinstance(poll_interval, (int, float)):
            kwargs.setdefault("poke_interval", poll_interval)  # a templated value is rendered at run time
        super().__init__(timeout=timeout, **kwargs)
        if jobs is None and not submit_task_id and not (tag and request_id):
            raise ValueError("ExhaustJobSensor: give jobs, tag and request_id, or submit_task_id")
        self.jobs = jobs
        self.tag = tag
        self.request_id = request_id
        self.submit_task_id = submit_task_id
        self.dataset = dataset
        self.conversation_id = conversation_id
        self.uci_exhaust_conn_id = uci_exhaust_conn_id
        self.run_at = run_at
        self.schedule_timezone = schedule_timezone
        self.grace_seconds = grace_seconds
        self.window_seconds = window_seconds
        self.poll_interval = poll_interval
        self.fail_on_first_failure = fail_on_first_failure
        self.max_transient_failures = max_transient_failures
        self.deferrable = deferrable
        self.end_from_trigger = end_from_trigger

    def _given(self, context: Context) -> Any:
        """The jobs as given: ``jobs``, the submit task's XCom, or ``tag``/``request_id``."""
        if self.jobs is not None:
            return self.jobs
        if self.submit_task_id:
            pushed = pull_from(context, self.submit_task_id)
            if not is_job(pushed) and not isinstance(pushed, (dict, list)):
                raise ExhaustError(f"task {self.submit_task_id!r} pushed no exhaust job to XCom")
            return pushed
        return {"tag": self.tag, "request_id": self.request_id, "dataset": self.dataset}

    def _jobs(self, context: Context) -> list[dict[str, Any]]:
        jobs = job_list(self._given(context), "jobs")
        for job in jobs:
            job["dataset"] = job.get("dataset") or self.dataset
        return jobs

    def _bot(self, jobs: list[dict[str, Any]]) -> str:
        return str(self.conversation_id or jobs[0].get("conversation_id") or "(unknown bot)")

    def _run_at(self, dataset: str | None) -> str | None:
        run_at = None if self.run_at is None else str(self.run_at).strip()
        if run_at == "nightly":
            return NIGHTLY_RUN.get(dataset or "", "02:00")
        if run_at in (None, "", "none", "None", "continuous"):
            return None
        return run_at

    def _by_dataset(self, context: Context) -> bool:
        given = self._given(context)
        return isinstance(given, dict) and not is_job(given)

    def _result(self, context: Context, answered: list[dict[str, Any]]) -> dict[str, Any]:
        """``{dataset: job}`` when the jobs were given as a mapping, else the one job."""
        return wait_result(answered, self._by_dataset(context))

    def _log_answers(self, bot: str, answered: list[dict[str, Any]]) -> None:
        for job in answered:
            if job.get("outcome") == Outcome.EMPTY.value:
                self.log.info("Bot %s: %s job %s found no data in %s..%s (nothing to copy)", bot, job.get("dataset"),
                              job.get("request_id"), job.get("start_date"), job.get("end_date"))
            else:
                self.log.info("Bot %s: %s job %s succeeded with %d file(s)", bot, job.get("dataset"),
                              job.get("request_id"), job.get("file_count", 0))

    def poke(self, context: Context) -> PokeReturnValue:
        jobs = self._jobs(context)
        bot = self._bot(jobs)
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
            return PokeReturnValue(is_done=False)
        self._log_answers(bot, answered)
        return PokeReturnValue(is_done=True, xcom_value=self._result(context, answered))

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        first = self.poke(context)
        if first.is_done:
            return first.xcom_value
        jobs = self._jobs(context)
        deadline = time.time() + self.timeout
        self.defer(
            trigger=ExhaustJobTrigger(
                jobs=[{"tag": job["tag"], "request_id": job["request_id"], "dataset": job.get("dataset"),
                       "run_at": self._run_at(job.get("dataset"))} for job in jobs],
                deadline=deadline, uci_exhaust_conn_id=self.uci_exhaust_conn_id,
                conversation_id=self._bot(jobs), timezone=self.schedule_timezone,
                grace_seconds=self.grace_seconds, window_seconds=self.window_seconds,
                poll_interval=float(self.poll_interval), fail_on_first_failure=self.fail_on_first_failure,
                max_transient_failures=self.max_transient_failures, end_from_trigger=self.end_from_trigger,
                result_by_dataset=self._by_dataset(context),
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout + 300),
        )
        return None

    def execute_complete(self, context: Context, event: dict[str, Any] | str) -> dict[str, Any]:
        """Turn the trigger's one event into the task's outcome."""
        if event == "success":  # a TaskSuccessEvent resumed on a worker (``dag.test()`` does so): read again
            done = self.poke(context)
            if not done.is_done:
                raise ExhaustError("the trigger ended the wait, but the jobs have not all answered")
            return done.xcom_value
        if not isinstance(event, dict):
            raise ExhaustError(f"unexpected trigger event {event!r}")
        status = event.get("status")
        if status == "success":
            answered = list(event.get("jobs") or [event["job"]])
            self._log_answers(self._bot(answered), answered)
            return self._result(context, answered)
        if status == "timeout":
            raise AirflowSensorTimeout(event.get("message", "the exhaust jobs did not finish in time"))
        if status == "failed":
            job = dict(event.get("job") or {})
            job["status_message"] = job.get("status_message") or event.get("message")
            if not job.get("channel"):
                job["channel"] = UciExhaustHook(self.uci_exhaust_conn_id).settings.channel
            raise job_failure(job)
        message = event.get("message", f"unexpected trigger event {status!r}")
        if event.get("fatal"):
            raise ExhaustFatalError(message)
        raise ExhaustError(message)
