"""What one step hands the next, in one shape: ``{dataset: reference}``, plain JSON in XCom.

``submit`` hands the wait :class:`SubmittedJob` s, the wait hands the copy :class:`AnsweredJob` s, the
copy hands the load :class:`CopiedDataset` s, each keyed by the dataset's full name
(``uci-response-exhaust``, ``uci-private-exhaust``). They carry identifiers and storage paths only,
never signed URLs or keys. A wait that ended in the triggerer hands its value on as JSON text
(Airflow 3.3 stores a ``TaskSuccessEvent``'s XCom serialised once more than a worker's): readers
decode text first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypedDict

from airflow_provider_uci.models import Dataset, ExhaustJob, ExhaustValidationError, Outcome


class SubmittedJob(TypedDict):
    """A job the service accepted: enough to read it again on any later day."""

    request_id: str
    tag: str
    dataset: str
    conversation_id: str | None
    start_date: str | None
    end_date: str | None


class AnsweredJob(SubmittedJob, total=False):
    """A job that has answered: its files are ready (``outcome`` ``files``) or it found no data (``empty``)."""

    status: str
    attempts: int
    file_count: int
    outcome: str


class CopiedDataset(TypedDict, total=False):
    """A dataset's files on the destination: local paths or ``wasb://`` URIs, and the CSV to load.

    ``empty`` is true when the service found no data in the range (nothing was copied, ``csv`` is None).
    """

    dataset: str
    request_id: str | None
    conversation_id: str | None
    start_date: str | None
    end_date: str | None
    files: list[str]
    csv: str | None
    empty: bool
    host: str | None


#: The keys of an :class:`AnsweredJob`, in order.
ANSWER_KEYS = tuple(AnsweredJob.__annotations__)


def submitted(job: ExhaustJob) -> SubmittedJob:
    """What may travel of a job the service accepted (identifiers only)."""
    ids = job.identifiers()
    return SubmittedJob(
        request_id=ids["request_id"],
        tag=ids["tag"],
        dataset=ids["dataset"],
        conversation_id=ids["conversation_id"],
        start_date=ids["start_date"],
        end_date=ids["end_date"],
    )


def answered(job: ExhaustJob, outcome: Outcome) -> AnsweredJob:
    """What may travel of a job that has answered (identifiers, state and outcome; never URLs)."""
    return AnsweredJob(
        **submitted(job),
        status=job.status_text,
        attempts=job.attempts,
        file_count=len(job.download_urls),
        outcome=outcome.value,
    )


def decoded(value: Any) -> Any:
    """``value``, or what it holds when it is JSON text of a mapping."""
    if isinstance(value, str) and value.lstrip()[:1] == "{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _by_dataset(value: Any, field: str, what: str) -> dict[str, dict[str, Any]]:
    value = decoded(value)
    if not isinstance(value, Mapping) or not value:
        raise ExhaustValidationError(
            field,
            f"must map each dataset to its {what} ({{dataset: ...}}), as the step before hands it on",
            type(value).__name__,
        )
    found = {}
    for name, item in value.items():
        dataset = Dataset.parse(name, field).value
        if not isinstance(item, Mapping):
            raise ExhaustValidationError(f"{field}[{dataset}]", f"must be a {what}", type(item).__name__)
        found[dataset] = {**item, "dataset": dataset}
    return found


def jobs_by_dataset(value: Any, field: str = "jobs") -> dict[str, dict[str, Any]]:
    """``{dataset: job}`` from a submit's or a wait's output; every job needs its tag and request id."""
    jobs = _by_dataset(value, field, "job (request_id and tag)")
    for dataset, job in jobs.items():
        if not job.get("tag") or not job.get("request_id"):
            raise ExhaustValidationError(
                f"{field}[{dataset}]", "needs the job's tag and request_id", job.get("request_id")
            )
    return jobs


def copies_by_dataset(value: Any, field: str = "copies") -> dict[str, dict[str, Any]]:
    """``{dataset: copied}`` from a copy's output; each names its CSV, or is ``empty``."""
    copies = _by_dataset(value, field, "copied files")
    for dataset, copied in copies.items():
        if not copied.get("empty") and not copied.get("csv"):
            raise ExhaustValidationError(f"{field}[{dataset}]", "names no copied CSV and is not empty")
    return copies
