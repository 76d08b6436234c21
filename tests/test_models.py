"""Models: request validation names the field and the rule; job objects read every field."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from airflow_provider_uci.models import (
    Dataset,
    ExhaustError,
    ExhaustJob,
    ExhaustRequest,
    ExhaustValidationError,
    JobStatus,
    Outcome,
)

GOOD = {
    "conversation_id": "c63b6faa-11a9-4259-b941-11cd2f8446c6",
    "dataset": "uci-response-exhaust",
    "start_date": "2022-03-01",
    "end_date": "2022-04-01",
    "tag": "7ed871f7-0d5b-4bb0-86a0-a00151352706",
    "channel": "01269878797503692810",
    "requested_by": "user_id",
}

#: The seed document's sample read answer (its download URL shortened).
SAMPLE_RESULT = {
    "attempts": 0,
    "lastUpdated": 1649165260152,
    "tag": "7ed871f7-0d5b-4bb0-86a0-a00151352703:01269878797503692810",
    "expiresAt": 1649239580993,
    "datasetConfig": {
        "type": "uci-response-exhaust",
        "conversationId": "c63b6faa-11a9-4259-b941-11cd2f8446c6",
        "startDate": "2022-03-01",
        "endDate": "2022-04-01",
    },
    "downloadUrls": [
        "https://sunbirddevprivate.blob.core.windows.net/reports/uci-response-exhaust/1E2A/x.csv?"
        "sv=2017-04-17&se=2022-04-06T10%3A06%3A21Z&sr=b&sp=r&sig=L5etefAbBA%3D"
    ],
    "requestedBy": "user_id",
    "jobStats": {"dtJobSubmitted": 1649165118347, "dtJobCompleted": 1649165260152, "executionTime": 6210},
    "status": "SUCCESS",
    "dataset": "uci-response-exhaust",
    "requestId": "1E2A13DA30671FDBA10C418C9EF14A70",
    "requestedChannel": "01269878797503692810",
    "statusMessage": "",
}


def test_a_good_request_is_normalised() -> None:
    request = ExhaustRequest(
        **{**GOOD, "dataset": "response", "tag": GOOD["tag"] + ":" + GOOD["channel"]}
    ).validate()
    assert request.dataset is Dataset.RESPONSE
    assert request.tag == GOOD["tag"], "the tag:channel form is accepted and sent bare"
    body = request.body()["request"]
    assert body["datasetConfig"] == {
        "type": "uci-response-exhaust",
        "conversationId": GOOD["conversation_id"],
        "startDate": "2022-03-01",
        "endDate": "2022-04-01",
    }
    assert "encryptionKey" not in body


@pytest.mark.parametrize(
    ("change", "field", "rule"),
    [
        ({"conversation_id": "bot-1"}, "conversation_id", "must be a UUID"),
        ({"dataset": "uci-progress-exhaust"}, "dataset", "must be one of"),
        ({"start_date": "01/03/2022"}, "start_date", "YYYY-MM-DD"),
        ({"end_date": "2022-3-1"}, "end_date", "YYYY-MM-DD"),
        ({"start_date": "2022-04-02"}, "start_date", "must not be after end_date"),
        ({"tag": ""}, "tag", "must not be empty"),
        ({"tag": "a/b"}, "tag", "must not contain"),
        ({"tag": "t" * 80}, "tag", "at most 100 characters"),
        ({"requested_by": "r" * 51}, "requested_by", "at most 50 characters"),
        ({"channel": "c" * 51}, "channel", "at most 50 characters"),
        ({"channel": ""}, "channel", "must not be empty"),
        ({"zip_password": "k" * 51}, "zip_password", "at most 50 characters"),
        ({"zip_password": ""}, "zip_password", "must not be empty"),
    ],
)
def test_each_rule_names_its_field(change: dict, field: str, rule: str) -> None:
    with pytest.raises(ExhaustValidationError) as raised:
        ExhaustRequest(**{**GOOD, **change}).validate()
    assert raised.value.field == field
    assert str(raised.value).startswith(f"{field}: ")
    assert rule in str(raised.value)
    assert isinstance(raised.value, ExhaustError)


def test_the_zip_password_never_appears_in_errors_or_repr() -> None:
    secret = "zip-password-" + "x" * 40
    with pytest.raises(ExhaustValidationError) as raised:
        ExhaustRequest(**{**GOOD, "zip_password": secret}).validate()
    assert secret not in str(raised.value)
    assert "hunter2" not in repr(ExhaustRequest(**{**GOOD, "zip_password": "hunter2"}))


def test_job_reads_every_field_of_the_sample() -> None:
    job = ExhaustJob.from_api(SAMPLE_RESULT)
    assert job.status is JobStatus.SUCCESS and job.outcome() is Outcome.FILES
    assert job.request_id == "1E2A13DA30671FDBA10C418C9EF14A70"
    assert job.bare_tag == "7ed871f7-0d5b-4bb0-86a0-a00151352703"
    assert job.submitted_at == datetime(2022, 4, 5, 13, 25, 18, 347000, tzinfo=timezone.utc)
    assert job.completed_at == datetime.fromtimestamp(1649165260.152, tz=timezone.utc)
    assert job.execution_time_ms == 6210 and job.attempts == 0 and job.status_message == ""
    assert job.expires_at is not None and job.expires_at.tzinfo is not None
    assert len(job.download_urls) == 1
    assert "sig=" not in repr(job), "signed URLs stay out of repr"
    assert job.identifiers() == {
        "request_id": job.request_id,
        "tag": job.bare_tag,
        "dataset": "uci-response-exhaust",
        "conversation_id": "c63b6faa-11a9-4259-b941-11cd2f8446c6",
        "start_date": "2022-03-01",
        "end_date": "2022-04-01",
    }


def test_unknown_statuses_are_tolerated_and_pending() -> None:
    job = ExhaustJob.from_api({**SAMPLE_RESULT, "status": "QUEUED", "downloadUrls": []})
    assert job.status is JobStatus.UNKNOWN and job.status_text == "QUEUED"
    assert job.outcome() is Outcome.WAITING
    assert JobStatus.parse("processing") is JobStatus.PROCESSING


def test_failed_is_final_only_at_three_attempts() -> None:
    assert (
        ExhaustJob.from_api({**SAMPLE_RESULT, "status": "FAILED", "attempts": 2}).outcome() is Outcome.WAITING
    )
    assert (
        ExhaustJob.from_api({**SAMPLE_RESULT, "status": "FAILED", "attempts": 3}).outcome() is Outcome.FAILED
    )


def test_jobs_handed_on_as_json_text_read_the_same() -> None:
    """A wait ended in the triggerer reaches the next task as JSON text; it reads as the mapping it holds."""
    import json

    from airflow_provider_uci.refs import jobs_by_dataset

    jobs = {
        "uci-response-exhaust": {"request_id": "R1", "tag": "t1", "outcome": "empty"},
        "uci-private-exhaust": {"request_id": "R2", "tag": "t2", "outcome": "files"},
    }
    expected = {name: {**job, "dataset": name} for name, job in jobs.items()}
    assert jobs_by_dataset(json.dumps(jobs)) == jobs_by_dataset(jobs) == expected
    with pytest.raises(ExhaustValidationError) as refused:
        jobs_by_dataset(json.dumps(list(jobs.values())), "wait_output")
    assert refused.value.field == "wait_output" and str(refused.value).startswith(
        "wait_output: must map each dataset"
    )
