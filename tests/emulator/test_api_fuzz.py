"""Property-based run of the emulator's API against its own OpenAPI document, with Schemathesis.

Schemathesis reads ``/openapi.json`` from an emulator process (with an admin token) and, for every
operation the document declares, sends generated input over HTTP, valid and invalid, with the API key,
channel and admin token supplied. Every answer must be no server error (5xx) and must conform to the
document: a declared status, its content type and its schema. A handful of examples per operation and
mode keeps the whole run under a minute.

Each operation is its own test, driven by Hypothesis through ``APIOperation.as_strategy``: Schemathesis's
pytest loader for a schema that comes from a fixture (``from_fixture``) does not run under this pytest.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from airflow_provider_uci.emulator.openapi import OPERATIONS
from tests.support.api import ExhaustApi, new_tag, submit_body
from tests.support.services import Emulator, run_emulator

TOKEN = "fuzz-" + "4c1d" * 8
HEADERS = {"Authorization": "Bearer dev-key", "X-Channel-ID": "dev-channel", "X-Admin-Token": TOKEN}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 10
BLOB = "/blob/{account}/{container}/{key}"


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """An emulator of its own: the run moves its clock, fails its jobs and fills its storage."""
    with run_emulator(tmp_path_factory.mktemp("fuzz"), "--no-schedule", "--admin-token", TOKEN) as running:
        yield running


@pytest.fixture(scope="module")
def api_schema(fuzzed: Emulator) -> schemathesis.BaseSchema:
    loaded = schemathesis.openapi.from_url(f"{fuzzed.root}/openapi.json")
    loaded.config.update(base_url=fuzzed.root, headers=HEADERS, request_timeout=60)
    return loaded


def test_the_document_declares_exactly_the_served_operations(api_schema: schemathesis.BaseSchema) -> None:
    served = {
        (operation.method.lower(), operation.path)
        for operation in (result.ok() for result in api_schema.get_all_operations())
    }
    assert served == set(OPERATIONS)


@dataclass(frozen=True)
class Job:
    """A real job with a placed file, so that generated input can reach past "no such job"."""

    tag: str  # bare
    request_id: str
    key: str  # its file's key in the reports container

    def anchors(self, method: str, path: str) -> dict[str, dict[str, str]]:
        """The parameters that point an operation at this job; the rest is generated."""
        anchored: dict[tuple[str, str], dict[str, dict[str, str]]] = {
            ("get", "/dataset/v1/request/read/{tag}"): {
                "path_parameters": {"tag": self.tag},
                "query": {"requestId": self.request_id},
            },
            ("get", "/dataset/v1/request/list/{tag}"): {"path_parameters": {"tag": self.tag}},
            ("post", "/admin/jobs/{request_id}/file"): {
                "path_parameters": {"request_id": self.request_id},
                "query": {"tag": f"{self.tag}:dev-channel"},
            },
            ("post", "/admin/jobs/{request_id}/fail"): {
                "path_parameters": {"request_id": self.request_id},
                "query": {"tag": f"{self.tag}:dev-channel"},
            },
            ("get", BLOB): {
                "path_parameters": {"account": "uciemulator", "container": "reports", "key": self.key}
            },
            ("head", BLOB): {
                "path_parameters": {"account": "uciemulator", "container": "reports", "key": self.key}
            },
        }
        return anchored.get((method, path), {})


@pytest.fixture(scope="module")
def job(fuzzed: Emulator) -> Job:
    tag = new_tag()
    submitted = ExhaustApi(fuzzed.api).submit(submit_body(tag)).json()["result"]
    placed = requests.post(
        f"{fuzzed.root}/admin/jobs/{submitted['requestId']}/file",
        params={"tag": submitted["tag"], "name": "fuzzed.csv"},
        data=b"a,b\n1,2\n",
        headers={"X-Admin-Token": TOKEN},
        timeout=30,
    )
    placed.raise_for_status()
    (stored,) = placed.json()["downloadUrls"]
    return Job(tag, submitted["requestId"], stored.split("/reports/", 1)[-1].split(".net/", 1)[-1])


def runs() -> list[object]:
    """Every operation with valid input, and with invalid input where it takes any (parameters or a body);
    those that name a job or a blob once more, pointed at a real one."""
    found = []
    for (method, path), declared in sorted(OPERATIONS.items()):
        label = f"{method.upper()} {path}"
        found.append(pytest.param(method, path, GenerationMode.POSITIVE, False, id=f"{label} positive"))
        if declared.get("parameters") or declared.get("requestBody"):
            found.append(pytest.param(method, path, GenerationMode.NEGATIVE, False, id=f"{label} negative"))
        if any(p["in"] == "path" for p in declared.get("parameters", [])):
            found.append(
                pytest.param(method, path, GenerationMode.POSITIVE, True, id=f"{label} on a real job")
            )
    return found


@pytest.mark.parametrize(("method", "path", "mode", "anchored"), runs())
def test_every_input_is_answered_as_documented_and_never_with_a_server_error(
    api_schema: schemathesis.BaseSchema,
    job: Job,
    method: str,
    path: str,
    mode: GenerationMode,
    anchored: bool,
) -> None:
    operation = api_schema.find_operation_by_label(f"{method.upper()} {path}")
    assert operation is not None, f"{method.upper()} {path} is not in the served document"
    fixed = job.anchors(method, path) if anchored else {}

    @given(case=operation.as_strategy(generation_mode=mode, **fixed))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def answers(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=HEADERS, checks=CHECKS)

    answers()
