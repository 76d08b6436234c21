"""The main DAG over a fleet, with ``dag.test()``: quiet bots end green, hopeless errors end at once, labels.

Retries stay on (2, one second apart): an error that no retry can mend must fail its task on the first
try, and a quiet bot must not be retried at all.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.support.airflow import load_dag, task_states, xcoms
from tests.support.connections import set_uci_connection
from tests.support.expected import assert_table_matches
from tests.support.services import Emulator, run_emulator

SCRIPT = Path(sys.executable).with_name("uci-exhaust")
ZIP_KEY = "fleet-zip-key-3301"
DAYS = ["2026-04-01", "2026-04-02"]
STEPS = ("bot.submit", "bot.wait", "bot.copy", "bot.join_and_load")
QUIET = "0b6a3c1e-7d51-4c0a-9e55-2f8a7c9d4e11"  # a bot of the channel that nobody used
STRANGER = "5d1c9e7a-3b2f-4a60-8c41-9e0d7b6a5f22"  # a bot the channel does not own


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Emulator, dict]]:
    data = tmp_path_factory.mktemp("fleet-emulator")
    summary = json.loads(
        subprocess.run(
            [
                str(SCRIPT),
                "emulator",
                "seed",
                "--data-dir",
                str(data),
                "--bots",
                "2",
                "--users",
                "15",
                "--events",
                "200",
                "--start",
                DAYS[0],
                "--days",
                "2",
                "--seed",
                "41",
                "--json",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    # then a bot of the same channel with no users and no answers
    subprocess.run(
        [
            str(SCRIPT),
            "emulator",
            "seed",
            "--data-dir",
            str(data),
            "--bots",
            "0",
            "--users",
            "0",
            "--events",
            "0",
            "--start",
            DAYS[0],
            "--days",
            "2",
            "--bot",
            f"{QUIET}=Quiet bot",
        ],
        check=True,
        capture_output=True,
    )
    with run_emulator(data, "--jobs-every", "1") as emulator:
        yield emulator, summary


def configure(monkeypatch: pytest.MonkeyPatch, emulator: Emulator, tmp_path: Path, **connection: str) -> str:
    set_uci_connection(monkeypatch, emulator.api, zip_password=ZIP_KEY, **connection)
    warehouse = f"sqlite:///{tmp_path / 'warehouse.db'}"
    monkeypatch.setenv("AIRFLOW_CONN_UCI_WAREHOUSE", warehouse)
    monkeypatch.setenv("AIRFLOW_VAR_UCI_EXHAUST_WAREHOUSE_CONN_ID", "uci_warehouse")
    monkeypatch.setenv("AIRFLOW_VAR_UCI_EXHAUST_DESTINATION", str(tmp_path / "files"))
    monkeypatch.delenv("AIRFLOW_VAR_UCI_EXHAUST_CONVERSATION_IDS", raising=False)
    return warehouse


def dag_with_quick_retries(folder: Path):
    """The DAG as parsed, its retries kept (2) but one second apart, so a wrongly retried task shows fast."""
    dag = load_dag(folder, "uci_exhaust")
    for task in dag.tasks:
        assert task.retries == 2, task.task_id
        task.retry_delay = timedelta(seconds=1)
    return dag


def conf(bots: list[str]) -> dict:
    return {
        "conversation_ids": bots,
        "start_date": DAYS[0],
        "end_date": DAYS[1],
        "poll_continuously": True,
        "poll_interval": 1,
    }


def instances(run) -> dict[str, object]:
    return {
        ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): ti for ti in run.get_task_instances()
    }


def test_a_quiet_bot_ends_green_recorded_empty_and_every_step_is_labelled(
    fleet,
    airflow_db: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    emulator, summary = fleet
    active = [bot["id"] for bot in summary["bots"]]
    assert len(active) == 2
    warehouse = configure(monkeypatch, emulator, tmp_path)
    dag = dag_with_quick_retries(airflow_db)

    bots = [active[0], QUIET, active[1]]
    run = dag.test(run_conf=conf(bots))
    states = task_states(run)
    assert str(run.state) == "success", states
    tis = instances(run)
    assert set(tis) == {"plan", *(f"{step}[{index}]" for step in STEPS for index in range(3))}, sorted(tis)
    assert all(ti.try_number == 1 for ti in tis.values()), {key: ti.try_number for key, ti in tis.items()}

    # every step of every bot is labelled with its conversation id
    labels = {key: ti.rendered_map_index for key, ti in tis.items() if key != "plan"}
    assert labels == {f"{step}[{index}]": bot for step in STEPS for index, bot in enumerate(bots)}

    # the quiet bot: both jobs answered "No data found", nothing copied, loaded empty
    done = xcoms(dag.dag_id, run.run_id)
    assert {dataset: job["outcome"] for dataset, job in done["bot.wait[1]"].items()} == {
        "uci-response-exhaust": "empty",
        "uci-private-exhaust": "empty",
    }
    assert all(copied["empty"] and copied["files"] == [] for copied in done["bot.copy[1]"].values())
    quiet = done["bot.join_and_load[1]"]
    assert quiet["responses_loaded"] == 0 and quiet["conversation_id"] == QUIET
    assert [done[f"bot.join_and_load[{index}]"]["conversation_id"] for index in (0, 2)] == [
        active[0],
        active[1],
    ]
    assert_table_matches(
        warehouse,
        emulator.data_dir,
        active,
        DAYS,
        ZIP_KEY,
        sum(n for bot in summary["bots"] if bot["id"] in active for n in bot["events_by_day"].values()),
    )
    from airflow_provider_uci.exhaust.warehouse import open_warehouse

    warehouse_db = open_warehouse(warehouse)
    try:
        recorded = [row for row in warehouse_db.loads("uci_responses") if row["conversation_id"] == QUIET]
    finally:
        warehouse_db.close()
    assert [(row["from_date"], row["to_date"], row["responses"]) for row in recorded] == [
        (DAYS[0], DAYS[1], 0)
    ]
    out = capfd.readouterr().out
    assert f"No answers for bot {QUIET} on {DAYS[0]}..{DAYS[1]}" in out


def test_the_compact_example_dag_loads_the_same_fleet_one_task_per_bot(
    fleet, airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator, summary = fleet
    active = [bot["id"] for bot in summary["bots"]]
    warehouse = configure(monkeypatch, emulator, tmp_path)
    dag = load_dag(airflow_db, "uci_exhaust_compact")
    bots = [active[0], QUIET, active[1]]
    run = dag.test(run_conf=conf(bots))
    assert str(run.state) == "success", task_states(run)
    tis = instances(run)
    assert set(tis) == {"plan", "bot[0]", "bot[1]", "bot[2]"}, sorted(tis)
    assert {key: ti.rendered_map_index for key, ti in tis.items() if key != "plan"} == {
        f"bot[{index}]": bot for index, bot in enumerate(bots)
    }
    done = xcoms(dag.dag_id, run.run_id)
    assert done["bot[1]"]["load"]["responses_loaded"] == 0
    assert_table_matches(
        warehouse,
        emulator.data_dir,
        active,
        DAYS,
        ZIP_KEY,
        sum(n for bot in summary["bots"] for n in bot["events_by_day"].values()),
    )


def test_a_fleet_larger_than_max_map_length_fails_in_plan_naming_the_setting(
    fleet,
    airflow_db: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    emulator, summary = fleet
    configure(monkeypatch, emulator, tmp_path)
    monkeypatch.setenv("AIRFLOW__CORE__MAX_MAP_LENGTH", "2")
    dag = dag_with_quick_retries(airflow_db)
    run = dag.test(run_conf=conf([bot["id"] for bot in summary["bots"]] + [QUIET]))
    assert str(run.state) == "failed"
    tis = instances(run)
    assert str(tis["plan"].state) == "failed" and tis["plan"].try_number == 1, task_states(run)
    assert all(str(ti.state) == "upstream_failed" for key, ti in tis.items() if key != "plan"), task_states(
        run
    )
    out = capfd.readouterr().out
    assert "3 bots, more than [core] max_map_length (2)" in out, out[-2000:]


@pytest.mark.parametrize(
    ("given", "variable", "expected"),
    [
        (False, "true", "nightly"),
        (True, "false", "continuous"),
        (None, "true", "continuous"),
        (None, None, "nightly"),
    ],
)
def test_the_poll_continuously_param_wins_over_the_variable_both_ways(
    given: bool | None, variable: str | None, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jinja2 import Environment

    from airflow_provider_uci.planning import RUN_AT

    variables = {} if variable is None else {"uci_exhaust_poll_continuously": variable}
    var = {
        "value": type(
            "Values", (), {"get": staticmethod(lambda key, default=None: variables.get(key, default))}
        )
    }
    rendered = Environment().from_string(RUN_AT).render(params={"poll_continuously": given}, var=var)
    assert rendered == expected


@pytest.mark.parametrize(
    "case", ["bot the channel does not own", "no bots", "validation", "refused key", "range reversed"]
)
def test_hopeless_errors_fail_once_naming_the_bot(
    case: str,
    fleet,
    airflow_db: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    emulator, summary = fleet
    bot = summary["bots"][0]["id"]
    connection: dict[str, str] = {}
    run_conf = conf([bot])
    if case == "bot the channel does not own":
        run_conf = conf([STRANGER])
        failing, words = "bot.wait[0]", [STRANGER, "dev-channel", "No data found for conversation in DB"]
    elif case == "no bots":
        run_conf = {**conf([]), "conversation_ids": None}
        failing, words = "plan", ["conversation_ids", "uci_exhaust_conversation_ids"]
    elif case == "validation":
        connection = {"requested_by": "r" * 60}
        failing, words = "bot.submit[0]", ["requested_by", "at most 50 characters"]
    elif case == "refused key":
        connection = {"api_key": "not-a-key-of-this-service"}
        failing, words = "bot.submit[0]", ["HTTP 401"]
    else:
        run_conf = {**conf([bot]), "start_date": DAYS[1], "end_date": DAYS[0]}
        failing, words = "plan", ["start_date", "after end_date"]
    configure(monkeypatch, emulator, tmp_path, **connection)
    dag = dag_with_quick_retries(airflow_db)

    run = dag.test(run_conf=run_conf)
    assert str(run.state) == "failed"
    tis = instances(run)
    assert str(tis[failing].state) == "failed", task_states(run)
    assert tis[failing].try_number == 1, "failed at once, not retried"
    if failing != "plan":
        assert tis[failing].rendered_map_index == run_conf["conversation_ids"][0], (
            "a failed step keeps its label"
        )
    assert not any(str(ti.state) == "up_for_retry" or ti.try_number > 1 for ti in tis.values()), task_states(
        run
    )
    assert sum(1 for ti in tis.values() if str(ti.state) == "failed") == 1, task_states(run)
    out = capfd.readouterr().out
    assert all(word in out for word in words), [word for word in words if word not in out]
    if case not in ("no bots", "range reversed"):
        assert bot in out or STRANGER in out, "the message names the bot"


def test_the_compact_shape_retried_reaches_its_jobs_and_goes_straight_on_to_the_copy(
    fleet,
    airflow_db: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The one-task-per-bot operator on its second try (a retry, or cleared in the UI) does not submit again
    nor defer when its jobs have answered: it looks once, copies and loads; on a first try it defers."""
    import time
    from types import SimpleNamespace

    from airflow.sdk import DAG
    from airflow.sdk.exceptions import TaskDeferred

    from airflow_provider_uci.operators.to_warehouse import ExhaustToWarehouseOperator

    emulator, summary = fleet
    bot = summary["bots"][0]["id"]
    warehouse = configure(monkeypatch, emulator, tmp_path)
    with DAG("uci_exhaust_compact_retried", schedule=None):  # its own tags: jobs no other test submitted
        task = ExhaustToWarehouseOperator(
            task_id="bot",
            conversation_id=bot,
            from_date=DAYS[0],
            to_date=DAYS[1],
            run_at="continuous",
            poll_interval=1,
            destination=str(tmp_path / "files"),
            warehouse_conn_id="uci_warehouse",
        )
    with pytest.raises(TaskDeferred) as deferred:
        task.execute({"run_id": "manual__first", "ti": SimpleNamespace(try_number=1, map_index=0)})
    submitted = {job["dataset"]: job["request_id"] for job in deferred.value.trigger.args.jobs}
    assert set(submitted) == {"uci-response-exhaust", "uci-private-exhaust"}
    while (
        task.hook.read_request(
            deferred.value.trigger.args.jobs[0]["tag"], submitted["uci-response-exhaust"]
        ).status_text
        != "SUCCESS"
    ):
        time.sleep(0.5)  # the emulator runs its jobs every second
    time.sleep(1.5)
    capfd.readouterr()
    again = task.execute({"run_id": "manual__again", "ti": SimpleNamespace(try_number=2, map_index=0)})
    out = capfd.readouterr().out
    assert "not resubmitting" in out and "waiting for" not in out, out
    assert {dataset: job["request_id"] for dataset, job in again["jobs"].items()} == submitted, (
        "the same jobs"
    )
    assert again["load"]["responses_loaded"] == sum(summary["bots"][0]["events_by_day"].values()) > 0
    assert_table_matches(
        warehouse, emulator.data_dir, [bot], DAYS, ZIP_KEY, sum(summary["bots"][0]["events_by_day"].values())
    )
    lines = _task_lines(out)
    assert lines and all(line.startswith(f"Bot {bot}: ") for line in lines), lines

    # OpenLineage: the service's files (without their signature) in; the copies and the table out
    lineage = task.get_openlineage_facets_on_complete(None)
    inputs, outputs = (
        [(d.namespace, d.name) for d in lineage.inputs],
        [(d.namespace, d.name) for d in lineage.outputs],
    )
    assert len(inputs) == 2 and all(
        namespace == emulator.root.rstrip("/") and "?" not in name for namespace, name in inputs
    ), inputs
    copied = [path for copy in again["copies"].values() for path in copy["files"]]
    assert outputs == [("file", path) for path in copied] + [
        (f"sqlite://{tmp_path / 'warehouse.db'}", "uci_responses")
    ]


def _task_lines(out: str) -> list[str]:
    """The messages the operator and its parts logged (structlog's console lines: the event text)."""
    import re

    lines = []
    for line in out.splitlines():
        found = re.match(r"^\S+ \[\w+\s*\] (.*?)\s+\[airflow\.task\.operators\.", line)
        if found and "outside of the Task Runner" not in found.group(
            1
        ):  # Airflow's own note of a direct call
            lines.append(found.group(1))
    return lines
