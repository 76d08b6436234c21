"""The views of how sessions went (``_funnel``, ``_answer_shares``, ``_completion``'s times to complete)
hold what plain Python computes from the warehouse's own rows.

The warehouse is the one ``test_views`` seeds and loads (SQLite and PostgreSQL): sessions that stop at
each step, answers that take seconds, consent withheld for a few. Expected values are computed here
from a plain ``SELECT`` of the loaded rows, not from the views' SQL.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_uci.exhaust.warehouse import open_warehouse
from tests.analytics.test_views import TABLE, moment, seeded, view, warehouse_url  # noqa: F401 - fixtures
from tests.support.batches import response_batches, user_table
from tests.support.services import postgres_database

Session = tuple[str, str]


def loaded_rows(url: str) -> list[dict[str, Any]]:
    """Every answer in the table, with the columns the views read."""
    names = (
        "conversation_id",
        "message_id",
        "session_id",
        "device_id",
        "question_id",
        "question_response",
        "eof",
        "event_timestamp",
        "at_timestamp",
        "sync_date",
    )
    with open_warehouse(url) as warehouse:
        rows = warehouse._query(f'SELECT {", ".join(names)} FROM "{TABLE}"', ())
    result = []
    for values in rows:
        row = dict(zip(names, values, strict=True))
        stamp = row["event_timestamp"] or row["at_timestamp"]
        row["moment"] = None if stamp is None else moment(stamp)
        row["eof"] = bool(row["eof"])
        row["session"] = (
            row["conversation_id"],
            row["session_id"] or f"{row['device_id']}/{row['sync_date']}",
        )
        result.append(row)
    return result


def positions(rows: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    """Each bot's questions placed by first answer, then by id (bytes), unanswered-in-time last."""
    first: dict[tuple[str, str], datetime | None] = {}
    for row in rows:
        key = (row["conversation_id"], row["question_id"])
        seen = first.get(key, row["moment"])
        first[key] = min(seen, row["moment"]) if seen and row["moment"] else seen or row["moment"]
    order = defaultdict(list)
    for (bot, question), seen in first.items():
        order[bot].append((seen is None, seen or datetime.min, question.encode(), question))
    return {
        (bot, item[3]): number for bot, items in order.items() for number, item in enumerate(sorted(items), 1)
    }


def percentile(values: list[float], fraction: float) -> float | None:
    """PostgreSQL's ``percentile_cont``: linear between the two rows either side of ``(n - 1) * fraction``."""
    if not values:
        return None
    values = sorted(values)
    at = (len(values) - 1) * fraction
    low = math.floor(at)
    high = min(low + 1, len(values) - 1)
    return values[low] + (at - low) * (values[high] - values[low])


def test_the_funnel_counts_sessions_reaching_answering_and_stopping_at_each_question(
    seeded, warehouse_url: str
) -> None:
    rows = loaded_rows(warehouse_url)
    place = positions(rows)
    answered: dict[Session, set[str]] = defaultdict(set)
    ended: dict[Session, bool] = defaultdict(bool)
    for row in rows:
        answered[row["session"]].add(row["question_id"])
        ended[row["session"]] |= row["eof"]
    last = {
        session: max(place[(session[0], question)] for question in questions)
        for session, questions in answered.items()
    }
    expected = {}
    for (bot, question), position in place.items():
        mine = [session for session in answered if session[0] == bot]
        expected[(bot, question)] = (
            position,
            sum(1 for session in mine if last[session] >= position),
            sum(1 for session in mine if question in answered[session]),
            sum(1 for session in mine if not ended[session] and last[session] == position),
        )
    got = {
        (row["conversation_id"], row["question_id"]): (
            row["position"],
            row["sessions_reached"],
            row["sessions_answered"],
            row["sessions_stopped_here"],
        )
        for row in view(warehouse_url, "_funnel")
    }
    assert got == expected
    for bot in {bot for bot, _ in got}:
        steps = sorted(value for (owner, _), value in got.items() if owner == bot)
        reached = [step[1] for step in steps]
        assert reached == sorted(reached, reverse=True), "reached falls (or holds) step by step"
        assert reached[0] > reached[-1], f"{bot}: some sessions stop before the end"
        assert sum(step[3] for step in steps[:-1]) > 0, "sessions stop at steps before the last"
    assert sum(value[3] for value in got.values()) == sum(1 for session in answered if not ended[session])


def test_answer_shares_are_of_each_session_s_last_answer(seeded, warehouse_url: str) -> None:
    rows = loaded_rows(warehouse_url)
    latest: dict[tuple[Session, str], tuple[datetime, bytes, str | None]] = {}
    for row in rows:
        key = (row["session"], row["question_id"])
        candidate = (row["moment"], row["message_id"].encode(), row["question_response"])
        if key not in latest or candidate[:2] > latest[key][:2]:
            latest[key] = candidate
    counts: dict[tuple[str, str, str | None], int] = defaultdict(int)
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for (session, question), (_, _, answer) in latest.items():
        counts[(session[0], question, answer)] += 1
        totals[(session[0], question)] += 1
    got = {
        (row["conversation_id"], row["question_id"], row["answer"]): (row["sessions"], row["share"])
        for row in view(warehouse_url, "_answer_shares")
    }
    assert got == {key: (n, pytest.approx(n / totals[key[:2]])) for key, n in counts.items()}
    for question in totals:
        assert sum(
            share for (bot, asked, _), (_, share) in got.items() if (bot, asked) == question
        ) == pytest.approx(1.0)
    assert any(answer == "" for _, _, answer in got), "withheld answers are a value of their own"


def test_time_to_complete_is_from_a_session_s_first_answer_to_its_end(seeded, warehouse_url: str) -> None:
    rows = loaded_rows(warehouse_url)
    started: dict[Session, datetime] = {}
    finished: dict[Session, datetime] = {}
    for row in rows:
        session = row["session"]
        started[session] = min(started.get(session, row["moment"]), row["moment"])
        if row["eof"]:
            finished[session] = min(finished.get(session, row["moment"]), row["moment"])
    seconds = defaultdict(list)
    for session, end in finished.items():
        seconds[session[0]].append(round((end - started[session]).total_seconds(), 3))
    got = {
        row["conversation_id"]: (row["median_seconds_to_complete"], row["p90_seconds_to_complete"])
        for row in view(warehouse_url, "_completion")
    }
    assert got == {
        bot: (
            pytest.approx(percentile(seconds[bot], 0.5), abs=1e-6),
            pytest.approx(percentile(seconds[bot], 0.9), abs=1e-6),
        )
        for bot in got
    }
    assert all(60 < median < 900 for median, _ in got.values()), "sessions take minutes"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_known_sessions_give_known_funnel_shares_and_times(backend: str, tmp_path: Path) -> None:
    """Three sessions by hand: one finishes in 90 s, one stops after the first question, one finishes
    in 30 s after changing its answer; and a session-less vintage's answers grouped by device and day."""

    def answer(
        message: str, session: str | None, device: str, question: str, response: str, second: int, eof: bool
    ) -> tuple[Any, ...]:
        stamp = f"2026-01-10T04:{second // 60:02d}:{second % 60:02d}.000Z"
        return (
            "bot",
            message,
            device,
            question,
            "Bot",
            session,
            "mcq",
            question,
            "",
            5,
            1,
            1,
            "[]",
            response,
            None,
            eof,
            stamp,
            stamp,
            None,
            None,
        )

    rows = [
        answer("m1", "s1", "d1", "q1", "A", 0, False),
        answer("m2", "s1", "d1", "q2", "Y", 90, True),
        answer("m3", "s2", "d2", "q1", "B", 10, False),
        answer("m4", "s3", "d3", "q1", "B", 20, False),
        answer("m5", "s3", "d3", "q1", "A", 30, False),
        answer("m6", "s3", "d3", "q2", "", 50, True),
        answer("m7", None, "d4", "q1", "A", 100, False),
        answer("m8", None, "d4", "q2", "Y", 200, True),
    ]

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
        funnel = {
            row["question_id"]: (
                row["position"],
                row["sessions_reached"],
                row["sessions_answered"],
                row["sessions_stopped_here"],
            )
            for row in view(url, "_funnel")
        }
        assert funnel == {"q1": (1, 4, 4, 1), "q2": (2, 3, 3, 0)}
        shares = {
            (row["question_id"], row["answer"]): (row["sessions"], row["share"])
            for row in view(url, "_answer_shares")
        }
        assert shares == {
            ("q1", "A"): (3, 0.75),
            ("q1", "B"): (1, 0.25),
            ("q2", "Y"): (2, pytest.approx(2 / 3)),
            ("q2", ""): (1, pytest.approx(1 / 3)),
        }
        (completion,) = view(url, "_completion")
        assert (completion["sessions"], completion["completed"]) == (4, 3)
        assert completion["median_seconds_to_complete"] == pytest.approx(90.0)  # of 30, 90, 100
        assert completion["p90_seconds_to_complete"] == pytest.approx(98.0)

    if backend == "sqlite":
        check(f"sqlite:///{tmp_path / 'warehouse.db'}")
    else:
        with postgres_database() as url:
            check(url)
