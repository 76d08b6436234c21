"""ExhaustJobSensor: wait for a bot's exhaust jobs without holding a worker, knowing the nightly schedule."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.configuration import conf
from airflow.sdk import BaseSensorOperator, Context, PokeReturnValue

from airflow_provider_uci.botlog import bot_log
from airflow_provider_uci.hooks.wire import DEFAULT_CONN_ID
from airflow_provider_uci.refs import AnsweredJob, jobs_by_dataset
from airflow_provider_uci.schedule import DEFAULT_POLL_INTERVAL
from airflow_provider_uci.triggers.exhaust import WaitSettings
from airflow_provider_uci.waiting import DEFAULT_WAIT_TIMEOUT, JobWaiter, WaitOptions

if TYPE_CHECKING:
    from airflow_provider_uci.hooks.exhaust import UciExhaustHook


class ExhaustJobSensor(BaseSensorOperator):
    """Wait until a bot's exhaust jobs have answered; fail at once when one fails for good.

    Looks once; if a job is not finished, defers to
    :class:`~airflow_provider_uci.triggers.exhaust.ExhaustJobTrigger` (one trigger for all the jobs),
    which sleeps until each job's nightly run (02:00 response, 03:00 private, Asia/Kolkata) plus
    ``grace_seconds``, polls every ``poll_interval`` while the run may be working, and sleeps to the next
    night otherwise. By default the trigger ends the task when the jobs have answered, so no worker
    process runs for it again (see :mod:`airflow_provider_uci.waiting` for what counts as an answer and
    what fails at once).

    Give the jobs as ``jobs``: a submit's output (``submit.output``), ``{dataset: {"tag", "request_id"}}``.
    Returns ``{dataset: answered job}``: each with its identifiers, ``status``, ``attempts``,
    ``file_count`` and ``outcome`` (``files``, or ``empty`` for a range without data).

    :param jobs: ``{dataset: job}``. Templated.
    :param conversation_id: the bot, for log lines and the task's label (map index). Templated.
    :param run_at: ``"nightly"`` (each dataset's run time, the default), a run time ``HH:MM``, or ``None`` /
        ``"continuous"`` to poll every ``poll_interval`` all day. Templated.
    :param poll_interval: seconds between looks while a run may be working. Templated.
    :param timeout: seconds before the sensor fails without retry (default 48 h); ``soft_fail`` skips instead.
    :param deferrable: wait in the triggerer; otherwise poke in ``reschedule`` mode. Defaults to
        ``[operators] default_deferrable``.
    :param end_from_trigger: when the jobs have answered, end the task in the triggerer (default); a
        failure still resumes it on a worker to raise its error.
    :param settings: the wait's other tunables (time zone, grace, window, failures to bear, attempts);
        ``poll_interval`` given here wins over its own.
    :param uci_exhaust_conn_id: the Airflow connection. Templated.
    """

    template_fields: Sequence[str] = (
        "jobs",
        "conversation_id",
        "run_at",
        "poll_interval",
        "uci_exhaust_conn_id",
    )
    ui_color = "#e8f4f0"

    def __init__(
        self,
        *,
        jobs: Any,
        conversation_id: str | None = None,
        run_at: str | None = "nightly",
        poll_interval: float | str = DEFAULT_POLL_INTERVAL,
        timeout: float = DEFAULT_WAIT_TIMEOUT,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        end_from_trigger: bool = True,
        settings: WaitSettings | None = None,
        uci_exhaust_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("mode", "poke" if deferrable else "reschedule")
        if isinstance(poll_interval, (int, float)):  # a templated value is rendered at run time
            kwargs.setdefault("poke_interval", poll_interval)
        super().__init__(timeout=timeout, **kwargs)
        self.jobs = jobs
        self.conversation_id = conversation_id
        self.run_at = run_at
        self.poll_interval = poll_interval
        self.deferrable = deferrable
        self.end_from_trigger = end_from_trigger
        self.settings = settings or WaitSettings()
        self.uci_exhaust_conn_id = uci_exhaust_conn_id

    @cached_property
    def hook(self) -> UciExhaustHook:
        """The Data Exhaust hook (imported here: a task that never calls the service does not pay for it)."""
        from airflow_provider_uci.hooks.exhaust import UciExhaustHook

        return UciExhaustHook(self.uci_exhaust_conn_id)

    def waiter(self) -> JobWaiter:
        """The part that waits, with this task's rendered options."""
        settings = replace(self.settings, poll_interval=float(self.poll_interval))
        options = WaitOptions(
            run_at=self.run_at,
            timeout=float(self.timeout),
            settings=settings,
            end_from_trigger=self.end_from_trigger,
        )
        bot = str(self.conversation_id) if self.conversation_id else None
        return JobWaiter(options, lambda: self.hook, bot_log(self.log, bot), bot, self.uci_exhaust_conn_id)

    def poke(self, context: Context) -> PokeReturnValue:
        answered = self.waiter().look(jobs_by_dataset(self.jobs))
        return PokeReturnValue(is_done=answered is not None, xcom_value=answered)

    def execute(self, context: Context) -> dict[str, AnsweredJob] | None:
        if not self.deferrable:
            poked: dict[str, AnsweredJob] | None = super().execute(context)  # poke's xcom_value
            return poked
        waiter = self.waiter()
        jobs = jobs_by_dataset(self.jobs)
        answered = waiter.look(jobs)
        if answered is not None:
            return answered
        self.defer(
            trigger=waiter.trigger(jobs),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout) + 300),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | str) -> dict[str, AnsweredJob]:
        """Turn the trigger's one event into the sensor's value."""
        return self.waiter().finish(event, jobs_by_dataset(self.jobs))
