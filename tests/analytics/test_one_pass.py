"""On SQLite the report reads its figures in one sorted pass over the rows (``analytics.one_pass``) instead
of running the views' queries (a sort of every row each): both must give the same rows, to the last digit,
for the fleet, one bot and ranges of days.

The warehouse holds the seeded bots of ``test_views`` (drop-off, timings, consent withheld, the Spark
dialect's edge cases) and a bot written by hand with what the views decide by rule: session-less answers
(device and sync day), a changed answer, two answers at the same moment (the Message ID decides), an end
without a timestamp, a question never timed, timestamps with a zone offset and without milliseconds, no
durations.
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_uci.analytics import figures, one_pass
from airflow_provider_uci.exhaust.load import load_exhaust
from airflow_provider_uci.exhaust.warehouse import open_warehouse
from airflow_provider_uci.exhaust.warehouse.views import Scope
from tests.analytics.test_views import END, START, TABLE, seeded  # noqa: F401 - fixtures
from tests.support.batches import response_batches, user_table

HAND_BOT = "hand-bot"


def hand_rows() -> list[tuple[Any, ...]]:
    def answer(
        message: str,
        session: str | None,
        device: str,
        question: str,
        response: str,
        stamp: str | None,
        eof: bool | None = False,
        duration: int | None = 5,
    ) -> tuple[Any, ...]:
        return (
            HAND_BOT,
            message,
            device,
            question,
            "Hand bot",
            session,
            "mcq",
            f"Title {question}",
            "",
            duration,
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

    return [
        answer("m01", "s1", "d1", "q1", "A", "2026-01-11T04:00:00.000Z", duration=3),
        answer("m02", "s1", "d1", "q2", "X", "2026-01-11T04:01:30.250Z", True, duration=8),
        answer("m03", "s1", "d1", "q2", "Y", "2026-01-11T04:01:30.250Z", True, duration=None),
        answer("m04", "s2", "d2", "q1", "B", "2026-01-11T09:40:00+05:30"),
        answer("m05", "s3", "d3", "q1", "B", "2026-01-11T04:10:00Z", duration=1),
        answer("m06", "s3", "d3", "q1", "A", "2026-01-11T04:10:20Z", duration=2),
        answer("m07", "s3", "d3", "q2", "", "2026-01-11T04:12:00.999Z", True, duration=7),
        answer("m08", None, "d4", "q1", "A", "2026-01-11T05:00:00.000Z", duration=None),
        answer("m09", None, "d4", "q2", "Y", "2026-01-11T05:03:00.000Z", True, duration=None),
        answer("m10", None, "d4", "q1", "B", "2026-01-12T05:00:00.000Z", duration=4),
        answer("m11", "s5", "d5", "q1", "A", "2026-01-12T06:00:00.000Z"),
        answer("m12", "s5", "d5", "q3", "Z", None, True),
        answer("m13", "s6", "d1", "q3", "Z", None, None),
    ]


@pytest.fixture(scope="module")
def sqlite_url(seeded, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite warehouse with the seeded bots and the bot written by hand."""
    _, files = seeded
    url = f"sqlite:///{tmp_path_factory.mktemp('one-pass') / 'warehouse.db'}"
    for conversation, path in files:
        load_exhaust(
            response_csv=path,
            private=None,
            warehouse_url=url,
            conversation_id=conversation,
            from_date=START,
            to_date=END,
        )
    with open_warehouse(url) as warehouse:
        warehouse.load(
            table=TABLE,
            conversation_id=HAND_BOT,
            from_date="2026-01-11",
            to_date="2026-01-12",
            responses=response_batches(hand_rows(), single_day="2026-01-12"),
            users=user_table([]),
            audit={},
        )
    return url


@pytest.mark.parametrize(
    ("bot", "from_date", "to_date"),
    [
        (None, None, None),
        ("seeded", None, None),
        (HAND_BOT, None, None),
        (None, "2026-01-11", "2026-01-12"),
        ("seeded", "2026-01-12", None),
        (HAND_BOT, None, "2026-01-11"),
    ],
    ids=[
        "fleet",
        "a seeded bot",
        "the hand bot",
        "the fleet's range",
        "a bot from a day",
        "the hand bot to a day",
    ],
)
def test_one_pass_gives_the_rows_the_views_queries_give(
    seeded,
    sqlite_url: str,
    bot: str | None,
    from_date: str | None,
    to_date: str | None,
) -> None:
    _, files = seeded
    scope = Scope(files[0][0] if bot == "seeded" else bot, from_date, to_date)
    with open_warehouse(sqlite_url) as warehouse:
        fast = one_pass.fleet_rows(warehouse, TABLE, scope)
        slow = figures._view_rows(figures._Reader(warehouse, TABLE, scope))
    assert fast.people == slow.people > 0
    for name in one_pass.FleetRows._fields:
        if name != "people":
            got, expected = getattr(fast, name), getattr(slow, name)
            assert sorted(got, key=repr) == sorted(expected, key=repr), name
            assert got, f"{name}: rows to compare"
    timed = [row for row in fast.completion if row[4] is not None]
    assert timed and all(isinstance(row[4], float) for row in timed)
    if bot == HAND_BOT and to_date is None:
        funnel = {row[1]: row[2:] for row in fast.funnel}
        assert funnel == {"q1": (1, 7, 6, 2), "q2": (2, 5, 3, 0), "q3": (3, 2, 2, 1)}
        shares = {row[1:4] for row in fast.answer_shares}
        assert ("q2", "Y", 2) in shares and ("q1", "A", 4) in shares


def test_a_range_s_new_devices_are_those_first_seen_that_day(sqlite_url: str) -> None:
    """A device that answered before the range is not new in it (its first day of any day counts)."""
    with open_warehouse(sqlite_url) as warehouse:
        daily = one_pass.fleet_rows(warehouse, TABLE, Scope(HAND_BOT, "2026-01-12")).daily
    assert daily == [(HAND_BOT, "2026-01-12", 3, 4, 1)]  # d1 and d4 first answered on the 11th, d5 new


def test_a_range_without_answers_gives_no_rows(sqlite_url: str) -> None:
    with open_warehouse(sqlite_url) as warehouse:
        rows = one_pass.fleet_rows(warehouse, TABLE, Scope(None, "2030-01-01"))
    assert rows == one_pass.FleetRows([], 0, [], [], [], [], [])
