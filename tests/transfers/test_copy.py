"""Copying finished exhaust files, against real emulator processes (and Azurite) over HTTP.

Expected bytes are the emulator's own stored blobs under ``<data dir>/blobs/reports/...``; faults
(cut-off bodies, expired URLs) come from the emulator's knobs, not from mocks.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import tracemalloc
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from airflow_provider_uci.exhaust.download import DownloadError, download
from airflow_provider_uci.exhaust.private_zip import ZipPasswordError, open_private_zip
from airflow_provider_uci.hooks.exhaust import UciExhaustHook
from airflow_provider_uci.models import ExhaustError
from airflow_provider_uci.transfers import blob as blob_module
from airflow_provider_uci.transfers.exhaust import CopyExhaustFilesOperator, Destination
from tests.support.api import PRIVATE, RESPONSE, ExhaustApi, new_tag, submit_body
from tests.support.connections import set_uci_connection
from tests.support.services import Azurite, Emulator, run_emulator

SCRIPT = Path(sys.executable).with_name("uci-exhaust")
BOT = "a1a1a1a1-0000-4000-8000-00000000000a"
USER = "a9a9a9a9-0000-4000-8000-0000000000a1"
START, END = "2026-03-08", "2026-03-09"
KEY = "zip-pass-42"
CHANNEL = "dev-channel"


# -- helpers --------------------------------------------------------------------------------------


def context() -> dict[str, Any]:
    return {"ti": SimpleNamespace(try_number=1)}


def answered(job: Job, dataset: str = RESPONSE) -> dict[str, dict[str, str]]:
    """A wait's ``{dataset: job}``, as little of it as a copy needs: the job's tag and request id."""
    return {dataset: {"tag": job.tag, "request_id": job.request_id}}


def copied(result: dict[str, Any], dataset: str = RESPONSE) -> dict[str, Any]:
    """The one dataset's copy of a copy's ``{dataset: copied}``."""
    assert set(result) == {dataset}, result
    return result[dataset]


def unzipped(data_dir: Path, request_id: str, password: str | None = None) -> bytes:
    """The CSV inside the emulator's own private zip of a job (it keeps no plain CSV beside it)."""
    with zipfile.ZipFile(stored(data_dir, PRIVATE, request_id, ".zip")) as archive:
        (entry,) = archive.namelist()
        return archive.read(entry, pwd=password.encode() if password else None)


def stored(data_dir: Path, dataset: str, request_id: str, suffix: str) -> Path:
    """The emulator's own blob of a job, by suffix (``.csv`` or ``.zip``)."""
    (found,) = (data_dir / "blobs" / "reports" / dataset / request_id).glob(f"*{suffix}")
    return found


def files_under(root: Path) -> set[str]:
    return {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()}


def no_secrets(result: dict[str, Any], *secrets: str) -> None:
    text = json.dumps(result)
    assert "sig=" not in text and "se=" not in text and "http" not in text
    for secret in secrets:
        assert secret not in text


@dataclass
class Job:
    tag: str
    request_id: str


def submit(api: ExhaustApi, **kwargs: Any) -> Job:
    tag = new_tag()
    answer = api.submit(submit_body(tag, **kwargs))
    assert answer.status_code == 200, answer.text
    return Job(tag, answer.json()["result"]["requestId"])


def place_file(emulator: Emulator, data: bytes, name: str = "export.csv") -> Job:
    """Submit a response job and store ``data`` as its (only) file; the job is then SUCCESS."""
    job = submit(ExhaustApi(emulator.api))
    requests.post(
        f"{emulator.root}/admin/jobs/{job.request_id}/file",
        params={"tag": f"{job.tag}:{CHANNEL}", "name": name},
        data=data,
        timeout=60,
    ).raise_for_status()
    return job


class CountingSource:
    """A ``url_source`` that reads the job through the hook, counting the reads; optionally slow once."""

    def __init__(self, hook: UciExhaustHook, job: Job, first_delay: float = 0.0) -> None:
        self.hook, self.job, self.first_delay, self.calls = hook, job, first_delay, 0

    def __call__(self) -> list[str]:
        self.calls += 1
        urls = list(self.hook.read_request(self.job.tag, self.job.request_id).download_urls)
        if self.calls == 1 and self.first_delay:
            import time

            time.sleep(self.first_delay)  # the URLs were signed, then sat too long before the download
        return urls


def recording_session() -> tuple[requests.Session, list[int]]:
    """A plain session that records the status of every answer it gets."""
    session, statuses = requests.Session(), []
    session.hooks["response"].append(lambda response, *args, **kwargs: statuses.append(response.status_code))
    return session, statuses


def no_wait(seconds: float) -> None:
    pass


# -- a seeded emulator whose nightly jobs really ran ------------------------------------------------


@dataclass
class Seeded:
    emulator: Emulator
    response: Job
    private: Job  # zipped with KEY
    open_private: Job  # zipped without a key
    pending: Job  # never run

    @property
    def data_dir(self) -> Path:
        return self.emulator.data_dir


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    data_dir = tmp_path_factory.mktemp("copy-seeded")
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "airflow_provider_uci.cli"]
    done = subprocess.run(
        [
            *command,
            "emulator",
            "seed",
            "--data-dir",
            str(data_dir),
            "--json",
            "--bots",
            "0",
            "--users",
            "3",
            "--events",
            "60",
            "--days",
            "2",
            "--start",
            START,
            "--seed",
            "5",
            "--bot",
            f"{BOT}=Alpha Bot",
            "--user",
            f"{USER}=true",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    with run_emulator(data_dir, "--no-schedule") as emulator:
        api = ExhaustApi(emulator.api)
        response = submit(api, conversation_id=BOT, start=START, end=END)
        private = submit(api, dataset=PRIVATE, conversation_id=BOT, start=START, end=END, encryption_key=KEY)
        open_private = submit(api, dataset=PRIVATE, conversation_id=BOT, start=START, end=END)
        ran = requests.post(f"{emulator.root}/admin/run-jobs", timeout=60)
        assert ran.status_code == 200, ran.text
        assert {o["requestId"]: o["status"] for o in ran.json()["processed"]} == {
            response.request_id: "SUCCESS",
            private.request_id: "SUCCESS",
            open_private.request_id: "SUCCESS",
        }
        pending = submit(api, conversation_id=BOT, start=START, end=START)
        yield Seeded(emulator, response, private, open_private, pending)


# -- local copies ---------------------------------------------------------------------------------


def test_response_csv_lands_at_its_fixed_path_and_a_rerun_overwrites(
    seeded: Seeded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_uci_connection(monkeypatch, seeded.emulator.api)
    out = tmp_path / "out"
    task = CopyExhaustFilesOperator(task_id="copy", jobs=answered(seeded.response), destination=str(out))
    first = copied(task.execute(context()))

    relative = f"{BOT}/{START}_{END}/uci-response-exhaust.csv"
    assert {k: first[k] for k in ("dataset", "files", "csv")} == {
        "dataset": RESPONSE,
        "files": [str(out / relative)],
        "csv": str(out / relative),
    }
    assert set(first) == {
        "dataset",
        "files",
        "csv",
        "request_id",
        "conversation_id",
        "start_date",
        "end_date",
        "host",
        "empty",
    }
    assert first["empty"] is False and first["request_id"] == seeded.response.request_id
    assert (first["conversation_id"], first["start_date"], first["end_date"]) == (BOT, START, END)
    assert first["host"] == socket.gethostname(), "the load names the worker that wrote a local file"
    expected = stored(seeded.data_dir, RESPONSE, seeded.response.request_id, ".csv").read_bytes()
    assert (out / relative).read_bytes() == expected
    no_secrets(first)

    (out / relative).write_bytes(b"stale")
    assert copied(task.execute(context())) == first
    assert files_under(out) == {relative}, "a rerun replaces the file, with nothing left beside it"
    assert (out / relative).read_bytes() == expected


def test_private_zip_from_the_sensor_xcom_is_copied_and_opened_with_the_connection_key(
    seeded: Seeded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_uci_connection(monkeypatch, seeded.emulator.api, encryption_key=KEY)
    pushed = {
        "request_id": seeded.private.request_id,
        "tag": seeded.private.tag,
        "dataset": PRIVATE,
        "conversation_id": BOT,
        "start_date": START,
        "end_date": END,
        "status": "SUCCESS",
        "attempts": 0,
        "file_count": 1,
        "outcome": "files",
    }
    out = tmp_path / "private"
    # a wait that ended in the triggerer hands its {dataset: job} on as JSON text
    task = CopyExhaustFilesOperator(
        task_id="copy", jobs=json.dumps({PRIVATE: pushed}), destination=out.as_uri()
    )
    result = copied(task.execute(context()), PRIVATE)

    folder = out / BOT / f"{START}_{END}"
    zipped, extracted = folder / "uci-private-exhaust.zip", folder / "uci-private-exhaust.csv"
    assert {k: result[k] for k in ("dataset", "files", "csv")} == {
        "dataset": PRIVATE,
        "files": [str(zipped), str(extracted)],
        "csv": str(extracted),
    }
    assert (
        zipped.read_bytes()
        == stored(seeded.data_dir, PRIVATE, seeded.private.request_id, ".zip").read_bytes()
    )
    with zipfile.ZipFile(zipped) as archive:
        assert archive.infolist()[0].flag_bits & 0x1, "the emulator really encrypted it"
    # the extracted file is the zip's CSV (the emulator, unlike the service, keeps no plain copy beside the zip)
    assert extracted.read_bytes() == unzipped(seeded.data_dir, seeded.private.request_id, KEY)
    assert extracted.read_bytes().startswith(b"Conversation ID,Conversation Name,Decrypted Device ID")
    no_secrets(result, KEY)
    assert files_under(out) == {
        f"{BOT}/{START}_{END}/uci-private-exhaust.zip",
        f"{BOT}/{START}_{END}/uci-private-exhaust.csv",
    }


def test_an_unencrypted_private_zip_opens_without_a_key(
    seeded: Seeded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_uci_connection(monkeypatch, seeded.emulator.api)
    task = CopyExhaustFilesOperator(
        task_id="copy", jobs=answered(seeded.open_private, "private"), destination=str(tmp_path)
    )
    result = copied(task.execute(context()), PRIVATE)
    expected = unzipped(seeded.data_dir, seeded.open_private.request_id)
    assert Path(result["csv"]).read_bytes() == expected


def test_a_wrong_key_and_a_missing_key_are_told_apart(
    seeded: Seeded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_uci_connection(monkeypatch, seeded.emulator.api)
    job = seeded.private

    missing = CopyExhaustFilesOperator(
        task_id="copy", jobs=answered(job, PRIVATE), destination=str(tmp_path / "missing")
    )
    with pytest.raises(ZipPasswordError, match=r"^encryption_key: missing") as caught:
        missing.execute(context())
    assert isinstance(caught.value, ExhaustError)

    wrong = CopyExhaustFilesOperator(
        task_id="copy",
        jobs=answered(job, PRIVATE),
        destination=str(tmp_path / "wrong"),
        zip_password="not-the-key",
    )
    with pytest.raises(ZipPasswordError, match=r"^encryption_key: wrong key") as caught:
        wrong.execute(context())
    assert "not-the-key" not in str(caught.value)
    folder = tmp_path / "wrong" / BOT / f"{START}_{END}"
    assert files_under(folder) == {"uci-private-exhaust.zip"}, "no half-written CSV is left behind"


def test_open_private_zip_refuses_what_is_not_one_csv(tmp_path: Path) -> None:
    archive = tmp_path / "two.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("a.csv", "x\n")
        out.writestr("b.csv", "y\n")
    with pytest.raises(ValueError, match=r"expected one CSV entry, found a.csv, b.csv"):
        open_private_zip(archive, None, tmp_path)
    (tmp_path / "plain.zip").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"plain.zip: not a zip file"):
        open_private_zip(tmp_path / "plain.zip", None, tmp_path)


def test_a_job_that_has_not_succeeded_is_refused(
    seeded: Seeded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_uci_connection(monkeypatch, seeded.emulator.api)
    task = CopyExhaustFilesOperator(task_id="copy", jobs=answered(seeded.pending), destination=str(tmp_path))
    with pytest.raises(ExhaustError, match="is SUBMITTED, not SUCCESS"):
        task.execute(context())
    assert files_under(tmp_path) == set()


def test_an_empty_answer_copies_nothing_beside_the_other_datasets_files(
    seeded: Seeded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One copy per bot: the response's files are copied; the private job found no data, so nothing of it is."""
    set_uci_connection(monkeypatch, seeded.emulator.api)
    empty = {
        "tag": "never-read",
        "request_id": "F" * 32,
        "conversation_id": BOT,
        "start_date": START,
        "end_date": END,
        "status": "FAILED",
        "attempts": 1,
        "file_count": 0,
        "outcome": "empty",
    }
    task = CopyExhaustFilesOperator(
        task_id="copy",
        destination=str(tmp_path),
        conversation_id=BOT,
        jobs={
            "response": {"tag": seeded.response.tag, "request_id": seeded.response.request_id},
            "private": empty,
        },
    )
    result = task.execute(context())
    assert list(result) == [RESPONSE, PRIVATE]
    assert result[PRIVATE] == {
        "dataset": PRIVATE,
        "request_id": "F" * 32,
        "conversation_id": BOT,
        "start_date": START,
        "end_date": END,
        "files": [],
        "csv": None,
        "empty": True,
        "host": None,
    }, "the service is not asked about a job that found no data"
    assert result[RESPONSE]["empty"] is False and Path(result[RESPONSE]["csv"]).is_file()
    assert files_under(tmp_path) == {f"{BOT}/{START}_{END}/uci-response-exhaust.csv"}


def test_jobs_without_their_identifiers_are_refused_naming_the_field(tmp_path: Path) -> None:
    task = CopyExhaustFilesOperator(task_id="copy", jobs={"private": {"tag": "t"}}, destination=str(tmp_path))
    with pytest.raises(ValueError, match=r"^jobs\[uci-private-exhaust\]: needs the job's tag and request_id"):
        task.execute(context())
    with pytest.raises(ValueError, match=r"^jobs: must map each dataset"):
        CopyExhaustFilesOperator(task_id="copy", jobs=[], destination=str(tmp_path)).execute(context())
    assert files_under(tmp_path) == set()


def test_without_a_destination_files_go_under_airflow_home(
    seeded: Seeded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_uci_connection(monkeypatch, seeded.emulator.api)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    task = CopyExhaustFilesOperator(task_id="copy", jobs=answered(seeded.response))
    result = copied(task.execute(context()))
    assert result["csv"] == str(
        tmp_path / "uci-exhaust" / "files" / BOT / f"{START}_{END}" / "uci-response-exhaust.csv"
    )


def test_destinations_are_read_by_scheme(tmp_path: Path) -> None:
    assert Destination.parse("wasb://exhaust/a/b/") == Destination(container="exhaust", prefix="a/b")
    assert Destination.parse("wasb://exhaust@acct.blob.core.windows.net/p") == Destination(
        container="exhaust", prefix="p"
    )
    assert Destination.parse(tmp_path.as_uri()) == Destination(local=tmp_path)
    assert Destination.parse(str(tmp_path)) == Destination(local=tmp_path)
    with pytest.raises(ValueError, match="destination"):
        Destination.parse("s3://bucket/key")
    with pytest.raises(ValueError, match="destination"):
        Destination.parse("wasb:///prefix")


# -- faults: cut-off bodies, expired URLs, refused URLs ---------------------------------------------


def test_cut_off_downloads_are_resumed_until_every_byte_is_there(
    start_emulator: Callable[..., Emulator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator = start_emulator("--fault-truncate", "0.5", "--fault-seed", "3")
    set_uci_connection(monkeypatch, emulator.api)
    hook = UciExhaustHook()
    payloads = [os.urandom(700_000 + 1000 * n) for n in range(6)]
    session, statuses = recording_session()
    calls = 0
    for number, data in enumerate(payloads):
        job = place_file(emulator, data)
        source = CountingSource(hook, job)
        target = tmp_path / f"file-{number}.csv"
        size = download(source, 0, target, attempts=10, chunk_size=64 * 1024, session=session, sleep=no_wait)
        assert size == len(data)
        assert target.read_bytes() == data
        calls += source.calls
    assert calls > len(payloads), "some downloads were cut off and retried with a re-read job"
    assert 206 in statuses, "a cut-off download resumed with a ranged GET"
    assert not list(tmp_path.glob("*.partial"))

    # and through the operator, on the same faulty service
    job = place_file(emulator, payloads[0])
    task = CopyExhaustFilesOperator(
        task_id="copy",
        jobs=answered(job),
        destination=str(tmp_path / "out"),
        download_attempts=10,
        download_backoff=0,
    )
    result = copied(task.execute(context()))
    assert Path(result["csv"]).read_bytes() == payloads[0]


def test_an_expired_url_is_signed_again(
    start_emulator: Callable[..., Emulator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator = start_emulator("--expiry-seconds", "1")
    set_uci_connection(monkeypatch, emulator.api)
    data = os.urandom(300_000)
    job = place_file(emulator, data)
    source = CountingSource(UciExhaustHook(), job, first_delay=1.5)
    session, statuses = recording_session()
    assert download(source, 0, tmp_path / "late.csv", session=session, sleep=no_wait) == len(data)
    assert (tmp_path / "late.csv").read_bytes() == data
    assert statuses[0] == 403, "the first URL had expired"
    assert source.calls >= 2


def test_giving_up_names_the_file_and_never_the_url(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    set_uci_connection(monkeypatch, emulator.api)
    job = place_file(emulator, b"a,b\n1,2\n")
    hook = UciExhaustHook()
    calls = []

    def tampered() -> list[str]:
        calls.append(1)
        (url,) = hook.read_request(job.tag, job.request_id).download_urls
        return [url.replace("sig=", "sig=AAAA")]

    with pytest.raises(DownloadError) as caught:
        download(tampered, 0, tmp_path / "refused.csv", attempts=3, sleep=no_wait)
    message = str(caught.value)
    assert message.startswith("exhaust file 0 (refused.csv): gave up after 3 attempts")
    assert "HTTP 403" in message and "sig=" not in message and "/blob/" not in message
    assert len(calls) == 3
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "refused.csv" in logged and "sig=" not in logged and "/blob/" not in logged
    assert not (tmp_path / "refused.csv").exists() and not (tmp_path / "refused.csv.partial").exists()


def test_a_large_file_streams_in_constant_memory(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_uci_connection(monkeypatch, emulator.api)
    size = 30 * 1024 * 1024
    data = os.urandom(size)
    digest = hashlib.sha256(data).hexdigest()
    job = place_file(emulator, data)
    del data
    source = CountingSource(UciExhaustHook(), job)
    target = tmp_path / "large.csv"
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        assert download(source, 0, target) == size
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert peak < size / 5, f"peak memory growth {peak} bytes for a {size}-byte file"
    copied = hashlib.sha256()
    with target.open("rb") as handle:
        while block := handle.read(1024 * 1024):
            copied.update(block)
    assert copied.hexdigest() == digest


# -- Azure Blob, through Azurite ------------------------------------------------------------------


@pytest.mark.azure
def test_private_exhaust_lands_in_azure_blob_at_its_fixed_keys(
    seeded: Seeded, azurite: Azurite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from azure.storage.blob import BlobServiceClient

    set_uci_connection(monkeypatch, seeded.emulator.api)
    monkeypatch.setenv(
        "AIRFLOW_CONN_UCI_BLOB",
        json.dumps({"conn_type": "wasb", "extra": {"connection_string": azurite.connection_string}}),
    )
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    expected = {
        "uci-private-exhaust.zip": stored(
            seeded.data_dir, PRIVATE, seeded.private.request_id, ".zip"
        ).read_bytes(),
        "uci-private-exhaust.csv": unzipped(seeded.data_dir, seeded.private.request_id, KEY),
    }
    sizes = {name: len(data) for name, data in expected.items()}
    assert sizes["uci-private-exhaust.zip"] < sizes["uci-private-exhaust.csv"]
    monkeypatch.setattr(blob_module, "BLOCK_SIZE", 100)  # blocks of 100 bytes, four staged at a time
    task = CopyExhaustFilesOperator(
        task_id="copy",
        jobs=answered(seeded.private, PRIVATE),
        destination="wasb://exhaust-copies/uci/daily",
        wasb_conn_id="uci_blob",
        zip_password=KEY,
        chunk_size=4096,
    )
    result = copied(task.execute(context()), PRIVATE)

    prefix = f"uci/daily/{BOT}/{START}_{END}"
    assert {k: result[k] for k in ("dataset", "files", "csv")} == {
        "dataset": PRIVATE,
        "files": [
            f"wasb://exhaust-copies/{prefix}/uci-private-exhaust.zip",
            f"wasb://exhaust-copies/{prefix}/uci-private-exhaust.csv",
        ],
        "csv": f"wasb://exhaust-copies/{prefix}/uci-private-exhaust.csv",
    }
    no_secrets(result, KEY)
    container = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(
        "exhaust-copies"
    )
    blocks = {}
    for name, data in expected.items():
        assert container.download_blob(f"{prefix}/{name}").readall() == data
        committed, _ = container.get_blob_client(f"{prefix}/{name}").get_block_list("committed")
        blocks[name] = len(committed)
    assert blocks == {name: -(-size // 100) for name, size in sizes.items()}
    assert list(scratch.iterdir()) == [], "the temporary copies are gone"

    assert copied(task.execute(context()), PRIVATE) == result
    assert sorted(blob.name for blob in container.list_blobs(name_starts_with="uci/")) == [
        f"{prefix}/uci-private-exhaust.csv",
        f"{prefix}/uci-private-exhaust.zip",
    ]


@pytest.mark.azure
def test_a_response_csv_streams_into_its_blob_through_cut_off_downloads(
    start_emulator: Callable[..., Emulator],
    azurite: Azurite,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from azure.storage.blob import BlobServiceClient

    emulator = start_emulator("--fault-truncate", "0.5", "--fault-seed", "3")
    set_uci_connection(monkeypatch, emulator.api)
    monkeypatch.setenv(
        "AIRFLOW_CONN_UCI_BLOB",
        json.dumps({"conn_type": "wasb", "extra": {"connection_string": azurite.connection_string}}),
    )
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    block = 256 * 1024
    monkeypatch.setattr(blob_module, "BLOCK_SIZE", block)
    container = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(
        "streamed-copies"
    )
    for number in range(4):
        data = os.urandom(3 * 1024 * 1024 + 1000 * number)
        job = place_file(emulator, data)
        task = CopyExhaustFilesOperator(
            task_id="copy",
            jobs=answered(job),
            destination=f"wasb://streamed-copies/run-{number}",
            wasb_conn_id="uci_blob",
            download_attempts=10,
            download_backoff=0,
            chunk_size=64 * 1024,
        )
        result = copied(task.execute(context()))
        (uri,) = result["files"]
        assert result["csv"] == uri and uri.startswith(f"wasb://streamed-copies/run-{number}/")
        key = uri.removeprefix("wasb://streamed-copies/")
        assert container.download_blob(key).readall() == data
        committed, uncommitted = container.get_blob_client(key).get_block_list("all")
        assert len(committed) == -(-len(data) // block) and uncommitted == []
        assert (
            container.get_blob_client(key).get_blob_properties().content_settings.content_type == "text/csv"
        )
        no_secrets(result)
    retried = [record.getMessage() for record in caplog.records if "retrying" in record.getMessage()]
    assert retried, "some downloads were cut off and resumed into the same blob"
    assert all("sig=" not in message for message in retried)
    assert list(scratch.iterdir()) == [], "a CSV goes to its blob without a temporary copy"


@pytest.mark.azure
def test_a_download_that_gives_up_leaves_the_blob_as_it_was(
    start_emulator: Callable[..., Emulator], azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    from azure.storage.blob import BlobServiceClient

    emulator = start_emulator("--fault-truncate", "1.0")  # every body is cut off half way
    set_uci_connection(monkeypatch, emulator.api)
    monkeypatch.setenv(
        "AIRFLOW_CONN_UCI_BLOB",
        json.dumps({"conn_type": "wasb", "extra": {"connection_string": azurite.connection_string}}),
    )
    monkeypatch.setattr(blob_module, "BLOCK_SIZE", 64 * 1024)
    job = place_file(emulator, os.urandom(1024 * 1024))
    ids = UciExhaustHook().read_request(job.tag, job.request_id).identifiers()
    key = f"kept/{ids['conversation_id']}/{ids['start_date']}_{ids['end_date']}/{RESPONSE}.csv"
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    service.get_container_client("kept-copies").create_container()
    blob = service.get_blob_client("kept-copies", key)
    blob.upload_blob(b"the copy of an earlier run\n")

    task = CopyExhaustFilesOperator(
        task_id="copy",
        jobs=answered(job),
        destination="wasb://kept-copies/kept",
        wasb_conn_id="uci_blob",
        download_attempts=2,
        download_backoff=0,
    )
    with pytest.raises(ExhaustError, match=r"gave up after 2 attempts") as caught:
        task.execute(context())
    assert "sig=" not in str(caught.value) and "http" not in str(caught.value)
    assert blob.download_blob().readall() == b"the copy of an earlier run\n"
    assert blob.get_block_list("committed")[0] == []


# -- lineage --------------------------------------------------------------------------------------


def test_openlineage_names_the_service_files_without_signature_the_copies_and_the_table(
    seeded: Seeded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the OpenLineage provider's listener would emit, read through the provider's own extractor."""
    from airflow.providers.openlineage.extractors.manager import ExtractorManager
    from airflow.sdk import DAG
    from airflow.utils.state import TaskInstanceState

    from airflow_provider_uci.operators.load import LoadExhaustOperator

    set_uci_connection(monkeypatch, seeded.emulator.api)
    warehouse = tmp_path / "warehouse.db"
    monkeypatch.setenv("AIRFLOW_CONN_LINEAGE_WAREHOUSE", f"sqlite:///{warehouse}")
    out = tmp_path / "out"
    with DAG("lineage", schedule=None):
        copy = CopyExhaustFilesOperator(
            task_id="copy",
            conversation_id=BOT,
            destination=str(out),
            zip_password=KEY,
            jobs={
                RESPONSE: {"tag": seeded.response.tag, "request_id": seeded.response.request_id},
                PRIVATE: {"tag": seeded.private.tag, "request_id": seeded.private.request_id},
            },
        )
        copies = copy.execute(context())
        response, private = copies[RESPONSE], copies[PRIVATE]
        load = LoadExhaustOperator(
            task_id="load", copies=copies, warehouse_conn_id="lineage_warehouse", table="uci_lineage"
        )
    load.execute({"run_id": "manual__lineage", "ti": SimpleNamespace(try_number=1)})

    def extracted(task: Any) -> Any:
        return ExtractorManager().extract_metadata(
            dagrun=SimpleNamespace(run_id="manual__lineage"),
            task=task,
            task_instance_state=TaskInstanceState.SUCCESS,
            task_instance=SimpleNamespace(task=task),
        )

    copied_lineage = extracted(copy)
    inputs = [(d.namespace, d.name) for d in copied_lineage.inputs]
    assert [namespace for namespace, _ in inputs] == [seeded.emulator.root.rstrip("/")] * 2
    assert [Path(name).suffix for _, name in inputs] == [".csv", ".zip"], (
        "the response CSV, then the private zip"
    )
    assert all("?" not in name for _, name in inputs)
    for job in (seeded.response, seeded.private):
        job_urls = UciExhaustHook().read_request(job.tag, job.request_id).download_urls
        assert all(url.split("?", 1)[1] not in repr(copied_lineage) for url in job_urls), (
            "no signature in the lineage"
        )
    assert [(d.namespace, d.name) for d in copied_lineage.outputs] == [
        ("file", path) for path in [*response["files"], *private["files"]]
    ]

    loaded = extracted(load)
    assert [(d.namespace, d.name) for d in loaded.inputs] == [
        ("file", response["csv"]),
        ("file", private["csv"]),
    ]
    (table,) = loaded.outputs
    assert (table.namespace, table.name) == (f"sqlite://{warehouse}", "uci_lineage")
    fields = {field.name: field.type for field in table.facets["schema"].fields}
    assert (
        fields["conversation_id"] == "text" and fields["sync_date"] == "date" and fields["eof"] == "boolean"
    )
    assert fields["question_duration"] == "integer" and fields["event_timestamp"] == "timestamp"


def test_a_load_on_another_worker_than_its_copy_fails_at_once_naming_the_reason(tmp_path: Path) -> None:
    """A copy that wrote to a local folder on one machine, read by a load on another: refused, not retried."""
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_provider_uci.operators.load import LoadExhaustOperator

    elsewhere = str(tmp_path / "worker-a" / "uci-response-exhaust.csv")  # a path this machine does not have
    copies = {
        RESPONSE: {"csv": elsewhere, "files": [elsewhere], "host": "worker-a", "conversation_id": BOT},
        PRIVATE: {"empty": True, "files": [], "csv": None},
    }
    load = LoadExhaustOperator(task_id="load", copies=copies, warehouse_conn_id=None, table="uci_elsewhere")
    with pytest.raises(AirflowFailException) as refused:
        load.execute({"run_id": "manual__elsewhere", "ti": SimpleNamespace(try_number=1)})
    message = str(refused.value)
    assert "uci-response-exhaust.csv is not on this worker" in message and "on worker-a" in message
    assert "every worker can reach" in message and "wasb://" in message
