"""``uci-exhaust demo``: the whole path on one machine, on embedded defaults.

Starts the emulator in this process on a free port (jobs every few seconds instead of nightly),
seeds a few bots with a few thousand ASSESS events, runs the ``uci_exhaust`` DAG with ``dag.test()``
(sensors defer and their triggers run inline), and prints a summary per bot. Airflow's own output
goes to ``<workdir>/demo.log``. Everything lives under ``--workdir`` and is made anew on each run.

The demo deletes only a folder it made itself: it leaves a marker file (:data:`MARKER`) in the folder
it makes, and refuses a folder that is not empty and has no marker (:func:`fresh_workdir`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import IO, Any

from airflow_provider_uci.exhaust.names import DEFAULT_TABLE

CONN_ID = "uci_exhaust_default"
#: The file that says a folder is the demo's own, to delete and make anew.
MARKER = ".uci-exhaust-demo"


class WorkdirRefused(ValueError):
    """``--workdir`` is a folder the demo did not make and that is not empty (or not a folder at all)."""


def fresh_workdir(workdir: Path) -> Path:
    """Make ``workdir`` an empty folder with the demo's marker in it, and return it (resolved).

    A folder the demo made before (it holds :data:`MARKER`) is deleted and made anew; a missing or empty
    one is used; anything else is refused, and left as it is.
    """
    workdir = workdir.resolve()
    if workdir.exists() or workdir.is_symlink():
        if not workdir.is_dir():
            raise WorkdirRefused(f"--workdir: {workdir} is not a folder; give a new or empty folder")
        if (workdir / MARKER).is_file():
            shutil.rmtree(workdir)
        elif any(workdir.iterdir()):
            raise WorkdirRefused(
                f"--workdir: {workdir} is not empty and was not made by the demo (it has no "
                f"{MARKER} file), so it is not deleted; give a new or empty folder"
            )
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / MARKER).write_text(
        "Made by uci-exhaust demo, which deletes this folder and makes it anew on each run.\n",
        encoding="utf-8",
    )
    return workdir


def _environment(workdir: Path, api_url: str) -> dict[str, str]:
    """Airflow settings, the API connection, the warehouse and the destination, as a user would set them."""
    home = workdir / "airflow"
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps(
            {
                "conn_type": "uci_exhaust",
                "host": api_url,
                "password": "dev-key",
                "extra": {
                    "channel_id": "dev-channel",
                    "requested_by": "uci-exhaust demo",
                    "zip_password": "demo-zip-key",
                },
            }
        ),
        "AIRFLOW_CONN_UCI_WAREHOUSE": f"sqlite:///{workdir / 'warehouse.db'}",
        "AIRFLOW_VAR_UCI_EXHAUST_WAREHOUSE_CONN_ID": "uci_warehouse",
        "AIRFLOW_VAR_UCI_EXHAUST_DESTINATION": str(workdir / "files"),
        "AIRFLOW_VAR_UCI_EXHAUST_POLL_CONTINUOUSLY": "true",
    }


@contextlib.contextmanager
def _quiet(log: Path) -> Iterator[IO[str]]:
    """Send everything written to stdout and stderr (Airflow's logs) to ``log``; yield the real stdout."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    real = os.fdopen(os.dup(saved_out), "w", buffering=1)
    with log.open("a") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield real
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved_out, 1)
            os.dup2(saved_err, 2)
            os.close(saved_out)
            os.close(saved_err)
            real.close()


def _progress(service: Any, out: IO[str], stop: threading.Event, started: float) -> None:
    """Print the emulator's job statuses while the DAG waits."""
    last = ""
    while not stop.wait(2.0):
        _total, rows = service.store.search({"channel": "dev-channel"}, 1000)
        counts: dict[str, int] = {}
        for row in rows:
            counts[row.status] = counts.get(row.status, 0) + 1
        line = ", ".join(f"{n} {status.lower()}" for status, n in sorted(counts.items())) or "none yet"
        if line != last:
            out.write(f"  [{time.monotonic() - started:5.1f} s] exhaust requests: {line}\n")
            last = line


def run_demo(
    workdir: Path,
    *,
    bots: int = 3,
    events: int = 3000,
    users: int | None = None,
    days: int = 4,
    out: IO[str] = sys.stdout,
) -> int:
    """Run the demo; return the exit code.

    :param users: the users to seed; by default one for every 12 events, so most people hold a session or
        three over the days, as a real bot's do.
    """
    users = users or max(40, events // 12)
    started = time.monotonic()
    workdir = fresh_workdir(workdir)

    from airflow_provider_uci.emulator.config import EmulatorSettings
    from airflow_provider_uci.emulator.jobs.common import IST
    from airflow_provider_uci.emulator.seed import SeedOptions
    from airflow_provider_uci.emulator.server import EmbeddedEmulator

    out.write(f"uci-exhaust demo in {workdir}\n")
    emulator = EmbeddedEmulator(EmulatorSettings(data_dir=workdir / "emulator", jobs_every=2.0))
    emulator.start()
    service = emulator.app.state.service
    try:
        today = service.clock.now().astimezone(IST).date()
        first = today - timedelta(days=days)
        summary = service.seed(
            SeedOptions(bots=bots, users=users, events=events, start=first, days=days, seed=7), today=today
        )
        out.write(
            f"  emulator at {emulator.url} (jobs run every 2 s instead of nightly); seeded {bots} bots, "
            f"{users} users, {summary['events']['kept']} telemetry events over {days} days\n"
        )
        os.environ.update(_environment(workdir, emulator.url))
        return _run_dag(workdir, service, summary, first, today - timedelta(days=1), out, started)
    finally:
        emulator.stop()


def _run_dag(
    workdir: Path,
    service: Any,
    summary: dict[str, Any],
    first: date,
    last: date,
    out: IO[str],
    started: float,
) -> int:
    from airflow_provider_uci.dags import dag_file

    dags = workdir / "airflow" / "dags"
    dags.mkdir(parents=True)
    shutil.copy(dag_file(), dags / "uci_exhaust.py")
    conf = {
        "conversation_ids": [bot["id"] for bot in summary["bots"]],
        "start_date": first.isoformat(),
        "end_date": last.isoformat(),
        "poll_continuously": True,
        "poll_interval": 2,
    }
    log = workdir / "demo.log"
    out.write(
        f"  running the uci_exhaust DAG for {len(conf['conversation_ids'])} bots, {conf['start_date']} to "
        f"{conf['end_date']} (Airflow's log: {log})\n"
    )
    stop = threading.Event()
    with _quiet(log) as real_out:
        from airflow.dag_processing.dagbag import DagBag
        from airflow.utils import db

        db.initdb()
        bag = DagBag(dag_folder=dags)
        if bag.import_errors:
            real_out.write(f"the DAG did not import: {bag.import_errors}\n")
            return 1
        watcher = threading.Thread(target=_progress, args=(service, real_out, stop, started), daemon=True)
        watcher.start()
        try:
            run = bag.dags["uci_exhaust"].test(run_conf=conf)
        finally:
            stop.set()
            watcher.join()
        states = {ti.task_id + f"[{ti.map_index}]": str(ti.state) for ti in run.get_task_instances()}
    if str(run.state) != "success":
        failed = sorted(name for name, state in states.items() if state != "success")
        out.write(f"the DAG run {run.state}: {', '.join(failed)}; see {log}\n")
        return 1
    _summary(workdir, summary, out, started)
    return 0


def _summary(workdir: Path, seeded: dict[str, Any], out: IO[str], started: float) -> None:
    from airflow_provider_uci.exhaust.warehouse import open_warehouse

    warehouse = open_warehouse(f"sqlite:///{workdir / 'warehouse.db'}")
    try:
        rows = warehouse.fetch(DEFAULT_TABLE)
        users = warehouse.fetch_users(DEFAULT_TABLE)
    finally:
        warehouse.close()
    out.write(f"done in {time.monotonic() - started:.0f} s\n\n")
    out.write(f"{'bot':38} {'name':24} {'responses':>9} {'with user':>9} {'users':>6}\n")
    for bot in seeded["bots"]:
        mine = [row for row in rows if row[0] == bot["id"]]
        joined = sum(1 for row in mine if row[-1] is not None)
        out.write(
            f"{bot['id']:38} {bot['name'][:24]:24} {len(mine):>9} {joined:>9} "
            f"{sum(1 for user in users if user[0] == bot['id']):>6}\n"
        )
    tables = f"{DEFAULT_TABLE}, {DEFAULT_TABLE}_users, {DEFAULT_TABLE}_loads"
    out.write(f"\nwarehouse: {workdir / 'warehouse.db'} (tables {tables})\n")
    out.write(f"files:     {workdir / 'files'}\n")
    from airflow_provider_uci.analytics.report import write_report

    page = write_report(f"sqlite:///{workdir / 'warehouse.db'}", workdir / "report.html", table=DEFAULT_TABLE)
    out.write(f"report:    {page} (open it in a browser; it needs no network)\n")
    out.write(
        f"try:       sqlite3 {workdir / 'warehouse.db'} 'select conversation_name, question_title, "
        f"question_response, user_phone from {DEFAULT_TABLE} limit 5'\n"
    )
