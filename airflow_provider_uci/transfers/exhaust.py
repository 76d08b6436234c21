"""CopyExhaustFilesOperator: copy a finished exhaust job's files to a local folder or Azure Blob storage."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from airflow.sdk import BaseOperator, Context
from airflow.sdk.log import mask_secret

from airflow_provider_uci import lineage
from airflow_provider_uci.botlog import naming_bot
from airflow_provider_uci.exhaust.download import (
    CHUNK_SIZE,
    DownloadError,
    PrivateZipError,
    Sink,
    ZipPasswordError,
    download,
    download_to,
    open_private_zip,
)
from airflow_provider_uci.exhaust.at_rest import scratch_folder
from airflow_provider_uci.exhaust.names import conversation_id as checked_conversation_id
from airflow_provider_uci.exhaust.names import dataset_file_names, url_suffix
from airflow_provider_uci.hooks.exhaust import UciExhaustHook
from airflow_provider_uci.hooks.wire import DEFAULT_CONN_ID
from airflow_provider_uci.jobrefs import by_dataset, decoded, is_job, job_list
from airflow_provider_uci.models import (
    ExhaustError,
    ExhaustJob,
    ExhaustValidationError,
    JobStatus,
    Outcome,
)
from airflow_provider_uci.transfers.blob import BlobStore
from airflow_provider_uci.xcom import pull_from

DEFAULT_WASB_CONN_ID = "wasb_default"
#: The folder under ``AIRFLOW_HOME`` that holds the files when no destination is given.
DEFAULT_FOLDER = "uci-exhaust/files"

_SAFE_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # matched whole: no trailing newline


class ExhaustDownloadError(ExhaustError, DownloadError):
    """An exhaust file could not be downloaded (the message names the file, never its signed URL)."""


class ExhaustZipError(ExhaustError, PrivateZipError):
    """The private exhaust zip could not be opened."""


class ExhaustKeyError(ExhaustError, ZipPasswordError):
    """The private exhaust zip needs ``encryption_key``, or the key given does not open it."""


@dataclass(frozen=True)
class Destination:
    """Where copied files go: a local folder, or a container and key prefix in Azure Blob storage."""

    local: Path | None = None
    container: str | None = None
    prefix: str = ""

    @classmethod
    def parse(cls, value: str | os.PathLike[str] | None) -> Destination:
        """Read ``destination``: a path, ``file://<path>``, or ``wasb://<container>/<prefix>``.

        Without one, the files go to ``<AIRFLOW_HOME>/uci-exhaust``.
        """
        if value is None or str(value).strip() == "":
            home = os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")
            return cls(local=Path(home) / DEFAULT_FOLDER)
        text = str(value).strip()
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        if scheme in ("wasb", "wasbs", "az", "abfs"):
            # wasb://<container>/<prefix>, or wasb://<container>@<account>.blob.core.windows.net/<prefix>
            container = parts.netloc.split("@", 1)[0]
            if not container:
                raise ExhaustValidationError("destination", "must name the container: wasb://<container>/<prefix>",
                                             text)
            return cls(container=container, prefix=unquote(parts.path).strip("/"))
        if scheme == "file":
            if parts.netloc not in ("", "localhost"):
                raise ExhaustValidationError("destination", "a file:// URI must be local (file:///<path>)", text)
            return cls(local=Path(unquote(parts.path)))
        if scheme and len(scheme) > 1:
            raise ExhaustValidationError("destination", "must be a local path, file:///<path> or "
                                         "wasb://<container>/<prefix>", text)
        return cls(local=Path(text).expanduser())

    def uri(self, relative: str) -> str:
        """The stored file's path (local) or ``wasb://<container>/<key>`` URI (Azure)."""
        if self.local is not None:
            return str(self.local / relative)
        return f"wasb://{self.container}/{self.key(relative)}"

    def key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative


def _segment(value: Any, field_name: str) -> str:
    """A path segment taken from the job: refuse anything that could leave the destination folder."""
    text = str(value)
    if not _SAFE_SEGMENT.fullmatch(text) or ".." in text:
        raise ExhaustValidationError(field_name, "must be letters, digits, '.', '_' or '-' to be used in a path",
                                     text)
    return text


def file_names(dataset: str, suffixes: list[str]) -> list[str]:
    """Fixed file names for a job's files: ``<dataset><suffix>``, numbered when there are several
    (``exhaust.names.dataset_file_names``)."""
    try:
        return dataset_file_names(_segment(dataset, "dataset"), suffixes)
    except ExhaustValidationError:
        raise
    except ValueError as exc:
        field, _, rule = str(exc).partition(": ")
        raise ExhaustValidationError(field, rule) from None


def job_folder(ids: dict[str, Any]) -> str:
    """The folder of a job's files under the destination: ``<conversation_id>/<start_date>_<end_date>``, the
    conversation id a UUID (``exhaust.names``) and each date a plain path segment."""
    try:
        conversation = checked_conversation_id(ids.get("conversation_id"), "conversation_id")
    except ValueError as exc:
        raise ExhaustValidationError("conversation_id", "must be a UUID, 8-4-4-4-12 hex digits, to name the "
                                     "folder of the job's files", ids.get("conversation_id")) from exc
    return "/".join((conversation, f"{_segment(ids.get('start_date') or 'all', 'start_date')}_"
                                   f"{_segment(ids.get('end_date') or 'all', 'end_date')}"))


class CopyExhaustFilesOperator(BaseOperator):
    """Copy a finished (SUCCESS) exhaust job's files to a local folder or to Azure Blob storage.

    The job is read again for freshly signed URLs (they expire after 30 minutes), and each file is
    streamed to disk with its size checked, re-reading the job for a new URL whenever a download is
    cut short or its URL has expired. Files land at fixed paths, so a rerun overwrites them:
    ``<destination>/<conversation_id>/<start_date>_<end_date>/uci-response-exhaust.csv``, or for the
    private exhaust ``.../uci-private-exhaust.zip`` and the CSV extracted from it,
    ``.../uci-private-exhaust.csv``. Every file appears only once complete. To Azure, a CSV streams
    from the download straight into a block blob (blocks of 8 MiB, each sent with its MD5, four at a
    time, committed at the end: :mod:`airflow_provider_uci.transfers.blob`); the private zip goes
    through a temporary folder, to be opened, and both it and its CSV are uploaded.

    Returns ``{"dataset": ..., "files": [paths or wasb:// URIs], "csv": <the CSV to load>, "host": ...}``:
    storage locations only, never signed URLs or keys. A job whose outcome is ``empty`` (the service
    found no data in the range) has no files: it is returned with ``"empty": True`` and nothing copied.

    Give the jobs as ``jobs`` (templated; e.g. an ``ExhaustJobSensor``'s output: one job, or a mapping
    of dataset to job, which is then returned as ``{dataset: copied}``), as ``tag`` and ``request_id``
    (templated), or as ``job_task_id``: a task whose XCom is the job's identifiers (an
    :class:`~airflow_provider_uci.sensors.exhaust.ExhaustJobSensor` or
    :class:`~airflow_provider_uci.operators.exhaust.SubmitExhaustOperator`).

    A local-folder destination suits one machine (LocalExecutor): with workers on several machines
    (CeleryExecutor, KubernetesExecutor) the load may run where the folder is not; give a
    ``wasb://`` destination there.

    :param conversation_id: the bot, for log lines and the task's label (map index). Templated.
    :param destination: a local folder (a path or ``file:///<path>``), or ``wasb://<container>/<prefix>``;
        by default ``<AIRFLOW_HOME>/uci-exhaust``. Templated.
    :param uci_exhaust_conn_id: the Data Exhaust connection. Templated.
    :param wasb_conn_id: the Azure Blob connection, for ``wasb://`` destinations. Templated.
    :param zip_password: the private exhaust zip's password; defaults to the connection's. Templated, and
        shown as ``***`` in the UI (``encryption_key`` is taken as an alias).
    :param download_attempts: attempts per file, the first included.
    :param download_backoff: seconds before a file's second attempt, doubled each time.
    :param chunk_size: bytes streamed at a time.
    """

    template_fields: Sequence[str] = ("jobs", "tag", "request_id", "job_task_id", "conversation_id", "destination",
                                      "uci_exhaust_conn_id", "wasb_conn_id", "zip_password")
    ui_color = "#f0e4d7"

    def __init__(self, *, jobs: Any = None, tag: str | None = None, request_id: str | None = None,
                 job_task_id: str | None = None, conversation_id: str | None = None, destination: str | None = None,
                 uci_exhaust_conn_id: str = DEFAULT_CONN_ID, wasb_conn_id: str = DEFAULT_WASB_CONN_ID,
                 zip_password: str | None = None, download_attempts: int = 5, download_backoff: float = 1.0,
                 chunk_size: int = CHUNK_SIZE, encryption_key: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if jobs is None and not job_task_id and not (tag and request_id):
            raise ValueError("CopyExhaustFilesOperator: give jobs, tag and request_id, or job_task_id")
        if download_attempts < 1:
            raise ValueError(f"download_attempts: must be at least 1, got {download_attempts}")
        self.jobs = jobs
        self.tag = tag
        self.request_id = request_id
        self.job_task_id = job_task_id
        self.conversation_id = conversation_id
        self.destination = destination
        self.uci_exhaust_conn_id = uci_exhaust_conn_id
        self.wasb_conn_id = wasb_conn_id
        self.zip_password = zip_password or encryption_key
        self.download_attempts = download_attempts
        self.download_backoff = download_backoff
        self.chunk_size = chunk_size

    def _given(self, context: Context) -> Any:
        """The jobs as given: ``jobs``, the XCom of ``job_task_id``, or ``tag``/``request_id``."""
        if self.jobs is not None:
            return decoded(self.jobs)
        if self.job_task_id:
            pushed = decoded(pull_from(context, self.job_task_id))
            if not isinstance(pushed, dict):
                raise ExhaustError(f"task {self.job_task_id!r} pushed no exhaust job (tag and request_id) to XCom")
            return pushed
        return {"tag": self.tag, "request_id": self.request_id}

    def execute(self, context: Context) -> dict[str, Any]:
        given = self._given(context)
        try:
            jobs = job_list(given, "jobs")
        except ExhaustValidationError:
            if self.job_task_id:
                raise ExhaustError(f"task {self.job_task_id!r} pushed no exhaust job (tag and request_id) "
                                   "to XCom") from None
            raise
        self._copier = ExhaustCopier(
            log=self.log, conversation_id=self.conversation_id, destination=self.destination,
            uci_exhaust_conn_id=self.uci_exhaust_conn_id, wasb_conn_id=self.wasb_conn_id,
            zip_password=self.zip_password, download_attempts=self.download_attempts,
            download_backoff=self.download_backoff, chunk_size=self.chunk_size)
        copied = self._copier.copy(jobs)
        if isinstance(given, dict) and not is_job(given):
            return by_dataset(copied)
        return copied[0] if len(copied) == 1 else {"jobs": copied}

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the service's files (named without their signature) in, the copies out."""
        copier = getattr(self, "_copier", None)
        return lineage.operator_lineage(copier.read if copier else [], copier.wrote if copier else [])


@dataclass(kw_only=True)
class ExhaustCopier:
    """Copies finished jobs' files to a destination, as a task does: what :class:`CopyExhaustFilesOperator`
    runs, and what :class:`~airflow_provider_uci.operators.to_warehouse.ExhaustToWarehouseOperator` runs
    after its wait. Takes that operator's parameters; logs to ``log`` (the task's logger).
    """

    log: Any
    conversation_id: str | None
    destination: str | None
    uci_exhaust_conn_id: str
    wasb_conn_id: str
    zip_password: str | None
    download_attempts: int = 5
    download_backoff: float = 1.0
    chunk_size: int = CHUNK_SIZE
    read: list[tuple[str, str]] = field(default_factory=list, init=False)  # lineage: the files copied, and
    wrote: list[tuple[str, str]] = field(default_factory=list, init=False)  # where they went
    _bot_prefix: str = field(default="", init=False)

    def copy(self, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Copy each job's files (none for an empty outcome); return where they are, job by job."""
        if self.zip_password:
            mask_secret(self.zip_password)
        destination = Destination.parse(self.destination)
        hook = UciExhaustHook(self.uci_exhaust_conn_id)
        with naming_bot(self.conversation_id or jobs[0].get("conversation_id")):
            return [self._copy(hook, destination, job) for job in jobs]

    def _copy(self, hook: UciExhaustHook, destination: Destination, pushed: dict[str, Any]) -> dict[str, Any]:
        """Copy one job's files (none for an empty outcome); return where they are."""
        tag, request_id = str(pushed["tag"]), str(pushed["request_id"])
        bot = self.conversation_id or pushed.get("conversation_id") or "(unknown bot)"
        self._bot_prefix = f"Bot {bot}: "
        if pushed.get("outcome") == Outcome.EMPTY.value:
            self.log.info("Bot %s: %s job %s found no data in %s..%s; nothing to copy", bot, pushed.get("dataset"),
                          request_id, pushed.get("start_date"), pushed.get("end_date"))
            return {**{name: pushed.get(name) for name in ("dataset", "request_id", "conversation_id", "start_date",
                                                          "end_date")}, "files": [], "csv": None, "empty": True}
        job = hook.read_request(tag, request_id)
        self._require_success(job)
        ids = {**{k: v for k, v in pushed.items() if v is not None},
               **{k: v for k, v in job.identifiers().items() if v is not None}}
        dataset = str(ids.get("dataset") or "")
        if not ids.get("conversation_id"):
            raise ExhaustError(f"exhaust job {request_id} names no conversationId; cannot place its files")
        folder = job_folder(ids)
        suffixes = [url_suffix(url) for url in job.download_urls]
        if not suffixes:
            raise ExhaustError(f"exhaust job {request_id} ({dataset}) succeeded but lists no files")
        names = file_names(dataset, suffixes)
        key = self.zip_password or hook.settings.encryption_key

        def url_source() -> list[str]:
            fresh = hook.read_request(tag, request_id)
            self._require_success(fresh)
            return list(fresh.download_urls)

        self.log.info("Bot %s: copying %d file(s) of %s job %s to %s", bot, len(names), dataset, request_id,
                      destination.uri(folder))
        self.read += [lineage.service_file(url) for url in job.download_urls]
        if destination.local is not None:
            files, csv = self._fetch(url_source, names, destination.local / folder, key)
            result_files = [str(path) for path in files]
            result_csv = str(csv) if csv is not None else None
        else:
            result_files, result_csv = self._copy_to_blob(url_source, names, destination, folder, key)
        self.wrote += [lineage.stored_file(location) for location in result_files]
        return {"dataset": dataset, "files": result_files, "csv": result_csv, "host": socket.gethostname(),
                **{name: ids.get(name) for name in ("request_id", "conversation_id", "start_date", "end_date")}}

    @staticmethod
    def _require_success(job: ExhaustJob) -> None:
        if job.status is JobStatus.SUCCESS:
            return
        if job.status is JobStatus.FAILED:
            raise job.failure()
        raise ExhaustError(f"exhaust job {job.request_id} ({job.dataset}) is {job.status_text or 'unknown'}, "
                           "not SUCCESS: wait for it (ExhaustJobSensor) before copying its files")

    def _fetch(self, url_source: Callable[[], list[str]], names: list[str], folder: Path,
               key: str | None) -> tuple[list[Path], Path | None]:
        """Download every file into ``folder`` and open a private zip; return (files, the CSV to load)."""
        files: list[Path] = []
        csv: Path | None = None
        for index, name in enumerate(names):
            target = folder / name
            self._download(url_source, index, target)
            files.append(target)
            if target.suffix == ".zip":
                extracted = self._open_zip(target, key, folder)
                files.append(extracted)
                csv = csv or extracted
            elif target.suffix == ".csv":
                csv = csv or target
        return files, csv

    def _copy_to_blob(self, url_source: Callable[[], list[str]], names: list[str], destination: Destination,
                      folder: str, key: str | None) -> tuple[list[str], str | None]:
        """Stream every file into its blob; a zip goes through a temporary folder, to be opened and its CSV
        stored beside it. Return (the blobs' URIs, the CSV to load)."""
        store = BlobStore(self.wasb_conn_id, str(destination.container))
        files: list[str] = []
        csv: str | None = None
        for index, name in enumerate(names):
            relative = f"{folder}/{name}"
            if name.endswith(".zip"):
                with scratch_folder("uci-exhaust-") as scratch:  # swept by the next run if this one is killed
                    archive = Path(scratch) / name
                    self._download(url_source, index, archive)
                    extracted = self._open_zip(archive, key, Path(scratch))
                    for path in (archive, extracted):
                        size = store.upload(path, destination.key(f"{folder}/{path.name}"),
                                            chunk_size=self.chunk_size)
                        files.append(destination.uri(f"{folder}/{path.name}"))
                        self.log.info("%sUploaded %s (%d bytes) to %s", self._bot_prefix, path.name, size,
                                      files[-1])
                    csv = csv or destination.uri(f"{folder}/{extracted.name}")
                continue
            with store.writer(destination.key(relative)) as writer:
                size = self._download(url_source, index, writer, name=name)
                writer.commit()
            files.append(destination.uri(relative))
            self.log.info("%sCopied %s (%d bytes) to %s", self._bot_prefix, name, size, files[-1])
            if name.endswith(".csv"):
                csv = csv or files[-1]
        return files, csv

    def _download(self, url_source: Callable[[], list[str]], index: int, target: Path | Sink, *,
                  name: str | None = None) -> int:
        """Fetch file ``index`` into a local path or a sink, with this task's retry settings."""
        options = {"attempts": self.download_attempts, "chunk_size": self.chunk_size,
                   "backoff": self.download_backoff}
        try:
            if isinstance(target, Path):
                size = download(url_source, index, target, **options)
                name = target.name
            else:
                size = download_to(url_source, index, target, name=str(name), **options)
        except DownloadError as exc:
            raise ExhaustDownloadError(str(exc)) from None
        self.log.info("%sDownloaded %s (%d bytes)", self._bot_prefix, name, size)
        return size

    def _open_zip(self, target: Path, key: str | None, folder: Path) -> Path:
        """Extract the zip's CSV beside it, under the zip's own name with ``.csv``."""
        try:
            return open_private_zip(target, key, folder, name=target.with_suffix(".csv").name,
                                    chunk_size=self.chunk_size)
        except ZipPasswordError as exc:
            raise ExhaustKeyError(str(exc)) from None
        except PrivateZipError as exc:
            raise ExhaustZipError(str(exc)) from None
