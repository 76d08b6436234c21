"""Hostile input costs the emulator nothing: each gets a 4xx with an error body naming the rule, never a 500.

Each test is named after what it guards; several were 500s (or worse) before: a non-ASCII ``sig`` on a
signed download, a ``limit`` past 64 bits, a 100,000-deep JSON body, malformed admin bodies, and a
refused ``place_file`` that left its blob behind. All run over HTTP against emulator processes.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
import requests

from airflow_provider_uci.exhaust.spark_csv import read_records
from tests.support.api import ExhaustApi, new_tag, submit_body
from tests.support.services import Emulator, run_emulator

DEEP = b"[" * 100_000
SCRIPT = Path(sys.executable).with_name("uci-exhaust")


def assert_envelope(
    answer: requests.Response, status: int, message_start: str, api_id: str | None = None
) -> None:
    """``answer`` is the service's error envelope with ``status`` and an errmsg starting ``message_start``."""
    assert answer.status_code == status, answer.text[:500]
    body = answer.json()
    assert list(body) == ["id", "ver", "ts", "params", "responseCode", "result"]
    assert body["params"]["status"] == "failed" and body["result"] is None
    assert body["responseCode"] == body["params"]["err"] != "ERROR"
    assert body["params"]["errmsg"].startswith(message_start), body["params"]["errmsg"]
    if api_id is not None:
        assert body["id"] == api_id


def post_raw(
    url: str, data: bytes, content_type: str = "application/json", **kwargs: Any
) -> requests.Response:
    return requests.post(
        url,
        data=data,
        headers={"Content-Type": content_type, **kwargs.pop("headers", {})},
        timeout=60,
        **kwargs,
    )


def gateway_headers() -> dict[str, str]:
    return {"Authorization": "Bearer dev-key", "X-Channel-ID": "dev-channel"}


def job(emulator: Emulator, **overrides: Any) -> dict[str, Any]:
    answer = ExhaustApi(emulator.api).submit(submit_body(new_tag(), **overrides))
    assert answer.status_code == 200, answer.text
    return answer.json()["result"]


def blobs_of(emulator: Emulator, request_id: str) -> list[Path]:
    return [path for path in (emulator.data_dir / "blobs").rglob("*") if request_id in path.as_posix()]


# -- signed downloads -----------------------------------------------------------------------------


def signed_url(emulator: Emulator) -> str:
    placed = job(emulator)
    requests.post(
        f"{emulator.root}/admin/jobs/{placed['requestId']}/file",
        params={"tag": placed["tag"]},
        data=b"a,b\n1,2\n",
        timeout=10,
    ).raise_for_status()
    bare = placed["tag"].rsplit(":", 1)[0]
    (url,) = ExhaustApi(emulator.api).read(bare, placed["requestId"]).json()["result"]["downloadUrls"]
    assert requests.get(url, timeout=10).content == b"a,b\n1,2\n"
    return url


def with_query(url: str, name: str, value: str) -> str:
    parts = urlsplit(url)
    pairs = [pair.split("=", 1) for pair in parts.query.split("&")]
    query = "&".join(f"{key}={quote(value, safe='') if key == name else old}" for key, old in pairs)
    return urlunsplit(parts._replace(query=query))


@pytest.mark.parametrize("value", ["é", "签名", "\u00ff" * 44, "%", "\x00"])
def test_non_ascii_sig_on_a_signed_download_is_a_403_not_a_500(emulator: Emulator, value: str) -> None:
    answer = requests.get(with_query(signed_url(emulator), "sig", value), timeout=10)
    assert answer.status_code == 403, answer.text
    assert answer.headers["x-ms-error-code"] == "AuthenticationFailed"


def test_non_ascii_se_on_a_signed_download_is_a_403(emulator: Emulator) -> None:
    answer = requests.get(with_query(signed_url(emulator), "se", "２０３０年"), timeout=10)
    assert answer.status_code == 403 and answer.headers["x-ms-error-code"] == "AuthenticationFailed"


# -- list and search limits ------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [str(2**63), str(2**64), str(10**30), "-" + str(2**64)])
def test_list_limit_past_64_bits_is_a_400(emulator: Emulator, limit: str) -> None:
    answer = ExhaustApi(emulator.api).list(new_tag(), limit=limit)
    assert_envelope(
        answer,
        400,
        "limit: must be a whole number from 0 to 2147483647",
        "ekstep.analytics.dataset.request.list",
    )


@pytest.mark.parametrize("limit", [2**64, -1, "ten", True, 1.5, None, [1]])
def test_search_limit_out_of_range_or_not_a_number_is_a_400(emulator: Emulator, limit: Any) -> None:
    body = json.dumps({"request": {"filters": {"status": "SUBMITTED"}, "limit": limit}}).encode()
    assert_envelope(
        post_raw(f"{emulator.root}/request/search", body),
        400,
        "limit: must be a whole number",
        "ekstep.analytics.dataset.request.search",
    )


def test_search_requested_date_that_is_no_date_is_a_400(emulator: Emulator) -> None:
    for day in ("yesterday", "2026-02-30", "2026-W01-1", "20260101"):
        body = json.dumps({"request": {"filters": {"requestedDate": day}}}).encode()
        assert_envelope(
            post_raw(f"{emulator.root}/request/search", body),
            400,
            "filters.requestedDate: expected yyyy-MM-dd",
        )


# -- JSON bodies ------------------------------------------------------------------------------------


def test_100k_deep_json_body_is_a_400_on_every_json_route(emulator: Emulator) -> None:
    rid = job(emulator)["requestId"]
    submit = post_raw(f"{emulator.api}/dataset/v1/request/submit", DEEP, headers=gateway_headers())
    assert_envelope(
        submit, 400, "body: JSON must nest at most 64 levels deep", "ekstep.analytics.dataset.request.submit"
    )
    search = post_raw(f"{emulator.root}/request/search", DEEP)
    assert_envelope(
        search, 400, "body: JSON must nest at most 64 levels deep", "ekstep.analytics.dataset.request.search"
    )
    for url in (f"{emulator.root}/admin/clock", f"{emulator.root}/admin/jobs/{rid}/fail?tag=x"):
        # admin bodies are capped at 64 KiB: 100,000 bytes are refused unread, 60,000 levels unparsed
        assert_envelope(post_raw(url, DEEP), 413, "body: must be at most 65536 bytes", "uci.emulator.admin")
        assert_envelope(post_raw(url, DEEP[:60_000]), 400, "body: JSON must nest at most 64 levels deep")


def test_json_nested_past_64_levels_is_refused_and_64_taken(emulator: Emulator) -> None:
    def nested(depth: int) -> dict[str, Any]:
        config: Any = "leaf"
        for _ in range(depth):
            config = {"k": config}
        return config

    # the body and request objects are two levels, and datasetConfig=nested(n) n more
    body = submit_body(new_tag(), datasetConfig=nested(62))
    assert ExhaustApi(emulator.api).submit(body).status_code == 200
    body = submit_body(new_tag(), datasetConfig=nested(63))
    assert_envelope(ExhaustApi(emulator.api).submit(body), 400, "body: JSON must nest at most 64 levels deep")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            b'{"request": {"tag": "\\ud800", "dataset": "d", "datasetConfig": {}}}',
            "body: text must be valid Unicode",
        ),
        (
            b'{"request": {"tag": "t", "dataset": "d", "datasetConfig": {"n": NaN}}}',
            "body: must be valid JSON",
        ),
        (
            b'{"request": {"tag": "t", "dataset": "d", "datasetConfig": {"n": 1e400}}}',
            "body: must be valid JSON",
        ),
        (
            b'{"request": {"tag": "t", "dataset": "d", "datasetConfig": {"n": ' + b"9" * 5000 + b"}}}",
            "body: must be valid JSON",
        ),
        (b"\xff\xfe{}", "body: must be UTF-8 text"),
        (b'{"request": "x"}', "request: must be a JSON object"),
        (
            b'{"request": {"tag": "t\\u0000x", "dataset": "d", "datasetConfig": {}}}',
            "tag: must not contain the NUL",
        ),
        (
            b'{"request": {"tag": "t", "dataset": "d", "requestedBy": "\\u0000", "datasetConfig": {}}}',
            "requestedBy: must not contain the NUL",
        ),
        (
            b'{"request": {"tag": "t", "dataset": "' + b"d" * 51 + b'", "datasetConfig": {}}}',
            "dataset: must be at most 50 characters",
        ),
    ],
)
def test_malformed_submit_bodies_are_400s(emulator: Emulator, raw: bytes, message: str) -> None:
    answer = post_raw(f"{emulator.api}/dataset/v1/request/submit", raw, headers=gateway_headers())
    assert_envelope(answer, 400, message, "ekstep.analytics.dataset.request.submit")


def test_submit_body_over_1_mb_is_kongs_413(emulator: Emulator) -> None:
    answer = post_raw(
        f"{emulator.api}/dataset/v1/request/submit", b" " * (1024 * 1024 + 1), headers=gateway_headers()
    )
    assert answer.status_code == 413 and answer.json() == {"message": "Request size limit exceeded"}


def test_search_body_over_1_mb_is_a_413_envelope(emulator: Emulator) -> None:
    assert_envelope(
        post_raw(f"{emulator.root}/request/search", b" " * (1024 * 1024 + 1)),
        413,
        "body: must be at most 1048576 bytes",
    )


def test_nul_in_a_read_tag_or_request_id_finds_no_job(emulator: Emulator) -> None:
    api = ExhaustApi(emulator.api)
    for tag, rid in (("a\x00b", "X"), ("a", "X\x00")):
        body = api.read(tag, rid).json()
        assert body["responseCode"] == "OK" and body["params"]["err"] == "OK" and body["result"] is None
    assert api.list("a\x00b").json()["result"] == {"count": 0, "jobs": []}


# -- admin bodies and parameters ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "body: must be valid JSON"),
        (b"{not json", "body: must be valid JSON"),
        (b"[]", "body: must be a JSON object, got list"),
        (b'{"now": 5}', "now: expected an ISO 8601 date-time with an offset"),
        (b'{"now": "next tuesday"}', "now: expected an ISO 8601 date-time with an offset"),
        (b'{"now": "2026-01-01T00:00:00"}', "now: the date-time must carry a UTC offset"),
        (b'{"now": "9999-12-31T23:59:59+00:00"}', "now: must be from 1970-01-01 to 2999-12-31"),
        (b'{"now": "0001-01-01T00:00:00+00:00"}', "now: must be from 1970-01-01 to 2999-12-31"),
        (b'{"reset": "yes"}', "reset: must be true or false"),
    ],
)
def test_malformed_clock_bodies_are_400s_and_leave_the_clock(
    emulator: Emulator, raw: bytes, message: str
) -> None:
    before = requests.get(f"{emulator.root}/admin/clock", timeout=10).json()
    assert_envelope(post_raw(f"{emulator.root}/admin/clock", raw), 400, message, "uci.emulator.admin")
    after = requests.get(f"{emulator.root}/admin/clock", timeout=10).json()
    assert abs(after["offsetSeconds"] - before["offsetSeconds"]) < 1
    assert ExhaustApi(emulator.api).list(new_tag()).status_code == 200


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "body: must be valid JSON"),
        (b"[1]", "body: must be a JSON object, got list"),
        (b'{"message": 5}', "message: must be a string, got int"),
        (b'{"message": "a\\u0000b"}', "message: must not contain the NUL"),
    ],
)
def test_malformed_fail_bodies_are_400s_and_leave_the_job(
    emulator: Emulator, raw: bytes, message: str
) -> None:
    submitted = job(emulator)
    answer = post_raw(
        f"{emulator.root}/admin/jobs/{submitted['requestId']}/fail", raw, params={"tag": submitted["tag"]}
    )
    assert_envelope(answer, 400, message, "uci.emulator.admin")
    bare = submitted["tag"].rsplit(":", 1)[0]
    assert (
        ExhaustApi(emulator.api).read(bare, submitted["requestId"]).json()["result"]["status"] == "SUBMITTED"
    )


def test_an_empty_fail_body_fails_the_job_with_the_default_message(emulator: Emulator) -> None:
    submitted = job(emulator)
    answer = requests.post(
        f"{emulator.root}/admin/jobs/{submitted['requestId']}/fail",
        params={"tag": submitted["tag"]},
        timeout=10,
    )
    assert answer.status_code == 200 and answer.json()["statusMessage"] == "Invalid request"


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"executionTime": "abc"}, 400, "executionTime: must be a whole number"),
        ({"executionTime": str(2**40)}, 400, "executionTime: must be a whole number"),
        ({"executionTime": "-5"}, 400, "executionTime: must be a whole number"),
        ({"name": "../../escape.csv"}, 400, "name: must be one file name"),
        ({"name": "a/b.csv"}, 400, "name: must be one file name"),
        ({"name": ".."}, 400, "name: must be one file name"),
        ({"name": "x.csv.partial"}, 400, "name: must be one file name"),
        ({"name": "tab\there.csv"}, 400, "name: must be one file name"),
        ({"name": "n" * 201}, 400, "name: must be 1 to 200 characters"),
        ({"tag": ""}, 400, "tag: required query parameter"),
        ({"tag": "no-such-tag:dev-channel"}, 404, "no job with tag"),
    ],
)
def test_a_refused_place_file_leaves_no_blob(
    emulator: Emulator, params: dict[str, str], status: int, message: str
) -> None:
    submitted = job(emulator)
    rid = submitted["requestId"]
    answer = requests.post(
        f"{emulator.root}/admin/jobs/{rid}/file",
        params={"tag": submitted["tag"], **params},
        data=b"a,b\n1,2\n" * 1000,
        timeout=10,
    )
    assert_envelope(answer, status, message, "uci.emulator.admin")
    assert blobs_of(emulator, rid) == []
    bare = submitted["tag"].rsplit(":", 1)[0]
    assert ExhaustApi(emulator.api).read(bare, rid).json()["result"]["status"] == "SUBMITTED"


def test_a_conversation_id_that_makes_no_file_name_is_refused_without_a_blob(emulator: Emulator) -> None:
    body = submit_body(new_tag())
    body["request"]["datasetConfig"]["conversationId"] = "../../../outside"
    submitted = ExhaustApi(emulator.api).submit(body).json()["result"]
    answer = requests.post(
        f"{emulator.root}/admin/jobs/{submitted['requestId']}/file",
        params={"tag": submitted["tag"]},
        data=b"a\n",
        timeout=10,
    )
    assert_envelope(answer, 400, "name (from the job's conversationId; pass ?name=): must be one file name")
    assert blobs_of(emulator, submitted["requestId"]) == []
    assert not list(emulator.data_dir.rglob("outside*"))


def test_an_unknown_run_jobs_dataset_is_a_400(emulator: Emulator) -> None:
    answer = requests.post(f"{emulator.root}/admin/run-jobs", params={"dataset": "x" * 500}, timeout=10)
    assert_envelope(answer, 400, "dataset: must be one of uci-response-exhaust, uci-private-exhaust")


# -- a request for every day there is ------------------------------------------------------------------


def test_a_request_over_every_representable_day_is_one_listing(tmp_path: Path) -> None:
    """0001-01-01 to 9999-12-31 once meant a storage listing per day (3.65 million); now the run just ends."""
    data = tmp_path / "data"
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "airflow_provider_uci.cli"]
    seeded = subprocess.run(
        [
            *command,
            "emulator",
            "seed",
            "--data-dir",
            str(data),
            "--bots",
            "1",
            "--users",
            "5",
            "--events",
            "60",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    summary = json.loads(seeded.stdout)
    (bot,) = summary["bots"]
    with run_emulator(data, "--no-schedule") as emulator:
        submitted = job(emulator, conversation_id=bot["id"], start="0001-01-01", end="9999-12-31")
        answer = requests.post(
            f"{emulator.root}/admin/run-jobs", params={"dataset": "uci-response-exhaust"}, timeout=120
        )
        assert answer.status_code == 200, answer.text
        (outcome,) = [o for o in answer.json()["processed"] if o["requestId"] == submitted["requestId"]]
        assert outcome["status"] == "SUCCESS", outcome
        (url,) = (
            ExhaustApi(emulator.api)
            .read(submitted["tag"].rsplit(":", 1)[0], submitted["requestId"])
            .json()["result"]["downloadUrls"]
        )
        data = requests.get(url, timeout=30).content
    records = list(read_records(io.StringIO(data.decode("utf-8"), newline="")))
    assert len(records) - 1 == sum(bot["events_by_day"].values()) > 0  # every seeded day, after the header


# -- paths no route takes --------------------------------------------------------------------------------


def test_a_path_no_route_takes_gets_the_answer_of_the_part_in_front(emulator: Emulator) -> None:
    """Kong's 404 for the API (a tag holding '/', an empty one), Azure's for downloads, the envelope for admin."""
    headers = gateway_headers()
    for url in (
        f"{emulator.api}/dataset/v1/request/read/a%2Fb?requestId=X",
        f"{emulator.api}/dataset/v1/request/read/",
        f"{emulator.root}/dataset/v1/request/list/a/b",
        f"{emulator.root}/no/such/path",
    ):
        answer = requests.get(url, headers=headers, timeout=10)
        assert answer.status_code == 404 and answer.json() == {
            "message": "no Route matched with those values"
        }, url
    assert (
        requests.get(f"{emulator.root}/blob/uciemulator", timeout=10).headers["x-ms-error-code"]
        == "ResourceNotFound"
    )
    assert_envelope(
        requests.get(f"{emulator.root}/admin/nothing-here", timeout=10),
        404,
        "no route for GET /admin/",
        "uci.emulator.admin",
    )
    wrong_method = requests.delete(f"{emulator.api}/dataset/v1/request/submit", headers=headers, timeout=10)
    assert wrong_method.status_code == 405 and wrong_method.json() == {"message": "Method Not Allowed"}


def test_a_dataset_that_makes_no_folder_is_refused_by_place_file_without_a_blob(emulator: Emulator) -> None:
    """Any dataset text is accepted at submit (as the real service does), but '..' names no folder."""
    submitted = job(emulator, dataset="..")
    answer = requests.post(
        f"{emulator.root}/admin/jobs/{submitted['requestId']}/file",
        params={"tag": submitted["tag"], "name": "x.csv"},
        data=b"a\n",
        timeout=10,
    )
    assert_envelope(answer, 400, "dataset: the job's dataset '..' makes no blob key", "uci.emulator.admin")
    assert blobs_of(emulator, submitted["requestId"]) == []


# -- secrets and personal data at rest ----------------------------------------------------------------------

PRIVATE_BOT = "b2b2b2b2-0000-4000-8000-00000000000b"
PRIVATE_USER = "b9b9b9b9-0000-4000-8000-0000000000b1"
ZIP_PASSWORD = "zip-pass-5f1e8a2c"


@pytest.fixture(scope="module")
def private_run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """An emulator that seeded a bot with a consenting user and ran a private job submitted with a zip password."""
    import os

    data_dir = tmp_path_factory.mktemp("private-at-rest")
    previous = os.umask(0o022)  # the usual umask: files are world-readable unless made otherwise
    try:
        command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "airflow_provider_uci.cli"]
        done = subprocess.run(
            [
                *command,
                "emulator",
                "seed",
                "--data-dir",
                str(data_dir),
                "--bots",
                "0",
                "--users",
                "2",
                "--events",
                "20",
                "--days",
                "1",
                "--bot",
                f"{PRIVATE_BOT}=Beta Bot",
                "--user",
                f"{PRIVATE_USER}=true",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 0, done.stderr
        with run_emulator(data_dir, "--no-schedule") as emulator:
            submitted = job(
                emulator,
                dataset="uci-private-exhaust",
                conversation_id=PRIVATE_BOT,
                zip_password=ZIP_PASSWORD,
            )
            ran = requests.post(f"{emulator.root}/admin/run-jobs", timeout=60)
            assert ran.status_code == 200, ran.text
            yield emulator, submitted
    finally:
        os.umask(previous)


def test_the_job_store_keeps_no_zip_password(private_run: Any) -> None:
    """The password is sealed in the store (the job still zips with it); no file of the data dir holds it."""
    import zipfile

    emulator, submitted = private_run
    (archive,) = [path for path in blobs_of(emulator, submitted["requestId"]) if path.suffix == ".zip"]
    with zipfile.ZipFile(archive) as opened:
        (name,) = opened.namelist()
        assert opened.read(name, pwd=ZIP_PASSWORD.encode()).startswith(b"Conversation ID,")
    for path in emulator.data_dir.rglob("*"):
        if path.is_file():
            assert ZIP_PASSWORD.encode() not in path.read_bytes(), path


def test_the_private_job_keeps_no_plain_csv_and_its_files_are_private(private_run: Any) -> None:
    import stat

    emulator, submitted = private_run
    stored = blobs_of(emulator, submitted["requestId"])
    assert sorted(path.suffix for path in stored if path.is_file()) == [".zip"], stored
    for path in stored:
        expected = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == expected, path
    store = emulator.data_dir / "job_request.sqlite3"
    assert stat.S_IMODE(store.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("headers", "answered"),
    [
        ({"Forwarded": "for=203.0.113.7;proto=https"}, False),
        ({"Forwarded": 'for="[2001:db8::7]:4711"'}, False),
        ({"Forwarded": "for=127.0.0.1, for=198.51.100.9"}, False),
        ({"Forwarded": "for=unknown"}, False),
        ({"X-Real-IP": "203.0.113.7"}, False),
        ({"Forwarded": "for=127.0.0.1:5000;by=127.0.0.1"}, True),
        ({}, True),
    ],
)
def test_a_proxy_that_sends_only_forwarded_does_not_make_remote_clients_local(
    tmp_path: Path, headers: dict[str, str], answered: bool
) -> None:
    import asyncio

    import httpx

    from airflow_provider_uci.emulator.app import create_app
    from airflow_provider_uci.emulator.config import EmulatorSettings

    app = create_app(EmulatorSettings(data_dir=tmp_path, schedule=False))

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))  # the proxy on this host
        async with httpx.AsyncClient(transport=transport, base_url="http://emulator.test") as http:
            return await http.get("/admin/clock", headers=headers)

    answer = asyncio.run(call())
    assert answer.status_code == (200 if answered else 403), answer.text
    if not answered:
        assert answer.json()["params"]["errmsg"].startswith("admin routes answer loopback clients only")
