"""The SQLite warehouse as a file: read while a load writes (the file is in WAL mode, so readers see the
last committed state and never find the database locked, however long the load's transaction); made
with 16 KiB pages, while a file made otherwise keeps its own; a responses table that a load creates
gets its day index after its rows, and the next load replaces days through it; users are upserted in
key order, the last of a repeated key still winning."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_uci.exhaust.load import load_exhaust
from airflow_provider_uci.exhaust.warehouse import open_warehouse
from airflow_provider_uci.exhaust.warehouse import sqlite as sqlite_warehouse
from tests.exhaust.test_load import generated_pair
from tests.exhaust.test_warehouse import BOT, by_day, load, response, user


def pragma(database: Path, name: str) -> object:
    with sqlite3.connect(database) as conn:
        (value,) = conn.execute(f"PRAGMA {name}").fetchone()
    conn.close()
    return value


def schema(database: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(database) as conn:
        rows = conn.execute(
            "SELECT type, name FROM sqlite_master WHERE name LIKE 'answers%' ORDER BY name"
        ).fetchall()
    conn.close()
    return rows


def test_a_new_file_has_16k_pages_and_a_file_made_otherwise_keeps_its_own(tmp_path: Path) -> None:
    with open_warehouse(f"sqlite:///{tmp_path}/new.db") as warehouse:
        load(warehouse, by_day(20, 21))
    assert pragma(tmp_path / "new.db", "page_size") == sqlite_warehouse.PAGE_BYTES == 16384

    older = tmp_path / "older.db"
    with sqlite3.connect(older) as conn:
        conn.execute("PRAGMA page_size=4096")
        conn.execute("CREATE TABLE notes (text TEXT)")
    conn.close()
    with open_warehouse(f"sqlite:///{older}") as warehouse:
        assert load(warehouse, by_day(20, 21)).responses == 20
        assert warehouse.count("answers") == 20
    assert pragma(older, "page_size") == 4096


def test_a_table_a_load_creates_gets_its_index_and_the_next_load_replaces_through_it(tmp_path: Path) -> None:
    def truncated() -> Iterator[tuple[Any, ...]]:
        yield response(1)
        raise RuntimeError("the exhaust file is truncated")

    database = tmp_path / "warehouse.db"
    with open_warehouse(f"sqlite:///{database}") as warehouse:
        with pytest.raises(RuntimeError, match="truncated"):
            load(warehouse, truncated())
        assert schema(database) == []  # a failed first load leaves no table, and no index

        assert load(warehouse, by_day(20, 22), [user(1)]).responses == 30
        assert ("index", "answers_bot_day") in schema(database)
        with sqlite3.connect(database) as conn:
            columns = [row[2] for row in conn.execute('PRAGMA index_info("answers_bot_day")')]
            plan = " ".join(
                row[3]
                for row in conn.execute(
                    "EXPLAIN QUERY PLAN DELETE FROM answers WHERE conversation_id = ? AND sync_date BETWEEN ? AND ? "
                    "AND load_id <> ?",
                    (BOT, "2022-06-21", "2022-06-21", 0),
                )
            )
        conn.close()
        assert columns == ["conversation_id", "sync_date"]
        assert "USING INDEX answers_bot_day" in plan

        again = load(warehouse, by_day(21, 21), days=("2022-06-21", "2022-06-21"))
        assert (again.responses, again.replaced) == (10, 10)
        assert warehouse.count("answers") == 30


def test_users_go_in_key_order_and_the_last_of_a_repeated_key_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_warehouse, "CHUNK_ROWS", 2)  # the repeats fall in different statements
    users = [
        user(3, phone="3 first"),
        user(1, phone="1 first"),
        user(2),
        user(3, phone="3 last"),
        user(1, phone="1 last"),
    ]
    with open_warehouse(f"sqlite:///{tmp_path}/warehouse.db") as warehouse:
        assert load(warehouse, [], users).users == 3
        assert [(row[1], row[3]) for row in warehouse.fetch_users("answers")] == [
            ("device-1", "1 last"),
            ("device-2", "+919000000002"),
            ("device-3", "3 last"),
        ]


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
                    reader.execute(
                        "SELECT question_response FROM uci_responses LIMIT 50 OFFSET 1000"
                    ).fetchall()
                except sqlite3.OperationalError as exc:
                    errors.append(str(exc))
        finally:
            reader.close()

    thread = threading.Thread(target=read)
    thread.start()
    try:
        summary = load_exhaust(
            response_csv=response, private=private, warehouse_url=url
        )  # every row replaced
    finally:
        stop.set()
        thread.join(30)

    assert (summary.responses_loaded, summary.responses_replaced) == (rows, rows)
    assert errors == []
    assert len(seen) > 10 and set(seen) == {rows}, "readers saw only committed states, all along"
