"""BlockBlobWriter against Azurite: blocks, MD5s, restarts, failures and memory."""

from __future__ import annotations

import base64
import hashlib
import os
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_uci.transfers.blob import BlobUploadError, BlockBlobWriter
from tests.support.services import Azurite

pytestmark = pytest.mark.azure


@pytest.fixture
def container(azurite: Azurite, request: pytest.FixtureRequest) -> Iterator[Any]:
    from azure.storage.blob import BlobServiceClient

    name = "writer-" + hashlib.sha1(request.node.name.encode()).hexdigest()[:12]
    client = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(name)
    client.create_container()
    yield client
    client.delete_container()


def committed_blocks(blob: Any) -> list[int]:
    committed, _uncommitted = blob.get_block_list("all")
    return [block.size for block in committed]


def test_bytes_written_in_any_pieces_land_in_blocks_of_the_block_size(container: Any) -> None:
    data = os.urandom(10 * 1000 + 7)
    blob = container.get_blob_client("pieces.csv")
    with BlockBlobWriter(blob, "text/csv", block_size=1000, threads=3) as writer:
        offset = 0
        for size in (1, 999, 1000, 2500, 0, 3, 5504):  # across, at and inside block boundaries
            assert writer.write(memoryview(data)[offset : offset + size]) == size
            offset += size
        assert offset == len(data) and writer.tell() == len(data)
        assert writer.commit() == len(data)
    assert blob.download_blob().readall() == data
    assert committed_blocks(blob) == [1000] * 10 + [7]
    properties = blob.get_blob_properties()
    assert properties.size == len(data) and properties.content_settings.content_type == "text/csv"


def test_each_block_carries_its_md5(azurite: Azurite, container: Any) -> None:
    from azure.storage.blob import BlobClient

    sent: list[tuple[bytes, str | None]] = []

    def record(request: Any) -> None:
        http = request.http_request
        if http.method == "PUT" and "comp=block" in http.url and "blocklist" not in http.url:
            sent.append((http.data, http.headers.get("Content-MD5")))

    blob = BlobClient.from_connection_string(
        azurite.connection_string, container.container_name, "md5.csv", raw_request_hook=record
    )
    data = os.urandom(2500)
    with BlockBlobWriter(blob, "text/csv", block_size=1000, threads=2) as writer:
        writer.write(data)
        writer.commit()
    assert sorted(body for body, _ in sent) == sorted([data[:1000], data[1000:2000], data[2000:]])
    for body, md5 in sent:
        assert md5 == base64.b64encode(hashlib.md5(body).digest()).decode()
    assert blob.download_blob().readall() == data


def test_a_restart_forgets_what_was_written(container: Any) -> None:
    blob = container.get_blob_client("restarted.csv")
    with BlockBlobWriter(blob, "text/csv", block_size=100, threads=2) as writer:
        writer.write(b"x" * 450)
        writer.restart()
        assert writer.tell() == 0
        writer.write(b"the file, from its start\n")
        writer.commit()
    assert blob.download_blob().readall() == b"the file, from its start\n"
    assert committed_blocks(blob) == [25]


def test_an_empty_file_commits_an_empty_blob(container: Any) -> None:
    blob = container.get_blob_client("empty.csv")
    blob.upload_blob(b"an earlier copy")
    with BlockBlobWriter(blob, "text/csv") as writer:
        assert writer.commit() == 0
    assert blob.download_blob().readall() == b""


def test_nothing_is_visible_until_the_commit_and_an_abort_keeps_the_old_blob(container: Any) -> None:
    blob = container.get_blob_client("kept.csv")
    blob.upload_blob(b"an earlier copy")
    with pytest.raises(RuntimeError, match="the download broke"):
        with BlockBlobWriter(blob, "text/csv", block_size=100, threads=2) as writer:
            writer.write(os.urandom(1000))
            assert blob.download_blob().readall() == b"an earlier copy"
            raise RuntimeError("the download broke")
    assert blob.download_blob().readall() == b"an earlier copy"
    assert committed_blocks(blob) == []


def test_a_refused_block_names_the_blob_and_not_the_key(azurite: Azurite, container: Any) -> None:
    from azure.storage.blob import BlobClient

    wrong_key = "V3Jvbmcga2V5IGZvciB0aGUgZGV2c3RvcmVhY2NvdW50MQ=="
    blob = BlobClient(
        container.url.rsplit("/", 1)[0],
        container.container_name,
        "refused.csv",
        credential={"account_name": "devstoreaccount1", "account_key": wrong_key},
        retry_total=0,
    )
    writer = BlockBlobWriter(blob, "text/csv", block_size=100, threads=2)
    with pytest.raises(BlobUploadError) as caught:
        with writer:
            writer.write(b"y" * 1000)
            writer.commit()
    message = str(caught.value)
    assert message.startswith(f"{container.container_name}/refused.csv: staging block ")
    assert message.endswith(("(AuthorizationFailure)", "(AuthenticationFailed)"))  # Azurite's code, Azure's
    assert wrong_key not in message and "http" not in message
    assert not container.get_blob_client("refused.csv").exists()


def test_memory_stays_at_a_few_blocks_whatever_the_file_size(container: Any) -> None:
    block = 256 * 1024
    size = 40 * block
    piece = os.urandom(64 * 1024)
    blob = container.get_blob_client("large.csv")
    digest = hashlib.sha256()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        with BlockBlobWriter(blob, "text/csv", block_size=block, threads=4) as writer:
            for _ in range(size // len(piece)):
                writer.write(piece)
                digest.update(piece)
            writer.commit()
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert peak < 12 * block, f"peak memory growth {peak} bytes for a {size}-byte file in {block}-byte blocks"
    assert hashlib.sha256(blob.download_blob().readall()).hexdigest() == digest.hexdigest()
