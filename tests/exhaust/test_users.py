"""The users (``exhaust.users``), read in C and record by record where the C engine is not sure of a
block, and joined in numpy, checked against the record reader: the same users, the same phones, the
same join, the same rejects with the same lines.
"""

from __future__ import annotations

import random
import uuid
from pathlib import Path

import pyarrow as pa
import pytest

from airflow_provider_uci.exhaust.load import load_exhaust
from airflow_provider_uci.exhaust.private_records import read_users
from airflow_provider_uci.exhaust.records import PRIVATE_HEADERS, ExhaustFormatError, Rejects
from airflow_provider_uci.exhaust.spark_csv import format_row
from airflow_provider_uci.exhaust.users import UserJoin, Users, read_user_table
from airflow_provider_uci.exhaust.warehouse import open_warehouse
from tests.support.services import postgres_database

SUNBIRD = Path(__file__).resolve().parent.parent / "fixtures" / "sunbird"
BOT = "c387e983-f87b-4471-aef5-c31634fd1433"
OTHER = "d655cf03-1f6f-4510-acf6-d3f51b488a5e"


def private_file(
    path: Path, rows: list[tuple[str | None, ...]], header: tuple[str, ...] = PRIVATE_HEADERS
) -> Path:
    path.write_text(
        format_row(header) + "".join(format_row(row) for row in rows), encoding="utf-8", newline=""
    )
    return path


def hard_users(seed: int = 3) -> list[tuple[str | None, ...]]:
    """Users of two bots with every case: consent or not (the Device UUID, empty, null), names null or
    empty or with commas and quotes and new lines, a device listed twice with other values."""
    rng = random.Random(seed)
    devices = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(60)]
    rows: list[tuple[str | None, ...]] = []
    for number, device in enumerate(devices):
        bot = OTHER if number % 7 == 0 else BOT
        name = [None, "", 'Tara, "the" bot', "टारा\nबॉट", "Global Tara Bot"][number % 5]
        decrypted = [f"phone:{9_000_000_000 + number}", device, "", None][number % 4]
        encrypted = None if number % 11 == 0 else f"enc{number}=="
        rows.append((bot, name, decrypted, encrypted, device))
    for device in devices[3:9]:  # listed again, with a phone: the last row stands
        rows.append((BOT, "again", f"phone:{device[:4]}", "enc-again", device))
    rng.shuffle(rows)
    return rows


def by_records(path: Path, phones: str) -> tuple[dict[str, tuple], int]:
    """What the record reader makes of the file: the bot's users by device (the last row), and the
    rows of other bots."""
    users, skipped = {}, 0
    for user in read_users(path, Rejects(), phones):
        if user.conversation_id == BOT:
            users[user.device_uuid] = tuple(user)
        else:
            skipped += 1
    return users, skipped


def as_rows(users: Users) -> dict[str, tuple]:
    return {row["device_uuid"]: tuple(row.values()) for row in users.table.to_pylist()}


@pytest.mark.parametrize("phones", ["plain", "hashed", "none"])
@pytest.mark.parametrize("block", [64, 1 << 21])
def test_the_users_are_those_the_record_reader_reads(phones: str, block: int, tmp_path: Path) -> None:
    path = private_file(tmp_path / "private.csv", hard_users())
    expected, skipped = by_records(path, phones)

    users = read_user_table(path, Rejects(), BOT, phones, block_bytes=block)

    assert as_rows(users) == expected
    assert (users.rows, users.skipped) == (len(expected), skipped)
    assert {user[5] for user in expected.values()} == {True, False}  # both cases were there


@pytest.mark.parametrize(
    "fixture", ["private-exhaust-2022-04-sample.csv", "private-exhaust-2022-06-sample.csv"]
)
def test_the_real_private_files_read_alike(fixture: str) -> None:
    path = SUNBIRD / fixture
    bot = path.read_text(encoding="utf-8").splitlines()[1].split(",")[0]
    expected = {user.device_uuid: tuple(user) for user in read_users(path, Rejects())}

    users = read_user_table(path, Rejects(), bot)

    assert as_rows(users) == expected
    assert users.rows == len(expected) > 0


@pytest.mark.parametrize(
    ("rows", "reason"),
    [
        ([(BOT, "n", "phone:1", "e", "")], "Conversation ID and Device UUID must not be empty"),
        ([(BOT, "n", "phone:1", "e", None)], "Conversation ID and Device UUID must not be empty"),
        ([(None, "n", "phone:1", "e", "d-1")], "Conversation ID and Device UUID must not be empty"),
        ([(BOT, "n", "phone:1", "e", "d-1", "extra")], "expected 5 values as in the header, got 6"),
        ([(BOT, "n", "phone:1", "e")], "expected 5 values as in the header, got 4"),
        (
            [(BOT, "n", "phone:\x001", "e", "d-1")],
            "Decrypted Device ID: contains a NUL character, which PostgreSQL text cannot hold",
        ),
    ],
    ids=["empty device", "null device", "null bot", "a value too many", "a value too few", "a NUL"],
)
@pytest.mark.parametrize("block", [64, 1 << 21])
def test_what_the_record_reader_rejects_is_rejected_with_its_line(
    rows: list[tuple], reason: str, block: int, tmp_path: Path
) -> None:
    good = [(BOT, "n", f"phone:{number}", "e", f"d-{number}0") for number in range(12)]
    path = private_file(tmp_path / "private.csv", [*good[:6], *rows, *good[6:]])
    expected, reference = Rejects(), Rejects()
    records = {user.device_uuid: tuple(user) for user in read_users(path, reference)}

    users = read_user_table(path, expected, BOT, block_bytes=block)

    assert as_rows(users) == records and users.rows == 12
    assert (
        [(entry["line"], entry["reason"]) for entry in expected.first]
        == [(entry["line"], entry["reason"]) for entry in reference.first]
        == [(8, reason)]
    )


def test_a_header_without_the_private_columns_is_refused(tmp_path: Path) -> None:
    path = private_file(
        tmp_path / "private.csv", [(BOT, "n", "phone:1", "e", "d-1")], (*PRIVATE_HEADERS[:4], "Device")
    )
    for fast in (True, False):
        with pytest.raises(ExhaustFormatError, match="not a private exhaust: no Device UUID column"):
            read_user_table(path, Rejects(), BOT, fast=fast)


def test_a_bad_phone_mode_is_named_before_reading(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="phone_numbers: must be one of plain, hashed, none"):
        read_user_table(tmp_path / "absent.csv", Rejects(), BOT, "masked")


@pytest.mark.parametrize("width", ["uuid", "mixed"])
def test_the_join_finds_each_device_as_a_dict_would(width: str) -> None:
    rng = random.Random(5)
    devices = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(3000)]
    if width == "mixed":
        devices = [device[: rng.randrange(1, 37)] + str(number) for number, device in enumerate(devices)]
    users = devices[:2000]
    join = UserJoin(
        pa.array(users), pa.array([f"p{n}" for n in range(2000)]), pa.array([None] * 2000, pa.string())
    )
    wanted = [rng.choice(devices) for _ in range(5000)]

    found = join.find(pa.array(wanted)).to_pylist()

    index = {device: row for row, device in enumerate(users)}
    assert found == [index.get(device) for device in wanted]
    assert None in found and len({row for row in found if row is not None}) > 1000
    assert (join._width != 0) == (width == "uuid")  # the numpy search was the one used for UUIDs


def test_ids_of_another_width_or_two_users_of_one_hash_are_found_by_the_dict(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    users = pa.array(["aaaa", "bbbb", "cccc"])
    join = UserJoin(users, pa.array(["1", "2", "3"]), pa.array(["x", "y", "z"]))
    assert join.find(pa.array(["bbbb", "bb", "cccccc", "dddd", "aaaa"])).to_pylist() == [
        1,
        None,
        None,
        None,
        0,
    ]

    monkeypatch.setattr(
        UserJoin, "_hash", lambda self, keys: pa.array([7] * len(keys), pa.uint64()).to_numpy()
    )
    collided = UserJoin(users, pa.array(["1", "2", "3"]), pa.array(["x", "y", "z"]))
    assert collided._width == 0
    assert collided.find(pa.array(["cccc", "dddd"])).to_pylist() == [2, None]


@pytest.mark.postgres
def test_users_read_in_c_land_as_the_records_do_in_a_new_table_and_an_old_one(tmp_path: Path) -> None:
    private = private_file(tmp_path / "private.csv", hard_users())
    response = SUNBIRD / "response-exhaust-2022-06-sample.csv"
    with postgres_database() as fast_url, postgres_database() as slow_url:
        for round_ in range(2):  # a new users table, then upserts into it
            fast = load_exhaust(response_csv=response, private=private, warehouse_url=fast_url)
            slow = load_exhaust(response_csv=response, private=private, warehouse_url=slow_url, fast=False)
            assert (fast.reader, slow.reader) == ("arrow", "records")
            assert (fast.users_loaded, fast.users_of_other_conversations) == (
                slow.users_loaded,
                slow.users_of_other_conversations,
            ), round_
        with open_warehouse(fast_url) as fast_warehouse, open_warehouse(slow_url) as slow_warehouse:
            assert fast_warehouse.fetch_users("uci_responses") == slow_warehouse.fetch_users("uci_responses")
            assert len(fast_warehouse.fetch_users("uci_responses")) == len(by_records(private, "plain")[0])


def test_users_read_in_c_land_in_sqlite_as_the_records_do(tmp_path: Path) -> None:
    private = private_file(tmp_path / "private.csv", hard_users())
    response = SUNBIRD / "response-exhaust-2022-06-sample.csv"
    fast_url, slow_url = f"sqlite:///{tmp_path}/fast.db", f"sqlite:///{tmp_path}/slow.db"
    for phones in ("plain", "hashed", "none"):
        fast = load_exhaust(
            response_csv=response,
            private=private,
            warehouse_url=fast_url,
            phone_numbers=phones,
            table=f"t_{phones}",
        )
        slow = load_exhaust(
            response_csv=response,
            private=private,
            warehouse_url=slow_url,
            phone_numbers=phones,
            table=f"t_{phones}",
            fast=False,
        )
        assert (fast.reader, slow.reader) == ("arrow", "records")
        assert (fast.users_loaded, fast.users_of_other_conversations) == (
            slow.users_loaded,
            slow.users_of_other_conversations,
        )
        with open_warehouse(fast_url) as fast_warehouse, open_warehouse(slow_url) as slow_warehouse:
            assert fast_warehouse.fetch_users(f"t_{phones}") == slow_warehouse.fetch_users(f"t_{phones}")
            assert fast_warehouse.fetch(f"t_{phones}") == slow_warehouse.fetch(f"t_{phones}")
