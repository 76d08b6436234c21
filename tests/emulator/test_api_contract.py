"""The Data Exhaust API of docs/service-contract.md §1, checked over HTTP against a running emulator.

Expected values come from docs/service-contract.md (read from the real service's source), not from the
emulator's code: request ids are recomputed here with hashlib, key orders are the published ones.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
import requests

from tests.support.api import PRIVATE, RESPONSE, ExhaustApi, new_tag, submit_body
from tests.support.services import Emulator, run_emulator

TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+00:00$")
MAP_ORDER = [
    "attempts",
    "lastUpdated",
    "tag",
    "expiresAt",
    "datasetConfig",
    "downloadUrls",
    "requestedBy",
    "jobStats",
    "status",
    "dataset",
    "requestId",
    "requestedChannel",
]
LIST_ORDER = [
    "requestId",
    "tag",
    "dataset",
    "requestedBy",
    "requestedChannel",
    "status",
    "lastUpdated",
    "datasetConfig",
    "attempts",
    "jobStats",
    "downloadUrls",
    "expiresAt",
    "statusMessage",
]
NO_JOB = "no job available with the given request_id and tag"


def expected_request_id(
    dataset: str, tag: str, requested_by: str, channel: str, day: str, kind: str | None
) -> str:
    parts = [dataset, tag, requested_by, channel, day] + ([kind] if kind is not None else [])
    return hashlib.md5("|".join(parts).encode()).hexdigest().upper()


def ts_ms(ts: str) -> int:
    return int(datetime.fromisoformat(ts).timestamp() * 1000)


@pytest.fixture
def api(emulator: Emulator) -> ExhaustApi:
    return ExhaustApi(emulator.api)


@pytest.fixture
def clock(emulator: Emulator) -> Iterator[Emulator]:
    """The shared emulator, whose clock the test may move; it goes back to real time afterwards."""
    yield emulator
    emulator.reset_clock()


def place_file(
    emulator: Emulator, tag: str, request_id: str, data: bytes = b"a,b\n1,2\n", name: str | None = None
) -> None:
    params = {"tag": tag} | ({"name": name} if name else {})
    requests.post(
        f"{emulator.root}/admin/jobs/{request_id}/file", params=params, data=data, timeout=10
    ).raise_for_status()


def fail_job(emulator: Emulator, tag: str, request_id: str, message: str) -> None:
    requests.post(
        f"{emulator.root}/admin/jobs/{request_id}/fail",
        params={"tag": tag},
        json={"message": message},
        timeout=10,
    ).raise_for_status()


# -- envelope ----------------------------------------------------------------------------------


def test_submit_success_envelope_order_ts_and_params(api: ExhaustApi) -> None:
    answer = api.submit(submit_body(new_tag()))
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    assert int(answer.headers["Request-Time"]) >= 0
    body = answer.json()
    assert list(body) == ["id", "ver", "ts", "params", "responseCode", "result"]
    assert body["id"] == "ekstep.analytics.dataset.request.submit"
    assert body["ver"] == "1.0"
    assert TS.match(body["ts"])
    assert list(body["params"]) == ["resmsgid", "status", "client_key"]
    assert body["params"]["status"] == "successful" and body["params"]["client_key"] is None
    assert re.fullmatch(r"[0-9a-f-]{36}", body["params"]["resmsgid"])
    assert body["responseCode"] == "OK"
    assert list(body["result"]) == MAP_ORDER  # statusMessage omitted while err_message is NULL


def test_error_envelope_shape_and_http_status(api: ExhaustApi) -> None:
    answer = api.submit(submit_body(None))
    assert answer.status_code == 400
    body = answer.json()
    assert list(body) == ["id", "ver", "ts", "params", "responseCode", "result"]
    assert list(body["params"]) == ["resmsgid", "err", "status", "errmsg", "client_key"]
    assert body["params"]["err"] == "CLIENT_ERROR" and body["params"]["status"] == "failed"
    assert body["params"]["errmsg"] == "tag is empty"
    assert body["responseCode"] == "CLIENT_ERROR" and body["result"] is None
    assert TS.match(body["ts"])


# -- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("drop", "message"),
    [
        (("tag", "dataset", "datasetConfig"), "tag is empty"),
        (("dataset", "datasetConfig"), "dataset is empty"),
        (("datasetConfig",), "datasetConfig is empty"),
    ],
)
def test_validation_messages_in_order(api: ExhaustApi, drop: tuple[str, ...], message: str) -> None:
    body = submit_body(new_tag())
    for key in drop:
        del body["request"][key]
    answer = api.submit(body)
    assert answer.status_code == 400
    assert answer.json()["params"]["errmsg"] == message


def test_null_counts_as_missing_but_empty_values_pass(api: ExhaustApi) -> None:
    body = submit_body(new_tag())
    body["request"]["dataset"] = None
    assert api.submit(body).json()["params"]["errmsg"] == "dataset is empty"
    empty = submit_body("")
    empty["request"]["datasetConfig"] = {}
    answer = api.submit(empty)
    assert answer.status_code == 200
    assert answer.json()["result"]["tag"] == ":dev-channel"
    assert answer.json()["result"]["datasetConfig"] == {}


def test_what_is_not_validated_is_accepted(api: ExhaustApi) -> None:
    body = submit_body(new_tag(), dataset="no-such-dataset", start="01/03/2022", end="yesterday")
    del body["request"]["datasetConfig"]["conversationId"]
    body["request"]["requestedChannel"] = "ignored"
    body["request"]["output_format"] = "parquet"
    body["request"]["unknownField"] = {"x": 1}
    answer = api.submit(body)
    assert answer.status_code == 200
    job = answer.json()["result"]
    assert job["status"] == "SUBMITTED" and job["dataset"] == "no-such-dataset"
    assert job["requestedChannel"] == "dev-channel"
    assert job["datasetConfig"] == body["request"]["datasetConfig"]


def test_validation_runs_before_authorization(emulator: Emulator) -> None:
    wrong_channel = ExhaustApi(emulator.api, channel="someone-else")
    assert wrong_channel.submit(submit_body(None)).status_code == 400
    assert wrong_channel.submit(submit_body(new_tag())).status_code == 403


def test_non_json_body_is_a_415_error_envelope(api: ExhaustApi) -> None:
    answer = api.session.post(
        f"{api.base}/dataset/v1/request/submit",
        data="tag=x",
        headers=api.headers(**{"Content-Type": "text/plain"}),
        timeout=10,
    )
    assert answer.status_code == 415
    body = answer.json()
    assert body["responseCode"] == "CLIENT_ERROR" and body["result"] is None
    assert body["params"]["errmsg"] == "Content-Type: must be application/json, got 'text/plain'"


def test_missing_request_object_is_a_400_error_envelope(api: ExhaustApi) -> None:
    answer = api.submit({"id": "x", "params": {}})
    assert answer.status_code == 400
    body = answer.json()
    assert (
        body["responseCode"] == "CLIENT_ERROR"
        and body["params"]["err"] == "CLIENT_ERROR"
        and body["result"] is None
    )
    assert body["params"]["errmsg"] == "request: must be a JSON object"


@pytest.fixture(scope="module")
def play(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExhaustApi]:
    """An emulator that answers malformed input as the real (Play) service does (--play-errors)."""
    with run_emulator(tmp_path_factory.mktemp("play-errors"), "--play-errors") as running:
        yield ExhaustApi(running.api)


def test_play_errors_non_json_body_is_plays_html_500(play: ExhaustApi) -> None:
    answer = play.session.post(
        f"{play.base}/dataset/v1/request/submit",
        data="tag=x",
        headers=play.headers(**{"Content-Type": "text/plain"}),
        timeout=10,
    )
    assert answer.status_code == 500
    assert not answer.headers["content-type"].startswith("application/json")


def test_play_errors_invalid_json_is_plays_html_400(play: ExhaustApi) -> None:
    answer = play.session.post(
        f"{play.base}/dataset/v1/request/submit", data="{not json", headers=play.headers(), timeout=10
    )
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("text/html") and b"Invalid Json" in answer.content


def test_play_errors_missing_request_object_is_a_500_error_envelope(play: ExhaustApi) -> None:
    answer = play.submit({"id": "x", "params": {}})
    assert answer.status_code == 500
    body = answer.json()
    assert body["responseCode"] == "ERROR" and body["params"]["err"] == "ERROR" and body["result"] is None


def test_play_errors_bad_list_limits_are_server_errors(play: ExhaustApi) -> None:
    not_a_number = play.list(new_tag(), limit="ten")
    assert not_a_number.status_code == 500
    assert not not_a_number.headers["content-type"].startswith("application/json")
    negative = play.list(new_tag(), limit=-1)
    assert negative.status_code == 500 and negative.json()["responseCode"] == "ERROR"
    beyond_int = play.list(new_tag(), limit=2**31)
    assert beyond_int.status_code == 500


# -- authorization -----------------------------------------------------------------------------


def test_missing_channel_is_forbidden_with_exact_message(emulator: Emulator) -> None:
    for channel in (None, ""):
        answer = ExhaustApi(emulator.api, channel=channel).submit(submit_body(new_tag()))
        assert answer.status_code == 403
        body = answer.json()
        assert body["responseCode"] == "FORBIDDEN" and body["params"]["err"] == "FORBIDDEN"
        assert body["params"]["errmsg"] == "X-Channel-ID is missing in request header"


def test_wrong_channel_is_forbidden_with_exact_message(emulator: Emulator) -> None:
    answer = ExhaustApi(emulator.api, channel="01269878797503692810").submit(submit_body(new_tag()))
    assert answer.status_code == 403
    assert answer.json()["params"]["errmsg"] == (
        "Given X-Consumer-ID='dev-consumer' and X-Channel-ID='01269878797503692810' are not authorized"
    )


def test_user_token_headers_empty_count_as_absent_non_empty_is_refused(api: ExhaustApi) -> None:
    ok = api.submit(
        submit_body(new_tag()), **{"x-authenticated-user-token": "", "X-Authenticated-Userid": ""}
    )
    assert ok.status_code == 200 and ok.json()["responseCode"] == "OK"
    refused = api.submit(submit_body(new_tag()), **{"x-authenticated-user-token": "eyJhbGciOi.user.token"})
    assert refused.status_code == 403
    assert refused.json()["params"]["errmsg"] == "You are not authorized."


def test_gateway_refuses_missing_or_unknown_api_key(emulator: Emulator) -> None:
    assert ExhaustApi(emulator.api, key=None).submit(submit_body(new_tag())).status_code == 401
    assert ExhaustApi(emulator.api, key="not-a-key").read(new_tag(), "X").status_code == 401
    assert ExhaustApi(emulator.api, key="not-a-key").list(new_tag()).status_code == 401


def test_read_looks_up_before_it_authorizes(api: ExhaustApi) -> None:
    tag = new_tag()
    job = api.submit(submit_body(tag)).json()["result"]
    token = {"x-authenticated-user-token": "a-user-token"}
    found = api.read(tag, job["requestId"], **token)
    assert found.status_code == 403 and found.json()["params"]["errmsg"] == "You are not authorized."
    unknown = api.read(new_tag(), job["requestId"], **token)
    assert unknown.status_code == 200 and unknown.json()["params"]["errmsg"] == NO_JOB


@pytest.fixture(scope="module")
def two_consumers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """An emulator with two consumers: k1 may use ch1 only, k2 may use ch2 only."""
    with run_emulator(
        tmp_path_factory.mktemp("two-consumers"),
        "--api-key",
        "k1=c1",
        "--api-key",
        "k2=c2",
        "--authorize",
        "c1=ch1",
        "--authorize",
        "c2=ch2",
    ) as running:
        yield running


def test_read_and_list_of_an_existing_tag_by_an_unauthorized_consumer(two_consumers: Emulator) -> None:
    owner = ExhaustApi(two_consumers.api, key="k1", channel="ch1")
    intruder = ExhaustApi(two_consumers.api, key="k2", channel="ch1")
    tag = new_tag()
    job = owner.submit(submit_body(tag)).json()["result"]
    message = "Given X-Consumer-ID='c2' and X-Channel-ID='ch1' are not authorized"
    read = intruder.read(tag, job["requestId"])
    assert read.status_code == 403 and read.json()["params"]["errmsg"] == message
    assert read.json()["id"] == "ekstep.analytics.dataset.request.info"
    listed = intruder.list(tag)
    assert listed.status_code == 403 and listed.json()["params"]["errmsg"] == message
    empty = intruder.list(new_tag())
    assert empty.status_code == 403, "the consumer-channel check applies to an empty list too"
    assert ExhaustApi(two_consumers.api, key="dev-key").submit(submit_body(new_tag())).status_code == 401


# -- request id and upsert ---------------------------------------------------------------------


def test_request_id_is_md5_of_dataset_tag_requester_channel_date_type(
    clock: Emulator, api: ExhaustApi
) -> None:
    clock.set_clock("2024-02-29T12:00:00+00:00")
    tag = new_tag()
    job = api.submit(submit_body(tag, requested_by="analyst")).json()["result"]
    assert job["requestId"] == expected_request_id(
        RESPONSE, tag, "analyst", "dev-channel", "2024-02-29", RESPONSE
    )
    assert job["tag"] == f"{tag}:dev-channel"
    assert (
        datetime.fromtimestamp(job["jobStats"]["dtJobSubmitted"] / 1000, timezone.utc).date().isoformat()
        == "2024-02-29"
    )

    untyped = submit_body(new_tag(), requested_by=None)
    del untyped["request"]["requestedBy"]
    del untyped["request"]["datasetConfig"]["type"]
    job = api.submit(untyped).json()["result"]
    assert job["requestedBy"] == ""
    assert job["requestId"] == expected_request_id(
        RESPONSE, untyped["request"]["tag"], "", "dev-channel", "2024-02-29", None
    )


def test_same_day_resubmission_returns_the_original_job_unchanged(api: ExhaustApi) -> None:
    tag = new_tag()
    first = api.submit(submit_body(tag, start="2022-03-01", end="2022-03-02")).json()["result"]
    again = api.submit(
        submit_body(
            tag, start="2023-01-01", end="2023-12-31", conversation_id=new_tag(), encryption_key="other"
        )
    ).json()["result"]
    assert again["requestId"] == first["requestId"]
    assert again["datasetConfig"] == {
        "type": RESPONSE,
        "conversationId": "c63b6faa-11a9-4259-b941-11cd2f8446c6",
        "startDate": "2022-03-01",
        "endDate": "2022-03-02",
    }
    assert again["jobStats"]["dtJobSubmitted"] == first["jobStats"]["dtJobSubmitted"]
    assert api.list(tag).json()["result"]["count"] == 1


def test_a_new_day_gives_a_new_request_id_and_row(clock: Emulator, api: ExhaustApi) -> None:
    tag = new_tag()
    clock.set_clock("2025-06-01T23:59:00+00:00")
    day_one = api.submit(submit_body(tag)).json()["result"]
    clock.set_clock("2025-06-02T00:01:00+00:00")
    day_two = api.submit(submit_body(tag)).json()["result"]
    assert day_one["requestId"] != day_two["requestId"]
    listed = api.list(tag).json()["result"]
    assert [job["requestId"] for job in listed["jobs"]] == [day_two["requestId"], day_one["requestId"]]


def test_resubmitting_a_successful_job_returns_it_with_signed_urls(
    emulator: Emulator, api: ExhaustApi
) -> None:
    tag = new_tag()
    job = api.submit(submit_body(tag)).json()["result"]
    place_file(emulator, job["tag"], job["requestId"])
    again = api.submit(submit_body(tag, start="2020-01-01")).json()["result"]
    assert again["status"] == "SUCCESS" and again["statusMessage"] == ""
    assert again["datasetConfig"]["startDate"] == "2022-03-01"
    (url,) = again["downloadUrls"]
    assert "se=" in url and "sig=" in url
    assert requests.get(url, timeout=10).content == b"a,b\n1,2\n"


def test_resubmitting_a_failed_job_resets_it_keeping_attempts(emulator: Emulator, api: ExhaustApi) -> None:
    tag = new_tag()
    job = api.submit(submit_body(tag, start="2022-01-01")).json()["result"]
    fail_job(emulator, job["tag"], job["requestId"], "No data found")
    failed = api.read(tag, job["requestId"]).json()["result"]
    assert (
        failed["status"] == "FAILED"
        and failed["attempts"] == 1
        and failed["statusMessage"] == "No data found"
    )
    assert failed["downloadUrls"] == [] and failed["jobStats"]["executionTime"] == 0
    reset = api.submit(submit_body(tag, start="2022-02-02")).json()["result"]
    assert reset["status"] == "SUBMITTED" and reset["attempts"] == 1
    assert reset["datasetConfig"]["startDate"] == "2022-02-02", "a FAILED job takes the new request data"
    assert reset["statusMessage"] == "No data found", "the reset does not clear err_message"
    assert reset["jobStats"] == {
        "dtJobSubmitted": reset["jobStats"]["dtJobSubmitted"],
        "dtJobCompleted": None,
        "executionTime": None,
    }
    assert reset["lastUpdated"] == failed["jobStats"]["dtJobCompleted"], (
        "dt_job_completed is kept, so lastUpdated too"
    )


# -- read --------------------------------------------------------------------------------------


def test_read_of_unknown_job_is_http_200_with_failed_envelope(api: ExhaustApi) -> None:
    answer = api.read(new_tag(), "0" * 32)
    assert answer.status_code == 200
    body = answer.json()
    assert body["id"] == "ekstep.analytics.dataset.request.info"
    assert body["responseCode"] == "OK" and body["result"] is None
    assert body["params"]["status"] == "failed" and body["params"]["err"] == "OK"
    assert body["params"]["errmsg"] == NO_JOB
    assert list(body["params"]) == ["resmsgid", "err", "status", "errmsg", "client_key"]


def test_read_takes_the_bare_tag_only(emulator: Emulator, api: ExhaustApi) -> None:
    tag = new_tag()
    job = api.submit(submit_body(tag)).json()["result"]
    found = api.read(tag, job["requestId"]).json()
    assert (
        found["id"] == "ekstep.analytics.dataset.request.info" and found["params"]["status"] == "successful"
    )
    assert found["result"]["requestId"] == job["requestId"]
    assert list(found["result"]) == MAP_ORDER
    with_channel = api.read(job["tag"], job["requestId"])
    assert with_channel.status_code == 200 and with_channel.json()["params"]["errmsg"] == NO_JOB
    assert api.read(tag, None).json()["params"]["errmsg"] == NO_JOB, "a missing requestId is the empty string"
    assert api.read(tag, job["requestId"].lower()).json()["result"] is None, "request ids compare exactly"
    other_channel = ExhaustApi(emulator.api, channel="another-channel").read(tag, job["requestId"])
    assert other_channel.status_code == 200 and other_channel.json()["params"]["errmsg"] == NO_JOB


def test_status_message_absent_then_empty_after_success(emulator: Emulator, api: ExhaustApi) -> None:
    tag = new_tag()
    job = api.submit(submit_body(tag)).json()["result"]
    assert "statusMessage" not in api.read(tag, job["requestId"]).json()["result"]
    listed = api.list(tag).json()["result"]["jobs"][0]
    assert list(listed) == LIST_ORDER and listed["statusMessage"] is None
    place_file(emulator, job["tag"], job["requestId"])
    done = api.read(tag, job["requestId"]).json()["result"]
    assert done["statusMessage"] == "" and done["status"] == "SUCCESS"
    stats = done["jobStats"]
    assert stats["dtJobCompleted"] >= stats["dtJobSubmitted"] and stats["executionTime"] == 0
    assert done["lastUpdated"] == stats["dtJobCompleted"]


def test_expires_at_is_thirty_minutes_from_now_on_every_job(clock: Emulator, api: ExhaustApi) -> None:
    tag = new_tag()
    submitted = api.submit(submit_body(tag)).json()
    assert abs(submitted["result"]["expiresAt"] - ts_ms(submitted["ts"]) - 30 * 60 * 1000) < 1000
    clock.set_clock((datetime.now(timezone.utc) + timedelta(hours=5)).isoformat())
    later = api.read(tag, submitted["result"]["requestId"]).json()
    assert abs(later["result"]["expiresAt"] - ts_ms(later["ts"]) - 30 * 60 * 1000) < 1000
    assert later["result"]["expiresAt"] > submitted["result"]["expiresAt"] + 4 * 3600 * 1000
    listed = api.list(tag).json()
    assert abs(listed["result"]["jobs"][0]["expiresAt"] - ts_ms(listed["ts"]) - 30 * 60 * 1000) < 1000


# -- list --------------------------------------------------------------------------------------


def test_list_newest_first_mixing_datasets(clock: Emulator, api: ExhaustApi) -> None:
    tag = new_tag()
    ids = []
    for minute, (dataset, who) in enumerate([(RESPONSE, "a"), (PRIVATE, "a"), (RESPONSE, "b")]):
        clock.set_clock(f"2025-03-10T08:{minute:02d}:00+00:00")
        ids.append(
            api.submit(submit_body(tag, dataset=dataset, requested_by=who)).json()["result"]["requestId"]
        )
    answer = api.list(tag)
    assert answer.status_code == 200
    body = answer.json()
    assert body["id"] == "ekstep.analytics.dataset.request.list"
    assert list(body["result"]) == ["count", "jobs"]
    assert body["result"]["count"] == 3
    assert [job["requestId"] for job in body["result"]["jobs"]] == ids[::-1]
    assert {job["dataset"] for job in body["result"]["jobs"]} == {RESPONSE, PRIVATE}
    limited = api.list(tag, limit=2).json()["result"]
    assert limited["count"] == 2, "count is the number returned, not a total"
    assert [job["requestId"] for job in limited["jobs"]] == ids[:0:-1]


def test_list_default_limit_is_100(api: ExhaustApi) -> None:
    tag = new_tag()
    for number in range(101):
        assert api.submit(submit_body(tag, requested_by=f"user-{number}")).status_code == 200
    assert api.list(tag).json()["result"]["count"] == 100
    assert api.list(tag, limit=500).json()["result"]["count"] == 101


@pytest.mark.parametrize("limit", ["ten", "-1", "", "1.5", str(2**31), str(2**64), "9" * 5000])
def test_list_bad_limits_are_400_naming_the_rule(api: ExhaustApi, limit: str) -> None:
    answer = api.list(new_tag(), limit=limit)
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["id"] == "ekstep.analytics.dataset.request.list" and body["responseCode"] == "CLIENT_ERROR"
    assert body["params"]["errmsg"].startswith("limit: must be a whole number from 0 to 2147483647")


def test_list_of_unknown_tag_is_empty(api: ExhaustApi) -> None:
    body = api.list(new_tag()).json()
    assert body["responseCode"] == "OK" and body["result"] == {"count": 0, "jobs": []}


# -- internal search ---------------------------------------------------------------------------


def test_search_filters_count_and_errors(clock: Emulator, api: ExhaustApi) -> None:
    root = clock.root
    clock.set_clock("2019-07-04T10:00:00+00:00")
    mine = [
        api.submit(submit_body(new_tag(), dataset=PRIVATE)).json()["result"]["requestId"] for _ in range(12)
    ]

    def search(body: object) -> requests.Response:
        return requests.post(
            f"{root}/request/search",
            data=json.dumps(body),
            headers={"Content-Type": "application/json"},
            timeout=10,
        )

    found = search({"request": {"filters": {"requestedDate": "2019-07-04", "dataset": PRIVATE}}})
    assert found.status_code == 200
    body = found.json()
    assert body["id"] == "ekstep.analytics.dataset.request.search"
    assert body["result"]["count"] == 12, "count is the total of matching rows"
    assert len(body["result"]["jobs"]) == 10, "limit defaults to 10"
    assert {job["requestId"] for job in body["result"]["jobs"]} <= set(mine)
    assert list(body["result"]["jobs"][0]) == LIST_ORDER
    limited = search(
        {
            "request": {
                "filters": {"requestedDate": "2019-07-04", "status": "SUBMITTED", "channel": "dev-channel"},
                "limit": 3,
            }
        }
    ).json()
    assert limited["result"]["count"] == 12 and len(limited["result"]["jobs"]) == 3
    assert search({"request": {"filters": {"requestedDate": "2019-07-05"}}}).json()["result"]["count"] == 0

    empty = search({"request": {"limit": 5}})
    assert empty.status_code == 400 and empty.json()["params"]["errmsg"] == "Filters are empty"
    unsupported = search({"request": {"filters": {"tag": "x"}}})
    assert unsupported.status_code == 400 and unsupported.json()["params"]["errmsg"] == "Unsupported filters"


def test_search_is_not_behind_the_gateway(emulator: Emulator) -> None:
    assert requests.post(f"{emulator.api}/request/search", json={}, timeout=10).status_code == 404
