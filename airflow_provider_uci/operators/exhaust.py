"""SubmitExhaustOperator: submit one exhaust request, idempotently, and hand its identifiers on."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.log import mask_secret

from airflow_provider_uci.hooks.exhaust import UciExhaustHook
from airflow_provider_uci.hooks.wire import DEFAULT_CONN_ID
from airflow_provider_uci.models import Dataset, ExhaustJob, ExhaustRequest, JobStatus


#: The namespace of derived tags (a fixed, random UUID).
TAG_NAMESPACE = uuid.UUID("5b0f3c2e-8d1a-4f6e-9a7b-2c4d6e8f0a1b")


def derive_tag(dag_id: str, task_id: str, conversation_id: str, dataset: str, start_date: str, end_date: str) -> str:
    """A tag fixed by what the request is for, so a retry or a same-day rerun reaches the same job.

    It is a UUID (as the UCI documentation recommends for tags) named by those values.
    """
    return str(uuid.uuid5(TAG_NAMESPACE, "|".join((dag_id, task_id, conversation_id, dataset, start_date, end_date))))


class SubmitExhaustOperator(BaseOperator):
    """Submit a response or private exhaust request for one conversation (bot) and date range.

    Without ``tag``, a deterministic one is derived from the DAG, task, conversation, dataset and range
    (:func:`derive_tag`); with the service's per-day request id, a retry or a rerun the same day then
    lands on the same job. On a retry the operator first looks the job up and resubmits only when the
    service no longer knows it. XCom gets identifiers only: request id, bare tag, dataset,
    conversation id and range; never URLs or keys.

    :param conversation_id: the bot id (UUID). Templated.
    :param dataset: ``uci-response-exhaust`` / ``uci-private-exhaust`` (or ``response`` / ``private``). Templated.
    :param from_date: first sync day, ``YYYY-MM-DD`` (the request's ``startDate``). Templated.
    :param to_date: last sync day, inclusive (``endDate``). Templated. (``start_date`` and ``end_date``
        are taken by Airflow's own operator fields.)
    :param tag: the request's tag; derived when not given. Templated.
    :param requested_by: defaults to the connection's ``requested_by``. Templated.
    :param encryption_key: the private zip's password; defaults to the connection's. Templated.
    :param uci_exhaust_conn_id: the Airflow connection. Templated.
    """

    template_fields: Sequence[str] = ("conversation_id", "dataset", "from_date", "to_date", "tag", "requested_by",
                                      "encryption_key", "uci_exhaust_conn_id")
    ui_color = "#d6ecf3"

    def __init__(self, *, conversation_id: str, dataset: str, from_date: str, to_date: str, tag: str | None = None,
                 requested_by: str | None = None, encryption_key: str | None = None,
                 uci_exhaust_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conversation_id = conversation_id
        self.dataset = dataset
        self.from_date = from_date
        self.to_date = to_date
        self.tag = tag
        self.requested_by = requested_by
        self.encryption_key = encryption_key
        self.uci_exhaust_conn_id = uci_exhaust_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        if self.encryption_key:
            mask_secret(self.encryption_key)
        hook = UciExhaustHook(self.uci_exhaust_conn_id)
        dataset = Dataset.parse(self.dataset).value
        tag = self.tag or derive_tag(self.dag_id, self.task_id, str(self.conversation_id), dataset,
                                     str(self.from_date), str(self.to_date))
        request = hook.request_for(str(self.conversation_id), dataset, str(self.from_date), str(self.to_date), tag,
                                   requested_by=self.requested_by, encryption_key=self.encryption_key or None)
        ti = context.get("ti")
        job = self._known_job(hook, request) if ti is not None and ti.try_number > 1 else None
        if job is None:
            job = hook.submit_request(request)
        elif job.status is JobStatus.FAILED:
            self.log.info("Job %s failed before (%s); resubmitting puts it back in the queue", job.request_id,
                          job.status_message)
            job = hook.submit_request(request)
        else:
            self.log.info("Retry: job %s is known to the service (%s); not resubmitting", job.request_id,
                          job.status_text)
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
