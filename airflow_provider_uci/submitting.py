"""Submitting a bot's exhaust requests, idempotently: the part the submit and one-task operators build.

A request's tag is derived from what it is for (:func:`derive_tag`), and the service's request id is
deterministic per day, so a retry or a rerun the same day reaches the same job. On a retry the
submitter first looks the job up and resubmits only when the service no longer knows it, or it failed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_uci.models import Dataset, ExhaustJob, ExhaustRequest, ExhaustValidationError, JobStatus
from airflow_provider_uci.refs import SubmittedJob, submitted

if TYPE_CHECKING:
    from airflow_provider_uci.hooks.exhaust import UciExhaustHook

#: The namespace of derived tags (a fixed, random UUID).
TAG_NAMESPACE = uuid.UUID("5b0f3c2e-8d1a-4f6e-9a7b-2c4d6e8f0a1b")
#: Both of a bot's datasets, in the order they are submitted.
BOTH_DATASETS = (Dataset.RESPONSE.value, Dataset.PRIVATE.value)


def derive_tag(
    dag_id: str, task_id: str, conversation_id: str, dataset: str, start_date: str, end_date: str
) -> str:
    """A tag fixed by what the request is for, so a retry or a same-day rerun reaches the same job.

    It is a UUID (as the UCI documentation recommends for tags) named by those values.
    """
    return str(
        uuid.uuid5(TAG_NAMESPACE, "|".join((dag_id, task_id, conversation_id, dataset, start_date, end_date)))
    )


@dataclass(frozen=True, kw_only=True)
class SubmitOptions:
    """What to submit for one bot (rendered values).

    :param conversation_id: the bot (a UUID).
    :param from_date: first sync day, ``YYYY-MM-DD``.
    :param to_date: last sync day, inclusive.
    :param datasets: the datasets to submit (full or short names).
    :param tag: the requests' tag; derived per dataset when not given.
    :param requested_by: defaults to the connection's.
    :param zip_password: the private zip's password; defaults to the connection's.
    :param dag_id: names the derived tags.
    :param task_id: names the derived tags.
    """

    conversation_id: str
    from_date: str
    to_date: str
    datasets: tuple[str, ...] = BOTH_DATASETS
    tag: str | None = None
    requested_by: str | None = None
    zip_password: str | None = None
    dag_id: str = ""
    task_id: str = ""

    def dataset_names(self) -> list[str]:
        """The datasets' full names, each once, in the order given."""
        names = [Dataset.parse(name, "datasets").value for name in self.datasets]
        if not names:
            raise ExhaustValidationError("datasets", "must name at least one dataset")
        return list(dict.fromkeys(names))


@dataclass
class Submitter:
    """Submits a bot's requests and hands on ``{dataset: submitted job}``.

    :param options: what to submit.
    :param hook: gives the sync hook.
    :param log: the task's logger, naming the bot.
    """

    options: SubmitOptions
    hook: Callable[[], UciExhaustHook]
    log: Any

    def request(self, dataset: str) -> ExhaustRequest:
        """The validated request for ``dataset``, its tag derived when not given."""
        opts = self.options
        # one tag per dataset: a rerun reaches the jobs submitted before
        tag = opts.tag or derive_tag(
            opts.dag_id,
            f"{opts.task_id}_{dataset.split('-')[1]}",
            str(opts.conversation_id),
            dataset,
            str(opts.from_date),
            str(opts.to_date),
        )
        return self.hook().request_for(
            str(opts.conversation_id),
            dataset,
            str(opts.from_date),
            str(opts.to_date),
            tag,
            requested_by=opts.requested_by,
            encryption_key=opts.zip_password or None,
        )

    def submit(self, retry: bool) -> dict[str, SubmittedJob]:
        """Submit each dataset's request; on a ``retry``, first reach the job submitted before."""
        return {
            dataset: self._submit(self.request(dataset), retry) for dataset in self.options.dataset_names()
        }

    def known(self) -> dict[str, SubmittedJob] | None:
        """The jobs submitted before for these requests, or ``None`` when the service lacks one."""
        found = {}
        for dataset in self.options.dataset_names():
            job = self.known_job(self.request(dataset))
            if job is None:
                return None
            found[dataset] = submitted(job)
        return found

    def _submit(self, request: ExhaustRequest, retry: bool) -> SubmittedJob:
        dataset = request.dataset
        job = self.known_job(request) if retry else None
        if job is None:
            job = self.hook().submit_request(request)
        elif job.status is JobStatus.FAILED:
            self.log.info(
                "%s job %s failed before (%s); resubmitting puts it back in the queue",
                dataset,
                job.request_id,
                job.status_message,
            )
            job = self.hook().submit_request(request)
        else:
            self.log.info(
                "retry; %s job %s is known to the service (%s); not resubmitting",
                dataset,
                job.request_id,
                job.status_text,
            )
        return submitted(job)

    def known_job(self, request: ExhaustRequest) -> ExhaustJob | None:
        """The newest job under the request's tag for the same dataset, conversation and range, if any."""
        for job in self.hook().list_requests(request.tag):
            config = job.dataset_config
            if (
                job.dataset == Dataset.parse(request.dataset).value
                and config.get("conversationId") == request.conversation_id
                and config.get("startDate") == request.start_date
                and config.get("endDate") == request.end_date
            ):
                return job
        return None
