"""``uci-exhaust demo``: the README's first command, run as a new user would run it (twice)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(sys.executable).with_name("uci-exhaust")


def test_demo_runs_end_to_end_and_again(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    for _ in range(2):  # re-runnable: the second run starts afresh in the same folder
        result = subprocess.run([str(SCRIPT), "demo", "--workdir", str(workdir), "--events", "1500"],
                                capture_output=True, text=True, timeout=300, cwd=tmp_path)
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
