"""The warehouse loader against a real SQLite file and a real PostgreSQL database.

Every behaviour is checked on both backends: values come back as they went in (null apart from the
empty string, any text byte for byte), a load replaces the bot's rows of the sync days it covers (so
a rerun gives the same table and overlapping ranges leave each row once), and a load that fails
anywhere leaves every table exactly as it was.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from airflow_provider_uci.exhaust.records import RESPONSE_TABLE_COLUMNS, UserRecord
from airflow_provider_uci.exhaust.warehouse import (
    LoadResult,
    Warehouse,
    open_warehouse,
    redact_url,
    warehouse_url_from_parts,
)
from tests.support.batches import response_batches, user_table
from tests.support.services import postgres_database
from tests.support.warehouse import fetch_normalised

BOT = "d655cf03-1f6f-4510-acf6-d3f51b488a5e"
AUDIT = {"response_request_id": "RESP-1", "private_request_id": "PRIV-1", "rejected": 0}
TRICKY_TEXT = [
    "",
    "हाँ, मैं ठीक हूँ",
    "👍🏽 done 🎉",
    "line one\nline two\r\nline three\rend",
    '[{"ans1":"a\\nb \\"q\\""}]',
    'say "hi", then leave',
    "C:\\Users\\x\\",
    "\\.",
    "\\.\nafter the end-of-data marker",
    "before\n\\.\nafter, the marker alone on a line",
    "\\N",
    "NULL",
    " leading and trailing spaces ",
    "tab\there",
]


def synced(day: int) -> str:
    """A sync timestamp on 2022-06-<day> IST (the evening of that day, UTC)."""
    return f"2022-06-{day:02d}T14:46:01.003Z"


def response(number: int, **changes: Any) -> tuple[Any, ...]:
    """A response row in RESPONSE_TABLE_COLUMNS order, keyed by ``number``, synced on 2022-06-21."""
    values = {
        "conversation_id": BOT,
        "message_id": f"msg-{number:07d}",
        "device_id": f"device-{number % 7}",
        "question_id": f"q{number % 3}",
        "conversation_name": "Global Tara Bot",
        "session_id": None,
        "question_type": "SINGLE_SELECT",
        "question_title": "How are you?",
        "question_description": None,
        "question_duration": number,
        "question_score": 1,
        "question_max_score": 1,
        "question_options": '[{"1":{"text":"1 Yes"}}]',
        "question_response": '[{"1":{"text":"1 Yes"}}]',
        "x_path": "/q",
        "eof": number % 2 == 0,
        "event_timestamp": "2022-06-21T14:45:56.892Z",
        "at_timestamp": "2022-06-21T14:46:01.003Z",
        "user_phone": None,
        "user_encrypted_device_id": None,
    }
    unknown = set(changes) - set(values)
    assert not unknown, unknown
    values.update(changes)
    return tuple(values[column] for column in RESPONSE_TABLE_COLUMNS)


def user(number: int, **changes: Any) -> UserRecord:
    record = UserRecord(
        BOT, f"device-{number}", "Global Tara Bot", f"+91900000000{number}", f"enc-{number}", True
    )
    return record._replace(**changes)


def load(
    warehouse: Warehouse,
    rows: Any,
    users: Any = (),
    table: str = "answers",
    days: tuple[str, str] = ("2022-06-01", "2022-06-30"),
    **extra: Any,
) -> LoadResult:
    return warehouse.load(
        table=table,
        conversation_id=BOT,
        from_date=days[0],
        to_date=days[1],
        responses=response_batches(rows, days[0] if days[0] == days[1] else None),
        users=user_table(users),
        audit=extra.pop("audit", AUDIT),
        **extra,
    )


def column(rows: list[tuple[Any, ...]], name: str) -> list[Any]:
    at = RESPONSE_TABLE_COLUMNS.index(name)
    return [row[at] for row in rows]


def state(warehouse: Warehouse, table: str = "answers") -> tuple[Any, ...]:
    return fetch_normalised(warehouse, table), warehouse.fetch_users(table), warehouse.loads(table)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    if request.param == "sqlite":
        with open_warehouse(f"sqlite:///{tmp_path}/warehouse.db") as opened:
            yield opened
    else:
        with postgres_database() as url, open_warehouse(url) as opened:
            yield opened


def test_null_and_empty_string_stay_apart(warehouse: Warehouse) -> None:
    rows = [
        response(1, question_response="", question_title=""),
        response(
            2,
            question_response=None,
            question_title=None,
            question_duration=None,
            eof=None,
            event_timestamp=None,
            at_timestamp=None,
        ),
    ]
    load(
        warehouse, rows, days=("2022-06-21", "2022-06-21")
    )  # a row with no timestamp is of the load's one day

    fetched = fetch_normalised(warehouse, "answers")
    assert column(fetched, "question_response") == ["", None]
    assert column(fetched, "question_title") == ["", None]
    assert column(fetched, "question_duration") == [1, None]
    assert column(fetched, "eof") == [False, None]
    assert column(fetched, "event_timestamp") == ["2022-06-21T14:45:56.892Z", None]


def test_text_survives_byte_for_byte(warehouse: Warehouse) -> None:
    rows = [
        response(number, question_response=text, question_title=text, user_phone=text)
        for number, text in enumerate(TRICKY_TEXT)
    ]
    load(warehouse, rows)

    fetched = warehouse.fetch("answers")
    assert column(fetched, "question_response") == TRICKY_TEXT
    assert column(fetched, "question_title") == TRICKY_TEXT
    assert column(fetched, "user_phone") == TRICKY_TEXT


def test_values_are_typed_and_timestamps_normalise_alike(warehouse: Warehouse) -> None:
    load(
        warehouse,
        [
            response(
                1,
                eof=True,
                question_score=-3,
                question_max_score=2**40,
                event_timestamp="2022-06-21T20:15:56.892+05:30",
                at_timestamp="2022-06-21T14:46:01Z",
            )
        ],
    )

    (row,) = fetch_normalised(warehouse, "answers")
    values = dict(zip(RESPONSE_TABLE_COLUMNS, row, strict=True))
    assert values["eof"] is True
    assert (values["question_score"], values["question_max_score"]) == (-3, 2**40)
    assert values["event_timestamp"] == "2022-06-21T14:45:56.892Z"
    assert values["at_timestamp"] == "2022-06-21T14:46:01.000Z"


def test_loading_the_same_rows_twice_gives_the_same_table(warehouse: Warehouse) -> None:
    rows = [response(number) for number in range(1, 101)]
    users = [user(number) for number in range(5)]
    assert load(warehouse, rows, users) == LoadResult(responses=100, users=5, replaced=0)
    first = fetch_normalised(warehouse, "answers"), warehouse.fetch_users("answers")

    assert load(warehouse, rows, users) == LoadResult(responses=100, users=5, replaced=100)

    assert (fetch_normalised(warehouse, "answers"), warehouse.fetch_users("answers")) == first


def by_day(first: int, last: int) -> list[tuple[Any, ...]]:
    """Ten answers a day, synced on 2022-06-<first> to 2022-06-<last>."""
    return [
        response(day * 100 + number, at_timestamp=synced(day))
        for day in range(first, last + 1)
        for number in range(10)
    ]


def test_overlapping_ranges_leave_each_row_once(warehouse: Warehouse) -> None:
    assert load(warehouse, by_day(1, 10), days=("2022-06-01", "2022-06-10")) == LoadResult(100, 0, 0)
    # a backfill of days 6..15: days 6..10 are replaced, 11..15 are new, 1..5 stay
    assert load(warehouse, by_day(6, 15), days=("2022-06-06", "2022-06-15")) == LoadResult(100, 0, 50)

    fetched = fetch_normalised(warehouse, "answers")
    assert len(fetched) == warehouse.count("answers") == 150
    assert column(fetched, "message_id") == [
        f"msg-{day * 100 + n:07d}" for day in range(1, 16) for n in range(10)
    ]


def test_a_day_of_the_range_with_no_rows_is_emptied(warehouse: Warehouse) -> None:
    load(warehouse, by_day(1, 3), days=("2022-06-01", "2022-06-03"))
    # the service found nothing for day 2 this time (say the user was deleted): the table says so too
    result = load(warehouse, by_day(1, 1) + by_day(3, 3), days=("2022-06-01", "2022-06-03"))

    assert result == LoadResult(20, 0, 30)
    assert column(warehouse.fetch("answers"), "message_id") == [
        f"msg-{day * 100 + n:07d}" for day in (1, 3) for n in range(10)
    ]


def test_another_bot_and_days_outside_the_range_are_left_alone(warehouse: Warehouse) -> None:
    load(warehouse, by_day(1, 5), days=("2022-06-01", "2022-06-05"))
    warehouse.load(
        table="answers",
        conversation_id="other-bot",
        from_date="2022-06-03",
        to_date="2022-06-03",
        responses=response_batches([response(7, conversation_id="other-bot", at_timestamp=synced(3))]),
        users=user_table([]),
        audit={},
    )

    assert load(warehouse, by_day(3, 3), days=("2022-06-03", "2022-06-03")).replaced == 10
    assert warehouse.count("answers") == 51


def test_a_rerun_takes_the_new_values(warehouse: Warehouse) -> None:
    load(warehouse, [response(1), response(2)])
    load(
        warehouse,
        [
            response(1),
            response(2, question_response='[{"2":{"text":"2 No"}}]', eof=None, question_score=None),
        ],
    )

    fetched = fetch_normalised(warehouse, "answers")
    assert column(fetched, "question_response") == ['[{"1":{"text":"1 Yes"}}]', '[{"2":{"text":"2 No"}}]']
    assert column(fetched, "eof") == [False, None]
    assert column(fetched, "question_score") == [1, None]


def test_rows_are_kept_as_given_and_users_upserted_the_last_winning(warehouse: Warehouse) -> None:
    rows = [response(1, question_response="first"), response(2), response(1, question_response="again")]
    users = [user(1, phone="old"), user(1, phone="new")]

    assert load(warehouse, rows, users) == LoadResult(responses=3, users=1)

    assert sorted(column(warehouse.fetch("answers"), "question_response")) == [
        '[{"1":{"text":"1 Yes"}}]',
        "again",
        "first",
    ]
    assert [row[3] for row in warehouse.fetch_users("answers")] == ["new"]
    assert load(warehouse, rows, users) == LoadResult(responses=3, users=1, replaced=3)
    assert warehouse.count("answers") == 3


@pytest.mark.parametrize(
    ("row", "days", "message"),
    [
        (
            response(1, at_timestamp=synced(21)),
            ("2022-06-01", "2022-06-20"),
            "synced on 2022-06-21 is outside",
        ),
        (
            response(1, at_timestamp="2022-06-20T18:30:00Z"),
            ("2022-06-20", "2022-06-20"),
            "synced on 2022-06-21 is outside",
        ),  # 00:00 IST is the next day
        (
            response(1, at_timestamp=None, event_timestamp=None),
            ("2022-06-01", "2022-06-02"),
            "batch 1 has a row with no sync_date",
        ),
        (
            response(1, conversation_id="other-bot"),
            ("2022-06-01", "2022-06-30"),
            "batch 1 holds rows of a conversation other than the load's",
        ),
    ],
)
def test_a_row_the_load_may_not_write_fails_it(
    warehouse: Warehouse, row: tuple[Any, ...], days: tuple[str, str], message: str
) -> None:
    load(warehouse, by_day(20, 20), days=("2022-06-20", "2022-06-20"))
    before = state(warehouse)

    with pytest.raises(ValueError, match=message):
        load(warehouse, [response(2, at_timestamp=synced(int(days[0][-2:]))), row], days=days)

    assert state(warehouse) == before


def test_an_iterator_failing_midway_leaves_every_table_as_it_was(warehouse: Warehouse) -> None:
    load(warehouse, [response(number) for number in range(1, 11)], [user(1)])
    before = state(warehouse)

    def failing() -> Iterator[tuple[Any, ...]]:
        for number in range(1, 1001):
            yield response(number, question_response="changed")
        raise RuntimeError("the exhaust file is truncated")

    with pytest.raises(RuntimeError, match="truncated"):
        load(warehouse, failing(), [user(1, phone="changed"), user(2)])

    assert state(warehouse) == before
    assert len(warehouse.loads("answers")) == 1


def test_before_commit_raising_rolls_back(warehouse: Warehouse) -> None:
    load(warehouse, [response(1)])
    before = state(warehouse)
    calls = []

    def too_many_rejects() -> None:
        calls.append(warehouse.count("answers"))
        raise ValueError("too many rejects")

    with pytest.raises(ValueError, match="too many rejects"):
        load(
            warehouse,
            [response(1, question_title="changed"), response(2)],
            [user(1)],
            before_commit=too_many_rejects,
        )

    assert calls == [2]  # everything was written when it was called
    assert state(warehouse) == before


def test_before_commit_returning_commits_the_load(warehouse: Warehouse) -> None:
    seen = []
    result = load(
        warehouse,
        [response(1), response(2)],
        [user(1)],
        before_commit=lambda: seen.append((warehouse.count("answers"), len(warehouse.loads("answers")))),
    )

    assert seen == [(2, 1)]  # it reads the load's own writes, the audit row too (completed after it)
    assert result == LoadResult(2, 1)
    assert warehouse.count("answers") == 2 and len(warehouse.loads("answers")) == 1


def test_a_failed_first_load_creates_nothing(warehouse: Warehouse) -> None:
    with pytest.raises(ValueError, match="batch 2 has no column message_id, "):
        load(warehouse, [response(1), pa.RecordBatch.from_pydict({"conversation_id": [BOT]})], table="fresh")

    assert state(warehouse, "fresh") == ([], [], [])
    assert load(warehouse, [response(1)], table="fresh").responses == 1


@pytest.mark.parametrize(
    "table",
    [
        "",
        "1answers",
        "answers-2022",
        'answers"; DROP TABLE x; --',
        "a" * 49,
        "schema.answers",
        "ans wers",
        "résponses",
    ],
)
def test_a_bad_table_name_is_refused(warehouse: Warehouse, table: str) -> None:
    with pytest.raises(ValueError, match=r"^table: must be a plain identifier"):
        load(warehouse, [response(1)], table=table)
    with pytest.raises(ValueError, match=r"^table: must be a plain identifier"):
        warehouse.fetch(table)


@pytest.mark.parametrize(
    ("table", "rule"),
    [
        ("sqlite_master", "must not start with sqlite_ or pg_"),
        ("SQLITE_sequence", "must not start with sqlite_"),
        ("pg_class", "must not start with sqlite_ or pg_"),
        ("uci_responses_users", "'uci_responses''s _users"),
        ("uci_responses_loads", "'uci_responses''s _loads"),
        ("answers_bot_day", "'answers''s _bot_day"),
        ("answers_daily", "_daily"),
        ("answers_question_stats", "_question_stats"),
        ("answers_sessions", "_sessions"),
    ],
)
def test_a_table_named_like_a_database_table_or_another_tables_side_table_is_refused(
    warehouse: Warehouse, table: str, rule: str
) -> None:
    load(warehouse, [response(1)], [user(1)])
    before = state(warehouse)
    with pytest.raises(ValueError, match=f"^table: .*{re.escape(rule)}"):
        load(warehouse, [response(2)], [user(2)], table=table)
    assert state(warehouse) == before


def test_the_longest_names_and_reserved_words_are_tables(warehouse: Warehouse) -> None:
    for table in ("A" + "b" * 47, "order", "_"):
        assert load(warehouse, [response(1)], [user(1)], table=table) == LoadResult(1, 1)
        assert warehouse.count(table) == 1
        assert len(warehouse.loads(table)) == 1


def test_bad_audit_and_range_are_refused_before_anything_is_written(warehouse: Warehouse) -> None:
    with pytest.raises(ValueError, match="audit: unknown keys secret"):
        load(warehouse, [response(1)], audit={"secret": "x"})
    with pytest.raises(ValueError, match="audit: rejected"):
        load(warehouse, [response(1)], audit={"rejected": -1})
    with pytest.raises(ValueError, match="from_date: 2022-07-01 is after to_date"):
        warehouse.load(
            table="answers",
            conversation_id=BOT,
            from_date="2022-07-01",
            to_date="2022-06-30",
            responses=response_batches([response(1)]),
            users=user_table([]),
            audit={},
        )
    assert state(warehouse) == ([], [], [])


def test_users_are_upserted(warehouse: Warehouse) -> None:
    load(warehouse, [], [user(1), user(2, phone=None, consented=False)])
    load(warehouse, [], [user(2, phone="+919000000002", consented=True), user(3, encrypted_device_id=None)])

    assert warehouse.fetch_users("answers") == [
        (BOT, "device-1", "Global Tara Bot", "+919000000001", "enc-1", True),
        (BOT, "device-2", "Global Tara Bot", "+919000000002", "enc-2", True),
        (BOT, "device-3", "Global Tara Bot", "+919000000003", None, True),
    ]


def test_each_load_writes_an_audit_row(warehouse: Warehouse) -> None:
    started = datetime.now(timezone.utc)
    load(
        warehouse,
        [response(1), response(2), response(2)],
        [user(1)],
        audit={"response_request_id": "RESP-1", "private_request_id": "PRIV-1", "rejected": 4},
    )
    warehouse.load(
        table="answers",
        conversation_id="other-bot",
        from_date=date(2022, 7, 1),
        to_date=date(2022, 7, 1),
        responses=iter([]),
        users=user_table([]),
        audit={},
    )

    first, second = warehouse.loads("answers")
    assert {key: value for key, value in first.items() if key != "loaded_at"} == {
        "id": first["id"],
        "conversation_id": BOT,
        "from_date": "2022-06-01",
        "to_date": "2022-06-30",
        "response_request_id": "RESP-1",
        "private_request_id": "PRIV-1",
        "responses": 3,
        "users": 1,
        "replaced": 0,
        "rejected": 4,
    }
    assert (second["conversation_id"], second["from_date"], second["to_date"]) == (
        "other-bot",
        "2022-07-01",
        "2022-07-01",
    )
    assert (second["responses"], second["users"], second["rejected"], second["response_request_id"]) == (
        0,
        0,
        0,
        None,
    )
    assert second["id"] > first["id"]
    for entry in (first, second):
        assert entry["loaded_at"].utcoffset() == timedelta(0)
        assert started - timedelta(seconds=1) <= entry["loaded_at"] <= datetime.now(timezone.utc)


def test_rejects_counted_while_reading_reach_the_audit_row(warehouse: Warehouse) -> None:
    rejected = []

    def rows() -> Iterator[tuple[Any, ...]]:
        for number in range(10):
            if number % 3 == 0:
                rejected.append(number)  # as a reader hands a bad record to its rejects log
            else:
                yield response(number)

    warehouse.load(
        table="answers",
        conversation_id=BOT,
        from_date=None,
        to_date="",
        responses=response_batches(rows()),
        users=user_table([]),
        audit={"rejected": lambda: len(rejected)},
    )

    (entry,) = warehouse.loads("answers")
    assert (entry["responses"], entry["rejected"], entry["from_date"], entry["to_date"]) == (6, 4, None, None)


def test_a_large_load_streams_through(warehouse: Warehouse) -> None:
    template = list(response(0))
    at = RESPONSE_TABLE_COLUMNS.index("message_id")

    def rows() -> Iterator[tuple[Any, ...]]:
        for number in range(200_000):
            template[at] = f"msg-{number:07d}"
            yield tuple(template)

    assert load(warehouse, rows()).responses == 200_000
    assert warehouse.count("answers") == 200_000


@pytest.mark.postgres
def test_both_backends_hold_the_same_table(tmp_path: Path) -> None:
    rows = [response(number, question_response=text) for number, text in enumerate(TRICKY_TEXT)]
    rows += [
        response(number, device_id=device)
        for number, device in enumerate(["Zeta", "alpha", "ß", "Ärger", "_"])
    ]
    with (
        postgres_database() as url,
        open_warehouse(url) as postgres,
        open_warehouse(f"sqlite:///{tmp_path}/w.db") as sqlite,
    ):
        for warehouse in (postgres, sqlite):
            load(warehouse, rows, [user(1), user(2, consented=False, phone=None)])
        assert fetch_normalised(postgres, "answers") == fetch_normalised(sqlite, "answers")
        assert postgres.fetch_users("answers") == sqlite.fetch_users("answers")


def test_sqlite_urls_relative_and_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with open_warehouse("sqlite:///data/relative.db") as relative:
        load(relative, [response(1)])
    assert (tmp_path / "data" / "relative.db").is_file()

    absolute = tmp_path / "elsewhere" / "absolute.db"
    url = warehouse_url_from_parts("sqlite", str(absolute), None, None, None, None)
    assert url == f"sqlite:///{absolute}" and url.startswith("sqlite:////")
    with open_warehouse(url) as opened:
        load(opened, [response(1)])
        assert opened.count("answers") == 1
    relative_url = warehouse_url_from_parts("SQLite", "data/relative.db", None, None, None, None)
    assert relative_url == "sqlite:///data/relative.db"


@pytest.mark.parametrize(
    "url",
    [
        "mysql://admin:s3cr3t-pw@db/warehouse",
        "sqlite://",
        "sqlite:///",
        "sqlite://host/file.db",
        "file.db",
        "postgresqlx://admin:s3cr3t-pw@db/x",
    ],
)
def test_an_unknown_url_is_refused_without_its_password(url: str) -> None:
    with pytest.raises(ValueError, match=r"^warehouse: expected sqlite:///relative/path.db") as raised:
        open_warehouse(url)
    assert "s3cr3t-pw" not in str(raised.value)


def test_repr_hides_a_password_in_the_url_or_its_parameters(tmp_path: Path) -> None:
    assert redact_url("postgresql://ana:p@ss/w@db:5432/uci") == "postgresql://ana:***@db:5432/uci"
    assert (
        redact_url("postgres://db/uci?user=ana&password=s3cr3t&sslmode=require")
        == "postgres://db/uci?user=ana&password=***&sslmode=require"
    )
    assert redact_url("postgresql://ana@db:5432/uci") == "postgresql://ana@db:5432/uci"
    with open_warehouse(f"sqlite:///{tmp_path}/w.db") as opened:
        assert repr(opened) == f"<SqliteWarehouse sqlite:///{tmp_path}/w.db>"


def test_connection_parts_of_another_type_are_refused_without_the_password() -> None:
    with pytest.raises(
        ValueError, match=r"^conn_type: .*sqlite, postgres or postgresql, got 'mysql'"
    ) as raised:
        warehouse_url_from_parts("mysql", "db", "admin", "s3cr3t-pw", "warehouse", 3306)
    assert "s3cr3t-pw" not in str(raised.value)
    with pytest.raises(ValueError, match=r"^host: "):
        warehouse_url_from_parts("sqlite", "", None, None, None, None)
    with pytest.raises(ValueError, match=r"^port: expected a number") as raised:
        warehouse_url_from_parts("postgres", "db", "admin", "s3cr3t-pw", "warehouse", "54x")
    assert "s3cr3t-pw" not in str(raised.value)


def test_postgres_url_from_parts_quotes_every_part() -> None:
    url = warehouse_url_from_parts("postgres", "db.example", "ana@org", "p@ss:/w%rd", "uci data", "6432")
    assert url == "postgresql://ana%40org:p%40ss%3A%2Fw%25rd@db.example:6432/uci%20data"
    assert (
        warehouse_url_from_parts("postgresql", "::1", "postgres", None, "uci", 5432)
        == "postgresql://postgres@[::1]:5432/uci"
    )


@pytest.mark.postgres
def test_a_postgres_connection_opens_and_hides_its_password() -> None:
    with postgres_database() as url:
        database = url.rsplit("/", 1)[1]
        built = warehouse_url_from_parts("postgres", "127.0.0.1", "postgres", "p@ss:/w%rd", database, 5432)
        for candidate in (built, built.replace("postgresql://", "postgres://", 1)):
            with open_warehouse(candidate) as opened:  # trust authentication ignores the password
                assert "p@ss" not in repr(opened) and "w%rd" not in repr(opened) and "***" in repr(opened)
                assert load(opened, [response(1)]).responses == 1
