"""The job_request table (docs/service-contract.md §3.1) behind the API, in SQLite and PostgreSQL, over HTTP.

Rows are counted and columns read straight from the database the emulator process writes, not
through the emulator's code.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.api import PRIVATE, RESPONSE, ExhaustApi, new_tag, submit_body
from tests.support.services import Emulator, postgres_database, run_emulator

CHANNEL = "dev-channel"

#: docs/service-contract.md §3.1, in DDL order: (column, PostgreSQL type, SQLite declared type). SQLite has
#: no arrays, so download_urls holds a JSON array in TEXT there.
CONTRACT_COLUMNS = [
    ("tag", "character varying(100)", "VARCHAR(100)"),
    ("request_id", "character varying(50)", "VARCHAR(50)"),
    ("job_id", "character varying(50)", "VARCHAR(50)"),
    ("status", "character varying(50)", "VARCHAR(50)"),
    ("request_data", "json", "JSON"),
    ("requested_by", "character varying(50)", "VARCHAR(50)"),
    ("requested_channel", "character varying(50)", "VARCHAR(50)"),
    ("dt_job_submitted", "timestamp without time zone", "TIMESTAMP"),
    ("download_urls", "text[]", "TEXT"),
    ("dt_file_created", "timestamp without time zone", "TIMESTAMP"),
    ("dt_job_completed", "timestamp without time zone", "TIMESTAMP"),
    ("execution_time", "integer", "INTEGER"),
    ("err_message", "character varying(300)", "VARCHAR(300)"),
    ("iteration", "integer", "INTEGER"),
    ("encryption_key", "character varying(50)", "VARCHAR(50)"),
]
#: "Added later" in docs/service-contract.md §3.1.
LATER_COLUMNS = [
    ("batch_number", "integer", "INTEGER"),
    ("processed_batches", "text", "TEXT"),
]


@dataclass
class Store:
    """An emulator process and a direct connection to the database it keeps its jobs in."""

    kind: str
    emulator: Emulator
    target: str  # the SQLite file or the PostgreSQL URL

    @property
    def api(self) -> ExhaustApi:
        return ExhaustApi(self.emulator.api)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self.kind == "sqlite":
            conn = sqlite3.connect(self.target, timeout=30)
            try:
                return conn.execute(sql, params).fetchall()
            finally:
                conn.close()
        import psycopg2

        conn = psycopg2.connect(self.target)
        try:
            with conn.cursor() as cur:
                cur.execute(sql.replace("?", "%s"), params)
                return cur.fetchall()
        finally:
            conn.close()

    def count(self, tag: str) -> int:
        return self.query("SELECT count(*) FROM job_request WHERE tag = ?", (tag,))[0][0]

    def row(self, tag: str, request_id: str) -> dict[str, Any]:
        rows = self.query(
            "SELECT tag, request_id, job_id, status, request_data, requested_by, requested_channel, "
            "download_urls, iteration, err_message, encryption_key FROM job_request "
            "WHERE tag = ? AND request_id = ?",
            (tag, request_id),
        )
        assert len(rows) == 1
        names = (
            "tag",
            "request_id",
            "job_id",
            "status",
            "request_data",
            "requested_by",
            "requested_channel",
            "download_urls",
            "iteration",
            "err_message",
            "encryption_key",
        )
        row = dict(zip(names, rows[0], strict=False))
        for name in ("request_data", "download_urls"):  # SQLite keeps them as JSON text
            if isinstance(row[name], str):
                row[name] = json.loads(row[name])
        return row


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    data_dir = tmp_path_factory.mktemp(f"emulator-{request.param}")
    # no schedule: a test that moves the clock back and then resets it would make the nightly jobs due
    # at once, and they would change the rows other tests compare
    if request.param == "sqlite":
        with run_emulator(data_dir, "--no-schedule") as running:
            yield Store("sqlite", running, str(data_dir / "job_request.sqlite3"))
    else:
        with (
            postgres_database() as url,
            run_emulator(data_dir, "--no-schedule", "--database-url", url) as running,
        ):
            yield Store("postgres", running, url)


@pytest.fixture
def clocked(store: Store) -> Iterator[Store]:
    """The store's emulator, whose clock the test moves; back to real time afterwards."""
    yield store
    store.emulator.reset_clock()


def submit(api: ExhaustApi, body: dict[str, Any]) -> dict[str, Any]:
    answer = api.submit(body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["responseCode"] == "OK"
    return answer.json()["result"]


def read(api: ExhaustApi, tag: str, request_id: str) -> dict[str, Any]:
    answer = api.read(tag, request_id)
    assert answer.status_code == 200, answer.text
    return answer.json()["result"]


def listed(api: ExhaustApi, tag: str) -> list[dict[str, Any]]:
    answer = api.list(tag)
    assert answer.status_code == 200, answer.text
    result = answer.json()["result"]
    assert result["count"] == len(result["jobs"])
    return result["jobs"]


def admin(
    emulator: Emulator,
    request_id: str,
    action: str,
    tag: str,
    params: dict[str, str] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """POST to /admin/jobs/<id>/file (place a file) or /fail; returns the job with stored URLs."""
    answer = requests.post(
        f"{emulator.root}/admin/jobs/{request_id}/{action}",
        params={"tag": f"{tag}:{CHANNEL}"} | (params or {}),
        timeout=30,
        **kwargs,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def ms(instant: datetime) -> int:
    return int(instant.timestamp() * 1000)


# -- schema ---------------------------------------------------------------------------------------


def test_table_has_the_contract_columns_and_primary_key(store: Store) -> None:
    submit(store.api, submit_body(new_tag()))
    expected = CONTRACT_COLUMNS + LATER_COLUMNS
    if store.kind == "sqlite":
        info = store.query("PRAGMA table_info(job_request)")  # cid, name, type, notnull, dflt_value, pk
        assert [(name, kind) for _, name, kind, _, _, _ in info] == [
            (name, lite) for name, _, lite in expected
        ]
        key = [name for _, name, _, _, _, pk in sorted(info, key=lambda column: column[5]) if pk]
    else:
        info = store.query(
            "SELECT column_name, data_type, character_maximum_length, udt_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name = 'job_request' ORDER BY ordinal_position"
        )

        def described(data_type: str, length: int | None, udt: str) -> str:
            if data_type == "character varying":
                return f"character varying({length})"
            if data_type == "ARRAY":
                return f"{udt.lstrip('_')}[]"
            return data_type

        assert [(name, described(*rest)) for name, *rest in info] == [(name, pg) for name, pg, _ in expected]
        key = [
            name
            for (name,) in store.query(
                "SELECT kcu.column_name FROM information_schema.table_constraints tc "
                "JOIN information_schema.key_column_usage kcu "
                "ON kcu.constraint_name = tc.constraint_name AND kcu.table_schema = tc.table_schema "
                "WHERE tc.table_schema = 'public' AND tc.table_name = 'job_request' AND tc.constraint_type = 'PRIMARY KEY' "
                "ORDER BY kcu.ordinal_position"
            )
        ]
    assert key == ["tag", "request_id"]


# -- submit, read, list ---------------------------------------------------------------------------


def test_submit_read_list_and_the_row_written(store: Store) -> None:
    api, tag = store.api, new_tag()
    body = submit_body(tag, requested_by="someone", encryption_key="secret-key")
    job = submit(api, body)
    rid = job["requestId"]
    assert job["status"] == "SUBMITTED" and job["attempts"] == 0 and job["tag"] == f"{tag}:{CHANNEL}"
    assert job["datasetConfig"] == body["request"]["datasetConfig"]
    assert "statusMessage" not in job

    assert store.row(f"{tag}:{CHANNEL}", rid) == {
        "tag": f"{tag}:{CHANNEL}",
        "request_id": rid,
        "job_id": RESPONSE,
        "status": "SUBMITTED",
        "request_data": body["request"]["datasetConfig"],
        "requested_by": "someone",
        "requested_channel": CHANNEL,
        "download_urls": [],
        "iteration": 0,
        "err_message": None,
        "encryption_key": None,
    }
    # the zip password is kept sealed beside the real table, never as it was given
    (sealed,) = store.query(
        "SELECT sealed_key FROM job_request_key WHERE tag = ? AND request_id = ?", (f"{tag}:{CHANNEL}", rid)
    )
    assert sealed[0].startswith("sealed:v1:") and "secret-key" not in sealed[0]
    found = read(api, tag, rid)
    assert found == job | {"expiresAt": found["expiresAt"]}
    (row,) = listed(api, tag)
    assert row["requestId"] == rid and row["status"] == "SUBMITTED" and row["statusMessage"] is None
    assert row["jobStats"] == job["jobStats"]

    admin(store.emulator, rid, "file", tag, data=b"a,b\n1,2\n", params={"executionTime": "6210"})
    done = read(api, tag, rid)
    assert (
        done["status"] == "SUCCESS"
        and done["statusMessage"] == ""
        and done["jobStats"]["executionTime"] == 6210
    )
    (url,) = done["downloadUrls"]
    assert requests.get(url, timeout=30).content == b"a,b\n1,2\n"
    assert listed(api, tag)[0]["downloadUrls"][0].split("?")[0] == url.split("?")[0]
    stored = store.row(f"{tag}:{CHANNEL}", rid)
    assert stored["status"] == "SUCCESS" and stored["err_message"] == ""
    assert stored["download_urls"] == [
        f"wasb://reports@uciemulator.blob.core.windows.net/uci-response-exhaust/{rid}/{url.split('?')[0].rsplit('/', 1)[1]}"
    ]


def test_concurrent_identical_submits_make_one_row(store: Store) -> None:
    tag, threads = new_tag(), 40
    body = submit_body(tag)
    barrier = threading.Barrier(threads)
    answers: list[requests.Response | BaseException] = [None] * threads  # type: ignore[list-item]

    def post(index: int) -> None:
        api = ExhaustApi(store.emulator.api)
        try:
            barrier.wait(timeout=30)
            answers[index] = api.submit(body)
        except BaseException as exc:
            answers[index] = exc

    workers = [threading.Thread(target=post, args=(index,)) for index in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)

    assert all(isinstance(answer, requests.Response) for answer in answers), answers
    assert [answer.status_code for answer in answers] == [200] * threads, [
        a.text for a in answers if a.status_code != 200
    ]
    jobs = [answer.json()["result"] for answer in answers]
    assert len({job["requestId"] for job in jobs}) == 1
    assert {job["status"] for job in jobs} == {"SUBMITTED"}
    assert len({job["jobStats"]["dtJobSubmitted"] for job in jobs}) == 1  # all see the one row first written
    assert store.count(f"{tag}:{CHANNEL}") == 1


# -- resubmission ---------------------------------------------------------------------------------


def test_failed_job_resubmitted_same_day_goes_back_to_submitted(clocked: Store) -> None:
    emulator, api, tag = clocked.emulator, clocked.api, new_tag()
    start = datetime(2026, 1, 5, 10, 0, tzinfo=timezone.utc)
    emulator.set_clock(start.isoformat())
    first = submit(api, submit_body(tag))
    emulator.set_clock((start + timedelta(minutes=1)).isoformat())
    second = submit(api, submit_body(tag, dataset=PRIVATE))
    assert [job["requestId"] for job in listed(api, tag)] == [second["requestId"], first["requestId"]]

    rid = first["requestId"]
    emulator.set_clock((start + timedelta(minutes=2)).isoformat())
    failed = admin(emulator, rid, "fail", tag, json={"message": "No data found"})
    assert failed["status"] == "FAILED" and failed["attempts"] == 1
    completed = failed["jobStats"]["dtJobCompleted"]

    # A job that is not FAILED, resubmitted the same day with another config, comes back unchanged.
    emulator.set_clock((start + timedelta(minutes=3)).isoformat())
    untouched = submit(api, submit_body(tag, dataset=PRIVATE, conversation_id="another"))
    assert untouched["requestId"] == second["requestId"]
    assert untouched["datasetConfig"]["conversationId"] == second["datasetConfig"]["conversationId"]
    assert untouched["jobStats"] == second["jobStats"]

    emulator.set_clock((start + timedelta(minutes=4)).isoformat())
    again = submit(
        api, submit_body(tag, conversation_id="d655cf03-1f6f-4510-acf6-d3f51b488a5e", start="2022-03-02")
    )
    assert again["requestId"] == rid
    assert again["status"] == "SUBMITTED"
    assert again["attempts"] == 1
    assert again["statusMessage"] == "No data found"
    assert again["datasetConfig"]["conversationId"] == "d655cf03-1f6f-4510-acf6-d3f51b488a5e"
    submitted = again["jobStats"]["dtJobSubmitted"]
    assert submitted > first["jobStats"]["dtJobSubmitted"]
    assert abs(submitted - ms(start + timedelta(minutes=4))) < 5000
    assert again["lastUpdated"] == completed < submitted  # kept: docs/service-contract.md §4.4
    assert again["downloadUrls"] == []

    assert read(api, tag, rid)["jobStats"]["dtJobSubmitted"] == submitted
    assert [job["requestId"] for job in listed(api, tag)] == [rid, second["requestId"]]
    row = clocked.row(f"{tag}:{CHANNEL}", rid)
    assert (row["status"], row["iteration"], row["err_message"]) == ("SUBMITTED", 1, "No data found")
    assert clocked.count(f"{tag}:{CHANNEL}") == 2


# -- length limits --------------------------------------------------------------------------------

LIMIT_CASES = {
    # name: (submit_body overrides, the field named when too long, or None)
    "tag+channel 101": (lambda tag: {"tag": tag + "x" * (101 - len(f"{tag}:{CHANNEL}"))}, "tag"),
    "tag+channel 100": (lambda tag: {"tag": tag + "x" * (100 - len(f"{tag}:{CHANNEL}"))}, None),
    "requestedBy 51": (lambda tag: {"requested_by": "u" * 51}, "requestedBy"),
    "requestedBy 50": (lambda tag: {"requested_by": "u" * 50}, None),
    "encryptionKey 51": (lambda tag: {"encryption_key": "k" * 51}, "encryptionKey"),
    "encryptionKey 50": (lambda tag: {"encryption_key": "k" * 50}, None),
}


@pytest.mark.parametrize("case", LIMIT_CASES)
def test_length_limits(store: Store, case: str) -> None:
    """A value its column cannot hold is a 400 naming the field and the limit; nothing is written."""
    make, field = LIMIT_CASES[case]
    base = new_tag()
    values = make(base)
    tag = values.pop("tag", base)
    answer = store.api.submit(submit_body(tag, **values))
    if field is None:
        assert answer.status_code == 200, answer.text
        assert store.count(f"{tag}:{CHANNEL}") == 1
        return
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["responseCode"] == "CLIENT_ERROR"
    assert body["params"]["err"] == "CLIENT_ERROR" and body["params"]["status"] == "failed"
    assert body["params"]["errmsg"].startswith(f"{field}: ") and "at most" in body["params"]["errmsg"]
    assert body["result"] is None
    assert store.query("SELECT count(*) FROM job_request WHERE tag LIKE ?", (f"{base}%",))[0][0] == 0


def test_length_limits_under_play_errors_are_the_databases_500(start_emulator) -> None:
    """With --play-errors the database refuses the value, as the real service's does: a 500 ERROR envelope."""
    api = ExhaustApi(start_emulator("--play-errors").api)
    for case, (make, field) in LIMIT_CASES.items():
        base = new_tag()
        values = make(base)
        answer = api.submit(submit_body(values.pop("tag", base), **values))
        if field is None:
            assert answer.status_code == 200, (case, answer.text)
            continue
        assert answer.status_code == 500, (case, answer.text)
        body = answer.json()
        assert body["responseCode"] == "ERROR" and body["params"]["err"] == "ERROR" and body["result"] is None


def test_too_long_resubmit_leaves_a_failed_row_as_it_was(store: Store) -> None:
    api, tag = store.api, new_tag()
    rid = submit(api, submit_body(tag, encryption_key="short"))["requestId"]
    admin(store.emulator, rid, "fail", tag, json={"message": "Invalid request"})
    before = store.row(f"{tag}:{CHANNEL}", rid)
    sealed = "SELECT sealed_key FROM job_request_key WHERE tag = ? AND request_id = ?"
    key_before = store.query(sealed, (f"{tag}:{CHANNEL}", rid))
    answer = api.submit(submit_body(tag, encryption_key="k" * 51))
    assert answer.status_code == 400 and answer.json()["responseCode"] == "CLIENT_ERROR"
    assert store.row(f"{tag}:{CHANNEL}", rid) == before
    assert store.query(sealed, (f"{tag}:{CHANNEL}", rid)) == key_before and len(key_before) == 1
    # the key is kept sealed beside the real table, not in its encryption_key column
    assert before["status"] == "FAILED" and before["encryption_key"] is None


# -- persistence ----------------------------------------------------------------------------------


def test_sqlite_store_survives_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "emulator"
    tag = new_tag()
    with run_emulator(data_dir) as first:
        api = ExhaustApi(first.api)
        job = submit(api, submit_body(tag))
        admin(first, job["requestId"], "file", tag, data=b"kept,across\n1,2\n")
        url = read(api, tag, job["requestId"])["downloadUrls"][0]
    assert first.process.poll() is not None  # really stopped

    with run_emulator(data_dir) as second:
        api = ExhaustApi(second.api)
        found = read(api, tag, job["requestId"])
        assert found["requestId"] == job["requestId"]
        assert found["status"] == "SUCCESS"
        assert found["jobStats"]["dtJobSubmitted"] == job["jobStats"]["dtJobSubmitted"]
        assert [row["requestId"] for row in listed(api, tag)] == [job["requestId"]]
        again = submit(api, submit_body(tag))
        assert again["requestId"] == job["requestId"] and again["status"] == "SUCCESS"
        # The signing key lives in the data dir, so a URL handed out before the restart still works.
        old = url.replace(f":{first.port}/", f":{second.port}/")
        assert requests.get(old, timeout=30).content == b"kept,across\n1,2\n"
    conn = sqlite3.connect(data_dir / "job_request.sqlite3")
    try:
        assert (
            conn.execute("SELECT count(*) FROM job_request WHERE tag = ?", (f"{tag}:{CHANNEL}",)).fetchone()[
                0
            ]
            == 1
        )
    finally:
        conn.close()
