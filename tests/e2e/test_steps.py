"""The DAG's four steps per bot, seen and cleared as a data engineer does in the UI, on Airflow's real processes.

One run of three bots (one quiet) ends green with every step of every bot labelled with its
conversation id and each bot's ``wait`` seen deferred; then each step is cleared alone through the
REST API (what the UI's Clear button calls) and resumes from there:

- ``join_and_load`` with the service stopped: it reloads the copies, calling nothing;
- ``wait`` and ``copy`` a day later (the service's clock moved on): the same request ids, no new
  submission, no wait for another nightly run;
- ``submit`` the same day: it submits again and reaches the same jobs.

A bot whose step fails keeps its label on the steps that ran.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
import requests

from tests.e2e.deployment import DAG_ID, DAYS, ZIP_KEY, Deployment
from tests.e2e.system import RunWatch, clear, is_sensor, ti_key, xcom
from tests.support.expected import assert_table_matches, table_rows

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

STEPS = ("bot.submit", "bot.wait", "bot.copy", "bot.join_and_load")
RUN_TIMEOUT = 180.0
STRANGER = "5d1c9e7a-3b2f-4a60-8c41-9e0d7b6a5f22"  # a bot the channel does not own


def trigger(deployment: Deployment, bots: list[str]) -> RunWatch:
    conf = {
        "conversation_ids": bots,
        "start_date": DAYS[0],
        "end_date": DAYS[-1],
        "poll_continuously": True,
        "poll_interval": 2,
    }
    return RunWatch(deployment.airflow, DAG_ID, deployment.airflow.trigger(DAG_ID, conf))


def labels(watch: RunWatch) -> dict[str, str | None]:
    return {ti_key(ti): ti.get("rendered_map_index") for ti in watch.last if ti["task_id"].startswith("bot.")}


def rerun(watch: RunWatch, task_ids: list[str]) -> dict[str, int]:
    """Clear ``task_ids`` and wait for the run to succeed again; return every task instance's try number."""
    before = {ti_key(ti): ti.get("try_number") for ti in watch.poll()}
    clear(watch.system, DAG_ID, watch.run_id, task_ids)
    watch.until(
        lambda state, tis: (
            state == "success"
            and all(ti.get("try_number") > before[ti_key(ti)] for ti in tis if ti["task_id"] in task_ids)
        ),
        RUN_TIMEOUT,
        f"run success after clearing {task_ids}",
    )
    return {ti_key(ti): ti.get("try_number") for ti in watch.last}


def test_each_step_shows_per_bot_and_resumes_alone_when_cleared(deployment: Deployment) -> None:
    bots = [deployment.bot(0)[0], deployment.bot(1)[0], deployment.quiet]
    expected = deployment.bot(0)[1] + deployment.bot(1)[1]
    deployment.emulator.restart(None)
    watch = trigger(deployment, bots)
    watch.until(
        lambda _, tis: any(is_sensor(ti) and ti.get("state") == "deferred" for ti in tis),
        RUN_TIMEOUT,
        "a wait deferred",
    )
    watch.until(lambda state, _: state == "success", RUN_TIMEOUT, "run success")

    # the grid: plan, then per bot its four steps, each labelled with the bot, each run once
    keys = {ti_key(ti) for ti in watch.last}
    assert keys == {"plan", *(f"{step}[{index}]" for step in STEPS for index in range(3))}, sorted(keys)
    assert labels(watch) == {f"{step}[{index}]": bot for step in STEPS for index, bot in enumerate(bots)}
    assert all(ti.get("state") == "success" and ti.get("try_number") == 1 for ti in watch.last), (
        watch.report()
    )
    assert all("deferred" in watch.seen[f"bot.wait[{index}]"] for index in range(2)), watch.seen
    rows = assert_table_matches(
        deployment.warehouse_url, deployment.emulator.data_dir, bots[:2], DAYS, ZIP_KEY, expected
    )
    submitted = {
        index: xcom(deployment.airflow, DAG_ID, watch.run_id, "bot.submit", index) for index in range(3)
    }
    answered = {
        index: xcom(deployment.airflow, DAG_ID, watch.run_id, "bot.wait", index) for index in range(3)
    }
    ids = {
        index: {dataset: job["request_id"] for dataset, job in jobs.items()}
        for index, jobs in submitted.items()
    }
    assert {index: {d: j["request_id"] for d, j in jobs.items()} for index, jobs in answered.items()} == ids
    assert {job["outcome"] for job in answered[2].values()} == {"empty"}, "the quiet bot's jobs found no data"

    # join_and_load, cleared with the service down: it reloads the copies without calling the service
    deployment.emulator.stop()
    try:
        tries = rerun(watch, ["bot.join_and_load"])
    finally:
        deployment.emulator.restart(None)
    assert all(tries[f"bot.join_and_load[{index}]"] == 2 for index in range(3)), tries
    assert all(tries[f"{step}[{index}]"] == 1 for step in STEPS[:3] for index in range(3)), "nothing else ran"
    assert table_rows(deployment.warehouse_url) == rows, "the same rows, loaded again from the copies"

    # wait and copy, cleared a day later: the same request ids, no submission, no night to wait for
    tomorrow = datetime.now(timezone.utc) + timedelta(days=1)
    requests.post(
        f"{deployment.emulator.root}/admin/clock", json={"now": tomorrow.isoformat()}, timeout=10
    ).raise_for_status()
    try:
        seen = {index: len(watch.seen[f"bot.wait[{index}]"]) for index in range(3)}
        tries = rerun(watch, ["bot.wait"])
        after = {index: watch.seen[f"bot.wait[{index}]"][seen[index] :] for index in range(3)}
        assert not any("deferred" in states for states in after.values()), (
            f"answered at the first look: {after}"
        )
        again = {
            index: xcom(deployment.airflow, DAG_ID, watch.run_id, "bot.wait", index) for index in range(3)
        }
        assert {index: {d: j["request_id"] for d, j in jobs.items()} for index, jobs in again.items()} == ids
        tries = rerun(watch, ["bot.copy"])
        assert all(tries[f"bot.submit[{index}]"] == 1 for index in range(3)), "submit never ran again"
    finally:
        requests.post(
            f"{deployment.emulator.root}/admin/clock", json={"reset": True}, timeout=10
        ).raise_for_status()
    assert table_rows(deployment.warehouse_url) == rows

    # submit, cleared the same day: it submits again and reaches the same jobs
    tries = rerun(watch, ["bot.submit"])
    assert all(tries[f"bot.submit[{index}]"] == 2 for index in range(3)), tries
    resubmitted = {
        index: xcom(deployment.airflow, DAG_ID, watch.run_id, "bot.submit", index) for index in range(3)
    }
    assert {
        index: {d: j["request_id"] for d, j in jobs.items()} for index, jobs in resubmitted.items()
    } == ids
    assert labels(watch) == {f"{step}[{index}]": bot for step in STEPS for index, bot in enumerate(bots)}


def test_a_failed_bot_keeps_its_label(deployment: Deployment) -> None:
    deployment.emulator.restart(None)
    failing = trigger(deployment, [STRANGER])
    deadline = time.monotonic() + RUN_TIMEOUT
    while failing.system.run_state(DAG_ID, failing.run_id) != "failed" and time.monotonic() < deadline:
        time.sleep(1)
    failing.poll()
    assert failing.state == "failed", failing.report()
    states = {ti_key(ti): ti.get("state") for ti in failing.last}
    assert states["bot.wait[0]"] == "failed", states
    # the steps that ran keep the bot's label (one never run, upstream_failed, has none: a label is
    # rendered by the task itself when it runs)
    ran = {key: label for key, label in labels(failing).items() if states[key] != "upstream_failed"}
    assert ran == {"bot.submit[0]": STRANGER, "bot.wait[0]": STRANGER}, failing.report()
