"""SubmitExhaustOperator: submit a bot's exhaust requests, idempotently, and hand their identifiers on."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.log import mask_secret

from airflow_provider_uci.botlog import bot_log
from airflow_provider_uci.hooks.wire import DEFAULT_CONN_ID
from airflow_provider_uci.refs import SubmittedJob
from airflow_provider_uci.submitting import BOTH_DATASETS, SubmitOptions, Submitter, derive_tag

if TYPE_CHECKING:
    from airflow_provider_uci.hooks.exhaust import UciExhaustHook

__all__ = ["SubmitExhaustOperator", "derive_tag"]


class SubmitExhaustOperator(BaseOperator):
    """Submit the response and/or private exhaust requests of one conversation (bot) and date range.

    Without ``tag``, a deterministic one is derived per dataset from the DAG, task, conversation and
    range (:func:`~airflow_provider_uci.submitting.derive_tag`); with the service's per-day request id,
    a retry or a rerun the same day then lands on the same job. On a retry the operator first looks the
    job up and resubmits only when the service no longer knows it (or it failed).

    Returns ``{dataset: submitted job}`` (request id, bare tag, dataset, conversation id and range;
    never URLs or keys): give it to :class:`~airflow_provider_uci.sensors.exhaust.ExhaustJobSensor` as
    ``jobs=submit.output``.

    Bad input (a conversation id that is not a UUID, a bad date) and the service's 4xx answers fail the
    task at once, without Airflow's retries; 5xx, 429 and network faults are retried by the hook.

    :param conversation_id: the bot id (UUID). Templated; also the task's label in a mapped group.
    :param from_date: first sync day, ``YYYY-MM-DD`` (the request's ``startDate``). Templated. (``start_date``
        and ``end_date`` are taken by Airflow's own operator fields.)
    :param to_date: last sync day, inclusive (``endDate``). Templated.
    :param datasets: the datasets to submit, by default both (``uci-response-exhaust``,
        ``uci-private-exhaust``; ``response`` / ``private`` also do). Templated.
    :param tag: the requests' tag; derived per dataset when not given. Templated.
    :param requested_by: defaults to the connection's ``requested_by``. Templated.
    :param zip_password: the private zip's password (the request's ``encryptionKey``); defaults to the
        connection's. Templated, and shown as ``***`` in the UI.
    :param uci_exhaust_conn_id: the Airflow connection. Templated.
    """

    template_fields: Sequence[str] = (
        "conversation_id",
        "datasets",
        "from_date",
        "to_date",
        "tag",
        "requested_by",
        "zip_password",
        "uci_exhaust_conn_id",
    )
    ui_color = "#d6ecf3"

    def __init__(
        self,
        *,
        conversation_id: str,
        from_date: str,
        to_date: str,
        datasets: Sequence[str] = BOTH_DATASETS,
        tag: str | None = None,
        requested_by: str | None = None,
        zip_password: str | None = None,
        uci_exhaust_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.conversation_id = conversation_id
        self.datasets = datasets
        self.from_date = from_date
        self.to_date = to_date
        self.tag = tag
        self.requested_by = requested_by
        self.zip_password = zip_password
        self.uci_exhaust_conn_id = uci_exhaust_conn_id

    @cached_property
    def hook(self) -> UciExhaustHook:
        """The Data Exhaust hook (imported here: a task that never calls the service does not pay for it)."""
        from airflow_provider_uci.hooks.exhaust import UciExhaustHook

        return UciExhaustHook(self.uci_exhaust_conn_id)

    def submitter(self) -> Submitter:
        """The part that submits, with this task's rendered options."""
        if self.zip_password:
            mask_secret(self.zip_password)
        datasets = (self.datasets,) if isinstance(self.datasets, str) else tuple(self.datasets)
        options = SubmitOptions(
            conversation_id=str(self.conversation_id),
            from_date=str(self.from_date),
            to_date=str(self.to_date),
            datasets=datasets,
            tag=self.tag,
            requested_by=self.requested_by,
            zip_password=self.zip_password or None,
            dag_id=self.dag_id,
            task_id=self.task_id,
        )
        return Submitter(options, lambda: self.hook, bot_log(self.log, str(self.conversation_id)))

    def execute(self, context: Context) -> dict[str, SubmittedJob]:
        ti = context.get("ti")
        return self.submitter().submit(retry=ti is not None and ti.try_number > 1)
