"""A SQLite warehouse is read while a load writes: the file is in WAL mode, so readers see the last
committed state and never find the database locked, however long the load's transaction."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from airflow_provider_uci.exhaust.load import load_exhaust
from tests.exhaust.test_load import generated_pair


def test_readers_keep_reading_while_a_load_writes(tmp_path: Path) -> None:
    response, private = generated_pair(tmp_path, 40_000)
    database = tmp_path / "warehouse.db"
    url = f"sqlite:///{database}"
    load_exhaust(response_csv=response, private=private, warehouse_url=url)
    with sqlite3.connect(database) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        (rows,) = conn.execute("SELECT count(*) FROM uci_responses").fetchone()
    conn.close()
    assert rows == 40_000

    stop = threading.Event()
    seen: list[int] = []
    errors: list[str] = []

    def read() -> None:
        reader = sqlite3.connect(database, timeout=0.05)  # a short busy timeout: a lock would show at once
        try:
            while not stop.is_set():
                try:
                    seen.append(reader.execute("SELECT count(*) FROM uci_responses").fetchone()[0])
                    reader.execute("SELECT question_response FROM uci_responses LIMIT 50 OFFSET 1000").fetchall()
                except sqlite3.OperationalError as exc:
                    errors.append(str(exc))
        finally:
            reader.close()

    thread = threading.Thread(target=read)
    thread.start()
    try:
        summary = load_exhaust(response_csv=response, private=private, warehouse_url=url)  # every row replaced
    finally:
        stop.set()
        thread.join(30)

    assert (summary.responses_loaded, summary.responses_replaced) == (rows, rows)
    assert errors == []
    assert len(seen) > 10 and set(seen) == {rows}, "readers saw only committed states, all along"
