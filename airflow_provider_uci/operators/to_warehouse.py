"""ExhaustToWarehouseOperator: one bot, from its requests to the warehouse, in one task (the compact shape)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.log import mask_secret

from airflow_provider_uci import lineage
from airflow_provider_uci.botlog import BotLog, bot_log
from airflow_provider_uci.hooks.wire import DEFAULT_CONN_ID
from airflow_provider_uci.operators.load import DEFAULT_TABLE, ExhaustLoader, LoadOptions, warehouse_asset
from airflow_provider_uci.schedule import DEFAULT_POLL_INTERVAL
from airflow_provider_uci.submitting import SubmitOptions, Submitter
from airflow_provider_uci.transfers.exhaust import DEFAULT_WASB_CONN_ID, CopyOptions, ExhaustCopier
from airflow_provider_uci.triggers.exhaust import WaitSettings
from airflow_provider_uci.waiting import DEFAULT_WAIT_TIMEOUT, JobWaiter, WaitOptions

if TYPE_CHECKING:
    from airflow_provider_uci.hooks.exhaust import UciExhaustHook


class ExhaustToWarehouseOperator(BaseOperator):
    """One bot in one task: submit both exhaust requests, wait for their jobs in the triggerer, copy the
    files, join answers to users and load the warehouse.

    The same four parts as the ``submit``, ``wait``, ``copy`` and ``join_and_load`` tasks of the
    ``uci_exhaust`` DAG (:class:`~airflow_provider_uci.submitting.Submitter`,
    :class:`~airflow_provider_uci.waiting.JobWaiter`,
    :class:`~airflow_provider_uci.transfers.exhaust.ExhaustCopier`,
    :class:`~airflow_provider_uci.operators.load.ExhaustLoader`), in one task: a bot is one task
    instance and two task processes (the submit, then the copy and load after the wait), where the
    four-task shape takes up to three processes and four task instances that the scheduler weighs on
    every pass. What it gives up: the grid shows the bot as running or deferred, not its step, and only
    the whole bot can be cleared (a clear submits again, reaching the same jobs, and downloads again
    before it reloads). Every log line names the bot; a failure says which step failed.

    :param conversation_id: the bot (UUID). Templated; also the task's label in a mapped task.
    :param from_date: first sync day, ``YYYY-MM-DD``. Templated.
    :param to_date: last sync day, inclusive. Templated.
    :param run_at: ``"nightly"``, ``HH:MM`` or ``"continuous"`` (see :class:`~airflow_provider_uci.sensors.exhaust.ExhaustJobSensor`). Templated.
    :param poll_interval: seconds between looks while a run may be working. Templated.
    :param wait_timeout: seconds the wait lasts at most before the task fails (default 48 h).
    :param wait_settings: the wait's other tunables.
    :param destination: where the files go (see ``CopyExhaustFilesOperator``). Templated.
    :param warehouse_conn_id: the warehouse connection (see ``LoadExhaustOperator``). Templated.
    :param table: the responses table.
    :param phone_numbers: ``plain``, ``hashed`` or ``none``. Templated.
    :param zip_password: the private zip's password; defaults to the connection's. Templated (shown as ``***``).
    :param max_rejects: unreadable records to bear before the load fails.
    :param uci_exhaust_conn_id: the Data Exhaust connection. Templated.
    :param wasb_conn_id: the Azure Blob connection, for ``wasb://`` destinations. Templated.
    """

    template_fields: Sequence[str] = (
        "conversation_id",
        "from_date",
        "to_date",
        "run_at",
        "poll_interval",
        "destination",
        "warehouse_conn_id",
        "phone_numbers",
        "zip_password",
        "uci_exhaust_conn_id",
        "wasb_conn_id",
    )
    ui_color = "#e4ecd9"

    def __init__(
        self,
        *,
        conversation_id: str,
        from_date: str,
        to_date: str,
        run_at: str | None = "nightly",
        poll_interval: float | str = DEFAULT_POLL_INTERVAL,
        wait_timeout: float = DEFAULT_WAIT_TIMEOUT,
        wait_settings: WaitSettings | None = None,
        destination: str | None = None,
        warehouse_conn_id: str | None = None,
        table: str = DEFAULT_TABLE,
        phone_numbers: str = "plain",
        zip_password: str | None = None,
        max_rejects: int = 0,
        uci_exhaust_conn_id: str = DEFAULT_CONN_ID,
        wasb_conn_id: str = DEFAULT_WASB_CONN_ID,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("outlets", [warehouse_asset(table)])
        super().__init__(**kwargs)
        self.conversation_id = conversation_id
        self.from_date = from_date
        self.to_date = to_date
        self.run_at = run_at
        self.poll_interval = poll_interval
        self.wait_timeout = wait_timeout
        self.wait_settings = wait_settings or WaitSettings()
        self.destination = destination
        self.warehouse_conn_id = warehouse_conn_id
        self.table = table
        self.phone_numbers = phone_numbers
        self.zip_password = zip_password
        self.max_rejects = max_rejects
        self.uci_exhaust_conn_id = uci_exhaust_conn_id
        self.wasb_conn_id = wasb_conn_id

    @cached_property
    def hook(self) -> UciExhaustHook:
        """The Data Exhaust hook, one for every step of the task."""
        from airflow_provider_uci.hooks.exhaust import UciExhaustHook

        return UciExhaustHook(self.uci_exhaust_conn_id)

    @cached_property
    def bot_log(self) -> BotLog:
        return bot_log(self.log, str(self.conversation_id))

    def _parts(self) -> tuple[Submitter, JobWaiter]:
        if self.zip_password:
            mask_secret(self.zip_password)
        bot = str(self.conversation_id)
        submitter = Submitter(
            SubmitOptions(
                conversation_id=bot,
                from_date=str(self.from_date),
                to_date=str(self.to_date),
                zip_password=self.zip_password or None,
                dag_id=self.dag_id,
                task_id=self.task_id,
            ),
            lambda: self.hook,
            self.bot_log,
        )
        settings = replace(self.wait_settings, poll_interval=float(self.poll_interval))
        waiter = JobWaiter(
            WaitOptions(
                run_at=self.run_at, timeout=self.wait_timeout, settings=settings, end_from_trigger=False
            ),
            lambda: self.hook,
            self.bot_log,
            bot,
            self.uci_exhaust_conn_id,
        )
        return submitter, waiter

    def execute(self, context: Context) -> Any:
        submitter, waiter = self._parts()
        ti = context.get("ti")
        with self._step("submit"):
            jobs = submitter.submit(retry=ti is not None and ti.try_number > 1)
        with self._step("wait"):
            answered = waiter.look(dict(jobs))
        if answered is not None:
            return self._copy_and_load(context, answered)
        self.defer(
            trigger=waiter.trigger(dict(jobs)),
            method_name="execute_complete",
            kwargs={"jobs": jobs},
            timeout=timedelta(seconds=self.wait_timeout + 300),
        )

    def execute_complete(
        self,
        context: Context,
        event: dict[str, Any] | str,
        jobs: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> Any:
        """Turn the trigger's one event into the answered jobs, then copy and load."""
        submitter, waiter = self._parts()
        with self._step("wait"):
            if jobs is None:  # resumed without its kwargs (``dag.test()``): reach the jobs submitted before
                jobs = submitter.known()
                if jobs is None:
                    raise RuntimeError("the service knows none of the jobs this task submitted")
            answered = waiter.finish(event, dict(jobs))
        return self._copy_and_load(context, answered)

    def _copy_and_load(self, context: Context, answered: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        """Copy the answered jobs' files, then load them; return what each step did (no URLs, no keys)."""
        bot = str(self.conversation_id)
        self._copier = ExhaustCopier(
            CopyOptions(
                destination=self.destination,
                wasb_conn_id=self.wasb_conn_id,
                zip_password=self.zip_password or None,
            ),
            lambda: self.hook,
            self.bot_log,
            bot,
        )
        with self._step("copy"):
            copies = self._copier.copy(answered)
        options = LoadOptions.of_task(self, bot, str(self.from_date), str(self.to_date))
        self._loader = ExhaustLoader(options, self.bot_log)
        with self._step("join_and_load"):
            summary = self._loader.load(context, dict(copies))
        return {"jobs": answered, "copies": copies, "load": summary}

    @contextmanager
    def _step(self, name: str) -> Iterator[None]:
        """Say in the log which step failed, and let its error go on as it was raised."""
        try:
            yield
        except Exception as exc:
            self.bot_log.error("the %s step failed (%s)", name, type(exc).__name__)
            raise

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the service's files in; their copies and the warehouse table out."""
        copier, loader = getattr(self, "_copier", None), getattr(self, "_loader", None)
        read, wrote = (copier.read, copier.wrote) if copier is not None else ([], [])
        if loader is None:
            return lineage.operator_lineage(read, wrote)
        return loader.lineage(read, wrote)
