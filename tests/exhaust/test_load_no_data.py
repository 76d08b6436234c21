"""A load for a dataset the service answered ``No data found`` for: no file, and still one transaction.

``load_exhaust(response_csv=None)`` empties the bot's days of the range and records the load;
``private=None`` loads the responses with no user joined. Both on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from airflow_provider_uci.exhaust.load import LoadSummary, load_exhaust
from airflow_provider_uci.exhaust.records import RESPONSE_TABLE_COLUMNS, sync_day
from airflow_provider_uci.exhaust.warehouse import open_warehouse
from tests.exhaust.test_load import PAIRS, SUNBIRD, TABLE, TARA, TARA_BOT, expected_rows, state, warehouse_url

__all__ = ["warehouse_url"]  # the fixture: SQLite, and PostgreSQL

APRIL = PAIRS[0]  # one bot over two sync days: 2022-03-09 (8 rows) and 2022-03-16 (5 rows)
APRIL_BOT = "c5629c27-7416-453c-b79e-43d781cc7d36"
SCRIPT = Path(sys.executable).with_name("uci-exhaust")
AT, EVENT = RESPONSE_TABLE_COLUMNS.index("at_timestamp"), RESPONSE_TABLE_COLUMNS.index("event_timestamp")


def days_of(url: str, bot: str) -> Counter[str]:
    with open_warehouse(url) as warehouse:
        rows = warehouse.fetch(TABLE)
    return Counter(sync_day(str(row[AT]), str(row[EVENT])) for row in rows if row[0] == bot)


def seed(url: str) -> None:
    """Two bots: April's over its two days (no private exhaust), Tara's with its users."""
    load_exhaust(
        response_csv=SUNBIRD / APRIL.response,
        private=None,
        warehouse_url=url,
        from_date="2022-03-09",
        to_date="2022-03-16",
    )
    load_exhaust(response_csv=SUNBIRD / TARA.response, private=SUNBIRD / TARA.private, warehouse_url=url)
    assert days_of(url, APRIL_BOT) == {"2022-03-09": 8, "2022-03-16": 5}


def test_no_response_exhaust_empties_the_bots_days_of_the_range_and_records_the_load(
    warehouse_url: str,
) -> None:
    seed(warehouse_url)
    responses, users, _ = state(warehouse_url)
    tara_rows = [row for row in responses if row[0] == TARA_BOT]

    summary = load_exhaust(
        response_csv=None,
        private=None,
        warehouse_url=warehouse_url,
        conversation_id=APRIL_BOT,
        from_date="2022-03-08",
        to_date="2022-03-10",
        audit={"response_request_id": "r-1", "private_request_id": "p-1"},
    )

    assert isinstance(summary, LoadSummary)
    assert (
        summary.responses_read,
        summary.responses_loaded,
        summary.responses_replaced,
        summary.users_loaded,
        summary.rejected,
    ) == (0, 0, 8, 0, 0)
    assert days_of(warehouse_url, APRIL_BOT) == {"2022-03-16": 5}, "only the range's days are emptied"
    after, users_after, loads = state(warehouse_url)
    assert [row for row in after if row[0] == TARA_BOT] == tara_rows, "another bot is untouched"
    assert users_after == users
    last = loads[-1]
    assert (
        last["conversation_id"],
        last["from_date"],
        last["to_date"],
        last["responses"],
        last["users"],
        last["replaced"],
        last["response_request_id"],
    ) == (APRIL_BOT, "2022-03-08", "2022-03-10", 0, 0, 8, "r-1")
    assert len(loads) == 3

    again = load_exhaust(
        response_csv=None,
        private=None,
        warehouse_url=warehouse_url,
        conversation_id=APRIL_BOT,
        from_date="2022-03-08",
        to_date="2022-03-10",
    )
    assert (again.responses_loaded, again.responses_replaced) == (0, 0)
    with open_warehouse(warehouse_url) as warehouse:
        assert [entry["responses"] for entry in warehouse.loads(TABLE)] == [APRIL.rows, TARA.rows, 0, 0]


def test_no_response_exhaust_with_a_private_one_upserts_its_users(warehouse_url: str) -> None:
    load_exhaust(response_csv=SUNBIRD / TARA.response, private=None, warehouse_url=warehouse_url)
    assert state(warehouse_url)[1] == []

    summary = load_exhaust(
        response_csv=None,
        private=SUNBIRD / TARA.private,
        warehouse_url=warehouse_url,
        conversation_id=TARA_BOT,
        from_date="2022-06-21",
        to_date="2022-06-21",
    )

    assert (summary.responses_loaded, summary.responses_replaced, summary.users_loaded) == (
        0,
        TARA.rows,
        TARA.users,
    )
    responses, users, loads = state(warehouse_url)
    assert responses == [] and len(users) == TARA.users
    assert {user[0] for user in users} == {TARA_BOT}
    assert (loads[-1]["responses"], loads[-1]["users"]) == (0, TARA.users)


def test_a_response_exhaust_without_a_private_one_loads_with_no_user_joined(warehouse_url: str) -> None:
    summary = load_exhaust(response_csv=SUNBIRD / TARA.response, private=None, warehouse_url=warehouse_url)

    assert (summary.responses_loaded, summary.responses_without_user, summary.users_loaded) == (
        TARA.rows,
        TARA.rows,
        0,
    )
    responses, users, loads = state(warehouse_url)
    assert users == [] and len(responses) == TARA.rows
    phone, encrypted = (
        RESPONSE_TABLE_COLUMNS.index("user_phone"),
        RESPONSE_TABLE_COLUMNS.index("user_encrypted_device_id"),
    )
    assert all(row[phone] is None and row[encrypted] is None for row in responses)
    expected = {
        key: {**row, "user_phone": None, "user_encrypted_device_id": None}
        for key, row in expected_rows(TARA).items()
    }
    from tests.exhaust.test_load import table_rows

    assert table_rows(warehouse_url) == expected
    assert (loads[0]["responses"], loads[0]["users"]) == (TARA.rows, 0)


@pytest.mark.parametrize("missing", ["conversation_id", "from_date", "to_date"])
def test_no_response_exhaust_needs_the_bot_and_the_range(missing: str, warehouse_url: str) -> None:
    given = {"conversation_id": APRIL_BOT, "from_date": "2022-03-09", "to_date": "2022-03-09"}
    del given[missing]
    seed(warehouse_url)
    before = state(warehouse_url)
    with pytest.raises(ValueError, match=rf"^{missing}: required without a response exhaust"):
        load_exhaust(response_csv=None, private=SUNBIRD / TARA.private, warehouse_url=warehouse_url, **given)
    assert state(warehouse_url) == before


def test_uci_exhaust_load_without_files_empties_the_days(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/warehouse.db"
    seed(url)
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "airflow_provider_uci.cli"]
    done = subprocess.run(
        [
            *command,
            "load",
            "--warehouse",
            url,
            "--conversation-id",
            APRIL_BOT,
            "--from-date",
            "2022-03-16",
            "--to-date",
            "2022-03-16",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["responses_loaded"], summary["responses_replaced"]) == (0, 5)
    assert days_of(url, APRIL_BOT) == {"2022-03-09": 8}

    refused = subprocess.run(
        [*command, "load", "--warehouse", url, "--conversation-id", APRIL_BOT],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert refused.returncode == 2 and refused.stderr.startswith("uci-exhaust: error: from_date: required")
    assert days_of(url, APRIL_BOT) == {"2022-03-09": 8}
