"""The DAG on the CeleryExecutor, with two workers that share nothing but storage.

Scheduler, dag-processor, triggerer, api-server and two ``airflow celery worker`` processes (each
with its own AIRFLOW_HOME and working directory) run against PostgreSQL, with Redis as the broker
(:mod:`tests.e2e.celery_deployment`). The bots' tasks are spread over both workers (even map indexes
on ``a``, odd on ``b``), each worker copying to the destination and loading from it.

- With Azure Blob (Azurite) as the destination, one run over three bots loads exactly the
  emulator's rows of those bots into a fresh PostgreSQL warehouse.
- With a local folder (the default, ``$AIRFLOW_HOME/uci-exhaust/files``, which on each worker is its
  own disk), a run must either work or fail at once, saying that the destination must be storage
  every worker can reach; it must not load a part, nor wait through retries minutes apart. (A bot's
  copy and load run in one task, so it works.)

Nothing here names a task id: the run's final state, the warehouse, and which worker's disk holds
a task's log say what happened.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import psycopg2
import pytest

from tests.e2e.celery_deployment import ROUTES, CeleryDeployment, deploy_celery
from tests.e2e.deployment import DAG_ID, DAYS, ZIP_KEY
from tests.e2e.system import AIRFLOW, UCI_EXHAUST, RunWatch, ti_key
from tests.support.expected import TABLE, assert_table_matches
from tests.support.services import Azurite, unavailable

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

RUN_TIMEOUT = 420.0  # a deadline against a hang, not a figure
REFUSAL = re.compile(
    r"destination.*every worker can reach|every worker can reach.*destination", re.IGNORECASE
)
#: The exception of a failed task, in its JSON log line.
EXCEPTION = re.compile(r'"exc_type":\s*"([^"]+)",\s*"exc_value":\s*"((?:[^"\\]|\\.)*)"')


class LocalFolderNotRefused(AssertionError):
    """A run with a local-folder destination on Celery neither worked nor failed at once with the reason."""


@pytest.fixture(scope="module")
def celery(tmp_path_factory: pytest.TempPathFactory, azurite: Azurite) -> Iterator[CeleryDeployment]:
    if not AIRFLOW.exists() or not UCI_EXHAUST.exists():
        unavailable(f"the airflow and uci-exhaust commands are not installed beside {AIRFLOW.parent}")
    with deploy_celery(tmp_path_factory.mktemp("celery"), azurite) as running:
        yield running


def routed_as_planned(celery: CeleryDeployment, watch: RunWatch) -> dict[str, set[str]]:
    """Check that every task that ran left its log on a worker's disk, that both workers ran tasks, and
    that each bot's task ran on the worker its map index routes it to. Returns the workers of each operator.
    """
    where = celery.where_ran(watch.run_id)
    by_class: dict[str, set[str]] = {}
    for ti in watch.last:
        if ti.get("state") in (None, "upstream_failed", "skipped", "removed"):
            continue
        workers = where.get((ti["task_id"], ti.get("map_index", -1)))
        assert workers, f"{ti_key(ti)} ({ti.get('state')}) left no log on either worker"
        by_class.setdefault(ti["operator"], set()).update(workers)
        routes = ROUTES.get(ti["operator"])
        if routes:
            assert workers == [routes[ti["map_index"] % len(routes)]], (ti_key(ti), workers)
    assert set().union(*by_class.values()) == {"a", "b"}, f"both workers ran tasks: {by_class}"
    return by_class


def responses_in(url: str) -> int | None:
    """Rows of the responses table, or None when no load ever created it."""
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", (TABLE,))
        if cursor.fetchone()[0] is None:
            return None
        cursor.execute(f"SELECT count(*) FROM {TABLE}")
        return cursor.fetchone()[0]


def test_three_bots_over_azure_blob_load_exactly(celery: CeleryDeployment) -> None:
    bots, expected = celery.bots()
    celery.set_variable("uci_exhaust_destination", "wasb://uci-celery/exhaust")
    celery.set_variable("uci_exhaust_warehouse_conn_id", "uci_warehouse")
    watch = RunWatch(celery.airflow, DAG_ID, celery.trigger(bots))
    try:
        watch.until(lambda state, _: state == "success", RUN_TIMEOUT, "run success")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{celery.task_log_tails(watch.run_id)}") from None
    took = watch.elapsed()
    by_class = routed_as_planned(celery, watch)
    loaded = assert_table_matches(
        celery.warehouses["uci_warehouse"], celery.emulator.data_dir, bots, DAYS, ZIP_KEY, expected
    )
    assert {row["conversation_id"] for row in loaded.values()} == set(bots)
    print(
        f"\n[celery] {watch.run_id}: {len(loaded)} rows of {len(bots)} bots in {took:.1f} s; "
        + ", ".join(f"{operator} on {sorted(workers)}" for operator, workers in sorted(by_class.items()))
    )


def test_a_local_folder_destination_works_or_fails_at_once(celery: CeleryDeployment) -> None:
    bots, expected = celery.bots()
    celery.set_variable(
        "uci_exhaust_destination", None
    )  # the default: a folder under each worker's AIRFLOW_HOME
    celery.set_variable("uci_exhaust_warehouse_conn_id", "uci_warehouse_local_run")
    warehouse = celery.warehouses["uci_warehouse_local_run"]
    watch = RunWatch(celery.airflow, DAG_ID, celery.trigger(bots))
    retried: list[str] = []
    while watch.state not in ("success", "failed") and not retried:
        watch.poll()
        retried = [ti_key(ti) for ti in watch.last if ti.get("state") == "up_for_retry"]
        if watch.elapsed() > RUN_TIMEOUT:
            raise AssertionError(f"run {watch.run_id}: not finished after {RUN_TIMEOUT} s\n{watch.report()}")
        celery.airflow.check_alive()
        time.sleep(0.3)
    took = watch.elapsed()
    errors = sorted(
        {
            f"{kind}: {value}"
            for text in celery.task_log_text(watch.run_id).values()
            for kind, value in EXCEPTION.findall(text)
        }
    )
    reasons = [error for error in errors if REFUSAL.search(error)]
    summary = (
        f"run {watch.run_id} {watch.state} after {took:.1f} s; retried {retried}; "
        f"warehouse rows: {responses_in(warehouse)}; tasks failed with: {[e[:300] for e in errors]}"
    )

    if watch.state == "success":  # it worked: each load had every file its copy wrote on the other worker
        routed_as_planned(celery, watch)
        assert_table_matches(warehouse, celery.emulator.data_dir, bots, DAYS, ZIP_KEY, expected)
        print(f"\n[celery] a local folder worked: {summary}")
        return
    if retried:
        raise LocalFolderNotRefused(f"tasks went up for retry instead of failing at once: {summary}")
    if not reasons:
        raise LocalFolderNotRefused(
            f"the run failed without saying that the destination must be storage every "
            f"worker can reach: {summary}"
        )
    assert watch.state == "failed", summary
    # at once: on the first try of every task, none waiting for a retry (the DAG's retries are minutes apart)
    tries = {ti_key(ti): (ti.get("state"), ti.get("try_number")) for ti in watch.last}
    assert all((number or 0) <= 1 and state != "up_for_retry" for state, number in tries.values()), tries
    assert not responses_in(warehouse), f"nothing loaded: {summary}"
    print(f"\n[celery] a local folder was refused at once: {summary}; said: {reasons[0][:400]}")
