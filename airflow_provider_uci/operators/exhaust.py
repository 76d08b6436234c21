"""SubmitExhaustOperator: submit exhaust requests, idempotently, and hand their identifiers on;
RequestExhaustOperator: submit them and wait for their jobs in the triggerer, in one task."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.log import mask_secret

from airflow_provider_uci.hooks.wire import DEFAULT_CONN_ID
from airflow_provider_uci.jobrefs import job_list
from airflow_provider_uci.models import (
    Dataset,
    ExhaustError,
    ExhaustJob,
    ExhaustRequest,
    ExhaustValidationError,
    JobStatus,
)
from airflow_provider_uci.waiting import DEFAULT_WAIT_TIMEOUT, WaitsForJobs

if TYPE_CHECKING:  # imported where the service is called: a task process that never calls it skips the HTTP provider
    from airflow_provider_uci.hooks.exhaust import UciExhaustHook


#: The namespace of derived tags (a fixed, random UUID).
TAG_NAMESPACE = uuid.UUID("5b0f3c2e-8d1a-4f6e-9a7b-2c4d6e8f0a1b")


def derive_tag(dag_id: str, task_id: str, conversation_id: str, dataset: str, start_date: str, end_date: str) -> str:
    """A tag fixed by what the request is for, so a retry or a same-day rerun reaches the same job.

    It is a UUID (as the UCI documentation recommends for tags) named by those values.
    """
    return str(uuid.uuid5(TAG_NAMESPACE, "|".join((dag_id, task_id, conversation_id, dataset, start_date, end_date))))


class SubmitExhaustOperator(BaseOperator):
    """Submit response and/or private exhaust requests for one conversation (bot) and date range.

    Without ``tag``, a deterministic one is derived from the DAG, task, conversation, dataset and range
    (:func:`derive_tag`); with the service's per-day request id, a retry or a rerun the same day then
    lands on the same job. On a retry the operator first looks the job up and resubmits only when the
    service no longer knows it (or it failed). XCom gets identifiers only: request id, bare tag,
    dataset, conversation id and range; never URLs or keys. With ``dataset``, the one job's
    identifiers; with ``datasets``, ``{dataset: identifiers}`` (one task submits both of a bot's
    requests, and hands them on to one :class:`~airflow_provider_uci.sensors.exhaust.ExhaustJobSensor`).

    Bad input (a conversation id that is not a UUID, a bad date) and the service's 4xx answers fail the
    task at once, without Airflow's retries; 5xx, 429 and network faults are retried by the hook.

    :param conversation_id: the bot id (UUID). Templated; also the task's label in a mapped group.
    :param dataset: ``uci-response-exhaust`` / ``uci-private-exhaust`` (or ``response`` / ``private``). Templated.
    :param datasets: several datasets instead of ``dataset``. Templated.
    :param from_date: first sync day, ``YYYY-MM-DD`` (the request's ``startDate``). Templated.
    :param to_date: last sync day, inclusive (``endDate``). Templated. (``start_date`` and ``end_date``
        are taken by Airflow's own operator fields.)
    :param tag: the request's tag; derived when not given. Templated.
    :param requested_by: defaults to the connection's ``requested_by``. Templated.
    :param zip_password: the private zip's password (the request's ``encryptionKey``); defaults to the
        connection's. Templated, and shown as ``***`` in the UI (``encryption_key`` is taken as an alias).
    :param uci_exhaust_conn_id: the Airflow connection. Templated.
    """

    template_fields: Sequence[str] = ("conversation_id", "dataset", "datasets", "from_date", "to_date", "tag",
                                      "requested_by", "zip_password", "uci_exhaust_conn_id")
    ui_color = "#d6ecf3"

    def __init__(self, *, conversation_id: str, from_date: str, to_date: str, dataset: str | None = None,
                 datasets: Sequence[str] | None = None, tag: str | None = None, requested_by: str | None = None,
                 zip_password: str | None = None, uci_exhaust_conn_id: str = DEFAULT_CONN_ID,
                 encryption_key: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if (dataset is None) == (datasets is None):
            raise ValueError("SubmitExhaustOperator: give dataset or datasets, not both")
        self.conversation_id = conversation_id
        self.dataset = dataset
        self.datasets = datasets
        self.from_date = from_date
        self.to_date = to_date
        self.tag = tag
        self.requested_by = requested_by
        self.zip_password = zip_password or encryption_key
        self.uci_exhaust_conn_id = uci_exhaust_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        ti = context.get("ti")
        return self._each_dataset(lambda hook, name: self._submit(hook, name, ti is not None and ti.try_number > 1))

    def _each_dataset(self, submit: Callable[[UciExhaustHook, str], dict[str, Any]]) -> dict[str, Any]:
        """``submit(hook, dataset)`` for ``dataset``, or ``{dataset: ...}`` for each of ``datasets``."""
        if self.zip_password:
            mask_secret(self.zip_password)
        from airflow_provider_uci.hooks.exhaust import UciExhaustHook
        hook = UciExhaustHook(self.uci_exhaust_conn_id)
        if self.datasets is None:
            return submit(hook, str(self.dataset))
        names = [Dataset.parse(name, "datasets").value for name in self.datasets]
        if not names:
            raise ExhaustValidationError("datasets", "must name at least one dataset")
        return {name: submit(hook, name) for name in dict.fromkeys(names)}

    def _request(self, hook: UciExhaustHook, dataset: str) -> ExhaustRequest:
        # one tag per dataset, as when each had its own task: a rerun reaches the jobs submitted before
        task_id = self.task_id if self.datasets is None else f"{self.task_id}_{dataset.split('-')[1]}"
        tag = self.tag or derive_tag(self.dag_id, task_id, str(self.conversation_id), dataset,
                                     str(self.from_date), str(self.to_date))
        return hook.request_for(str(self.conversation_id), dataset, str(self.from_date), str(self.to_date), tag,
                                requested_by=self.requested_by, encryption_key=self.zip_password or None)

    def _submit(self, hook: UciExhaustHook, dataset_name: str, retry: bool) -> dict[str, Any]:
        request = self._request(hook, Dataset.parse(dataset_name).value)
        dataset = request.dataset
        job = self._known_job(hook, request) if retry else None
        if job is None:
            job = hook.submit_request(request)
        elif job.status is JobStatus.FAILED:
            self.log.info("Bot %s: %s job %s failed before (%s); resubmitting puts it back in the queue",
                          request.conversation_id, dataset, job.request_id, job.status_message)
            job = hook.submit_request(request)
        else:
            self.log.info("Bot %s: retry; %s job %s is known to the service (%s); not resubmitting",
                          request.conversation_id, dataset, job.request_id, job.status_text)
        return job.identifiers()

    def _known_job(self, hook: UciExhaustHook, request: ExhaustRequest) -> ExhaustJob | None:
        """The newest job under this tag for the same dataset, conversation and range, if any."""
        for job in hook.list_requests(request.tag):
            config = job.dataset_config
            if (job.dataset == Dataset.parse(request.dataset).value
                    and config.get("conversationId") == request.conversation_id
                    and config.get("startDate") == request.start_date and config.get("endDate") == request.end_date):
                return job
        return None


class RequestExhaustOperator(WaitsForJobs, SubmitExhaustOperator):
    """Submit a bot's exhaust requests, then wait for their jobs in the triggerer: both steps in one task.

    The shape of Airflow's deferrable operators: it submits as :class:`SubmitExhaustOperator` does
    (idempotently; a retry does not resubmit a job the service knows), defers at once to
    :class:`~airflow_provider_uci.triggers.exhaust.ExhaustJobTrigger`, and by default the trigger ends
    the task when the jobs have answered, so a bot's request and wait take one worker process. Its
    log says which step failed: a refused submission fails before the wait begins. Returns what
    :class:`~airflow_provider_uci.sensors.exhaust.ExhaustJobSensor` returns: ``{dataset: job}`` with
    ``datasets``, the one job with ``dataset``, each with its ``outcome`` (``files`` or ``empty``).

    Takes :class:`SubmitExhaustOperator`'s parameters and
    :class:`~airflow_provider_uci.waiting.WaitsForJobs`' (``run_at``, ``poll_interval``, ...).

    :param wait_timeout: seconds the wait lasts at most before the task fails (default 48 h).
    """

    template_fields: Sequence[str] = (*SubmitExhaustOperator.template_fields, "run_at", "poll_interval")
    ui_color = "#dcefe9"

    def __init__(self, *, wait_timeout: float = DEFAULT_WAIT_TIMEOUT, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.wait_timeout = wait_timeout

    def execute(self, context: Context) -> None:
        jobs = job_list(super().execute(context), "jobs")
        self._defer_wait(jobs, by_dataset=self.datasets is not None, timeout=self.wait_timeout,
                         resume={"jobs": jobs})

    def execute_complete(self, context: Context, event: dict[str, Any] | str,
                         jobs: list[dict[str, Any]] | None = None) -> Any:
        """Turn the trigger's one event into the task's outcome."""
        if event == "success" and not jobs:  # resumed without its kwargs (``dag.test()``): look the jobs up
            jobs = job_list(self._each_dataset(self._submitted), "jobs")
        return self._finish(event, jobs or [], self.datasets is not None)

    def _submitted(self, hook: UciExhaustHook, dataset_name: str) -> dict[str, Any]:
        request = self._request(hook, Dataset.parse(dataset_name).value)
        job = self._known_job(hook, request)
        if job is None:
            raise ExhaustError(f"bot {request.conversation_id}: the service knows no {request.dataset} job "
                               f"under tag {request.tag}, though this task submitted one")
        return job.identifiers()
