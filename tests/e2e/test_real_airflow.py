"""The DAG run by Airflow's real processes, triggered through the REST API, with the emulator and Azurite.

Scheduler, dag-processor, triggerer and api-server run as separate processes (LocalExecutor,
PostgreSQL metadata); the emulator runs its jobs on a fast schedule. Each test triggers one run for
one bot, sees a sensor ``deferred`` (so the triggerer, not a worker, is waiting), and checks that the
run succeeds with the warehouse table holding exactly that bot's rows: once on a clean service,
once under the emulator's fault knobs, and once under the fault knobs with the triggerer killed
while the sensors are deferred and started again.
"""

from __future__ import annotations

import json
import signal
import time
from urllib.parse import quote

import pytest

from tests.e2e.deployment import DAG_ID, DAYS, JOBS_EVERY, ZIP_KEY, Deployment
from tests.e2e.system import FAULT_KINDS, FAULT_SEEDS, RunWatch, is_sensor, stamp, ti_key
from tests.support.expected import assert_table_matches

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

RUN_TIMEOUT = 420.0  # a deadline against a hang, not a figure: four steps a bot on a busy 2-core machine


def sensor_deferred(_: str, tis: list[dict]) -> bool:
    return any(is_sensor(ti) and ti.get("state") == "deferred" for ti in tis)


def run_succeeded(state: str, _: list[dict]) -> bool:
    return state == "success"


def start_run(deployment: Deployment, bot: str, fault_seed: int | None) -> tuple[RunWatch, dict[str, float]]:
    """Start the emulator in the wanted mode and trigger one run for ``bot`` at once, through the REST API.

    The emulator's fast schedule then first runs its jobs one period after the trigger, which leaves
    the run the time to submit and to defer its sensors.
    """
    listening = deployment.emulator.restart(fault_seed)
    conf = {
        "conversation_ids": [bot],
        "start_date": DAYS[0],
        "end_date": DAYS[-1],
        "poll_continuously": True,
        "poll_interval": 2,
    }
    run_id = deployment.airflow.trigger(DAG_ID, conf)
    watch = RunWatch(deployment.airflow, DAG_ID, run_id)
    return watch, {"jobs run": listening + JOBS_EVERY - watch.started}


def wait_deferred(watch: RunWatch, timings: dict[str, float]) -> None:
    """Wait until a wait is seen ``deferred``; fail at once if the waits all ended without deferring."""

    def deferred(state: str, tis: list[dict]) -> bool:
        if sensor_deferred(state, tis):
            return True
        sensors = [ti for ti in tis if is_sensor(ti)]
        if sensors and all(ti.get("state") == "success" for ti in sensors):
            raise AssertionError(
                f"the waits ended before they were seen deferred: the emulator's jobs ran "
                f"before they started (JOBS_EVERY={JOBS_EVERY} s is too short here)\n{watch.report()}"
            )
        return False

    watch.until(deferred, JOBS_EVERY + 30, "sensor in the deferred state")
    timings["deferred"] = watch.elapsed()


def finish(
    deployment: Deployment, watch: RunWatch, bot: str | list[str], expected: int, timings: dict[str, float]
) -> None:
    bots = [bot] if isinstance(bot, str) else bot
    watch.until(run_succeeded, RUN_TIMEOUT, "run success")
    timings["success"] = watch.elapsed()
    states = {ti_key(ti): ti.get("state") for ti in watch.last}
    assert all(state in ("success", "skipped") for state in states.values()), watch.report()
    assert all(ti.get("try_number") == 1 for ti in watch.last if ti.get("state") == "success"), (
        f"no task was retried\n{watch.report()}"
    )
    steps = ("bot.submit", "bot.wait", "bot.copy", "bot.join_and_load")
    labels = {
        ti_key(ti): ti.get("rendered_map_index") for ti in watch.last if ti["task_id"].startswith("bot.")
    }
    assert labels == {f"{step}[{index}]": name for step in steps for index, name in enumerate(bots)}, (
        "every step of every bot is labelled with the bot"
    )
    active = [name for name in bots if name != deployment.quiet]
    loaded = assert_table_matches(
        deployment.warehouse_url, deployment.emulator.data_dir, active, DAYS, ZIP_KEY, expected
    )
    print(
        f"\n[e2e] {watch.run_id}: {len(loaded)} rows; after the trigger: "
        + ", ".join(f"{name} {at:.1f} s" for name, at in sorted(timings.items(), key=lambda item: item[1]))
    )
    print(watch.report().split("\n-----", 1)[0])


def assert_faults_fired_and_nothing_submitted_twice(deployment: Deployment, bot: str) -> None:
    """Each configured kind of fault was served at least once, and each of the bot's jobs submitted once."""
    served = deployment.emulator.served()
    fired = {kind: sum(served["faults"][kind].values()) for kind in FAULT_KINDS}
    assert all(fired.values()), f"every configured kind of fault fired at least once: {served['faults']}"
    submitted = {(s["conversationId"], s["dataset"]): s["count"] for s in served["submissions"]}
    assert submitted == {(bot, "uci-response-exhaust"): 1, (bot, "uci-private-exhaust"): 1}, served[
        "submissions"
    ]
    print(f"[e2e] faults served: {served['faults']}")


def test_triggered_run_defers_and_loads_exactly(deployment: Deployment) -> None:
    bot, expected = deployment.bot(0)
    watch, timings = start_run(deployment, bot, fault_seed=None)
    wait_deferred(watch, timings)
    finish(deployment, watch, bot, expected, timings)


def test_run_under_faults_loads_exactly(deployment: Deployment) -> None:
    bot, expected = deployment.bot(1)
    watch, timings = start_run(deployment, bot, fault_seed=FAULT_SEEDS[0])
    wait_deferred(watch, timings)
    finish(deployment, watch, bot, expected, timings)
    assert_faults_fired_and_nothing_submitted_twice(deployment, bot)


def test_triggerer_killed_while_deferred_under_faults(deployment: Deployment) -> None:
    bot, expected = deployment.bot(2)
    airflow = deployment.airflow
    watch, timings = start_run(deployment, bot, fault_seed=FAULT_SEEDS[1])
    wait_deferred(watch, timings)

    def looking_triggerers() -> set[str]:
        """Triggerers (job ids) in which a sensor's trigger has read the job at least once."""
        return {
            triggerer
            for logs in airflow.trigger_logs(DAG_ID, watch.run_id).values()
            for triggerer, text in logs.items()
            if "next look at" in text
        }

    watch.until(lambda *_: bool(looking_triggerers()), 60, "a trigger polling in the triggerer")
    killed = looking_triggerers()
    timings["trigger polling"] = watch.elapsed()
    airflow.kill("triggerer", signal.SIGKILL)  # the whole group: the trigger runner child too
    timings["triggerer killed"] = watch.elapsed()
    tis = watch.poll()
    assert sensor_deferred(watch.state, tis), "the sensors stay deferred while no triggerer runs"
    time.sleep(2)
    airflow.start("triggerer")
    timings["triggerer started"] = watch.elapsed()
    finish(deployment, watch, bot, expected, timings)

    fired = {
        key: [triggerer for triggerer, text in logs.items() if "Trigger fired event" in text]
        for key, logs in airflow.trigger_logs(DAG_ID, watch.run_id).items()
    }
    assert fired and all(fired.values()), fired
    assert not any(set(by) & killed for by in fired.values()), (
        f"every trigger fired in the restarted triggerer, not the killed one ({killed}): {fired}"
    )
    assert_faults_fired_and_nothing_submitted_twice(deployment, bot)


def test_fleet_with_a_quiet_bot_ends_green_without_waiting_for_nightly_retries(
    deployment: Deployment,
) -> None:
    """Three bots, one with no answers: the run succeeds without waiting for a nightly retry of its jobs."""
    (first, first_rows), (second, second_rows) = deployment.bot(0), deployment.bot(1)
    bots = [first, deployment.quiet, second]
    listening = deployment.emulator.restart(None)
    run_id = deployment.airflow.trigger(
        DAG_ID,
        {
            "conversation_ids": bots,
            "start_date": DAYS[0],
            "end_date": DAYS[-1],
            "poll_continuously": True,
            "poll_interval": 2,
        },
    )
    watch = RunWatch(deployment.airflow, DAG_ID, run_id)
    timings = {"jobs run": listening + JOBS_EVERY - watch.started}
    wait_deferred(watch, timings)
    finish(deployment, watch, bots, first_rows + second_rows, timings)
    # the quiet bot's "No data found" ended its wait: its task ended before any nightly retry of its jobs
    ended = max(
        stamp(ti["end_date"]) for ti in watch.last if ti.get("rendered_map_index") == deployment.quiet
    )
    jobs = deployment.emulator.jobs_of(deployment.quiet)
    assert len(jobs) == 2 and all(job["status"] == "FAILED" for job in jobs), jobs
    for job in jobs:  # one run so far, or a retry that completed after the task had ended
        assert job["attempts"] == 1 or (
            job["attempts"] == 2 and ended * 1000 < job["jobStats"]["dtJobCompleted"]
        ), (job, ended)
    recorded = [row for row in deployment.loads() if row["conversation_id"] == deployment.quiet]
    assert recorded and all(
        (row["from_date"], row["to_date"], row["responses"]) == (DAYS[0], DAYS[-1], 0) for row in recorded
    ), recorded
    assert "No answers for bot " + deployment.quiet in deployment.airflow.task_log_tails(
        DAG_ID, run_id, ["bot.join_and_load[1]"], lines=80
    )


def test_secrets_show_as_stars_over_rest(deployment: Deployment) -> None:
    """The zip password of a connection and of a rendered field reads ``***`` through the api-server."""
    airflow = deployment.airflow
    extra = {"channel_id": "dev-channel", "requested_by": "e2e", "zip_password": ZIP_KEY}
    made = airflow.call(
        "POST",
        "/api/v2/connections",
        json={
            "connection_id": "uci_exhaust_from_ui",
            "conn_type": "uci_exhaust",
            "host": deployment.emulator.api,
            "password": "dev-key",
            "extra": json.dumps(extra),
        },
    )
    assert made.status_code in (200, 201), made.text
    shown = airflow.call("GET", "/api/v2/connections/uci_exhaust_from_ui")
    assert shown.status_code == 200, shown.text
    assert ZIP_KEY not in shown.text and "dev-key" not in shown.text, shown.text
    assert json.loads(shown.json()["extra"])["zip_password"] == "***"

    dag_id = "uci_test_submit_wait"
    airflow.wait_for_dag(dag_id, 120)
    airflow.unpause(dag_id)
    bot, _ = deployment.bot(0)
    run_id = airflow.trigger(dag_id, {"conversation_id": bot, "start_date": DAYS[0], "end_date": DAYS[-1]})
    watch = RunWatch(airflow, dag_id, run_id)
    watch.until(
        lambda _, tis: any(ti["task_id"] == "submit_private" and ti.get("state") == "success" for ti in tis),
        120,
        "submit_private done",
    )
    answer = airflow.call(
        "GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/submit_private"
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["rendered_fields"]["zip_password"] == "***", answer.json()["rendered_fields"]
    assert ZIP_KEY not in answer.text
    logs = airflow.task_log_tails(dag_id, run_id, ["submit_private", "submit_response"], lines=400)
    assert "submit_private" in logs and ZIP_KEY not in logs
