"""Write exhaust files to Azure Blob storage as block blobs, through the Azure provider's WasbHook.

A :class:`BlockBlobWriter` is a :class:`~airflow_provider_uci.exhaust.download.Sink`: a download streams
straight into it. Bytes are cut into blocks of :data:`BLOCK_SIZE`, each staged with its MD5 (the
service checks every block as it arrives) while the next fills, at most :data:`UPLOAD_THREADS` at a
time, so memory stays at a few blocks whatever the file's size. Nothing is visible until
:meth:`BlockBlobWriter.commit` puts the block list in one request: the blob then holds the whole new
file, and a failed or abandoned upload leaves the blob as it was (staged blocks that are never
committed are discarded by the service).
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from airflow_provider_uci.exhaust.download import CHUNK_SIZE, MIB
from airflow_provider_uci.models import ExhaustError

#: Bytes per staged block, and blocks staged at once (so at most UPLOAD_THREADS + 1 are in memory).
BLOCK_SIZE = 8 * MIB
UPLOAD_THREADS = 4
CONTENT_TYPES = {".zip": "application/zip", ".csv": "text/csv"}


class BlobUploadError(ExhaustError):
    """A file could not be written to Azure Blob storage (the message names the blob, never a URL or key)."""


def _failure(exc: BaseException) -> str:
    """What went wrong, without the exception's text (a transport error's text can hold a SAS URL)."""
    code = getattr(exc, "error_code", None) or getattr(exc, "status_code", None)
    code = getattr(code, "value", code)  # the SDK's StorageErrorCode is an enum of the service's codes
    return f"{type(exc).__name__}{f' ({code})' if code else ''}"


class BlockBlobWriter:
    """A block blob being written: ``write`` bytes in order, then :meth:`commit` (or :meth:`abort`).

    :param blob: an ``azure.storage.blob.BlobClient``.
    :param content_type: stored as the blob's ``Content-Type`` at commit.
    :param block_size: bytes per block (the service allows up to 4000 MiB, and 50,000 blocks per blob).
    :param threads: blocks staged at once.
    """

    def __init__(
        self, blob: Any, content_type: str, *, block_size: int = BLOCK_SIZE, threads: int = UPLOAD_THREADS
    ) -> None:
        if block_size < 1:
            raise ValueError(f"block_size: must be at least 1, got {block_size}")
        if threads < 1:
            raise ValueError(f"threads: must be at least 1, got {threads}")
        self.blob = blob
        self.content_type = content_type
        self.block_size = block_size
        self.threads = threads
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="uci-blob")
        self._pending: deque[Future[None]] = deque()
        self._restart_state()

    def _restart_state(self) -> None:
        # block ids are unique to this attempt, so a block of an abandoned attempt can never be committed
        self._prefix = uuid.uuid4().hex[:16]
        self._blocks: list[str] = []
        self._buffer = bytearray()
        self._written = 0

    @property
    def name(self) -> str:
        return f"{self.blob.container_name}/{self.blob.blob_name}"

    def write(self, data: bytes | memoryview) -> int:
        """Append ``data``; a full block is handed to a staging thread (waiting while all are busy)."""
        view = memoryview(data)
        size = len(view)
        while view:
            room = self.block_size - len(self._buffer)
            self._buffer += view[:room]
            view = view[room:]
            if len(self._buffer) == self.block_size:
                self._stage()
        self._written += size
        return size

    def tell(self) -> int:
        return self._written

    def restart(self) -> None:
        """Forget every byte written so far (blocks already staged are left uncommitted)."""
        self._drain(raise_errors=False)
        self._restart_state()

    def commit(self) -> int:
        """Stage the last block, wait for every block, and commit the list: the blob now holds the file.

        Returns the blob's size in bytes.
        """
        from azure.storage.blob import BlobBlock, ContentSettings

        try:
            if self._buffer:
                self._stage()  # an empty file commits an empty list: a blob of no bytes
            self._drain(raise_errors=True)
            try:
                self.blob.commit_block_list(
                    [BlobBlock(block_id) for block_id in self._blocks],
                    content_settings=ContentSettings(content_type=self.content_type),
                )
            except Exception as exc:
                raise BlobUploadError(
                    f"{self.name}: committing {len(self._blocks)} block(s) failed: {_failure(exc)}"
                ) from None
        finally:
            self._pool.shutdown(wait=True)
        return self._written

    def abort(self) -> None:
        """Give the upload up: nothing is committed and the blob stays as it was."""
        self._drain(raise_errors=False)
        self._pool.shutdown(wait=True)

    def __enter__(self) -> BlockBlobWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: Any) -> None:
        if kind is not None:
            self.abort()

    def _stage(self) -> None:
        """Send the filled buffer as the next block; wait for the oldest block while all threads are busy."""
        block_id = f"{self._prefix}-{len(self._blocks):08d}"
        self._blocks.append(block_id)
        data, self._buffer = bytes(self._buffer), bytearray()
        while len(self._pending) >= self.threads:
            self._wait(self._pending.popleft(), raise_errors=True)
        self._pending.append(self._pool.submit(self._put, block_id, data, len(self._blocks)))

    def _put(self, block_id: str, data: bytes, number: int) -> None:
        try:
            self.blob.stage_block(block_id, data, length=len(data), validate_content=True)
        except Exception as exc:
            raise BlobUploadError(
                f"{self.name}: staging block {number} ({len(data)} bytes) failed: {_failure(exc)}"
            ) from None

    def _drain(self, *, raise_errors: bool) -> None:
        while self._pending:
            self._wait(self._pending.popleft(), raise_errors=raise_errors)

    def _wait(self, future: Future[None], *, raise_errors: bool) -> None:
        if raise_errors:
            try:
                future.result()
            except BaseException:
                self._drain(raise_errors=False)
                raise
        else:
            future.cancel()
            with contextlib.suppress(Exception):
                future.result()


class BlobStore:
    """One container, reached through a WasbHook connection; created on first use."""

    def __init__(self, wasb_conn_id: str, container: str) -> None:
        from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

        self.hook = WasbHook(wasb_conn_id=wasb_conn_id)
        self.container = container
        self._created = False

    def writer(self, key: str) -> BlockBlobWriter:
        """A writer of the blob ``key`` (its content type from the suffix), replacing it at commit."""
        if not self._created:
            self.hook.create_container(self.container)
            self._created = True
        blob = self.hook.blob_service_client.get_blob_client(container=self.container, blob=key)
        return BlockBlobWriter(
            blob,
            CONTENT_TYPES.get(Path(key).suffix.lower(), "application/octet-stream"),
            block_size=BLOCK_SIZE,
            threads=UPLOAD_THREADS,
        )

    def upload(self, path: Path, key: str, *, chunk_size: int = CHUNK_SIZE) -> int:
        """Upload the local file ``path`` as the blob ``key``, replacing it; return its size in bytes."""
        with self.writer(key) as writer, path.open("rb") as source:
            shutil.copyfileobj(source, writer, chunk_size)
            return writer.commit()
