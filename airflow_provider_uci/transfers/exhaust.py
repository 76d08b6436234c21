"""CopyExhaustFilesOperator: copy a finished exhaust job's files to a local folder or Azure Blob storage."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from airflow.sdk import BaseOperator, Context
from airflow.sdk.log import mask_secret

from airflow_provider_uci import lineage
from airflow_provider_uci.botlog import bot_log, naming_bot
from airflow_provider_uci.exhaust.at_rest import scratch_folder
from airflow_provider_uci.exhaust.download import CHUNK_SIZE, DownloadError, Sink, download, download_to
from airflow_provider_uci.exhaust.names import conversation_id as checked_conversation_id
from airflow_provider_uci.exhaust.names import dataset_file_names, url_suffix
from airflow_provider_uci.exhaust.private_zip import PrivateZipError, ZipPasswordError, open_private_zip
from airflow_provider_uci.hooks.wire import DEFAULT_CONN_ID
from airflow_provider_uci.models import (
    ExhaustError,
    ExhaustJob,
    ExhaustValidationError,
    JobStatus,
    Outcome,
)
from airflow_provider_uci.refs import CopiedDataset, jobs_by_dataset
from airflow_provider_uci.transfers.blob import BlobStore

if TYPE_CHECKING:
    from airflow_provider_uci.hooks.exhaust import UciExhaustHook

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
                raise ExhaustValidationError(
                    "destination", "must name the container: wasb://<container>/<prefix>", text
                )
            return cls(container=container, prefix=unquote(parts.path).strip("/"))
        if scheme == "file":
            if parts.netloc not in ("", "localhost"):
                raise ExhaustValidationError(
                    "destination", "a file:// URI must be local (file:///<path>)", text
                )
            return cls(local=Path(unquote(parts.path)))
        if scheme and len(scheme) > 1:
            raise ExhaustValidationError(
                "destination", "must be a local path, file:///<path> or wasb://<container>/<prefix>", text
            )
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
        raise ExhaustValidationError(
            field_name, "must be letters, digits, '.', '_' or '-' to be used in a path", text
        )
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


def copied_ids(ids: Mapping[str, Any], dataset: str) -> CopiedDataset:
    """What a copy of ``dataset`` keeps of its job's identifiers."""
    return CopiedDataset(
        dataset=dataset,
        request_id=ids.get("request_id"),
        conversation_id=ids.get("conversation_id"),
        start_date=ids.get("start_date"),
        end_date=ids.get("end_date"),
    )


def job_folder(ids: dict[str, Any]) -> str:
    """The folder of a job's files under the destination: ``<conversation_id>/<start_date>_<end_date>``, the
    conversation id a UUID (``exhaust.names``) and each date a plain path segment."""
    try:
        conversation = checked_conversation_id(ids.get("conversation_id"), "conversation_id")
    except ValueError as exc:
        raise ExhaustValidationError(
            "conversation_id",
            "must be a UUID, 8-4-4-4-12 hex digits, to name the folder of the job's files",
            ids.get("conversation_id"),
        ) from exc
    return "/".join(
        (
            conversation,
            f"{_segment(ids.get('start_date') or 'all', 'start_date')}_"
            f"{_segment(ids.get('end_date') or 'all', 'end_date')}",
        )
    )


class CopyExhaustFilesOperator(BaseOperator):
    """Copy a bot's answered exhaust jobs' files to a local folder or to Azure Blob storage.

    Each job is read again for freshly signed URLs (they expire after 30 minutes), and each file is
    streamed to disk with its size checked, re-reading the job for a new URL whenever a download is
    cut short or its URL has expired. Files land at fixed paths, so a rerun overwrites them:
    ``<destination>/<conversation_id>/<start_date>_<end_date>/uci-response-exhaust.csv``, or for the
    private exhaust ``.../uci-private-exhaust.zip`` and the CSV extracted from it,
    ``.../uci-private-exhaust.csv``. Every file appears only once complete. To Azure, a CSV streams
    from the download straight into a block blob (blocks of 8 MiB, each sent with its MD5, four at a
    time, committed at the end: :mod:`airflow_provider_uci.transfers.blob`); the private zip goes
    through a temporary folder, to be opened, and both it and its CSV are uploaded.

    Give the jobs as ``jobs``: a wait's output (``wait.output``), ``{dataset: answered job}``. Returns
    ``{dataset: copied}``, each ``{"files": [paths or wasb:// URIs], "csv": <the CSV to load>, "host",
    ...}``: storage locations only, never signed URLs or keys. A job whose outcome is ``empty`` (the
    service found no data in the range) has no files: it comes back with ``"empty": True``.

    A local-folder destination suits one machine (LocalExecutor): with workers on several machines
    (CeleryExecutor, KubernetesExecutor) the load may run where the folder is not; give a
    ``wasb://`` destination there.

    :param jobs: ``{dataset: job}``. Templated.
    :param conversation_id: the bot, for log lines and the task's label (map index). Templated.
    :param destination: a local folder (a path or ``file:///<path>``), or ``wasb://<container>/<prefix>``;
        by default ``<AIRFLOW_HOME>/uci-exhaust/files``. Templated.
    :param uci_exhaust_conn_id: the Data Exhaust connection. Templated.
    :param wasb_conn_id: the Azure Blob connection, for ``wasb://`` destinations. Templated.
    :param zip_password: the private exhaust zip's password; defaults to the connection's. Templated, and
        shown as ``***`` in the UI.
    :param download_attempts: attempts per file, the first included.
    :param download_backoff: seconds before a file's second attempt, doubled each time.
    :param chunk_size: bytes streamed at a time.
    """

    template_fields: Sequence[str] = (
        "jobs",
        "conversation_id",
        "destination",
        "uci_exhaust_conn_id",
        "wasb_conn_id",
        "zip_password",
    )
    ui_color = "#f0e4d7"

    def __init__(
        self,
        *,
        jobs: Any,
        conversation_id: str | None = None,
        destination: str | None = None,
        uci_exhaust_conn_id: str = DEFAULT_CONN_ID,
        wasb_conn_id: str = DEFAULT_WASB_CONN_ID,
        zip_password: str | None = None,
        download_attempts: int = 5,
        download_backoff: float = 1.0,
        chunk_size: int = CHUNK_SIZE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if download_attempts < 1:
            raise ValueError(f"download_attempts: must be at least 1, got {download_attempts}")
        self.jobs = jobs
        self.conversation_id = conversation_id
        self.destination = destination
        self.uci_exhaust_conn_id = uci_exhaust_conn_id
        self.wasb_conn_id = wasb_conn_id
        self.zip_password = zip_password
        self.download_attempts = download_attempts
        self.download_backoff = download_backoff
        self.chunk_size = chunk_size

    @cached_property
    def hook(self) -> UciExhaustHook:
        """The Data Exhaust hook (imported here: a task that never calls the service does not pay for it)."""
        from airflow_provider_uci.hooks.exhaust import UciExhaustHook

        return UciExhaustHook(self.uci_exhaust_conn_id)

    @cached_property
    def copier(self) -> ExhaustCopier:
        """The part that copies, with this task's rendered options."""
        options = CopyOptions(
            destination=self.destination,
            wasb_conn_id=self.wasb_conn_id,
            zip_password=self.zip_password or None,
            download_attempts=self.download_attempts,
            download_backoff=self.download_backoff,
            chunk_size=self.chunk_size,
        )
        bot = str(self.conversation_id) if self.conversation_id else None
        return ExhaustCopier(options, lambda: self.hook, bot_log(self.log, bot), bot)

    def execute(self, context: Context) -> dict[str, CopiedDataset]:
        return self.copier.copy(jobs_by_dataset(self.jobs))

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the service's files (named without their signature) in, the copies out."""
        copier = self.__dict__.get("copier")
        return lineage.operator_lineage(copier.read if copier else [], copier.wrote if copier else [])


@dataclass(frozen=True, kw_only=True)
class CopyOptions:
    """Where and how to copy a bot's files.

    :param destination: a local folder, or ``wasb://<container>/<prefix>``; empty for the default folder.
    :param wasb_conn_id: the Azure Blob connection, for ``wasb://`` destinations.
    :param zip_password: the private zip's password; defaults to the connection's.
    :param download_attempts: attempts per file, the first included.
    :param download_backoff: seconds before a file's second attempt, doubled each time.
    :param chunk_size: bytes streamed at a time.
    """

    destination: str | None = None
    wasb_conn_id: str = DEFAULT_WASB_CONN_ID
    zip_password: str | None = None
    download_attempts: int = 5
    download_backoff: float = 1.0
    chunk_size: int = CHUNK_SIZE


@dataclass
class ExhaustCopier:
    """Copies a bot's answered jobs' files to a destination: the part the copy and one-task operators build.

    :param options: where and how.
    :param hook: gives the sync hook (called only when there are files to copy).
    :param log: the task's logger, naming the bot.
    :param conversation_id: the bot.
    """

    options: CopyOptions
    hook: Callable[[], UciExhaustHook]
    log: Any
    conversation_id: str | None = None
    read: list[tuple[str, str]] = field(default_factory=list, init=False)  # lineage: the files copied, and
    wrote: list[tuple[str, str]] = field(default_factory=list, init=False)  # where they went

    def copy(self, jobs: Mapping[str, Mapping[str, Any]]) -> dict[str, CopiedDataset]:
        """Copy each answered job's files (none for an empty outcome); return ``{dataset: copied}``."""
        if self.options.zip_password:
            mask_secret(self.options.zip_password)
        destination = Destination.parse(self.options.destination)
        first = next(iter(jobs.values()), {})
        with naming_bot(self.conversation_id or first.get("conversation_id")):
            return {dataset: self._copy(destination, job) for dataset, job in jobs.items()}

    def _copy(self, destination: Destination, pushed: Mapping[str, Any]) -> CopiedDataset:
        """Copy one job's files (none for an empty outcome); return where they are."""
        tag, request_id = str(pushed["tag"]), str(pushed["request_id"])
        if pushed.get("outcome") == Outcome.EMPTY.value:
            self.log.info(
                "%s job %s found no data in %s..%s; nothing to copy",
                pushed.get("dataset"),
                request_id,
                pushed.get("start_date"),
                pushed.get("end_date"),
            )
            return CopiedDataset(
                **copied_ids(pushed, pushed["dataset"]),  # the refs' readers name each job's dataset
                files=[],
                csv=None,
                empty=True,
                host=None,
            )
        hook = self.hook()
        job = hook.read_request(tag, request_id)
        self._require_success(job)
        ids = {
            **{k: v for k, v in pushed.items() if v is not None},
            **{k: v for k, v in job.identifiers().items() if v is not None},
        }
        dataset = str(ids.get("dataset") or "")
        if not ids.get("conversation_id"):
            raise ExhaustError(f"exhaust job {request_id} names no conversationId; cannot place its files")
        folder = job_folder(ids)
        suffixes = [url_suffix(url) for url in job.download_urls]
        if not suffixes:
            raise ExhaustError(f"exhaust job {request_id} ({dataset}) succeeded but lists no files")
        names = file_names(dataset, suffixes)
        key = self.options.zip_password or hook.settings.encryption_key

        def url_source() -> list[str]:
            fresh = hook.read_request(tag, request_id)
            self._require_success(fresh)
            return list(fresh.download_urls)

        self.log.info(
            "copying %d file(s) of %s job %s to %s", len(names), dataset, request_id, destination.uri(folder)
        )
        self.read += [lineage.service_file(url) for url in job.download_urls]
        if destination.local is not None:
            files, csv = self._fetch(url_source, names, destination.local / folder, key)
            result_files = [str(path) for path in files]
            result_csv = str(csv) if csv is not None else None
        else:
            result_files, result_csv = self._copy_to_blob(url_source, names, destination, folder, key)
        self.wrote += [lineage.stored_file(location) for location in result_files]
        return CopiedDataset(
            **copied_ids(ids, dataset),
            files=result_files,
            csv=result_csv,
            empty=False,
            host=socket.gethostname(),
        )

    @staticmethod
    def _require_success(job: ExhaustJob) -> None:
        if job.status is JobStatus.SUCCESS:
            return
        if job.status is JobStatus.FAILED:
            raise job.failure()
        raise ExhaustError(
            f"exhaust job {job.request_id} ({job.dataset}) is {job.status_text or 'unknown'}, "
            "not SUCCESS: wait for it (ExhaustJobSensor) before copying its files"
        )

    def _fetch(
        self, url_source: Callable[[], list[str]], names: list[str], folder: Path, key: str | None
    ) -> tuple[list[Path], Path | None]:
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

    def _copy_to_blob(
        self,
        url_source: Callable[[], list[str]],
        names: list[str],
        destination: Destination,
        folder: str,
        key: str | None,
    ) -> tuple[list[str], str | None]:
        """Stream every file into its blob; a zip goes through a temporary folder, to be opened and its CSV
        stored beside it. Return (the blobs' URIs, the CSV to load)."""
        store = BlobStore(self.options.wasb_conn_id, str(destination.container))
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
                        size = store.upload(
                            path, destination.key(f"{folder}/{path.name}"), chunk_size=self.options.chunk_size
                        )
                        files.append(destination.uri(f"{folder}/{path.name}"))
                        self.log.info("Uploaded %s (%d bytes) to %s", path.name, size, files[-1])
                    csv = csv or destination.uri(f"{folder}/{extracted.name}")
                continue
            with store.writer(destination.key(relative)) as writer:
                size = self._download(url_source, index, writer, name=name)
                writer.commit()
            files.append(destination.uri(relative))
            self.log.info("Copied %s (%d bytes) to %s", name, size, files[-1])
            if name.endswith(".csv"):
                csv = csv or files[-1]
        return files, csv

    def _download(
        self, url_source: Callable[[], list[str]], index: int, target: Path | Sink, *, name: str | None = None
    ) -> int:
        """Fetch file ``index`` into a local path or a sink, with this task's retry settings."""
        options: dict[str, Any] = {
            "attempts": self.options.download_attempts,
            "chunk_size": self.options.chunk_size,
            "backoff": self.options.download_backoff,
        }
        try:
            if isinstance(target, Path):
                size = download(url_source, index, target, **options)
                name = target.name
            else:
                size = download_to(url_source, index, target, name=str(name), **options)
        except DownloadError as exc:
            raise ExhaustDownloadError(str(exc)) from None
        self.log.info("Downloaded %s (%d bytes)", name, size)
        return size

    def _open_zip(self, target: Path, key: str | None, folder: Path) -> Path:
        """Extract the zip's CSV beside it, under the zip's own name with ``.csv``."""
        try:
            return open_private_zip(
                target, key, folder, name=target.with_suffix(".csv").name, chunk_size=self.options.chunk_size
            )
        except ZipPasswordError as exc:
            raise ExhaustKeyError(str(exc)) from None
        except PrivateZipError as exc:
            raise ExhaustZipError(str(exc)) from None
