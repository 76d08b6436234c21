"""One shape for "which jobs": what a submit hands on, read the same by the sensor, the copy and the load.

A task that handles one bot's jobs gets them as an XCom (an ``XComArg`` such as ``submit.output``):
either one job's identifiers (``{"request_id", "tag", "dataset", ...}``), or a mapping of dataset to
identifiers (what :class:`~airflow_provider_uci.operators.exhaust.SubmitExhaustOperator` returns for
several datasets), or a list of identifiers. A wait that ended in the triggerer hands its value on as
JSON text (Airflow 3.3 stores a ``TaskSuccessEvent``'s XCom serialized once more than a worker's), so
text is decoded first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from airflow_provider_uci.models import ExhaustValidationError


def is_job(value: Any) -> bool:
    """One job's identifiers (or a description of it)."""
    return isinstance(value, Mapping) and "request_id" in value


def decoded(value: Any) -> Any:
    """``value``, or what it holds when it is JSON text of a mapping or a list."""
    if isinstance(value, str) and value.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def job_list(value: Any, field: str = "jobs") -> list[dict[str, Any]]:
    """The jobs in ``value``, in order, each a plain dict; raise naming ``field`` if there are none."""
    value = decoded(value)
    if is_job(value):
        jobs = [dict(value)]
    elif isinstance(value, Mapping):
        jobs = [dict(item) for item in value.values() if is_job(item)]
    elif isinstance(value, (list, tuple)):
        jobs = [dict(item) for item in value if is_job(item)]
    else:
        jobs = []
    if not jobs:
        raise ExhaustValidationError(field, "must hold one or more exhaust jobs (each with request_id and tag), "
                                            "as a submit task's output does", type(value).__name__)
    for job in jobs:
        if not job.get("tag") or not job.get("request_id"):
            raise ExhaustValidationError(field, "every job needs its tag and request_id", job.get("request_id"))
    return jobs


def by_dataset(jobs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{dataset: job}``; jobs without a dataset are keyed by their request id."""
    return {str(job.get("dataset") or job["request_id"]): job for job in jobs}
