"""Waiting for a bot's exhaust jobs: the part the sensor and the one-task operator build.

:class:`JobWaiter` knows the nightly schedule (02:00 response, 03:00 private, Asia/Kolkata), reads
the jobs once, builds the :class:`~airflow_provider_uci.triggers.exhaust.ExhaustJobTrigger` that
waits for all of them in the triggerer, and turns the trigger's one event into the wait's value. A
job has answered when it succeeded, or failed with exactly ``No data found`` (an *empty* outcome: the
service makes no file for a range without data, and its retry would read the same days). A FAILED job
with a nightly retry to come is waited for unless ``fail_on_first_failure``; a job failed for good, or
a bot the connection's channel does not own, fails the task at once, without Airflow's retries.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowSensorTimeout

from airflow_provider_uci.models import ExhaustError, ExhaustFatalError, Outcome, job_failure
from airflow_provider_uci.refs import AnsweredJob, answered
from airflow_provider_uci.schedule import NIGHTLY_RUN
from airflow_provider_uci.triggers.exhaust import ExhaustJobTrigger, TriggerArgs, WaitSettings, wait_result

if TYPE_CHECKING:
    from airflow_provider_uci.hooks.exhaust import UciExhaustHook

#: How long a wait lasts at most before it fails (two nights and a day).
DEFAULT_WAIT_TIMEOUT = 48 * 3600.0
#: What ``run_at`` says to poll all day rather than sleep to the nightly runs.
CONTINUOUS = ("", "none", "continuous")


def run_time(run_at: str | None, dataset: str | None) -> str | None:
    """``HH:MM`` of the run that makes ``dataset``'s job, or ``None`` to poll all day.

    :param run_at: ``"nightly"`` (each dataset's own run), a run time ``HH:MM``, or ``None`` /
        ``"continuous"`` for a service that runs its jobs all day (the emulator's fast mode).
    """
    value = "" if run_at is None else str(run_at).strip()
    if value == "nightly":
        return NIGHTLY_RUN.get(dataset or "", "02:00")
    if value.lower() in CONTINUOUS:
        return None
    return value


@dataclass(frozen=True, kw_only=True)
class WaitOptions:
    """What a wait is: when the jobs' runs are, how to look, how long at most.

    :param run_at: see :func:`run_time`.
    :param timeout: seconds the wait lasts at most before the task fails.
    :param end_from_trigger: end the task in the triggerer when the jobs have answered.
    :param settings: the trigger's tunables (poll interval, grace, window, failures to bear, ...).
    """

    run_at: str | None = "nightly"
    timeout: float = DEFAULT_WAIT_TIMEOUT
    end_from_trigger: bool = True
    settings: WaitSettings = field(default_factory=WaitSettings)


@dataclass
class JobWaiter:
    """Looks at a bot's jobs, and hands the wait to the triggerer when they have not all answered.

    :param options: how to wait.
    :param hook: gives the sync hook (called only when a job must be read on the worker).
    :param log: the task's logger, naming the bot.
    :param conversation_id: the bot.
    :param uci_exhaust_conn_id: the connection the trigger reads through.
    """

    options: WaitOptions
    hook: Callable[[], UciExhaustHook]
    log: Any
    conversation_id: str | None
    uci_exhaust_conn_id: str

    def look(self, jobs: Mapping[str, Mapping[str, Any]]) -> dict[str, AnsweredJob] | None:
        """Read each job once: ``{dataset: answered job}`` when all have answered, else ``None``.

        :raises ExhaustJobFailed: a job failed for good (or its bot is not the channel's).
        """
        settings = self.options.settings
        found = []
        for ref in jobs.values():
            job = self.hook().read_request(ref["tag"], ref["request_id"])
            outcome = job.outcome(settings.fail_on_first_failure, settings.max_attempts)
            self.log.info(
                "%s job %s is %s, attempts %d", job.dataset, job.request_id, job.status_text, job.attempts
            )
            if outcome.is_final and not outcome.is_answer:
                raise job.failure()
            if outcome.is_answer:
                found.append(answered(job, outcome))
        if len(found) < len(jobs):
            return None
        return self.report(wait_result(found))

    def report(self, result: dict[str, AnsweredJob]) -> dict[str, AnsweredJob]:
        """Log what each job answered; return ``result``."""
        for dataset, job in result.items():
            if job.get("outcome") == Outcome.EMPTY.value:
                self.log.info(
                    "%s job %s found no data in %s..%s (nothing to copy)",
                    dataset,
                    job.get("request_id"),
                    job.get("start_date"),
                    job.get("end_date"),
                )
            else:
                self.log.info(
                    "%s job %s succeeded with %d file(s)",
                    dataset,
                    job.get("request_id"),
                    job.get("file_count", 0),
                )
        return result

    def trigger(self, jobs: Mapping[str, Mapping[str, Any]]) -> ExhaustJobTrigger:
        """The trigger that waits for ``jobs`` in the triggerer, from now until the timeout."""
        self.log.info("waiting for %d job(s) in the triggerer", len(jobs))
        return ExhaustJobTrigger(
            **asdict(
                TriggerArgs.of(
                    self.options.settings,
                    jobs=[
                        {
                            "tag": job["tag"],
                            "request_id": job["request_id"],
                            "dataset": dataset,
                            "run_at": run_time(self.options.run_at, dataset),
                        }
                        for dataset, job in jobs.items()
                    ],
                    deadline=time.time() + self.options.timeout,
                    uci_exhaust_conn_id=self.uci_exhaust_conn_id,
                    conversation_id=self.conversation_id,
                    end_from_trigger=self.options.end_from_trigger,
                )
            )
        )

    def finish(
        self, event: dict[str, Any] | str, jobs: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, AnsweredJob]:
        """Turn the trigger's one event into the wait's ``{dataset: answered job}``, or raise its failure."""
        if event == "success":  # a TaskSuccessEvent resumed on a worker (``dag.test()`` does so): read again
            result = self.look(jobs)
            if result is None:
                raise ExhaustError("the trigger ended the wait, but the jobs have not all answered")
            return result
        if not isinstance(event, dict):
            raise ExhaustError(f"unexpected trigger event {event!r}")
        status = event.get("status")
        if status == "success":
            return self.report(wait_result(list(event.get("jobs") or [])))
        if status == "timeout":
            raise AirflowSensorTimeout(event.get("message", "the exhaust jobs did not finish in time"))
        if status == "failed":
            job = dict(event.get("job") or {})
            job["status_message"] = job.get("status_message") or event.get("message")
            if not job.get("channel"):
                job["channel"] = self.hook().settings.channel
            raise job_failure(job)
        message = event.get("message", f"unexpected trigger event {status!r}")
        if event.get("fatal"):
            raise ExhaustFatalError(message)
        raise ExhaustError(message)
