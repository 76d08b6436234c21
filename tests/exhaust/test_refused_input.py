"""Files that are not as the service writes them are refused whole (exit code 2), naming what is wrong,
and leave the warehouse as it was: a private exhaust of other bots, a private exhaust with a header and
no user. (A response file with an answer twice: ``test_load``.)

The service writes one private exhaust per bot, of that bot's users, and never an empty file (no data
is the answer ``No data found``): a load of bot B with a private file that holds no user of B was
given the wrong file.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from airflow_provider_uci.exhaust.load import ExhaustRefused, load_exhaust
from airflow_provider_uci.exhaust.records import PRIVATE_HEADERS
from airflow_provider_uci.exhaust.spark_csv import format_row
from tests.exhaust.test_load import PAIRS, SUNBIRD, TARA, TARA_BOT, state, warehouse_url

__all__ = ["warehouse_url"]  # the fixture: SQLite, and PostgreSQL

APRIL_PRIVATE = SUNBIRD / "private-exhaust-2022-04-sample.csv"  # two users of bot d655cf03-...
APRIL_USERS_BOT = "d655cf03-1f6f-4510-acf6-d3f51b488a5e"
MENTOR = PAIRS[2]
MENTOR_BOT = "1ffc932f-1220-458d-9d9a-a5a377a42139"


def seeded(url: str) -> tuple[object, ...]:
    load_exhaust(response_csv=SUNBIRD / TARA.response, private=SUNBIRD / TARA.private, warehouse_url=url)
    return state(url)


@pytest.mark.parametrize("fast", [True, False], ids=["read in C", "record by record"])
def test_a_private_exhaust_of_other_bots_is_refused_naming_both(warehouse_url: str, fast: bool) -> None:
    before = seeded(warehouse_url)

    with pytest.raises(ExhaustRefused) as refused:
        load_exhaust(
            response_csv=SUNBIRD / MENTOR.response,
            private=APRIL_PRIVATE,
            warehouse_url=warehouse_url,
            fast=fast,
        )

    assert str(refused.value) == (
        f"private: {APRIL_PRIVATE.name} holds no user of conversation {MENTOR_BOT} (the bot whose responses are "
        f"loaded): its 2 user(s) are of conversation(s) {APRIL_USERS_BOT}; give the private exhaust requested for "
        f"{MENTOR_BOT}, or none if the service found no data for it; nothing was loaded"
    )
    assert isinstance(refused.value, ValueError)
    assert state(warehouse_url) == before


def test_a_private_exhaust_of_many_other_bots_names_the_first_few(tmp_path: Path) -> None:
    bots = [f"00000000-0000-4000-8000-{number:012d}" for number in range(8)]
    private = tmp_path / "users.csv"
    private.write_text(
        format_row(PRIVATE_HEADERS)
        + "".join(
            format_row((bot, "a bot", "phone:1", "enc=", f"10000000-0000-4000-8000-{number:012d}"))
            for number, bot in enumerate(bots)
        ),
        encoding="utf-8",
        newline="",
    )

    with pytest.raises(
        ExhaustRefused,
        match=rf"its 8 user\(s\) are of conversation\(s\) {', '.join(bots[:5])} and "
        "others; give",
    ):
        load_exhaust(
            response_csv=SUNBIRD / TARA.response, private=private, warehouse_url=f"sqlite:///{tmp_path}/w.db"
        )


@pytest.mark.parametrize("fast", [True, False], ids=["read in C", "record by record"])
def test_a_private_exhaust_with_only_a_header_is_refused(
    warehouse_url: str, fast: bool, tmp_path: Path
) -> None:
    before = seeded(warehouse_url)
    private = tmp_path / "users.csv"
    private.write_text(format_row(PRIVATE_HEADERS), encoding="utf-8", newline="")

    with pytest.raises(
        ExhaustRefused,
        match=r"^private: users.csv holds a header and no user; the service never "
        r"writes an empty exhaust \(it answers 'No data found'\)",
    ):
        load_exhaust(
            response_csv=SUNBIRD / TARA.response, private=private, warehouse_url=warehouse_url, fast=fast
        )
    with pytest.raises(ExhaustRefused, match="holds a header and no user"):
        load_exhaust(
            response_csv=None,
            private=private,
            warehouse_url=warehouse_url,
            conversation_id=TARA_BOT,
            from_date="2022-06-21",
            to_date="2022-06-21",
            fast=fast,
        )

    assert state(warehouse_url) == before


def test_the_command_refuses_a_wrong_private_exhaust_with_exit_code_2(tmp_path: Path) -> None:
    from tests.exhaust.test_load import uci_load

    url = f"sqlite:///{tmp_path}/w.db"
    before = seeded(url)

    done = uci_load(SUNBIRD / MENTOR.response, APRIL_PRIVATE, url, rejects=tmp_path / "r.jsonl")

    assert isinstance(done, subprocess.CompletedProcess)
    assert done.returncode == 2
    assert done.stderr == (
        f"uci-exhaust: error: private: {APRIL_PRIVATE.name} holds no user of conversation "
        f"{MENTOR_BOT} (the bot whose responses are loaded): its 2 user(s) are of conversation(s) "
        f"{APRIL_USERS_BOT}; give the private exhaust requested for {MENTOR_BOT}, or none if the "
        "service found no data for it; nothing was loaded\n"
    )
    assert state(url) == before


def test_a_private_exhaust_holding_other_bots_too_loads_the_bots_users(tmp_path: Path) -> None:
    private = tmp_path / "users.csv"
    private.write_text(
        (SUNBIRD / TARA.private).read_text(encoding="utf-8")
        + "".join(APRIL_PRIVATE.read_text(encoding="utf-8").splitlines(keepends=True)[1:]),
        encoding="utf-8",
        newline="",
    )
    summary = load_exhaust(
        response_csv=SUNBIRD / TARA.response, private=private, warehouse_url=f"sqlite:///{tmp_path}/w.db"
    )
    assert (summary.users_loaded, summary.users_of_other_conversations) == (TARA.users, 2)
