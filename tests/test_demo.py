"""``uci-exhaust demo``: the README's first command, run as a new user would run it (twice)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).with_name("uci-exhaust")


def test_demo_runs_end_to_end_and_again(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    for _ in range(2):  # re-runnable: the second run starts afresh in the same folder
        result = subprocess.run(
            [str(SCRIPT), "demo", "--workdir", str(workdir), "--events", "1500"],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert any(line.startswith("done in ") for line in lines)
    rows = [line for line in lines if len(line) > 38 and line[8] == "-" and line[13] == "-"]
    assert len(rows) == 3, result.stdout
    with sqlite3.connect(workdir / "warehouse.db") as db:
        (total,) = db.execute("select count(*) from uci_responses").fetchone()
        (users,) = db.execute("select count(*) from uci_responses_users").fetchone()
    assert total == sum(int(line.split()[-3]) for line in rows) > 0
    assert users == sum(int(line.split()[-1]) for line in rows) > 0
    assert (workdir / "files").is_dir() and any((workdir / "files").rglob("uci-response-exhaust.csv"))
    page = workdir / "report.html"  # the fleet's page: its charts, then each bot's
    assert (
        f"report:    {page} " in result.stdout and page.read_text(encoding="utf-8").count("<svg") >= 2 + 3 * 2
    )


def test_demo_refuses_a_workdir_it_did_not_make_and_leaves_it_alone(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("keep me")
    (tmp_path / "a-file").write_text("keep me too")
    for workdir, why in (
        (theirs, "is not empty and was not made by the demo"),
        (tmp_path / "a-file", "is not a folder"),
    ):
        result = subprocess.run(
            [str(SCRIPT), "demo", "--workdir", str(workdir)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        assert result.returncode == 2, result.stderr
        assert (
            result.stderr
            == f"uci-exhaust: error: --workdir: {workdir} {why}" + result.stderr.split(why, 1)[1]
        )
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr and result.stdout == ""
    assert (theirs / "notes.txt").read_text() == "keep me" and (
        tmp_path / "a-file"
    ).read_text() == "keep me too"


def test_the_demo_makes_its_workdir_from_nothing_or_an_empty_folder_and_remakes_only_its_own(
    tmp_path: Path,
) -> None:
    from airflow_provider_uci.demo import MARKER, WorkdirRefused, fresh_workdir

    made = fresh_workdir(tmp_path / "new" / "demo")
    assert sorted(path.name for path in made.iterdir()) == [MARKER]
    (made / "warehouse.db").write_text("an earlier run")
    assert sorted(path.name for path in fresh_workdir(made).iterdir()) == [MARKER], (
        "its own folder, made anew"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    assert fresh_workdir(empty) == empty.resolve() and (empty / MARKER).is_file()
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "data.csv").write_text("x")
    with pytest.raises(
        WorkdirRefused,
        match=r"is not empty and was not made by the demo \(it has no "
        r"\.uci-exhaust-demo file\), so it is not deleted",
    ):
        fresh_workdir(tmp_path / "theirs")
    assert (tmp_path / "theirs" / "data.csv").read_text() == "x"
