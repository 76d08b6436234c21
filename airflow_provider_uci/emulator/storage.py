"""Blob storage behind the emulator: a local folder with SAS-shaped signed URLs, or Azure Blob.

Both backends store a blob under (container, key) and hand out read-only signed URLs. The job store
keeps the real service's *stored* URL forms (``wasb://reports@<account>.blob.core.windows.net/<key>``
for CSV files, ``https://<account>.blob.core.windows.net/reports/<key>`` for zips), and the API turns
them back into a key exactly as the real service does (:func:`key_from_stored_url`) before signing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol
from urllib.parse import quote

from airflow_provider_uci.exhaust.safe_files import atomic_writer

#: The storage service version the real service's signed URLs carry.
SAS_VERSION = "2017-04-17"


class StorageError(RuntimeError):
    """A blob could not be stored, found or signed."""


def key_from_stored_url(url: str) -> str:
    """Turn a stored download URL into an object key, as the real service does before signing.

    A URL containing ``http`` loses its first four ``/``-separated segments
    (``https:``, ``""``, host, container); any other (``wasb://container@host/...``) its first three.
    """
    drop = 4 if "http" in url else 3
    return "/".join(url.split("/")[drop:])


def wasb_url(account: str, container: str, key: str) -> str:
    """The ``wasb://`` form the response job stores."""
    return f"wasb://{container}@{account}.blob.core.windows.net/{key}"


def https_url(account: str, container: str, key: str) -> str:
    """The ``https://`` form the private job stores for its zip."""
    return f"https://{account}.blob.core.windows.net/{container}/{key}"


def format_expiry(expiry: datetime) -> str:
    """The ``se`` value of a SAS: UTC, whole seconds, ``Z``."""
    return expiry.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_key(key: str) -> str:
    parts = PurePosixPath(key).parts
    if not key or key.startswith("/") or any(part in ("..", ".") for part in parts):
        raise StorageError(f"key: must be a relative path without '.' or '..' segments, got {key!r}")
    return key


class BlobStorage(Protocol):
    """What the API and the nightly jobs need from blob storage."""

    account: str

    def upload_file(self, container: str, key: str, path: Path) -> None: ...

    def open(self, container: str, key: str) -> BinaryIO: ...

    def exists(self, container: str, key: str) -> bool: ...

    def delete(self, container: str, key: str) -> None: ...

    def list_keys(self, container: str, prefix: str) -> Iterator[str]: ...

    def signed_url(
        self, container: str, key: str, *, now: datetime, ttl: timedelta, base_url: str
    ) -> str: ...


class LocalStorage:
    """Blobs as files under ``root/<container>/<key>``, served by the emulator's download route.

    Signed URLs look like an Azure SAS (``sv``, ``se``, ``sr``, ``sp``, ``sig``); ``sig`` is an
    HMAC-SHA256 over the container, key and expiry, so a changed path or expiry fails to verify.
    """

    def __init__(self, root: Path, *, account: str, signing_key: str) -> None:
        self.root = Path(root)
        self.account = account
        self._key = signing_key.encode()

    def path(self, container: str, key: str) -> Path:
        """The file that holds the blob."""
        return self.root / _check_key(container) / _check_key(key)

    def upload_file(self, container: str, key: str, path: Path) -> None:
        """Store a copy of ``path``: whole or not at all, ``0600`` in folders made ``0700`` (blobs hold
        personal data), never through a link planted at the blob's name."""
        target = self.path(container, key)
        with Path(path).open("rb") as source, atomic_writer(target, field="blob") as sink:
            shutil.copyfileobj(source, sink, 1 << 20)

    def delete(self, container: str, key: str) -> None:
        self.path(container, key).unlink(missing_ok=True)

    def open(self, container: str, key: str) -> BinaryIO:
        try:
            return self.path(container, key).open("rb")
        except FileNotFoundError:
            raise StorageError(f"blob {container}/{key} does not exist") from None

    def exists(self, container: str, key: str) -> bool:
        return self.path(container, key).is_file()

    def list_keys(self, container: str, prefix: str) -> Iterator[str]:
        base = self.root / _check_key(container)
        if not base.is_dir():
            return
        for file in sorted(base.rglob("*")):
            key = file.relative_to(base).as_posix()
            if file.is_file() and key.startswith(prefix) and not key.endswith(".partial"):
                yield key

    def signature(self, container: str, key: str, se: str) -> str:
        """The ``sig`` of a URL for this blob and expiry."""
        digest = hmac.new(self._key, f"r\n{se}\n/{self.account}/{container}/{key}".encode(), hashlib.sha256)
        return base64.b64encode(digest.digest()).decode()

    def url_path(self, container: str, key: str) -> str:
        """The download route's path for a blob."""
        return f"/blob/{self.account}/{container}/{quote(key)}"

    def signed_url(self, container: str, key: str, *, now: datetime, ttl: timedelta, base_url: str) -> str:
        se = format_expiry(now + ttl)
        query = f"sv={SAS_VERSION}&se={quote(se, safe='')}&sr=b&sp=r&sig={quote(self.signature(container, key, se), safe='')}"
        return f"{base_url.rstrip('/')}{self.url_path(container, key)}?{query}"

    def verify(self, container: str, key: str, *, se: str, sig: str, now: datetime) -> str | None:
        """Return why a signed URL is refused, or ``None`` when it is good at ``now``.

        The signatures are compared as bytes: ``compare_digest`` refuses non-ASCII text outright.
        """
        if not hmac.compare_digest(
            self.signature(container, key, se).encode(), sig.encode("utf-8", "replace")
        ):
            return "Signature did not match"
        try:
            expiry = datetime.strptime(se, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        except ValueError:
            return "Signature fields not well formed"
        if now >= expiry:
            return "Signed expiry time has to be after signed start time and current time"
        return None


class AzureStorage:
    """Blobs in Azure Blob Storage (Azurite in tests), signed with real SAS tokens.

    SAS expiry is real time plus the TTL, because Azure (or Azurite) checks it against its own clock,
    not the emulator's.
    """

    def __init__(self, connection_string: str) -> None:
        from azure.storage.blob import BlobServiceClient

        self._service = BlobServiceClient.from_connection_string(connection_string)
        self.account = self._service.account_name or "devstoreaccount1"
        credential = self._service.credential
        self._account_key = getattr(credential, "account_key", None)
        if not self._account_key:
            raise StorageError("azure_connection_string: must carry an AccountKey so that URLs can be signed")
        self._known_containers: set[str] = set()

    def _container(self, container: str):
        client = self._service.get_container_client(container)
        if container not in self._known_containers:
            from azure.core.exceptions import ResourceExistsError

            try:
                client.create_container()
            except ResourceExistsError:
                pass
            self._known_containers.add(container)
        return client

    def upload_file(self, container: str, key: str, path: Path) -> None:
        with Path(path).open("rb") as handle:
            self._container(container).upload_blob(_check_key(key), handle, overwrite=True)

    def open(self, container: str, key: str) -> BinaryIO:
        import io

        from azure.core.exceptions import ResourceNotFoundError

        try:
            downloader = self._container(container).download_blob(_check_key(key))
        except ResourceNotFoundError:
            raise StorageError(f"blob {container}/{key} does not exist") from None
        return io.BufferedReader(_ChunkReader(downloader.chunks()), buffer_size=4 * 1024 * 1024)  # type: ignore[arg-type]

    def exists(self, container: str, key: str) -> bool:
        return self._container(container).get_blob_client(_check_key(key)).exists()

    def delete(self, container: str, key: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self._container(container).delete_blob(_check_key(key))
        except ResourceNotFoundError:
            pass

    def list_keys(self, container: str, prefix: str) -> Iterator[str]:
        for blob in self._container(container).list_blobs(name_starts_with=prefix):
            yield blob.name

    def signed_url(self, container: str, key: str, *, now: datetime, ttl: timedelta, base_url: str) -> str:
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        real_expiry = datetime.now(timezone.utc) + ttl
        sas = generate_blob_sas(
            account_name=self.account,
            container_name=container,
            blob_name=key,
            account_key=self._account_key,
            permission=BlobSasPermissions(read=True),
            expiry=real_expiry,
        )
        return f"{self._container(container).get_blob_client(key).url}?{sas}"


class _ChunkReader:
    """A raw, readable stream over an iterator of byte chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""
        self.closed = False

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size

    def close(self) -> None:
        self.closed = True

    def flush(self) -> None:
        pass

    def seekable(self) -> bool:
        return False

    def writable(self) -> bool:
        return False
