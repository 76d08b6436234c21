"""Joining and loading the real Sunbird exhaust samples, through ``uci-exhaust load`` and ``load_exhaust``.

Every check runs on SQLite and on PostgreSQL. What the table must hold is read from the fixture files
with Python's own ``csv.reader(f, escapechar='\\\\', doublequote=False)``, which reads these files
right (they hold no lone backslash), so the loader is compared with an independent reader: every
column of every row, the multi-line Hindi titles and the JSON with its escaped quotes included.
Bad input (a broken row, a file cut short, a wrong zip key) must fail with a message that says where,
and leave the tables exactly as they were.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_uci import cli
from airflow_provider_uci.emulator.crypto import zip_single_file
from airflow_provider_uci.exhaust.keys import DuplicateAnswer
from airflow_provider_uci.exhaust.load import RejectLimitExceeded, load_exhaust
from airflow_provider_uci.exhaust.records import RESPONSE_TABLE_COLUMNS, USER_TABLE_COLUMNS
from airflow_provider_uci.exhaust.warehouse import open_warehouse
from tests.support.phones import hashed as keyed_hash
from tests.support.services import postgres_database
from tests.support.warehouse import fetch_normalised

SUNBIRD = Path(__file__).resolve().parent.parent / "fixtures" / "sunbird"
TABLE = "uci_responses"
TARA_BOT = "c387e983-f87b-4471-aef5-c31634fd1433"
TARA_DEVICE = "cbcf21a0-73ad-4e96-9802-38ea535cf88b"
TARA_PHONE = "phone:7597185708"
ZIP_KEY = "zip-key-7f3a"

#: Response table column -> response exhaust header, for the text columns (taken as they are).
TEXT_HEADERS = {
    "conversation_id": "Conversation ID",
    "message_id": "Message ID",
    "device_id": "Device ID",
    "question_id": "Question Id",
    "conversation_name": "Conversation Name",
    "session_id": "Session ID",
    "question_type": "Question Type",
    "question_title": "Question Title",
    "question_description": "Question Description",
    "question_options": "Question Options",
    "question_response": "Question Response",
    "x_path": "X Path",
}
INT_HEADERS = {
    "question_duration": "Question Duration",
    "question_score": "Question Score",
    "question_max_score": "Question Max Score",
}
TIME_HEADERS = {"event_timestamp": "Timestamp", "at_timestamp": "@timestamp"}
KEY_COLUMNS = ("conversation_id", "message_id", "device_id", "question_id")


@dataclass(frozen=True)
class Pair:
    name: str
    response: str
    private: str | None  # None: the service found no users (no private exhaust)
    rows: int  # records in the response file
    users: int  # users of the response file's bot in the private file
    joined: int  # responses that find their user

    @property
    def private_path(self) -> Path | None:
        return None if self.private is None else SUNBIRD / self.private


PAIRS = [
    # the samples' private files are of other bots (a load refuses those): loaded without users
    Pair("2022-04", "response-exhaust-2022-04-sample.csv", None, 13, 0, 0),
    # the same bot: every answer comes from one of its two users
    Pair("2022-06", "response-exhaust-2022-06-sample.csv", "private-exhaust-2022-06-sample.csv", 55, 2, 55),
    # Hindi, multi-line titles
    Pair("mentor-feedback", "response-exhaust-2022-06-24-mentor-feedback.csv", None, 17, 0, 0),
]
TARA = PAIRS[1]

_QUOTED_EMPTY = re.compile(r'(?:^|(?<=,))""(?=,|\r?\n|$)')


# -- the reference reader -------------------------------------------------------------------------


@dataclass
class Record:
    line: int  # of the record's first line, the header being line 1
    raw: str  # the record's text as it stands in the file
    values: dict[str, str]


def read_fixture(path: Path) -> tuple[list[str], list[Record]]:
    """The header and records of a fixture, read with Python's csv module and Spark's escape."""
    consumed: list[str] = []

    def lines() -> Iterator[str]:
        with path.open(encoding="utf-8", newline="") as handle:
            for line in handle:
                consumed.append(line)
                yield line

    reader = csv.reader(lines(), escapechar="\\", doublequote=False, strict=True)
    header = next(reader)
    consumed.clear()
    records, first = [], 2
    for values in reader:
        raw = "".join(consumed)
        consumed.clear()
        assert len(values) == len(header), f"{path.name} line {first}"
        # csv.reader reads null (nothing) and "" alike; these files write every empty value as "",
        # so each empty value must stand as "" in the text, and is the empty string in the table.
        assert len(_QUOTED_EMPTY.findall(raw)) == values.count(""), f"{path.name} line {first}: a null value"
        records.append(Record(first, raw, dict(zip(header, values, strict=True))))
        first = reader.line_num + 1
    return header, records


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def private_users(path: Path | None, bot: str, phone: str = "plain") -> dict[str, tuple[Any, ...]]:
    """The users table rows the private file gives for ``bot``, by device, in USER_TABLE_COLUMNS order."""
    if path is None:
        return {}
    _, records = read_fixture(path)
    users = {}
    for record in records:
        values = record.values
        if values["Conversation ID"] != bot:
            continue
        device, decrypted = values["Device UUID"], values["Decrypted Device ID"]
        consented = decrypted not in ("", device)
        number = decrypted if consented else None
        if number is not None and phone == "hashed":
            number = keyed_hash(number)
        elif phone == "none":
            number = None
        users[device] = (
            bot,
            device,
            values["Conversation Name"],
            number,
            values["Encrypted Device ID"],
            consented,
        )
    return users


def expected_rows(pair: Pair, phone: str = "plain") -> dict[tuple[str, ...], dict[str, Any]]:
    """Every response row the pair must load, by key: what the files say, typed and joined."""
    _, records = read_fixture(SUNBIRD / pair.response)
    bot = records[0].values["Conversation ID"]
    users = private_users(pair.private_path, bot, phone)
    rows = {}
    for record in records:
        values = record.values
        row: dict[str, Any] = {column: values.get(header) for column, header in TEXT_HEADERS.items()}
        row.update({column: int(values[header]) for column, header in INT_HEADERS.items()})
        row["eof"] = None if "Eof" not in values else {"true": True, "false": False}[values["Eof"]]
        row.update({column: instant(values[header]) for column, header in TIME_HEADERS.items()})
        user = users.get(values["Device ID"])
        phone_at, encrypted_at = (
            USER_TABLE_COLUMNS.index("phone"),
            USER_TABLE_COLUMNS.index("encrypted_device_id"),
        )
        row["user_phone"] = None if user is None else user[phone_at]
        row["user_encrypted_device_id"] = None if user is None else user[encrypted_at]
        rows[tuple(row[column] for column in KEY_COLUMNS)] = row
    assert len(rows) == len(records) == pair.rows, "one row per record, no key twice"
    return rows


# -- the warehouse and the command ------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/warehouse.db"
    else:
        with postgres_database() as url:
            yield url


def table_rows(url: str, table: str = TABLE) -> dict[tuple[str, ...], dict[str, Any]]:
    with open_warehouse(url) as warehouse:
        fetched = fetch_normalised(warehouse, table)
    rows = {}
    for values in fetched:
        row = dict(zip(RESPONSE_TABLE_COLUMNS, values, strict=True))
        for column in TIME_HEADERS:
            row[column] = instant(row[column])
        rows[tuple(row[column] for column in KEY_COLUMNS)] = row
    assert len(rows) == len(fetched)
    return rows


def state(url: str, table: str = TABLE) -> tuple[Any, ...]:
    """Everything a load may change: responses, users, and the audit rows."""
    with open_warehouse(url) as warehouse:
        return fetch_normalised(warehouse, table), warehouse.fetch_users(table), warehouse.loads(table)


_scratch: list[Path] = []


@pytest.fixture(autouse=True)
def scratch(tmp_path: Path) -> Iterator[Path]:
    """Where a load's reject file goes unless a test names one (never beside the fixtures)."""
    _scratch.append(tmp_path)
    yield tmp_path
    _scratch.remove(tmp_path)


def uci_load(
    response: Path,
    private: Path | None,
    url: str,
    *extra: str,
    rejects: Path | None = None,
    table: str = TABLE,
) -> subprocess.CompletedProcess[str]:
    """``uci-exhaust load`` run in this process through the command's own ``main`` (its exit code, stdout and
    stderr as a process would give them; ``tests/test_cli_failures.py`` runs the installed command)."""
    rejects = rejects or _scratch[-1] / f"{response.stem}.rejects.jsonl"
    given = [] if private is None else ["--private", str(private)]
    args = [
        "load",
        "--response",
        str(response),
        *given,
        "--warehouse",
        url,
        "--table",
        table,
        "--json",
        "--rejects",
        str(rejects),
        *extra,
    ]
    out, err = io.StringIO(), io.StringIO()
    key = os.environ.pop("UCI_EXHAUST_ENCRYPTION_KEY", None)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(args)
    finally:
        if key is not None:
            os.environ["UCI_EXHAUST_ENCRYPTION_KEY"] = key
    return subprocess.CompletedProcess(["uci-exhaust", *args], code, out.getvalue(), err.getvalue())


def loaded(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def rewrite_record(pair: Pair, number: int, old: str, new: str, target: Path) -> Record:
    """Copy the pair's response file to ``target`` with ``old`` replaced once in record ``number``."""
    _, records = read_fixture(SUNBIRD / pair.response)
    record = records[number]
    assert record.raw.count(old) == 1, record.raw
    text = (SUNBIRD / pair.response).read_text(encoding="utf-8")
    assert text.count(record.raw) == 1
    target.write_text(text.replace(record.raw, record.raw.replace(old, new)), encoding="utf-8", newline="")
    return record


# -- each real pair, value by value -----------------------------------------------------------------


@pytest.mark.parametrize("pair", PAIRS, ids=[pair.name for pair in PAIRS])
def test_each_real_pair_loads_every_value_of_its_files(
    pair: Pair, warehouse_url: str, tmp_path: Path
) -> None:
    summary = loaded(
        uci_load(
            SUNBIRD / pair.response, pair.private_path, warehouse_url, rejects=tmp_path / "rejects.jsonl"
        )
    )

    assert summary["responses_read"] == summary["responses_loaded"] == pair.rows
    assert summary["users_loaded"] == pair.users
    assert summary["responses_without_user"] == pair.rows - pair.joined
    assert summary["rejected"] == 0 and summary["reject_file"] is None
    assert not (tmp_path / "rejects.jsonl").exists()

    expected = expected_rows(pair)
    table = table_rows(warehouse_url)
    assert sorted(table) == sorted(expected)
    for key, row in expected.items():
        assert table[key] == row, key
    assert sum(row["user_phone"] is not None for row in table.values()) == pair.joined

    bot = next(iter(expected.values()))["conversation_id"]
    users = private_users(pair.private_path, bot)
    with open_warehouse(warehouse_url) as warehouse:
        assert warehouse.fetch_users(TABLE) == [users[device] for device in sorted(users)]
        assert warehouse.count(TABLE) == pair.rows
        (audit,) = warehouse.loads(TABLE)
    assert (audit["conversation_id"], audit["responses"], audit["users"], audit["rejected"]) == (
        bot,
        pair.rows,
        pair.users,
        0,
    )


def test_the_reference_reader_sees_what_the_files_hold() -> None:
    """The expected values are right where it is easy to go wrong: line breaks, Hindi, escaped quotes."""
    mentor = expected_rows(PAIRS[2])
    row = mentor[
        (
            "1ffc932f-1220-458d-9d9a-a5a377a42139",
            "ASSESS:05912f8f0508346fab6cc5fcd1cf0daa",
            "72f0017b-289c-4c92-b5b2-71799eb2670f",
            "d62efd1e-582d-4803-8c65-c8993bcdb032",
        )
    ]
    assert row["question_title"] == (
        "मेंटर का विद्यालय के स्टाफ के साथ परस्पर क्रिया पर अपनी प्रतिक्रिया दें\n\n"
        "क्या मेंटर ने परस्पर क्रिया के लिए पर्याप्त समय दिया (~ 20 मिनट) ?"
    )
    assert row["question_options"] == '[{"Yes":{"text":"हाँ"}},{"No":{"text":"ना"}}]'
    assert row["question_response"] == '[{"ans1":"हाँ"}]'
    assert row["question_description"] == "" and row["session_id"] is None and row["eof"] is False

    tara = expected_rows(TARA)
    (first,) = [
        row for row in tara.values() if row["message_id"] == "ASSESS:c4d8e62755433c99a1934fc56d03370d"
    ]
    assert first["question_title"] == (
        "Hi, I'm Tara,\nMay I help you?\n\nReply with a number from to the options shown to explore further"
    )
    assert first["question_response"] == '[{"ans1":"2 Comic books"}]'
    assert (first["user_phone"], first["device_id"]) == (TARA_PHONE, TARA_DEVICE)

    april = expected_rows(PAIRS[0])
    assert all(row["eof"] is None and row["x_path"] is None for row in april.values()), "a 15-column vintage"


def test_the_same_pair_loaded_twice_leaves_the_tables_as_they_were(warehouse_url: str) -> None:
    first = load_exhaust(
        response_csv=SUNBIRD / TARA.response, private=SUNBIRD / TARA.private, warehouse_url=warehouse_url
    )
    responses, users, _ = state(warehouse_url)

    second = load_exhaust(
        response_csv=SUNBIRD / TARA.response, private=SUNBIRD / TARA.private, warehouse_url=warehouse_url
    )

    assert first == dataclasses.replace(second, responses_replaced=0)
    assert (first.responses_loaded, first.users_loaded, second.responses_replaced) == (
        TARA.rows,
        TARA.users,
        TARA.rows,
    )
    again, users_again, loads = state(warehouse_url)
    assert (again, users_again) == (responses, users)
    assert len(again) == TARA.rows
    assert [entry["responses"] for entry in loads] == [TARA.rows, TARA.rows]


# -- broken input -----------------------------------------------------------------------------------

BROKEN = {
    # record 3 is a one-line record: ...,ftp,"","",0,1,1,[],...
    "a non-integer duration": (2, ',ftp,"","",0,1,1,', ',ftp,"","",zero,1,1,', "question_duration"),
    "a missing column": (
        2,
        ",false,2022-06-21T14:48:17.046Z",
        ",2022-06-21T14:48:17.046Z",
        "expected 17 values as in the header, got 16",
    ),
}


@pytest.mark.parametrize("broken", BROKEN, ids=list(BROKEN))
def test_a_broken_row_is_rejected_with_its_line_and_the_load_fails(
    broken: str, warehouse_url: str, tmp_path: Path
) -> None:
    number, old, new, reason = BROKEN[broken]
    response = tmp_path / "response.csv"
    record = rewrite_record(TARA, number, old, new, response)
    assert record.line == 10
    loaded(uci_load(SUNBIRD / PAIRS[2].response, PAIRS[2].private_path, warehouse_url))
    loaded(
        uci_load(SUNBIRD / TARA.response, SUNBIRD / TARA.private, warehouse_url, "--phone-numbers", "hashed")
    )
    before = state(warehouse_url)

    rejects = tmp_path / "rejects.jsonl"
    # stored as the table holds them (hashed): a table keeps one way of storing phones
    done = uci_load(
        response, SUNBIRD / TARA.private, warehouse_url, "--phone-numbers", "hashed", rejects=rejects
    )

    assert done.returncode != 0
    assert f"line {record.line} of response.csv" in done.stderr and reason in done.stderr
    assert "max_rejects=0" in done.stderr and "nothing was loaded" in done.stderr
    (entry,) = [json.loads(line) for line in rejects.read_text(encoding="utf-8").splitlines()]
    assert (entry["file"], entry["line"]) == ("response.csv", record.line)
    assert reason in entry["reason"]
    assert state(warehouse_url) == before

    # allowed one reject, the same file loads without that row (into a table of its own)
    summary = loaded(
        uci_load(
            response,
            SUNBIRD / TARA.private,
            warehouse_url,
            "--max-rejects",
            "1",
            rejects=rejects,
            table="tolerant",
        )
    )
    assert (summary["responses_loaded"], summary["rejected"]) == (TARA.rows - 1, 1)
    assert summary["reject_file"] == str(rejects)
    expected = expected_rows(TARA)
    left_out = (
        TARA_BOT,
        record.values["Message ID"],
        record.values["Device ID"],
        record.values["Question Id"],
    )
    del expected[left_out]
    assert table_rows(warehouse_url, "tolerant") == expected
    with open_warehouse(warehouse_url) as warehouse:
        assert [entry["rejected"] for entry in warehouse.loads("tolerant")] == [1]
    assert state(warehouse_url) == before


def test_the_reject_limit_counts_every_reject(warehouse_url: str, tmp_path: Path) -> None:
    response = tmp_path / "response.csv"
    text = (SUNBIRD / TARA.response).read_text(encoding="utf-8")
    assert text.count(',ftp,"","",0,1,1,') == 16
    response.write_text(
        text.replace(',ftp,"","",0,1,1,', ',ftp,"","",0.5,1,1,'), encoding="utf-8", newline=""
    )

    with pytest.raises(
        RejectLimitExceeded, match=r"^16 record\(s\) rejected, more than max_rejects=15: line \d+ of "
    ):
        load_exhaust(
            response_csv=response,
            private=SUNBIRD / TARA.private,
            warehouse_url=warehouse_url,
            max_rejects=15,
            reject_path=tmp_path / "rejects.jsonl",
        )
    assert state(warehouse_url) == ([], [], [])
    lines = [json.loads(line)["line"] for line in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert len(lines) == 16 and lines == sorted(lines)

    summary = load_exhaust(
        response_csv=response, private=SUNBIRD / TARA.private, warehouse_url=warehouse_url, max_rejects=16
    )
    assert (summary.responses_loaded, summary.rejected) == (TARA.rows - 16, 16)


CUTS = {
    # inside the multi-line quoted title of record 2
    "in a quoted value": ("Have fun while you learn", "unexpected end of data", 6),
    # within an unquoted value: the last record is short of columns
    "in a record": (
        "question./data/comic_books[1]/eof_comic_book_class[1],fa",
        "expected 17 values as in the header, got 15",
        10,
    ),
}


@pytest.mark.parametrize("cut", CUTS, ids=list(CUTS))
def test_a_file_cut_short_fails_with_its_line_and_changes_nothing(
    cut: str, warehouse_url: str, tmp_path: Path
) -> None:
    marker, reason, line = CUTS[cut]
    text = (SUNBIRD / TARA.response).read_text(encoding="utf-8")
    response = tmp_path / "cut.csv"
    response.write_text(text[: text.index(marker) + len(marker)], encoding="utf-8", newline="")
    loaded(uci_load(SUNBIRD / TARA.response, SUNBIRD / TARA.private, warehouse_url))
    before = state(warehouse_url)

    done = uci_load(response, SUNBIRD / TARA.private, warehouse_url, rejects=tmp_path / "rejects.jsonl")

    assert done.returncode != 0
    assert done.stderr.startswith("uci-exhaust: error: ")
    assert "cut.csv" in done.stderr and f"line {line}" in done.stderr and reason in done.stderr
    assert "Traceback" not in done.stderr
    assert state(warehouse_url) == before


def test_a_private_zip_needs_its_key(warehouse_url: str, tmp_path: Path) -> None:
    archive = tmp_path / "private.zip"
    zip_single_file(SUNBIRD / TARA.private, archive, "c387e983_userinfo_20220624.csv", ZIP_KEY)
    loaded(uci_load(SUNBIRD / PAIRS[0].response, PAIRS[0].private_path, warehouse_url))
    before = state(warehouse_url)

    missing = uci_load(SUNBIRD / TARA.response, archive, warehouse_url)
    assert missing.returncode != 0
    assert "encryption_key: missing" in missing.stderr and "private.zip" in missing.stderr
    assert state(warehouse_url) == before

    wrong = uci_load(SUNBIRD / TARA.response, archive, warehouse_url, "--encryption-key", "not-the-key")
    assert wrong.returncode != 0
    assert "encryption_key: wrong key" in wrong.stderr and "not-the-key" not in wrong.stderr
    assert state(warehouse_url) == before

    summary = loaded(uci_load(SUNBIRD / TARA.response, archive, warehouse_url, "--encryption-key", ZIP_KEY))
    assert (summary["responses_loaded"], summary["users_loaded"], summary["responses_without_user"]) == (
        TARA.rows,
        TARA.users,
        0,
    )
    tara = table_rows(warehouse_url)
    assert {key: row for key, row in tara.items() if key[0] == TARA_BOT} == expected_rows(TARA)


@pytest.mark.parametrize("mode", ["plain", "hashed", "none"])
def test_phone_numbers_are_stored_as_asked(mode: str, warehouse_url: str) -> None:
    loaded(uci_load(SUNBIRD / TARA.response, SUNBIRD / TARA.private, warehouse_url, "--phone-numbers", mode))

    stored = {"plain": TARA_PHONE, "hashed": keyed_hash(TARA_PHONE), "none": None}[mode]
    table = table_rows(warehouse_url)
    assert table == expected_rows(TARA, mode)
    assert {row["user_phone"] for row in table.values() if row["device_id"] == TARA_DEVICE} == {stored}
    if mode == "hashed":
        assert re.fullmatch(r"[0-9a-f]{64}", stored)
    with open_warehouse(warehouse_url) as warehouse:
        users = {row[1]: row for row in warehouse.fetch_users(TABLE)}
    at = USER_TABLE_COLUMNS.index("phone")
    assert users[TARA_DEVICE][at] == stored
    assert users[TARA_DEVICE][USER_TABLE_COLUMNS.index("consented")] is True
    assert list(users.values()) == [
        row for _, row in sorted(private_users(SUNBIRD / TARA.private, TARA_BOT, mode).items())
    ]


# -- repeated records, ranges and first loads ---------------------------------------------------------


@pytest.mark.parametrize("table_exists", [False, True], ids=["into a new table", "into an existing table"])
def test_an_answer_twice_in_a_file_is_refused_naming_both_lines(
    table_exists: bool, warehouse_url: str, tmp_path: Path
) -> None:
    """The service writes each answer once: a file with one key twice (here with another duration) is not
    as it wrote it. Both readers refuse it, naming both lines, and leave the tables as they were."""
    _, records = read_fixture(SUNBIRD / TARA.response)
    record = records[2]
    again = record.raw.replace(',ftp,"","",0,1,1,', ',ftp,"","",42,1,1,')
    assert again != record.raw
    text = (SUNBIRD / TARA.response).read_text(encoding="utf-8")
    response = tmp_path / "twice.csv"
    response.write_text(text + again, encoding="utf-8", newline="")
    if table_exists:
        loaded(uci_load(SUNBIRD / PAIRS[2].response, PAIRS[2].private_path, warehouse_url))
    before = state(warehouse_url)
    lines = f"twice.csv: lines {record.line} and {text.count(chr(10)) + 1} hold the same answer"

    done = uci_load(response, SUNBIRD / TARA.private, warehouse_url)

    assert done.returncode == 2
    assert done.stderr.startswith(
        f"uci-exhaust: error: {lines} (Conversation ID {TARA_BOT}, Message ID "
        f"{record.values['Message ID']}, Device ID {record.values['Device ID']}, "
        f"Question Id {record.values['Question Id']})"
    )
    assert done.stderr.count("\n") == 1 and "nothing was loaded" in done.stderr
    assert state(warehouse_url) == before
    with pytest.raises(DuplicateAnswer, match=f"^{re.escape(lines)}"):
        load_exhaust(
            response_csv=response, private=SUNBIRD / TARA.private, warehouse_url=warehouse_url, fast=False
        )
    assert state(warehouse_url) == before


def test_a_record_synced_outside_the_range_is_rejected(warehouse_url: str, tmp_path: Path) -> None:
    # every record of the 2022-06 sample was synced on 2022-06-21 (IST)
    done = uci_load(
        SUNBIRD / TARA.response,
        SUNBIRD / TARA.private,
        warehouse_url,
        "--from-date",
        "2022-06-22",
        "--to-date",
        "2022-06-30",
        rejects=tmp_path / "rejects.jsonl",
    )

    assert done.returncode != 0
    assert "synced on 2022-06-21 (IST), outside the range 2022-06-22..2022-06-30" in done.stderr
    # the read stopped at the first record over max_rejects (0): one reject written, not the file's every record
    assert len((tmp_path / "rejects.jsonl").read_text().splitlines()) == 1
    assert "the read stopped there" in done.stderr
    assert state(warehouse_url) == ([], [], [])
    summary = loaded(
        uci_load(
            SUNBIRD / TARA.response,
            SUNBIRD / TARA.private,
            warehouse_url,
            "--from-date",
            "2022-06-21",
            "--to-date",
            "2022-06-21",
        )
    )
    assert summary["responses_loaded"] == TARA.rows
    with open_warehouse(warehouse_url) as warehouse:
        (audit,) = warehouse.loads(TABLE)
    assert (audit["from_date"], audit["to_date"]) == ("2022-06-21", "2022-06-21")


# -- the PostgreSQL reader in C -------------------------------------------------------------------------


def generated_pair(folder: Path, rows: int) -> tuple[Path, Path]:
    """A response/private pair in the real dialect with every hard case (the join-load benchmark's files)."""
    from tests.benchmarks.join_load import generate

    generate(folder, rows, max(1, rows // 5))
    return folder / "response.csv", folder / "private.csv"


def loads_alike(fast_url: str, slow_url: str, folder: Path) -> None:
    """Every real pair and a generated one, loaded read in C and record by record: the same summaries,
    the same rows and users."""
    pairs = [(SUNBIRD / pair.response, pair.private_path) for pair in PAIRS]
    pairs.append(generated_pair(folder, 3000))
    for response, private in pairs:
        for phones in ("plain", "hashed"):
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
            assert dataclasses.replace(fast, reader="records") == slow
    for table in ("t_plain", "t_hashed"):
        with open_warehouse(fast_url) as fast_warehouse, open_warehouse(slow_url) as slow_warehouse:
            assert fast_warehouse.fetch(table) == slow_warehouse.fetch(table)
            assert fast_warehouse.fetch_users(table) == slow_warehouse.fetch_users(table)
            assert fast_warehouse.count(table) == sum(1 for _ in open_rows(pairs))


@pytest.mark.postgres
def test_postgres_reads_clean_files_in_c_into_the_table_the_record_reader_makes(tmp_path: Path) -> None:
    with postgres_database() as fast_url, postgres_database() as slow_url:
        loads_alike(fast_url, slow_url, tmp_path)
        import psycopg2

        days = []
        for url in (fast_url, slow_url):
            with psycopg2.connect(url) as conn, conn.cursor() as cur:
                cur.execute("SELECT sync_date, count(*) FROM t_plain GROUP BY 1 ORDER BY 1")
                days.append(cur.fetchall())
            conn.close()
        assert days[0] == days[1] and len(days[0]) > 3


def test_sqlite_reads_clean_files_in_c_into_the_table_the_record_reader_makes(tmp_path: Path) -> None:
    loads_alike(f"sqlite:///{tmp_path}/fast.db", f"sqlite:///{tmp_path}/slow.db", tmp_path)
    import sqlite3

    days = []
    for name in ("fast.db", "slow.db"):  # the values are stored as the same SQLite types too
        with sqlite3.connect(tmp_path / name) as conn:
            days.append(
                conn.execute(
                    "SELECT sync_date, typeof(sync_date), typeof(event_timestamp), typeof(eof), "
                    "count(*) FROM t_plain GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
                ).fetchall()
            )
        conn.close()
    assert days[0] == days[1] and len(days[0]) > 3


def open_rows(pairs: list[tuple[Path, Path]]) -> Iterator[list[str | None]]:
    from airflow_provider_uci.exhaust.spark_csv import read_records

    for response, _ in pairs:
        with response.open(encoding="utf-8", newline="") as handle:
            records = read_records(handle)
            next(records)
            yield from (values for _, values in records)


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("old", "new", "reader"),
    [
        # a form only the record reader takes: the C engine leaves the block to it
        (',ftp,"","",0,1,1,', ',ftp,"","",0.0,1,1,', "records"),
        (',ftp,"","",0,1,1,', ',ftp,"","", 0,1,1,', "records"),
        (
            "2022-06-21T14:48:17.046Z,2022-06-21T14:48:17.046Z",
            "2022-06-21 14:48:17.046Z,2022-06-21T14:48:17.046Z",
            "records",
        ),
        # forms both take, to the same values
        (",false,2022-06-21T14:48:17.046Z", ",FALSE,2022-06-21T14:48:17.046Z", "arrow"),
        (
            "2022-06-21T14:48:17.046Z,2022-06-21T14:48:17.046Z",
            "2022-06-21T20:18:17.046+05:30,2022-06-21T14:48:17.046Z",
            "arrow",
        ),
    ],
    ids=["0.0", "a space", "a space for T", "FALSE", "an offset"],
)
def test_a_value_in_an_unusual_form_loads_as_the_record_reader_reads_it(
    old: str, new: str, reader: str, tmp_path: Path
) -> None:
    response = tmp_path / "response.csv"
    record = rewrite_record(TARA, 2, old, new, response)
    with postgres_database() as url:
        summary = load_exhaust(response_csv=response, private=SUNBIRD / TARA.private, warehouse_url=url)
        rows = table_rows(url)
    key = (TARA_BOT, record.values["Message ID"], record.values["Device ID"], record.values["Question Id"])
    assert summary.reader == reader
    assert summary.responses_loaded == TARA.rows and summary.rejected == 0
    assert rows == expected_rows(TARA)
    assert rows[key]["question_duration"] == 0


@pytest.mark.postgres
def test_two_first_loads_at_once_both_land_and_the_tables_get_their_indexes(tmp_path: Path) -> None:
    import threading

    with postgres_database() as url:
        results: dict[str, Any] = {}

        def run(name: str, pair: Pair) -> None:
            try:
                results[name] = load_exhaust(
                    response_csv=SUNBIRD / pair.response, private=pair.private_path, warehouse_url=url
                )
            except BaseException as exc:
                results[name] = exc

        threads = [
            threading.Thread(target=run, args=(pair.name, pair)) for pair in (TARA, PAIRS[2], PAIRS[0])
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)

        assert {name: getattr(result, "responses_loaded", result) for name, result in results.items()} == {
            pair.name: pair.rows for pair in (TARA, PAIRS[2], PAIRS[0])
        }
        table = table_rows(url)
        for pair in (TARA, PAIRS[2], PAIRS[0]):
            rows = expected_rows(pair)
            assert {key: row for key, row in table.items() if key in rows} == rows
        assert len(table) == TARA.rows + PAIRS[2].rows + PAIRS[0].rows
        import psycopg2

        with psycopg2.connect(url) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT table_name FROM information_schema.table_constraints "
                "WHERE constraint_type = 'PRIMARY KEY' AND table_name LIKE %s ORDER BY 1",
                (f"{TABLE}%",),
            )
            assert [row[0] for row in cur.fetchall()] == [f"{TABLE}_loads", f"{TABLE}_users"]
            cur.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s", (TABLE,))
            assert [row[0] for row in cur.fetchall()] == [
                f"CREATE INDEX {TABLE}_bot_day ON public.{TABLE} USING brin (conversation_id, sync_date) "
                "WITH (autosummarize='on')"
            ]
        conn.close()


@pytest.mark.postgres
def test_a_nul_postgresql_would_refuse_is_a_reject_named_with_its_line(tmp_path: Path) -> None:
    """No PostgreSQL text can hold a NUL: the reader rejects the record (whichever warehouse), naming its
    line and column, before any row goes to the server; the rest of the file is still read in C."""
    response = tmp_path / "response.csv"
    record = rewrite_record(TARA, 2, "comic_books[1]/eof", "comic\x00books[1]/eof", response)
    with postgres_database() as url:
        loaded(uci_load(SUNBIRD / PAIRS[2].response, PAIRS[2].private_path, url))
        before = state(url)

        with pytest.raises(
            RejectLimitExceeded,
            match=rf"line {record.line} of response.csv: x_path: contains a NUL character",
        ):
            load_exhaust(response_csv=response, private=SUNBIRD / TARA.private, warehouse_url=url)
        assert state(url) == before
        summary = load_exhaust(
            response_csv=response,
            private=SUNBIRD / TARA.private,
            warehouse_url=url,
            max_rejects=1,
            table="other",
        )
    assert (summary.reader, summary.rejected, summary.responses_loaded) == ("records", 1, TARA.rows - 1)


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        (
            "2022-06-21T14:48:17.046Z,2022-06-21T14:48:17.046Z",
            "2022-06-21T14:48:17.046Z,0000-06-21T14:48:17.046Z",
            "at_timestamp: expected an ISO 8601 timestamp",
        ),
        (
            "2022-06-21T14:48:17.046Z,2022-06-21T14:48:17.046Z",
            "2022-06-21T14:48:17.046Z,2022-06-21T14:48:17.046+16:00",
            "at_timestamp: a zone offset beyond ±15:59",
        ),
        (
            ",false,2022-06-21T14:48:17.046Z",
            ",fal\u017fe,2022-06-21T14:48:17.046Z",
            "eof: expected true or false",
        ),
    ],
    ids=["year 0", "offset +16:00", "a long s"],
)
def test_a_value_only_the_record_reader_judges_is_rejected_as_it_rejects_it(
    old: str, new: str, reason: str, tmp_path: Path
) -> None:
    response = tmp_path / "response.csv"
    rewrite_record(TARA, 2, old, new, response)
    with postgres_database() as url:
        loaded(uci_load(SUNBIRD / PAIRS[2].response, PAIRS[2].private_path, url))
        before = state(url)
        with pytest.raises(RejectLimitExceeded, match=rf"line \d+ of response.csv: {re.escape(reason)}"):
            load_exhaust(response_csv=response, private=SUNBIRD / TARA.private, warehouse_url=url)
        summary = load_exhaust(
            response_csv=response,
            private=SUNBIRD / TARA.private,
            warehouse_url=url,
            max_rejects=1,
            table="other",
        )
        assert state(url) == before
    assert (summary.reader, summary.rejected, summary.responses_loaded) == ("records", 1, TARA.rows - 1)


@pytest.mark.postgres
@pytest.mark.parametrize("where", ["response", "private"])
def test_text_that_is_not_utf8_fails_with_the_file_and_line(where: str, tmp_path: Path) -> None:
    response, private = tmp_path / "response.csv", tmp_path / "private.csv"
    response.write_bytes((SUNBIRD / TARA.response).read_bytes())
    private.write_bytes((SUNBIRD / TARA.private).read_bytes())
    target = response if where == "response" else private
    target.write_bytes(target.read_bytes().replace(b"Tara Bot", b"Tara \xff Bot", 1))
    with postgres_database() as url:
        with pytest.raises(
            ValueError, match=rf"{target.name}: line \d+ or a little after it: not UTF-8 text"
        ):
            load_exhaust(response_csv=response, private=private, warehouse_url=url, conversation_id=TARA_BOT)
        with open_warehouse(url) as warehouse:
            assert warehouse.count(TABLE) == 0


@pytest.mark.postgres
def test_a_value_longer_than_the_record_reader_takes_fails_the_file_whichever_reads_it(
    tmp_path: Path,
) -> None:
    response = tmp_path / "response.csv"
    record = rewrite_record(TARA, 2, "comic_books[1]/eof", "c" * 140_000, response)
    assert record.values["Conversation ID"] == TARA_BOT
    with postgres_database() as url:
        with pytest.raises(ValueError, match=r"response.csv: line \d+: field larger than field limit"):
            load_exhaust(response_csv=response, private=SUNBIRD / TARA.private, warehouse_url=url)


def test_a_load_task_process_loads_without_importing_pandas(tmp_path: Path) -> None:
    """The load task lets pyarrow start without pandas (a third of a CPU-second a task); the rows are the same,
    and pandas can still be imported afterwards."""
    code = f"""
import sys
from pathlib import Path
from airflow_provider_uci.operators.load import arrow_without_pandas
arrow_without_pandas()
from airflow_provider_uci.exhaust.load import load_exhaust
summary = load_exhaust(response_csv=Path({str(SUNBIRD / TARA.response)!r}), private=Path({str(SUNBIRD / TARA.private)!r}),
                       warehouse_url="sqlite:///{tmp_path}/w.db")
print(summary.responses_loaded, summary.reader, "pandas" in sys.modules)
import pandas
print(pandas.__name__)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == [str(TARA.rows), "arrow", "False", "pandas"]
    reference = f"sqlite:///{tmp_path}/reference.db"
    loaded(uci_load(SUNBIRD / TARA.response, SUNBIRD / TARA.private, reference))
    assert state(f"sqlite:///{tmp_path}/w.db")[:2] == state(reference)[:2]
