"""Hostile files cost little: rejects stop the read at the limit, blank lines are counted in runs, the reject
file is capped, a tiny zip cannot unzip to megabytes, and an id or a name from a file cannot name a path.

The full-size files (a 1 GiB response file of blank lines, a 4 KB zip of 4 MiB of newlines) are measured by
``tests/benchmarks/hostile_input.py``, which prints their time and peak RSS.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest

from airflow_provider_uci.exhaust.load import RejectLimitExceeded, load_exhaust
from airflow_provider_uci.exhaust.private_zip import UNZIP_FLOOR, ZipTooLarge, open_private_zip, unzip_limit
from airflow_provider_uci.exhaust.records import ExhaustFormatError
from airflow_provider_uci.exhaust.warehouse import check_table
from tests.benchmarks.hostile_input import (
    PRIVATE_HEADER,
    TARA_PRIVATE,
    TARA_RESPONSE,
    measure,
    table_state,
    uci_exhaust,
)

BOT = "c387e983-f87b-4471-aef5-c31634fd1433"
MIB = 1 << 20


def tara_lines() -> tuple[str, list[str]]:
    """The Tara sample's header and its records, each a line of its own (the sample's multi-line records
    stay whole: they are the text between one record's start and the next)."""
    text = TARA_RESPONSE.read_text(encoding="utf-8")
    header, _, body = text.partition("\n")
    records, current = [], ""
    for line in body.splitlines(keepends=True):
        if line.startswith("ASSESS:") and current:
            records.append(current)
            current = ""
        current += line
    records.append(current)
    return header, records


def blank_lines_file(path: Path, blank_bytes: int, header: bytes | None = None) -> Path:
    """A response exhaust header, then ``blank_bytes`` line ends."""
    with path.open("wb") as out:
        out.write(header if header is not None else TARA_RESPONSE.read_bytes().split(b"\n", 1)[0] + b"\n")
        chunk = b"\n" * MIB
        left = blank_bytes
        while left > 0:
            out.write(chunk[: min(left, MIB)])
            left -= MIB
    return path


def newline_zip(path: Path, newline_bytes: int) -> Path:
    """A private exhaust zip of the header and ``newline_bytes`` line ends (4 MiB deflate to about 4 KB)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("users.csv", PRIVATE_HEADER + b"\n" * newline_bytes)
    return path


# -- rejects -----------------------------------------------------------------------------------------


def test_max_rejects_0_stops_the_read_at_the_first_reject(tmp_path: Path) -> None:
    """20 MiB of blank lines: the load fails at the first, having written one reject, not twenty million."""
    response = blank_lines_file(tmp_path / "response.csv", 20 * MIB)
    rejects = tmp_path / "response.rejects.jsonl"
    with pytest.raises(
        RejectLimitExceeded,
        match=r"^1 record\(s\) rejected, more than max_rejects=0: line 2 of "
        r"response.csv: a blank line .*the read stopped there",
    ):
        load_exhaust(
            response_csv=response,
            private=TARA_PRIVATE,
            warehouse_url=f"sqlite:///{tmp_path}/w.db",
            conversation_id=BOT,
            reject_path=rejects,
        )
    entries = [json.loads(line) for line in rejects.read_text(encoding="utf-8").splitlines()]
    assert [(entry["line"], entry["last_line"]) for entry in entries] == [(2, 2)]
    assert rejects.stat().st_size < 1000


def test_a_run_of_blank_lines_is_one_reject_entry_and_each_line_counts(tmp_path: Path) -> None:
    header, records = tara_lines()
    response = tmp_path / "response.csv"
    response.write_text(
        header + "\n" + "".join(records[:10]) + "\n" * 1000 + "".join(records[10:]),
        encoding="utf-8",
        newline="",
    )
    rejects = tmp_path / "rejects.jsonl"
    url = f"sqlite:///{tmp_path}/w.db"
    with pytest.raises(RejectLimitExceeded, match=r"^1000 record\(s\) rejected, more than max_rejects=999"):
        load_exhaust(
            response_csv=response,
            private=TARA_PRIVATE,
            warehouse_url=url,
            max_rejects=999,
            reject_path=rejects,
        )

    summary = load_exhaust(
        response_csv=response, private=TARA_PRIVATE, warehouse_url=url, max_rejects=1000, reject_path=rejects
    )

    assert (summary.rejected, summary.responses_loaded) == (1000, len(records))
    (entry,) = [json.loads(line) for line in rejects.read_text(encoding="utf-8").splitlines()]
    first = 2 + sum(record.count("\n") for record in records[:10])
    assert (entry["line"], entry["last_line"], entry["blank_lines"]) == (first, first + 999, 1000)
    assert entry["reason"].startswith("1000 blank lines")


def test_the_reject_file_holds_a_bounded_number_of_entries_and_bytes(tmp_path: Path) -> None:
    from airflow_provider_uci.exhaust.rejects import VALUE_CHARS, Rejects

    path = tmp_path / "rejects.jsonl"
    rejects = Rejects(path, entries=5, file_bytes=1 << 20)
    for line in range(2, 22):
        rejects.add("f.csv", line, "broken", ["x" * (VALUE_CHARS * 4), "y"])
    rejects.close()
    *entries, last = [json.loads(text) for text in path.read_text(encoding="utf-8").splitlines()]
    assert [entry["line"] for entry in entries] == [2, 3, 4, 5, 6] and rejects.count == 20
    assert len(entries[0]["values"][0]) < VALUE_CHARS + 40 and entries[0]["values"][1] == "y"
    assert last["omitted"] == 15 and "counted, not written" in last["reason"]

    sized = Rejects(tmp_path / "sized.jsonl", file_bytes=10_000)
    for line in range(2, 1002):
        sized.add("f.csv", line, "broken", ["z" * 1000])
    sized.close()
    assert (tmp_path / "sized.jsonl").stat().st_size < 10_000 + 2 * VALUE_CHARS


def test_a_file_whose_every_record_is_rejected_says_how_many_why_and_where(tmp_path: Path) -> None:
    header, records = tara_lines()
    response = tmp_path / "response.csv"
    broken = [record.replace(BOT, "", 1) for record in records[:3]]  # no Conversation ID: part of the key
    assert all(BOT not in record.split('"', 1)[0] for record in broken)
    response.write_text(header + "\n" + "".join(broken), encoding="utf-8", newline="")
    rejects = tmp_path / "rejects.jsonl"

    with pytest.raises(ExhaustFormatError) as refused:
        load_exhaust(
            response_csv=response,
            private=TARA_PRIVATE,
            warehouse_url=f"sqlite:///{tmp_path}/w.db",
            max_rejects=10,
            reject_path=rejects,
        )

    message = str(refused.value)
    assert message.startswith(
        "response.csv: no readable response record to take the conversation id from: "
        "3 record(s) rejected: line 2 of response.csv: conversation_id: must not be empty"
    )
    assert f"they are in {rejects}" in message
    assert len(rejects.read_text(encoding="utf-8").splitlines()) == 3


# -- the private zip ------------------------------------------------------------------------------------


def test_a_tiny_zip_cannot_unzip_to_megabytes(tmp_path: Path) -> None:
    """4 MiB of newlines deflate to about 4 KB: the default limit is 100 times the zip, with no 64 MiB floor."""
    archive = newline_zip(tmp_path / "users.zip", 4 * MIB)
    size = archive.stat().st_size
    assert size < 10_000
    assert unzip_limit(size) == max(UNZIP_FLOOR, 100 * size) <= MIB
    with pytest.raises(ZipTooLarge, match="more than the limit"):
        open_private_zip(archive, None, tmp_path / "out")
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_a_zip_of_newlines_fails_the_load_fast_with_a_tiny_reject_file(tmp_path: Path) -> None:
    archive = newline_zip(tmp_path / "users.zip", 4 * MIB)
    database = tmp_path / "w.db"
    url = f"sqlite:///{database}"
    load_exhaust(response_csv=TARA_RESPONSE, private=TARA_PRIVATE, warehouse_url=url)
    before = table_state(database)
    rejects = tmp_path / "rejects.jsonl"
    scratch = tmp_path / "tmp"
    scratch.mkdir()

    result = measure(
        [
            *uci_exhaust(),
            "load",
            "--response",
            str(TARA_RESPONSE),
            "--private",
            str(archive),
            "--warehouse",
            url,
            "--rejects",
            str(rejects),
        ],
        env={**os.environ, "TMPDIR": str(scratch)},
    )

    assert result["returncode"] == 2, result["stderr"]
    assert "users.zip" in str(result["stderr"]) and "Traceback" not in str(result["stderr"])
    assert not rejects.exists() or rejects.stat().st_size < 1000
    assert table_state(database) == before and list(scratch.iterdir()) == []


# -- a byte order mark ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fast", [True, False], ids=["in C", "record by record"])
def test_files_that_start_with_a_utf8_byte_order_mark_load(fast: bool, tmp_path: Path) -> None:
    response, private = tmp_path / "response.csv", tmp_path / "private.csv"
    response.write_bytes(b"\xef\xbb\xbf" + TARA_RESPONSE.read_bytes())
    private.write_bytes(b"\xef\xbb\xbf" + TARA_PRIVATE.read_bytes())
    reference = load_exhaust(
        response_csv=TARA_RESPONSE,
        private=TARA_PRIVATE,
        warehouse_url=f"sqlite:///{tmp_path}/a.db",
        fast=fast,
    )

    summary = load_exhaust(
        response_csv=response, private=private, warehouse_url=f"sqlite:///{tmp_path}/b.db", fast=fast
    )

    assert (summary.conversation_id, summary.responses_loaded, summary.users_loaded, summary.rejected) == (
        BOT,
        reference.responses_loaded,
        reference.users_loaded,
        0,
    )

    def rows(database: Path) -> list[tuple[object, ...]]:  # the audit rows differ in their times
        return [row for row in table_state(database) if row[0] != "uci_responses_loads"]

    assert rows(tmp_path / "b.db") == rows(tmp_path / "a.db")


# -- ids and names ---------------------------------------------------------------------------------------


def test_a_conversation_id_taken_from_the_file_must_be_a_uuid(tmp_path: Path) -> None:
    response = tmp_path / "response.csv"
    response.write_text(
        TARA_RESPONSE.read_text(encoding="utf-8").replace(BOT, "../../../outside/pwned"),
        encoding="utf-8",
        newline="",
    )
    with pytest.raises(
        ValueError,
        match=r"^response.csv: Conversation ID: must be a UUID, 8-4-4-4-12 hex digits .*"
        r"got '../../../outside/pwned'",
    ):
        load_exhaust(response_csv=response, private=None, warehouse_url=f"sqlite:///{tmp_path}/w.db")
    assert not (tmp_path / "w.db").exists() or table_state(tmp_path / "w.db") == []


@pytest.mark.parametrize(
    "value", ["../../escaped", f"{BOT}\n", f"{{{BOT}}}", BOT.replace("-", ""), "", "x" * 36]
)
def test_a_conversation_id_given_must_be_a_uuid(value: str, tmp_path: Path) -> None:
    from airflow_provider_uci.exhaust.names import InvalidConversationId, conversation_id

    with pytest.raises(InvalidConversationId, match=r"^from_asset: must be a UUID"):
        conversation_id(value, "from_asset")
    if value:  # an empty id is taken from the file, as a missing one
        with pytest.raises(ValueError, match=r"^conversation_id: must be a UUID"):
            load_exhaust(
                response_csv=TARA_RESPONSE,
                private=TARA_PRIVATE,
                warehouse_url=f"sqlite:///{tmp_path}/w.db",
                conversation_id=value,
            )
    assert conversation_id(BOT.upper(), "x") == BOT.upper()


@pytest.mark.parametrize("table", ["uci_responses_users\n", "answers\n", "answers\r", "answers\x00"])
def test_a_table_name_with_a_line_end_or_nul_is_refused(table: str) -> None:
    with pytest.raises(ValueError, match=r"^table: must be a plain identifier"):
        check_table(table)


def test_blank_lines_are_left_to_the_record_reader_before_pyarrow_makes_rows_of_them() -> None:
    """pyarrow reads a line end as a row of nulls: two million rows (400 MB) for a block of 2 MiB of them."""
    from airflow_provider_uci.exhaust.arrow_csv import csv_options, parse_block

    options = csv_options(3, 1 << 21)
    for data in (b"\n" * (1 << 21), b"a,b,c\n\nd,e,f\n", b"a,b,c\r\n\r\nd,e,f\r\n", b"\na,b,c\n"):
        table, doubt = parse_block(memoryview(bytearray(data)), options)
        assert (table, doubt) == (None, "a blank line"), data[:20]
    table, doubt = parse_block(memoryview(bytearray(b'a,"Hi,\n\nTara",c\nd,e,f\n')), options)
    assert doubt is None and table.column(1).to_pylist() == ["Hi,\n\nTara", "e"]
