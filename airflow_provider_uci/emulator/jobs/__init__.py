"""The nightly exhaust jobs (docs/service-contract.md §2): select requests, process each, record outcomes."""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from airflow_provider_uci.emulator.jobs import private, response
from airflow_provider_uci.emulator.jobs.common import INVALID_REQUEST, JobContext, JobFailure
from airflow_provider_uci.emulator.store import JobRow, JobStore, abbreviate

log = logging.getLogger(__name__)

JOBS: dict[str, Callable[[JobContext, JobRow, Path], tuple[list[str], int]]] = {
    response.DATASET: response.run,
    private.DATASET: private.run,
}
DATASETS = tuple(JOBS)

_RUN_LOCK = threading.Lock()


@dataclass(frozen=True)
class Outcome:
    """What one request's run came to."""

    request_id: str
    tag: str
    dataset: str
    status: str
    message: str
    download_urls: tuple[str, ...]
    execution_time: int

    def as_dict(self) -> dict[str, object]:
        return {
            "requestId": self.request_id,
            "tag": self.tag,
            "dataset": self.dataset,
            "status": self.status,
            "statusMessage": self.message,
            "downloadUrls": list(self.download_urls),
            "executionTime": self.execution_time,
        }


def run_dataset(dataset: str, store: JobStore, context: JobContext) -> list[Outcome]:
    """One nightly run of ``dataset``'s job over every selected request, one after another."""
    if dataset not in JOBS:
        raise ValueError(f"dataset: must be one of {', '.join(DATASETS)}, got {dataset!r}")
    outcomes = []
    with _RUN_LOCK:
        for request in store.pending([dataset], context.settings.max_iterations):
            outcomes.append(_run_one(dataset, request, store, context))
    return outcomes


def run_jobs(store: JobStore, context: JobContext, datasets: tuple[str, ...] | None = None) -> list[Outcome]:
    """Run the jobs of ``datasets`` (both, response first, by default)."""
    outcomes: list[Outcome] = []
    for dataset in datasets or DATASETS:
        outcomes.extend(run_dataset(dataset, store, context))
    return outcomes


def _run_one(dataset: str, request: JobRow, store: JobStore, context: JobContext) -> Outcome:
    workdir = Path(tempfile.mkdtemp(prefix="uci-job-", dir=_scratch(context)))
    try:
        urls, execution = JOBS[dataset](context, request, workdir)
    except JobFailure as failure:
        message = failure.message
    except Exception:
        log.exception("request %s failed", request.request_id)
        message = INVALID_REQUEST
    else:
        store.mark_success(
            request.tag,
            request.request_id,
            download_urls=urls,
            execution_time=execution,
            completed=context.clock.now(),
        )
        log.info("request %s (%s) succeeded in %d ms", request.request_id, dataset, execution)
        return Outcome(
            request.request_id,
            request.tag,
            dataset,
            "SUCCESS",
            request.err_message or "",
            tuple(urls),
            execution,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    message = abbreviate(message)
    store.mark_failed(request.tag, request.request_id, message=message, completed=context.clock.now())
    log.info("request %s (%s) failed: %s", request.request_id, dataset, message)
    return Outcome(request.request_id, request.tag, dataset, "FAILED", message, (), 0)


def _scratch(context: JobContext) -> Path:
    path = context.settings.data_dir / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return path
