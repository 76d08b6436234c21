"""refs: the one ``{dataset: ...}`` shape between steps, read from XCom (or JSON text), refused with the field named."""

from __future__ import annotations

import json
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_uci.models import ExhaustJob, ExhaustValidationError, Outcome
from airflow_provider_uci.refs import (
    ANSWER_KEYS,
    answered,
    copies_by_dataset,
    decoded,
    jobs_by_dataset,
    submitted,
)
from tests.test_models import SAMPLE_RESULT

RESPONSE, PRIVATE = "uci-response-exhaust", "uci-private-exhaust"
JOBS = {
    RESPONSE: {"request_id": "R1", "tag": "t1", "outcome": "empty"},
    PRIVATE: {"request_id": "R2", "tag": "t2", "outcome": "files", "file_count": 1},
}
COPIES = {
    RESPONSE: {"csv": "/data/bot/2026-03-01_2026-03-02/uci-response-exhaust.csv", "files": ["a"]},
    PRIVATE: {"empty": True, "files": [], "csv": None},
}


def refused(read: Any, value: Any, *args: str) -> ExhaustValidationError:
    """The error ``read(value, *args)`` raises (a validation error, failing the task without retries)."""
    with pytest.raises(ExhaustValidationError) as caught:
        read(value, *args)
    assert isinstance(caught.value, AirflowFailException) and isinstance(caught.value, ValueError)
    assert str(caught.value).startswith(f"{caught.value.field}: {caught.value.rule}")
    return caught.value


# -- jobs_by_dataset ------------------------------------------------------------------------------


def test_jobs_read_the_same_from_a_mapping_and_from_json_text() -> None:
    expected = {name: {**job, "dataset": name} for name, job in JOBS.items()}
    assert jobs_by_dataset(JOBS) == expected
    assert jobs_by_dataset(json.dumps(JOBS)) == expected
    assert jobs_by_dataset("  \n" + json.dumps(JOBS, indent=2)) == expected, (
        "JSON text with leading whitespace"
    )
    assert list(jobs_by_dataset(JOBS)) == [RESPONSE, PRIVATE], "the order given is kept"
    assert JOBS[RESPONSE] == {"request_id": "R1", "tag": "t1", "outcome": "empty"}, "the input is not changed"


def test_short_dataset_names_are_normalised_and_each_job_names_its_dataset() -> None:
    jobs = jobs_by_dataset(
        {
            "response": {"request_id": "R1", "tag": "t1", "dataset": "response"},
            "private": {"request_id": "R2", "tag": "t2"},
        }
    )
    assert list(jobs) == [RESPONSE, PRIVATE]
    assert [job["dataset"] for job in jobs.values()] == [RESPONSE, PRIVATE], "the key's full name wins"


@pytest.mark.parametrize(
    "value",
    [None, [], ["R1"], "", "R1", "{not json", "[1, 2]", 7, {}, "{}"],
    ids=[
        "none",
        "empty-list",
        "list",
        "empty-text",
        "text",
        "broken-json",
        "json-list",
        "number",
        "empty-mapping",
        "empty-json",
    ],
)
def test_what_is_not_a_mapping_of_jobs_is_refused_naming_the_field(value: Any) -> None:
    error = refused(jobs_by_dataset, value)
    assert error.field == "jobs" and "must map each dataset to its job" in error.rule
    error = refused(jobs_by_dataset, value, "wait_output")
    assert error.field == "wait_output", "the caller's field is named"


def test_an_unknown_dataset_is_refused_naming_the_field() -> None:
    error = refused(jobs_by_dataset, {"uci-progress-exhaust": {"request_id": "R", "tag": "t"}})
    assert error.field == "jobs" and "must be one of uci-response-exhaust, uci-private-exhaust" in str(error)
    assert "uci-progress-exhaust" in str(error)


@pytest.mark.parametrize(
    "job",
    [
        {"request_id": "R1"},
        {"tag": "t1"},
        {"tag": "", "request_id": "R1"},
        {"tag": "t1", "request_id": None},
        {},
    ],
    ids=["no-tag", "no-request-id", "empty-tag", "null-request-id", "empty"],
)
def test_a_job_without_tag_or_request_id_is_refused_naming_its_dataset(job: dict[str, Any]) -> None:
    error = refused(jobs_by_dataset, {"private": JOBS[PRIVATE], "response": job})
    assert error.field == f"jobs[{RESPONSE}]", "the short name is reported by its full name"
    assert error.rule == "needs the job's tag and request_id"


def test_a_job_that_is_not_a_mapping_is_refused_naming_its_dataset() -> None:
    error = refused(jobs_by_dataset, {RESPONSE: "R1"}, "jobs")
    assert error.field == f"jobs[{RESPONSE}]" and "must be a job" in error.rule and "str" in str(error)


# -- copies_by_dataset ----------------------------------------------------------------------------


def test_copies_read_the_same_from_a_mapping_and_from_json_text() -> None:
    expected = {name: {**copied, "dataset": name} for name, copied in COPIES.items()}
    assert copies_by_dataset(COPIES) == copies_by_dataset(json.dumps(COPIES)) == expected


def test_a_local_csv_is_a_copy_and_short_names_are_normalised() -> None:
    copies = copies_by_dataset({"response": {"csv": "r.csv"}, "private": {"csv": "p.csv"}})
    assert copies == {
        RESPONSE: {"csv": "r.csv", "dataset": RESPONSE},
        PRIVATE: {"csv": "p.csv", "dataset": PRIVATE},
    }


@pytest.mark.parametrize(
    "value", [None, [], "", "{broken", {}], ids=["none", "list", "text", "broken-json", "empty"]
)
def test_what_is_not_a_mapping_of_copies_is_refused_naming_the_field(value: Any) -> None:
    error = refused(copies_by_dataset, value)
    assert error.field == "copies" and "must map each dataset to its copied files" in error.rule


@pytest.mark.parametrize(
    "copied",
    [{"files": []}, {"csv": None, "empty": False}, {"csv": ""}],
    ids=["no-csv", "not-empty", "empty-csv"],
)
def test_a_copy_naming_no_csv_that_is_not_empty_is_refused_naming_its_dataset(copied: dict[str, Any]) -> None:
    error = refused(copies_by_dataset, {"private": {"empty": True}, "response": copied})
    assert error.field == f"copies[{RESPONSE}]" and error.rule == "names no copied CSV and is not empty"
    error = refused(copies_by_dataset, {"response": "r.csv"})
    assert error.field == f"copies[{RESPONSE}]" and "must be a copied files" in error.rule


# -- decoded, submitted, answered -----------------------------------------------------------------


def test_decoded_opens_json_text_of_a_mapping_only() -> None:
    assert decoded('{"a": 1}') == {"a": 1}
    assert decoded("[1, 2]") == "[1, 2]" and decoded("{broken") == "{broken" and decoded("text") == "text"
    assert decoded({"a": 1}) == {"a": 1} and decoded(None) is None


def test_what_travels_of_a_job_is_identifiers_and_state_never_urls() -> None:
    job = ExhaustJob.from_api(SAMPLE_RESULT)
    sent = submitted(job)
    assert sent == job.identifiers()
    answer = answered(job, Outcome.FILES)
    assert list(answer) == list(dict.fromkeys(ANSWER_KEYS)), "the keys of an answered job, in order"
    assert answer == {**sent, "status": "SUCCESS", "attempts": 0, "file_count": 1, "outcome": "files"}
    text = json.dumps(answer)
    assert "://" not in text and "sig=" not in text
    assert jobs_by_dataset({answer["dataset"]: answer}) == {answer["dataset"]: dict(answer)}, (
        "the next step reads it"
    )


def test_answer_keys_name_each_key_once() -> None:
    assert len(ANSWER_KEYS) == len(set(ANSWER_KEYS)) == 10
