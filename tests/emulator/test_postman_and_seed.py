"""The published client material, run against the emulator as it stands.

Two pieces of material come with the UCI documentation: the official Postman collection (with its
environment), and the seed document's sample submit request and sample response. A client built from
either must work against the emulator exactly as it works against the deployed service, quirks of
the material included.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shutil
import subprocess
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from tests.support.api import ExhaustApi, new_tag
from tests.support.services import Emulator, node_tool, unavailable

POSTMAN_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "sunbird" / "postman"
COLLECTION = POSTMAN_DIR / "DataExhaust-APIs.postman_collection.json"
ENVIRONMENT = POSTMAN_DIR / "DataExhaust.postman_environment.json"

SUBMIT_ITEM = "Data Exhaust - Request API"
READ_ITEM = "Get Job Info"
LIST_ITEM = "Get Job List"

#: The tag and requestId the collection hard-codes.
COLLECTION_TAG = "7ed871f7-0d5b-4bb0-86a0-a00151352701"
COLLECTION_REQUEST_ID = "EE8031071F3F73285BA1ABDCAD3BD2DB"
#: The channel the collection's body names; the service ignores it in favour of X-Channel-ID.
COLLECTION_BODY_CHANNEL = "01309282781705830427"

NO_JOB_MESSAGE = "no job available with the given request_id and tag"
TS_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+00:00$")

#: The seed document's sample submit request body, without its explanatory comments.
SEED_SAMPLE_REQUEST: dict[str, Any] = {
    "id": "ekstep.analytics.job.request.submit",
    "ver": "1.0",
    "ts": "2022-02-15T10:07:00+05:30",
    "params": {"msgid": "06fb2660-88ba-11ec-bea0-578c52d1ac65"},
    "request": {
        "dataset": "uci-response-exhaust",
        "tag": "7ed871f7-0d5b-4bb0-86a0-a00151352706",
        "requestedBy": "user_id",
        "requestedChannel": "01309282781705830427",
        "datasetConfig": {
            "type": "uci-response-exhaust",
            "conversationId": "c63b6faa-11a9-4259-b941-11cd2f8446c6",
            "startDate": "2022-03-01",
            "endDate": "2022-04-01",
        },
        "output_format": "csv",
    },
}

#: The seed document's sample submit response, without its explanatory comments.
SEED_SAMPLE_RESPONSE: dict[str, Any] = {
    "id": "ekstep.analytics.dataset.request.submit",
    "ver": "1.0",
    "ts": "2022-04-06T09:32:00.079+00:00",
    "params": {
        "resmsgid": "d15de3c9-875d-4fbd-912c-4daa1cee0f1b",
        "status": "successful",
        "client_key": None,
    },
    "responseCode": "OK",
    "result": {
        "attempts": 0,
        "lastUpdated": 1649237520065,
        "tag": "7ed871f7-0d5b-4bb0-86a0-a00151352706:01269878797503692810",
        "expiresAt": 1649239320077,
        "datasetConfig": {
            "type": "uci-response-exhaust",
            "conversationId": "c63b6faa-11a9-4259-b941-11cd2f8446c6",
            "startDate": "2022-03-01",
            "endDate": "2022-04-01",
        },
        "downloadUrls": [],
        "requestedBy": "user_id",
        "jobStats": {"dtJobSubmitted": 1649237520065, "dtJobCompleted": None, "executionTime": None},
        "status": "SUBMITTED",
        "dataset": "uci-response-exhaust",
        "requestId": "1E2A13DA30671FDBA10C418C9EF14A70",
        "requestedChannel": "01269878797503692810",
    },
}


# --- the Postman collection ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def newman_report(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the official collection once with newman against the session's emulator; return the JSON report.

    The environment's host, token and orgId are overridden with the emulator's base URL and its
    default API key and channel. newman exits non-zero, because some of the collection's own tests
    cannot pass against any deployment (see the tests below), so the report is what is checked.
    """
    if shutil.which("node") is None:
        unavailable("Node.js is not installed; newman needs it")
    newman = node_tool("newman")
    workdir = tmp_path_factory.mktemp("newman")
    report = workdir / "report.json"
    try:
        result = subprocess.run(
            [
                str(newman),
                "run",
                str(COLLECTION),
                "--environment",
                str(ENVIRONMENT),
                "--env-var",
                f"host={emulator.api}",
                "--env-var",
                "token=dev-key",
                "--env-var",
                "orgId=dev-channel",
                "--reporters",
                "json",
                "--reporter-json-export",
                str(report),
                "--color",
                "off",
                "--disable-unicode",
            ],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=120,
        )
    except OSError as exc:  # node itself missing or broken
        unavailable(f"newman could not run: {exc}")
    assert report.exists(), (
        f"newman wrote no report (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
    )
    data = json.loads(report.read_text())
    assert data["run"]["error"] is None, data["run"]["error"]
    return data


def execution(report: dict[str, Any], name: str) -> dict[str, Any]:
    found = [e for e in report["run"]["executions"] if e["item"]["name"] == name]
    assert len(found) == 1, f"expected one execution of {name!r}, got {len(found)}"
    return found[0]


def failures(report: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [f for f in report["run"]["failures"] if f["source"]["name"] == name]


def response_json(item: dict[str, Any]) -> Any:
    body = bytes(item["response"]["stream"]["data"]).decode("utf-8")
    return json.loads(body)


def collection_script(name: str) -> list[str]:
    collection = json.loads(COLLECTION.read_text())
    items = [i for folder in collection["item"] for i in folder["item"] if i["name"] == name]
    assert len(items) == 1
    return items[0]["event"][0]["script"]["exec"]


@pytest.mark.node
def test_newman_runs_every_request_against_the_emulator(
    newman_report: dict[str, Any], emulator: Emulator
) -> None:
    """All three requests are sent (none errors at the transport level) and all go to the emulator."""
    assert [e["item"]["name"] for e in newman_report["run"]["executions"]] == [
        READ_ITEM,
        SUBMIT_ITEM,
        LIST_ITEM,
    ]
    stats = newman_report["run"]["stats"]
    assert stats["requests"] == {"total": 3, "pending": 0, "failed": 0}
    for item in newman_report["run"]["executions"]:
        url = item["request"]["url"]
        assert ".".join(url["host"]) == "127.0.0.1" and url["port"] == str(emulator.port)
        assert url["path"][0] == "api"
        headers = {h["key"].lower(): h["value"] for h in item["request"]["header"] if not h.get("disabled")}
        assert headers["authorization"] == "Bearer dev-key"
        assert headers["x-channel-id"] == "dev-channel"
        # the collection's user-token headers are disabled, so the API-key-only path is used
        assert "x-authenticated-user-token" not in headers


@pytest.mark.node
def test_collection_submit_is_accepted(newman_report: dict[str, Any]) -> None:
    """ "Data Exhaust - Request API" gets HTTP 200 and a submit envelope, and all its own assertions pass.

    The body's ``requestedChannel`` (01309282781705830427) is ignored: the job is filed under the
    X-Channel-ID header, as the real service does.
    """
    item = execution(newman_report, SUBMIT_ITEM)
    assert item["response"]["code"] == 200
    body = response_json(item)
    assert body["id"] == "ekstep.analytics.dataset.request.submit"
    assert body["responseCode"] == "OK"
    assert body["params"]["status"] == "successful"
    result = body["result"]
    assert result["tag"] == f"{COLLECTION_TAG}:dev-channel"
    assert result["requestedChannel"] == "dev-channel" != COLLECTION_BODY_CHANNEL
    assert result["dataset"] == "uci-response-exhaust"
    assert re.fullmatch(r"[0-9A-F]{32}", result["requestId"])
    assert [a["assertion"] for a in item["assertions"]] == [
        "Content-Type is present",
        "Response code is OK",
        "Status code is 200",
    ]
    assert all("error" not in a and not a["skipped"] for a in item["assertions"])
    assert "testScript" not in item or all("error" not in s for s in item["testScript"])
    assert failures(newman_report, SUBMIT_ITEM) == []


@pytest.mark.node
def test_collection_read_gets_the_no_job_envelope(newman_report: dict[str, Any]) -> None:
    """ "Get Job Info" gets HTTP 200 with the "no job" envelope; only its "Healthy" check fails.

    The collection hard-codes requestId EE8031071F3F73285BA1ABDCAD3BD2DB, which matches no job
    (request ids embed the submission date and channel), so the service answers HTTP 200 with
    ``params.status: "failed"`` and ``result: null``. The collection's script then evaluates
    ``tests["Analytics Platform - Healthy"] = jsonData.result.healthy === true``: a leftover from a
    health-check collection that no Data Exhaust response could satisfy (the real service never returns
    ``healthy`` either). With ``result`` null the line throws a TypeError, which is the read request's
    one and only failure; the script stops there, so its later "Status code is 200" line never
    records, and the status is checked from the report instead.
    """
    item = execution(newman_report, READ_ITEM)
    url = item["request"]["url"]
    assert url["path"][-2:] == ["read", COLLECTION_TAG]
    assert url["query"] == [{"key": "requestId", "value": COLLECTION_REQUEST_ID}]
    assert item["response"]["code"] == 200
    headers = {h["key"].lower(): h["value"] for h in item["response"]["header"]}
    assert headers["content-type"] == "application/json"
    body = response_json(item)
    assert list(body) == ["id", "ver", "ts", "params", "responseCode", "result"]
    assert body["id"] == "ekstep.analytics.dataset.request.info"
    assert body["responseCode"] == "OK"
    assert body["params"]["status"] == "failed"
    assert body["params"]["err"] == "OK"
    assert body["params"]["errmsg"] == NO_JOB_MESSAGE
    assert body["result"] is None

    # what passed: the only assertion recorded before the throw
    assert [a["assertion"] for a in item["assertions"]] == ["Content-Type is present"]
    assert all("error" not in a for a in item["assertions"])
    # what failed: exactly one thing, the "Healthy" line reading `healthy` of the null result
    assert 'tests["Analytics Platform - Healthy"] = jsonData.result.healthy === true;' in collection_script(
        READ_ITEM
    )
    failed = failures(newman_report, READ_ITEM)
    assert len(failed) == 1
    assert failed[0]["at"] == "test-script"
    assert failed[0]["error"]["name"] == "TypeError"
    assert failed[0]["error"]["message"] == "Cannot read properties of null (reading 'healthy')"


@pytest.mark.node
def test_collection_list_url_is_not_routable(newman_report: dict[str, Any]) -> None:
    """ "Get Job List" keeps the unresolved ``{{tag(bot/conversation Id)}}`` variable and gets a 404.

    Neither the collection nor its environment defines a variable of that name (it is a placeholder
    for a person to fill in), so newman sends it as text. The ``/`` inside the name splits it into
    two path segments, so the URL matches no ``/dataset/v1/request/list/<tag>`` route: the answer
    is a plain 404, not a Data Exhaust envelope. The collection's script then throws reading
    ``healthy`` of the missing ``result``.
    """
    environment = json.loads(ENVIRONMENT.read_text())
    assert "tag(bot/conversation Id)" not in {v["key"] for v in environment["values"]}
    item = execution(newman_report, LIST_ITEM)
    url = item["request"]["url"]
    path = unquote("/".join(url["path"]))
    assert path == "api/dataset/v1/request/list/{{tag(bot/conversation Id)}}"
    assert url["path"][4:] == [
        "list",
        "%7B%7Btag(bot",
        "conversation%20Id)%7D%7D",
    ]  # two segments after "list"
    assert url["query"] == [{"key": "limit", "value": "5"}]

    assert item["response"]["code"] == 404
    body = response_json(item)
    assert "responseCode" not in body and "result" not in body

    failed = failures(newman_report, LIST_ITEM)
    assert len(failed) == 1
    assert failed[0]["error"]["name"] == "TypeError"
    assert failed[0]["error"]["message"] == "Cannot read properties of undefined (reading 'healthy')"


# --- the seed document's sample -----------------------------------------------------------------------------------


def load_ordered(text: str) -> Any:
    """Parse JSON keeping key order and refusing duplicate keys."""

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        assert len(keys) == len(set(keys)), f"duplicate keys in {keys}"
        return dict(pairs)

    return json.loads(text, object_pairs_hook=hook)


def same_types(actual: Any, sample: Any, where: str = "result") -> None:
    """``actual`` has the JSON value types of ``sample`` (recursively for objects)."""
    assert type(actual) is type(sample), (
        f"{where}: {type(actual).__name__}, the sample {type(sample).__name__}"
    )
    if isinstance(sample, dict):
        assert list(actual) == list(sample), (
            f"{where}: keys {list(actual)} where the sample has {list(sample)}"
        )
        for key, value in sample.items():
            same_types(actual[key], value, f"{where}.{key}")


def ts_ms(ts: str) -> int:
    return int(datetime.fromisoformat(ts).timestamp() * 1000)


def test_seed_sample_submit_answers_like_the_seed_sample_response(emulator: Emulator) -> None:
    """The seed's sample submit body, with a fresh tag and a real date range, gets the seed's sample answer.

    Same top-level, params and result key orders as the sample; same value types; no
    ``statusMessage`` for a job never processed; the tag suffixed with the channel of the
    X-Channel-ID header (the body's ``requestedChannel`` is ignored); an upper-case hex request id;
    ``expiresAt`` 30 minutes after ``ts``; ``datasetConfig`` echoed exactly.
    """
    tag = new_tag()
    today = datetime.now(timezone.utc).date()
    body = copy.deepcopy(SEED_SAMPLE_REQUEST)
    body["params"]["msgid"] = str(uuid.uuid4())
    body["request"]["tag"] = tag
    body["request"]["datasetConfig"]["startDate"] = (today - timedelta(days=7)).isoformat()
    body["request"]["datasetConfig"]["endDate"] = (today - timedelta(days=1)).isoformat()
    config = copy.deepcopy(body["request"]["datasetConfig"])

    api = ExhaustApi(emulator.api)
    response = api.submit(body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    answer = load_ordered(response.text)

    assert list(answer) == ["id", "ver", "ts", "params", "responseCode", "result"]
    assert answer["id"] == SEED_SAMPLE_RESPONSE["id"]
    assert answer["ver"] == "1.0"
    assert answer["responseCode"] == "OK"
    assert TS_PATTERN.match(answer["ts"]), answer["ts"]

    params = answer["params"]
    assert list(params) == ["resmsgid", "status", "client_key"]
    assert params["status"] == "successful"
    assert params["client_key"] is None
    assert str(uuid.UUID(params["resmsgid"])) == params["resmsgid"]

    result = answer["result"]
    assert list(result) == list(SEED_SAMPLE_RESPONSE["result"])
    assert "statusMessage" not in result
    same_types(answer, SEED_SAMPLE_RESPONSE, "answer")

    assert result["tag"] == f"{tag}:dev-channel"
    assert result["requestedChannel"] == "dev-channel"
    assert body["request"]["requestedChannel"] not in response.text
    assert result["datasetConfig"] == config
    assert list(result["datasetConfig"]) == list(config)
    assert result["dataset"] == "uci-response-exhaust"
    assert result["requestedBy"] == "user_id"
    assert result["status"] == "SUBMITTED"
    assert result["attempts"] == 0
    assert result["downloadUrls"] == []
    assert result["jobStats"] == {
        "dtJobSubmitted": result["lastUpdated"],
        "dtJobCompleted": None,
        "executionTime": None,
    }

    assert re.fullmatch(r"[0-9A-F]{32}", result["requestId"])
    submitted = datetime.fromtimestamp(result["jobStats"]["dtJobSubmitted"] / 1000, timezone.utc)
    key = (
        f"uci-response-exhaust|{tag}|user_id|dev-channel|{submitted.date().isoformat()}|uci-response-exhaust"
    )
    assert result["requestId"] == hashlib.md5(key.encode()).hexdigest().upper()

    sent = ts_ms(answer["ts"])
    assert 0 <= sent - result["lastUpdated"] < 5_000
    assert abs((result["expiresAt"] - sent) - 30 * 60 * 1000) < 5_000, result["expiresAt"] - sent

    # the requestId and the tag without its channel find the job again, as the seed describes
    again = api.read(tag, result["requestId"])
    assert again.status_code == 200
    assert again.json()["result"]["requestId"] == result["requestId"]
