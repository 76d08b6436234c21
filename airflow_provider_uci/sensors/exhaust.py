"""ExhaustJobSensor: wait for a bot's exhaust jobs without holding a worker, knowing the nightly schedule."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseSensorOperator, Context, PokeReturnValue

from airflow_provider_uci.hooks.wire import DEFAULT_CONN_ID
from airflow_provider_uci.jobrefs import is_job, job_list
from airflow_provider_uci.models import ExhaustError
from airflow_provider_uci.schedule import DEFAULT_POLL_INTERVAL
from airflow_provider_uci.triggers.exhaust import wait_result
from airflow_provider_uci.waiting import DEFAULT_WAIT_TIMEOUT, WaitsForJobs
from airflow_provider_uci.xcom import pull_from

DEFAULT_TIMEOUT = DEFAULT_WAIT_TIMEOUT


class ExhaustJobSensor(WaitsForJobs, BaseSensorOperator):
    """Wait until a bot's exhaust jobs have answered; fail at once when one fails for good.

    Pokes once; if a job is not finished, defers to :class:`ExhaustJobTrigger` (one trigger for all
    the jobs), which sleeps until each job's nightly run (02:00 response, 03:00 private,
    Asia/Kolkata) plus ``grace_seconds``, polls every ``poll_interval`` while the run may be working,
    and sleeps to the next night otherwise (see :mod:`airflow_provider_uci.waiting` for what counts as
    an answer and what fails at once).

    Give the jobs as ``jobs`` (templated; e.g. ``submit.output``: one job's identifiers, or a mapping
    of dataset to identifiers), as ``tag`` and ``request_id``, or as ``submit_task_id`` (a task whose
    XCom holds them). Returns, for ``jobs`` given as a mapping, ``{dataset: job}``; otherwise the one
    job: each with its identifiers, ``status``, ``attempts``, ``file_count`` and ``outcome``
    (``files`` or ``empty``).

    :param conversation_id: the bot, for log lines and the task's label (map index). Templated.
    :param dataset: picks the nightly run time of a job given by ``tag``/``request_id``.
    :param timeout: seconds before the sensor fails without retry (default 48 h); ``soft_fail`` skips instead.
    :param deferrable: wait in the triggerer (default); otherwise poke in ``reschedule`` mode.

    The schedule and deferral parameters (``run_at``, ``poll_interval``, ``end_from_trigger``, ...) are
    :class:`~airflow_provider_uci.waiting.WaitsForJobs`'.
    """

    template_fields: Sequence[str] = ("jobs", "tag", "request_id", "dataset", "conversation_id",
                                      "uci_exhaust_conn_id", "run_at", "poll_interval")
    ui_color = "#e8f4f0"

    def __init__(self, *, jobs: Any = None, tag: str | None = None, request_id: str | None = None,
                 submit_task_id: str | None = None, dataset: str | None = None, conversation_id: str | None = None,
                 uci_exhaust_conn_id: str = DEFAULT_CONN_ID, deferrable: bool = True,
                 timeout: float = DEFAULT_TIMEOUT, **kwargs: Any) -> None:
        kwargs.setdefault("mode", "reschedule" if not deferrable else "poke")
        poll_interval = kwargs.get("poll_interval", DEFAULT_POLL_INTERVAL)
        if isinstance(poll_interval, (int, float)):  # a templated value is rendered at run time
            kwargs.setdefault("poke_interval", poll_interval)
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
        self.deferrable = deferrable

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

    def _by_dataset(self, context: Context) -> bool:
        given = self._given(context)
        return isinstance(given, dict) and not is_job(given)

    def poke(self, context: Context) -> PokeReturnValue:
        answered = self._look(self._jobs(context))
        if answered is None:
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value=wait_result(answered, self._by_dataset(context)))

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        first = self.poke(context)
        if first.is_done:
            return first.xcom_value
        self._defer_wait(self._jobs(context), by_dataset=self._by_dataset(context), timeout=self.timeout)
        return None

    def execute_complete(self, context: Context, event: dict[str, Any] | str) -> Any:
        """Turn the trigger's one event into the task's outcome."""
        return self._finish(event, self._jobs(context) if event == "success" else [], self._by_dataset(context))
