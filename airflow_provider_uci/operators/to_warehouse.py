"""ExhaustToWarehouseOperator: one bot, from its requests to the warehouse, in one task."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from airflow.sdk import Context

from airflow_provider_uci import lineage
from airflow_provider_uci.jobrefs import by_dataset, job_list
from airflow_provider_uci.models import Dataset
from airflow_provider_uci.operators.exhaust import RequestExhaustOperator, SubmitExhaustOperator
from airflow_provider_uci.operators.load import DEFAULT_TABLE, ExhaustLoader, copied_csv, warehouse_asset
from airflow_provider_uci.transfers.exhaust import DEFAULT_WASB_CONN_ID, ExhaustCopier
from airflow_provider_uci.triggers.exhaust import wait_result

RESPONSE, PRIVATE = Dataset.RESPONSE.value, Dataset.PRIVATE.value


class ExhaustToWarehouseOperator(RequestExhaustOperator):
    """One bot in one task: submit both exhaust requests, wait for their jobs in the triggerer, copy the
    files, join answers to users and load the warehouse.

    Four steps, as the separate operators take them:

    1. **submit** the response and the private exhaust request, as
       :class:`~airflow_provider_uci.operators.exhaust.SubmitExhaustOperator` does (idempotent: a rerun the
       same day reaches the same jobs);
    2. **wait** in the triggerer, holding no worker, until both jobs have answered (the nightly runs;
       ``No data found`` is an empty answer); the task then resumes on a worker;
    3. **copy** the jobs' files while their signed URLs are fresh, as
       :class:`~airflow_provider_uci.transfers.exhaust.CopyExhaustFilesOperator` does;
    4. **load** them, as :class:`~airflow_provider_uci.operators.load.LoadExhaustOperator` does.

    Every log line names the bot and its step, and a failure says which step failed. A retry, or the
    bot's task cleared in the UI, submits again (reaching the same jobs), looks at them once, and goes
    straight on to the copy when they have answered; it defers again only when they have not.

    Why one task: while a bot waits its task instance is deferred, which Airflow's scheduler does not
    weigh on its passes; a bot whose copy and load were tasks of their own would add two task instances
    that the scheduler checks on every pass until the nightly runs are over, so its work per bot grew
    with the size of the run. One task also takes two worker processes per bot (the submit, the resume)
    instead of three.

    Takes :class:`~airflow_provider_uci.operators.exhaust.RequestExhaustOperator`'s parameters (both
    datasets by default) and:

    :param destination: where the files go (see ``CopyExhaustFilesOperator``). Templated.
    :param wasb_conn_id: the Azure Blob connection, for ``wasb://`` destinations. Templated.
    :param warehouse_conn_id: the warehouse connection (see ``LoadExhaustOperator``). Templated.
    :param table: the responses table.
    :param phone_numbers: ``plain``, ``hashed`` or ``none``. Templated.
    :param max_rejects: unreadable records to bear before the load fails.
    :param download_attempts: attempts per file, the first included.
    :param download_backoff: seconds before a file's second attempt, doubled each time.
    """

    template_fields: Sequence[str] = (*RequestExhaustOperator.template_fields, "destination", "wasb_conn_id",
                                      "warehouse_conn_id", "phone_numbers")
    ui_color = "#e4ecd9"

    def __init__(self, *, destination: str | None = None, wasb_conn_id: str = DEFAULT_WASB_CONN_ID,
                 warehouse_conn_id: str | None = None, table: str = DEFAULT_TABLE, phone_numbers: str = "plain",
                 max_rejects: int = 0, download_attempts: int = 5, download_backoff: float = 1.0,
                 **kwargs: Any) -> None:
        if kwargs.get("dataset") is None:
            kwargs.setdefault("datasets", [RESPONSE, PRIVATE])
        if kwargs.get("end_from_trigger"):
            raise ValueError("ExhaustToWarehouseOperator: end_from_trigger cannot be set; the task resumes on a "
                             "worker to copy and load")
        kwargs["end_from_trigger"] = False
        kwargs.setdefault("outlets", [warehouse_asset(table)])
        super().__init__(**kwargs)
        if download_attempts < 1:
            raise ValueError(f"download_attempts: must be at least 1, got {download_attempts}")
        self.destination = destination
        self.wasb_conn_id = wasb_conn_id
        self.warehouse_conn_id = warehouse_conn_id
        self.table = table
        self.phone_numbers = phone_numbers
        self.max_rejects = max_rejects
        self.download_attempts = download_attempts
        self.download_backoff = download_backoff

    def execute(self, context: Context) -> Any:
        with self._step("submit"):
            jobs = job_list(SubmitExhaustOperator.execute(self, context), "jobs")
        ti = context.get("ti")
        if ti is not None and ti.try_number > 1:  # a retry, or a cleared bot: its jobs may have answered
            with self._step("wait"):
                answered = self._look(jobs)
            if answered is not None:
                return self._copy_and_load(context, wait_result(answered, by_dataset=True))
        self.log.info("Bot %s: waiting for %d job(s) in the triggerer", self._bot(jobs), len(jobs))
        self._defer_wait(jobs, by_dataset=True, timeout=self.wait_timeout, resume={"jobs": jobs})

    def execute_complete(self, context: Context, event: dict[str, Any] | str,
                         jobs: list[dict[str, Any]] | None = None) -> Any:
        with self._step("wait"):
            waited = super().execute_complete(context, event, jobs)
        return self._copy_and_load(context, waited)

    def _copy_and_load(self, context: Context, waited: dict[str, Any]) -> dict[str, Any]:
        """Copy the answered jobs' files, then load them; return what each step did (no URLs, no keys)."""
        answered = job_list(waited, "jobs")
        bot = self._bot(answered)
        self._copier = ExhaustCopier(
            log=self.log, conversation_id=bot, destination=self.destination,
            uci_exhaust_conn_id=self.uci_exhaust_conn_id, wasb_conn_id=self.wasb_conn_id,
            zip_password=self.zip_password, download_attempts=self.download_attempts,
            download_backoff=self.download_backoff)
        with self._step("copy"):
            copies = by_dataset(self._copier.copy(answered))
        self._loader = ExhaustLoader(
            log=self.log, conversation_id=bot, from_date=self.from_date, to_date=self.to_date,
            warehouse_conn_id=self.warehouse_conn_id, table=self.table, phone_numbers=self.phone_numbers,
            max_rejects=self.max_rejects, uci_exhaust_conn_id=self.uci_exhaust_conn_id,
            wasb_conn_id=self.wasb_conn_id, dag_id=self.dag_id)
        with self._step("load"):
            summary = self._loader.load(
                context, copied_csv(copies.get(RESPONSE), f"bot {bot}: the copy of the response exhaust"),
                copied_csv(copies.get(PRIVATE), f"bot {bot}: the copy of the private exhaust"))
        return {"jobs": waited, "copies": copies, "load": summary}

    @contextmanager
    def _step(self, name: str) -> Iterator[None]:
        """Say in the log which step failed, and let its error go on as it was raised."""
        try:
            yield
        except Exception as exc:
            self.log.error("Bot %s: the %s step failed (%s)", self._bot([]), name, type(exc).__name__)
            raise

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the service's files in; their copies and the warehouse table out."""
        copier, loader = getattr(self, "_copier", None), getattr(self, "_loader", None)
        read, wrote = (copier.read, copier.wrote) if copier is not None else ([], [])
        if loader is None:
            return lineage.operator_lineage(read, wrote)
        return loader.lineage(read, wrote)
