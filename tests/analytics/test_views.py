"""The warehouse's analytics views hold the numbers computed here from the seed's own record.

The emulator is seeded (``seed --record`` writes every answer the response exhaust must hold), its
nightly job writes each bot's response exhaust, the files are loaded into SQLite and PostgreSQL, and
each view is compared with what the record says, computed in plain Python.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from statistics import median
from typing import Any

import pytest
import requests

from airflow_provider_uci.exhaust.load import load_exhaust
from airflow_provider_uci.exhaust.warehouse import open_warehouse
from tests.support.api import ExhaustApi, new_tag, submit_body
from tests.support.batches import response_batches, user_table
from tests.support.services import postgres_database, run_emulator

SCRIPT = Path(sys.executable).with_name("uci-exhaust")
START, DAYS = "2026-01-10", 4
END = (date.fromisoformat(START) + timedelta(days=DAYS - 1)).isoformat()
IST = timezone(timedelta(hours=5, minutes=30))
TABLE = "uci_responses"


def uci_exhaust(*args: str) -> str:
    result = subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict], list[tuple[str, Path]]]:
    """The seed's record, and each bot's response exhaust as the emulator's nightly job wrote it."""
    data = tmp_path_factory.mktemp("seeded")
    record = data / "record.jsonl"
    summary = json.loads(
        uci_exhaust(
            "emulator",
            "seed",
            "--data-dir",
            str(data),
            "--bots",
            "3",
            "--users",
            "60",
            "--events",
            "2500",
            "--start",
            START,
            "--days",
            str(DAYS),
            "--seed",
            "21",
            "--edge-cases",
            "0.05",
            "--record",
            str(record),
            "--json",
        )
    )
    files = []
    with run_emulator(data, "--no-schedule", "--now", "2026-01-20T09:00:00+05:30") as emulator:
        api = ExhaustApi(emulator.api)
        jobs = []
        for bot in summary["bots"]:
            tag = new_tag()
            job = api.submit(submit_body(tag, conversation_id=bot["id"], start=START, end=END)).json()[
                "result"
            ]
            jobs.append((bot["id"], tag, job["requestId"]))
        requests.post(
            f"{emulator.root}/admin/run-jobs", params={"dataset": "uci-response-exhaust"}, timeout=300
        ).raise_for_status()
        for conversation, tag, request_id in jobs:
            (url,) = api.read(tag, request_id).json()["result"]["downloadUrls"]
            path = data / f"{conversation}.csv"
            path.write_bytes(requests.get(url, timeout=60).content)
            files.append((conversation, path))
    rows = [json.loads(line) for line in record.read_text(encoding="utf-8").splitlines()]
    return rows, files


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def warehouse_url(
    request: pytest.FixtureRequest, seeded, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A warehouse of each kind with every bot's exhaust loaded."""
    _, files = seeded

    def load(url: str) -> str:
        for conversation, path in files:
            load_exhaust(
                response_csv=path,
                private=None,
                warehouse_url=url,
                conversation_id=conversation,
                from_date=START,
                to_date=END,
            )
        return url

    if request.param == "sqlite":
        yield load(f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'warehouse.db'}")
    else:
        with postgres_database() as url:
            yield load(url)


def view(url: str, suffix: str) -> list[dict[str, Any]]:
    """Every row of ``<table><suffix>``, by column name."""
    with open_warehouse(url) as warehouse:
        cursor = warehouse._conn.cursor()
        try:
            cursor.execute(f'SELECT * FROM "{TABLE}{suffix}"')
            names = [item[0] for item in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        finally:
            cursor.close()


def moment(value: Any) -> datetime:
    """A timestamp as the record or a warehouse gives it (PostgreSQL: ``datetime``; SQLite: ISO text)."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(value.replace("Z", "+00:00"))


def ist_day(stamp: str) -> str:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(IST).date().isoformat()


def test_daily_devices_answers_and_new_devices(seeded, warehouse_url: str) -> None:
    record, _ = seeded
    devices, answers, first = defaultdict(set), defaultdict(int), {}
    for row in record:
        key = (row["conversation_id"], ist_day(row["timestamp"]))
        devices[key].add(row["device_id"])
        answers[key] += 1
        who = (row["conversation_id"], row["device_id"])
        first[who] = min(first.get(who, key[1]), key[1])
    new = defaultdict(int)
    for (conversation, _), day in first.items():
        new[(conversation, day)] += 1
    expected = {key: (len(devices[key]), answers[key], new[key]) for key in answers}
    got = {
        (row["conversation_id"], str(row["sync_date"])): (row["devices"], row["answers"], row["new_devices"])
        for row in view(warehouse_url, "_daily")
    }
    assert got == expected
    assert len({day for _, day in got}) == DAYS and sum(value[2] for value in got.values()) > len(got)


def test_question_stats_in_conversation_order(seeded, warehouse_url: str) -> None:
    record, _ = seeded
    stats: dict[tuple[str, str], dict[str, Any]] = {}
    for row in record:
        item = stats.setdefault(
            (row["conversation_id"], row["question_id"]),
            {
                "title": row["title"].strip(),
                "type": row["question_type"],
                "x_path": row["x_path"],
                "devices": set(),
                "answers": 0,
                "withheld": 0,
                "first": moment(row["timestamp"]),
                "durations": [],
            },
        )
        item["first"] = min(item["first"], moment(row["timestamp"]))
        item["durations"].append(row["duration"])
        item["devices"].add(row["device_id"])
        item["answers"] += 1
        item["withheld"] += 0 if row["consent"] else 1
    order = defaultdict(list)
    for (conversation, question), item in stats.items():
        order[conversation].append((item["first"], question, item["x_path"]))
    position = {
        (conversation, question): number
        for conversation, items in order.items()
        for number, (_, question, _) in enumerate(sorted(items), start=1)
    }
    expected = {
        key: (
            item["title"],
            item["type"],
            position[key],
            len(item["devices"]),
            item["answers"],
            item["withheld"],
            pytest.approx(median(item["durations"])),
        )
        for key, item in stats.items()
    }
    got = {
        (row["conversation_id"], row["question_id"]): (
            row["question_title"],
            row["question_type"],
            row["position"],
            row["devices"],
            row["answers"],
            row["withheld"],
            row["median_duration"],
        )
        for row in view(warehouse_url, "_question_stats")
    }
    assert got == expected
    assert any(item["withheld"] for item in stats.values()), "the seed has answers without consent"
    by_text = {
        conversation: [question for _, question, _ in sorted(items, key=lambda item: item[2])]
        for conversation, items in order.items()
    }
    by_time = {
        conversation: [question for _, question, _ in sorted(items)] for conversation, items in order.items()
    }
    assert by_text != by_time, (
        "the seed's questions are first answered in an order their X Paths do not sort in"
    )


def test_sessions_and_completion(seeded, warehouse_url: str) -> None:
    record, _ = seeded
    sessions: dict[tuple[str, str], dict[str, Any]] = {}
    for row in record:
        item = sessions.setdefault(
            (row["conversation_id"], row["session_id"]),
            {"device": row["device_id"], "questions": set(), "answers": 0, "end": False, "stamps": []},
        )
        item["questions"].add(row["question_id"])
        item["answers"] += 1
        item["end"] = item["end"] or row["eof"] == "true"
        item["stamps"].append(datetime.fromisoformat(row["timestamp"].replace("Z", "+00:00")))
    expected = {
        key: (
            item["device"],
            len(item["questions"]),
            item["answers"],
            item["end"],
            min(item["stamps"]),
            max(item["stamps"]),
        )
        for key, item in sessions.items()
    }

    got = {
        (row["conversation_id"], row["session_id"]): (
            row["device_id"],
            row["questions_answered"],
            row["answers"],
            bool(row["reached_end"]),
            moment(row["started_at"]),
            moment(row["ended_at"]),
        )
        for row in view(warehouse_url, "_sessions")
    }
    assert got == expected
    completion = defaultdict(lambda: [0, 0])
    for (conversation, _), item in sessions.items():
        completion[conversation][0] += 1
        completion[conversation][1] += item["end"]
    got_completion = {
        row["conversation_id"]: (row["sessions"], row["completed"], row["completion_rate"])
        for row in view(warehouse_url, "_completion")
    }
    assert all(row["median_duration"] > 0 for row in view(warehouse_url, "_question_stats")), (
        "answers take time"
    )
    assert got_completion == {
        bot: (total, done, pytest.approx(done / total)) for bot, (total, done) in completion.items()
    }
    assert 0 < sum(done for _, done in completion.values()) < sum(total for total, _ in completion.values())


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_median_duration_of_odd_and_even_counts_and_without_durations(backend: str, tmp_path: Path) -> None:
    def answers(question: str, durations: list[int | None]) -> list[tuple[Any, ...]]:
        return [
            (
                "bot",
                f"{question}-{index}",
                f"device-{index}",
                question,
                "Bot",
                None,
                "ftp",
                question,
                "",
                duration,
                1,
                1,
                "[]",
                "[]",
                None,
                None,
                f"2026-01-10T0{index}:00:00.000Z",
                f"2026-01-10T0{index}:00:00.000Z",
                None,
                None,
            )
            for index, duration in enumerate(durations)
        ]

    rows = answers("odd", [7, 1, 3]) + answers("even", [10, 1, 3, 2]) + answers("none", [None, None])

    def check(url: str) -> None:
        with open_warehouse(url) as warehouse:
            warehouse.load(
                table=TABLE,
                conversation_id="bot",
                from_date="2026-01-10",
                to_date="2026-01-10",
                responses=response_batches(rows),
                users=user_table([]),
                audit={},
            )
        got = {row["question_id"]: row["median_duration"] for row in view(url, "_question_stats")}
        assert got == {"odd": 3.0, "even": 2.5, "none": None}

    if backend == "sqlite":
        check(f"sqlite:///{tmp_path / 'warehouse.db'}")
    else:
        with postgres_database() as url:
            check(url)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_real_bot_s_questions_in_the_order_its_people_answered_them(backend: str, tmp_path: Path) -> None:
    """The mentor-feedback bot asks ``enter_details``, then ``feedback``, then ``end_note``: its X Paths
    as text would put ``end_note`` first. Expected here: each question's first answer, by the file's
    ``Timestamp``, read with the Spark reader of ``test_frames``."""
    from tests.analytics.test_frames import FIXTURES, spark_records

    path = FIXTURES / "response-exhaust-2022-06-24-mentor-feedback.csv"
    header, *records = spark_records(path.read_text(encoding="utf-8"))
    first: dict[str, tuple[str, str]] = {}
    for values in records:
        row = dict(zip(header, values, strict=True))
        seen = first.get(row["Question Id"])
        if seen is None or row["Timestamp"] < seen[0]:
            first[row["Question Id"]] = (row["Timestamp"], row["X Path"])
    expected = [first[question][1] for question in sorted(first, key=lambda question: first[question])]
    assert expected[0].startswith("question./data/enter_details[1]/") and expected[-1].endswith(
        "/end_note[1]/submit[1]"
    )
    assert sorted(expected) != expected, "X Path as text is not the conversation's order"

    def check(url: str) -> None:
        load_exhaust(response_csv=path, private=None, warehouse_url=url)
        stats = sorted(view(url, "_question_stats"), key=lambda row: row["position"])
        assert [row["x_path"] for row in stats] == expected
        assert [row["position"] for row in stats] == list(range(1, len(expected) + 1))
        funnel = sorted(view(url, "_funnel"), key=lambda row: row["position"])
        assert [(row["question_id"], row["position"]) for row in funnel] == [
            (row["question_id"], row["position"]) for row in stats
        ]

    if backend == "sqlite":
        check(f"sqlite:///{tmp_path / 'warehouse.db'}")
    else:
        with postgres_database() as url:
            check(url)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_load_replaces_a_view_an_earlier_version_made_and_keeps_the_current_ones(
    backend: str, tmp_path: Path
) -> None:
    from airflow_provider_uci.exhaust.warehouse.views import create_views, fingerprint, view_ddl, view_names

    path = (
        Path(__file__).resolve().parent.parent
        / "fixtures"
        / "sunbird"
        / "response-exhaust-2022-06-sample.csv"
    )

    def definitions(url: str) -> dict[str, str]:
        with open_warehouse(url) as warehouse:
            if backend == "sqlite":
                return dict(warehouse._query("SELECT name, sql FROM sqlite_master WHERE type = 'view'"))
            return dict(
                warehouse._query(
                    "SELECT c.relname, obj_description(c.oid, 'pg_class') FROM pg_class AS c "
                    "WHERE c.relkind = 'v' AND c.relnamespace = current_schema()::regnamespace"
                )
            )

    def check(url: str) -> None:
        load_exhaust(response_csv=path, private=None, warehouse_url=url)
        names = view_names(TABLE)
        current = definitions(url)
        wanted = view_ddl(TABLE, backend)
        assert current == dict(
            zip(names, wanted if backend == "sqlite" else map(fingerprint, wanted), strict=True)
        )
        stale = f'"{TABLE}_question_stats"'
        with open_warehouse(url) as warehouse:  # as an earlier version left it: other text, no fingerprint
            warehouse._begin()
            warehouse._execute(f"DROP VIEW {stale}")
            warehouse._execute(f'CREATE VIEW {stale} AS SELECT conversation_id, 0 AS position FROM "{TABLE}"')
            warehouse._commit()
            warehouse._begin()
            create_views(warehouse, TABLE)
            warehouse._commit()
        assert definitions(url) == current
        positions = sorted(row["position"] for row in view(url, "_question_stats"))
        assert positions == list(range(1, len(positions) + 1)) and len(positions) > 5
        if backend == "postgres":  # an old view that a view of the user's reads is kept, and the load goes on
            with open_warehouse(url) as warehouse:
                warehouse._begin()
                warehouse._execute(f"DROP VIEW {stale}")
                warehouse._execute(
                    f'CREATE VIEW {stale} AS SELECT conversation_id, 0 AS position FROM "{TABLE}"'
                )
                warehouse._execute(f'CREATE VIEW "mine" AS SELECT position FROM {stale}')
                warehouse._commit()
            assert load_exhaust(response_csv=path, private=None, warehouse_url=url).responses_loaded > 0
            assert definitions(url)[f"{TABLE}_question_stats"] is None
            assert {row["position"] for row in view(url, "_question_stats")} == {0}
            assert definitions(url)[f"{TABLE}_daily"] == current[f"{TABLE}_daily"]

    if backend == "sqlite":
        check(f"sqlite:///{tmp_path / 'warehouse.db'}")
    else:
        with postgres_database() as url:
            check(url)
