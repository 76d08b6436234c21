"""SubmitExhaustOperator and ExhaustJobSensor outside a DAG run: retries, poke path, outcomes of events."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest
import requests
from airflow.sdk.exceptions import (
    AirflowFailException,
    AirflowRescheduleException,
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferred,
)

from airflow_provider_uci.models import ExhaustError, ExhaustJobFailed
from airflow_provider_uci.operators.exhaust import SubmitExhaustOperator, derive_tag
from airflow_provider_uci.sensors.exhaust import ExhaustJobSensor
from airflow_provider_uci.triggers.exhaust import ExhaustJobTrigger, WaitSettings
from tests.support.api import ExhaustApi
from tests.support.connections import set_uci_connection
from tests.support.services import Emulator

BOT = "c63b6faa-11a9-4259-b941-11cd2f8446c6"
RESPONSE, PRIVATE = "uci-response-exhaust", "uci-private-exhaust"
IDENTIFIERS = {"request_id", "tag", "dataset", "conversation_id", "start_date", "end_date"}


def context(try_number: int = 1) -> dict:
    # a sensor in reschedule mode asks its task instance when it first waited (never, here)
    ti = SimpleNamespace(try_number=try_number, get_first_reschedule_date=lambda context: None)
    return {"ti": ti}


def operator(task_id: str, dataset: str = "response") -> SubmitExhaustOperator:
    return SubmitExhaustOperator(
        task_id=task_id, conversation_id=BOT, datasets=[dataset], from_date="2022-03-01", to_date="2022-03-02"
    )


def only(jobs: dict) -> dict:
    """The one job of a ``{dataset: job}`` mapping."""
    (job,) = jobs.values()
    return job


def fail(emulator: Emulator, job: dict, message: str = "Report generation failed") -> None:
    requests.post(
        f"{emulator.root}/admin/jobs/{job['request_id']}/fail",
        params={"tag": job["tag"] + ":dev-channel"},
        json={"message": message},
        timeout=10,
    ).raise_for_status()


def succeed(emulator: Emulator, job: dict) -> None:
    requests.post(
        f"{emulator.root}/admin/jobs/{job['request_id']}/file",
        params={"tag": job["tag"] + ":dev-channel"},
        data=b"a\n1\n",
        timeout=10,
    ).raise_for_status()


@pytest.fixture(autouse=True)
def connection(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    set_uci_connection(monkeypatch, emulator.api)


def test_derived_tag_is_stable_and_distinct() -> None:
    one = derive_tag("dag", "task", BOT, "uci-response-exhaust", "2022-03-01", "2022-03-02")
    assert one == derive_tag("dag", "task", BOT, "uci-response-exhaust", "2022-03-01", "2022-03-02")
    assert one != derive_tag("dag", "task", BOT, "uci-response-exhaust", "2022-03-01", "2022-03-03")
    assert len(one) == 36


def test_first_try_submits_and_returns_identifiers_only(
    emulator: Emulator, request: pytest.FixtureRequest
) -> None:
    task = operator(f"submit-{request.node.name}")
    pushed = task.execute(context())
    assert set(pushed) == {RESPONSE}, "keyed by the dataset's full name"
    job_ref = pushed[RESPONSE]
    assert set(job_ref) == IDENTIFIERS and job_ref["dataset"] == RESPONSE
    job = ExhaustApi(emulator.api).read(job_ref["tag"], job_ref["request_id"]).json()["result"]
    assert job["status"] == "SUBMITTED" and job["requestedBy"] == "tests"
    assert task.execute(context())[RESPONSE]["request_id"] == job_ref["request_id"], (
        "a rerun the same day: the same job"
    )


def test_retry_reuses_a_known_job_and_resubmits_a_failed_one(
    emulator: Emulator, request: pytest.FixtureRequest
) -> None:
    task = operator(f"retry-{request.node.name}", dataset="private")
    pushed = task.execute(context())
    assert set(pushed) == {PRIVATE}
    first = pushed[PRIVATE]
    api = ExhaustApi(emulator.api)
    before = api.read(first["tag"], first["request_id"]).json()["result"]
    assert task.execute(context(try_number=2)) == pushed
    assert api.read(first["tag"], first["request_id"]).json()["result"]["jobStats"] == before["jobStats"]
    fail(emulator, first)
    assert task.execute(context(try_number=3))[PRIVATE]["request_id"] == first["request_id"]
    after = api.read(first["tag"], first["request_id"]).json()["result"]
    assert after["status"] == "SUBMITTED" and after["attempts"] == 1, "resubmitted: back in the queue"


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferrable", "reschedule"])
def test_sensor_succeeds_at_once_when_the_job_is_done(
    emulator: Emulator, request: pytest.FixtureRequest, deferrable: bool
) -> None:
    pushed = operator(f"done-{request.node.originalname}-{deferrable}").execute(context())
    job = pushed[RESPONSE]
    succeed(emulator, job)
    sensor = ExhaustJobSensor(task_id="wait", jobs=pushed, deferrable=deferrable)
    assert sensor.mode == ("poke" if deferrable else "reschedule")
    result = sensor.execute(context())
    assert set(result) == {RESPONSE}
    answered = result[RESPONSE]
    assert answered["status"] == "SUCCESS" and answered["file_count"] == 1 and answered["outcome"] == "files"
    assert answered["request_id"] == job["request_id"] and {**answered, **job} == answered, (
        "the identifiers go on"
    )
    assert not any("http" in str(value) for value in answered.values())
    # a wait the triggerer ended, resumed on a worker (``dag.test()`` does so), reads the jobs again
    assert sensor.execute_complete({}, "success") == result


def test_sensor_in_reschedule_mode_frees_the_worker_until_the_job_answers(
    emulator: Emulator, request: pytest.FixtureRequest
) -> None:
    pushed = operator(f"poke-{request.node.name}").execute(context())
    sensor = ExhaustJobSensor(task_id="wait", jobs=pushed, deferrable=False, poll_interval=900)
    assert sensor.mode == "reschedule" and sensor.poke_interval == 900
    assert sensor.poke(context()).is_done is False
    with pytest.raises(AirflowRescheduleException):
        sensor.execute(context())
    succeed(emulator, pushed[RESPONSE])
    poked = sensor.poke(context())
    assert poked.is_done is True and poked.xcom_value[RESPONSE]["outcome"] == "files"


def test_sensor_defers_with_primitive_kwargs(emulator: Emulator, request: pytest.FixtureRequest) -> None:
    pushed = operator(f"defer-{request.node.name}", dataset="private").execute(context())
    sensor = ExhaustJobSensor(task_id="wait", jobs=pushed, timeout=3600, deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context())
    trigger = deferred.value.trigger
    assert isinstance(trigger, ExhaustJobTrigger)
    _classpath, kwargs = trigger.serialize()
    assert [job["run_at"] for job in kwargs["jobs"]] == ["03:00"] and kwargs["timezone"] == "Asia/Kolkata"
    assert [job["dataset"] for job in kwargs["jobs"]] == [PRIVATE]
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert all(
        isinstance(value, (str, int, float, bool, type(None)))
        for key, value in kwargs.items()
        if key != "jobs"
    )
    assert all(isinstance(value, (str, type(None))) for job in kwargs["jobs"] for value in job.values())
    assert kwargs["end_from_trigger"] is True, "by default the triggerer ends the task"
    assert deferred.value.method_name == "execute_complete"


def test_sensor_fails_fast_only_when_asked(emulator: Emulator, request: pytest.FixtureRequest) -> None:
    pushed = operator(f"fast-{request.node.name}").execute(context())
    fail(emulator, only(pushed))
    patient = ExhaustJobSensor(task_id="wait", jobs=pushed, deferrable=True)
    with pytest.raises(TaskDeferred):
        patient.execute(context())
    hasty = ExhaustJobSensor(
        task_id="wait", jobs=pushed, deferrable=True, settings=WaitSettings(fail_on_first_failure=True)
    )
    with pytest.raises(ExhaustJobFailed, match="Report generation failed") as failed:
        hasty.execute(context())
    assert isinstance(failed.value, AirflowFailException), "a job failed for good is not retried by Airflow"
    assert BOT in str(failed.value)


def test_both_jobs_in_one_sensor_and_no_data_found_is_an_empty_answer(
    emulator: Emulator, request: pytest.FixtureRequest
) -> None:
    submit = SubmitExhaustOperator(
        task_id=f"both-{request.node.name}",
        conversation_id=BOT,
        datasets=["response", "private"],
        from_date="2022-03-01",
        to_date="2022-03-02",
    )
    jobs = submit.execute(context())
    assert set(jobs) == {RESPONSE, PRIVATE}
    response, private = jobs[RESPONSE], jobs[PRIVATE]
    assert response["tag"] != private["tag"], "one tag per dataset, as when each had its own task"
    sensor = ExhaustJobSensor(task_id="wait", jobs=jobs, conversation_id=BOT, deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context())
    kwargs = deferred.value.trigger.serialize()[1]
    assert [(job["request_id"], job["run_at"]) for job in kwargs["jobs"]] == [
        (response["request_id"], "02:00"),
        (private["request_id"], "03:00"),
    ], "one trigger for both, each its night"
    assert kwargs["conversation_id"] == BOT
    succeed(emulator, private)
    fail(emulator, response, "No data found")
    result = sensor.execute(context())
    assert result[RESPONSE]["outcome"] == "empty" and result[RESPONSE]["file_count"] == 0
    assert result[PRIVATE]["outcome"] == "files" and result[PRIVATE]["file_count"] == 1


def test_a_bot_the_channel_does_not_own_fails_at_once_naming_bot_and_channel(
    emulator: Emulator, request: pytest.FixtureRequest
) -> None:
    pushed = operator(f"stranger-{request.node.name}").execute(context())
    fail(emulator, only(pushed), "No data found for conversation in DB")
    sensor = ExhaustJobSensor(task_id="wait", jobs=pushed, deferrable=True)
    with pytest.raises(AirflowFailException, match=f"bot {BOT}: .*channel dev-channel"):
        sensor.execute(context())
    poking = ExhaustJobSensor(task_id="wait", jobs=pushed, deferrable=False)
    with pytest.raises(AirflowFailException, match=f"bot {BOT}: .*channel dev-channel"):
        poking.execute(context())
    event = {
        "status": "failed",
        "message": "No data found for conversation in DB",
        "job": {
            "request_id": "R",
            "dataset": "uci-response-exhaust",
            "conversation_id": BOT,
            "attempts": 1,
            "status_message": "No data found for conversation in DB",
            "outcome": "no_such_bot",
        },
    }
    with pytest.raises(AirflowFailException, match=f"bot {BOT}: .*channel dev-channel"):
        sensor.execute_complete({}, event)


def test_trigger_events_become_task_outcomes() -> None:
    jobs = {"response": {"tag": "t", "request_id": "R"}}
    sensor = ExhaustJobSensor(task_id="wait", jobs=jobs)
    job = {
        "request_id": "R",
        "tag": "t",
        "dataset": "uci-response-exhaust",
        "status": "SUCCESS",
        "attempts": 0,
        "file_count": 1,
        "outcome": "files",
        "channel": "dev-channel",
        "status_message": "",
    }
    result = sensor.execute_complete({}, {"status": "success", "jobs": [job]})
    assert set(result) == {RESPONSE} and result[RESPONSE]["file_count"] == 1
    assert "channel" not in result[RESPONSE] and "status_message" not in result[RESPONSE], (
        "the answer's keys only"
    )
    with pytest.raises(AirflowSensorTimeout):
        sensor.execute_complete({}, {"status": "timeout", "message": "too late"})
    with pytest.raises(ExhaustError, match="Invalid request"):
        sensor.execute_complete(
            {}, {"status": "failed", "message": "Invalid request", "job": {**job, "attempts": 3}}
        )
    with pytest.raises(ExhaustError, match="unexpected trigger event"):
        sensor.execute_complete({}, ["not", "an", "event"])
    skipping = ExhaustJobSensor(task_id="wait", jobs=jobs, soft_fail=True)
    for event in ({"status": "timeout", "message": "too late"}, {"status": "error", "message": "gone"}):
        with pytest.raises(AirflowSkipException):
            skipping.resume_execution("execute_complete", {"event": event}, {})


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferrable", "reschedule"])
def test_sensor_needs_a_job_reference(deferrable: bool) -> None:
    with pytest.raises(TypeError, match="jobs"):
        ExhaustJobSensor(task_id="wait")  # type: ignore[call-arg]
    sensor = ExhaustJobSensor(task_id="wait", jobs={"response": {"tag": "t"}}, deferrable=deferrable)
    needs = r"^jobs\[uci-response-exhaust\]: needs the job's tag and request_id"
    with pytest.raises(ValueError, match=needs) as refused:
        sensor.execute(context())
    assert isinstance(refused.value, AirflowFailException), "bad input is not retried"
    nothing = ExhaustJobSensor(task_id="wait", jobs={}, deferrable=deferrable)
    with pytest.raises(ValueError, match=r"^jobs: must map each dataset"):
        nothing.execute(context())


def test_imports_raise_no_deprecation_warnings() -> None:
    modules = [
        "airflow_provider_uci.hooks.exhaust",
        "airflow_provider_uci.operators.exhaust",
        "airflow_provider_uci.sensors.exhaust",
        "airflow_provider_uci.triggers.exhaust",
        "airflow_provider_uci.models",
        "airflow_provider_uci.schedule",
    ]
    code = "import warnings; warnings.simplefilter('error'); " + "; ".join(
        f"import {name}" for name in modules
    )
    result = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_parsing_the_dag_does_not_import_the_loader() -> None:
    """Every task process parses the DAG file: the loader (pyarrow, numpy) is imported by the load task only."""
    code = (
        "import sys, airflow_provider_uci.dags.uci_exhaust; "
        "print(sorted(m for m in ('pyarrow', 'numpy', 'airflow_provider_uci.exhaust.load') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
