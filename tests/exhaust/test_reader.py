"""The one reader (``exhaust.reader``) against the record reader, its reference: random Spark files full of
values in every form (good, unusual, broken), every real fixture, and every reject case read to the same
values and the same rejects, with the same line numbers, whatever the block size.
"""

from __future__ import annotations

import random
from datetime import date, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_uci.exhaust.reader import RESPONSE_BATCH_COLUMNS, ResponseBatches
from airflow_provider_uci.exhaust.records import (
    RESPONSE_HEADERS,
    Rejects,
    moment,
    read_response_lines,
    sync_day,
)
from airflow_provider_uci.exhaust.spark_csv import format_row

SUNBIRD = Path(__file__).resolve().parent.parent / "fixtures" / "sunbird"
BOT = "c387e983-f87b-4471-aef5-c31634fd1433"
HEADER = list(RESPONSE_HEADERS)
#: Values of each kind: mostly the usual form, some unusual forms both readers read, some broken.
GOOD_TIMES = ["2022-06-21T14:48:17.046Z", "2022-06-20T20:18:17+05:30", "2022-06-21T09:00:00.123456Z"]
ODD_TIMES = [
    "2022-06-21 14:48:17.046Z",
    "2022-06-21T14:48:17",
    "2022-06-21T14:48:17.046-03:00",
    "2022-06-21T14:48Z",
]
BAD_TIMES = ["yesterday", "2022-06-21T14:48:17.046+16:00", "0000-06-21T14:48:17Z", "2022-02-30T10:00:00Z"]
POOLS: dict[str, tuple[list[Any], list[Any], list[Any]]] = {
    "Question Duration": (["12", "0", "-4", "", None], ["0.0", " 7", "3e2"], ["1.5", "twelve"]),
    "Question Score": (["1", "0", None], ["1.0"], ["x"]),
    "Question Max Score": (["1", "100000000000"], ["2.0"], ["1,5"]),
    "Eof": (["true", "false", "", None], ["TRUE", "False"], ["yes", "fal\u017fe"]),
    "Question Options": (
        ['[{"1":{"text":"1 Yes"}}]', "[]", '{"a":"b \\"q\\" \\n"}'],
        [],
        ["[", "", None, "{'a': 1}"],
    ),
    "Question Response": (['[{"1":{"text":"1 Yes"}}]', "", None, '"हाँ\\n"'], [], ["nope", "{"]),
    "Timestamp": ([*GOOD_TIMES, "", None], ODD_TIMES, BAD_TIMES),
    "@timestamp": (GOOD_TIMES, [*ODD_TIMES, "", None], BAD_TIMES),
    "Question Title": (
        ["How are you?", 'टारा\nबॉट, "hi"', "", None, " padded ", "a\\b"],
        ["tab\there"],
        ["nul\x00here"],
    ),
    "X Path": (["/data/q[1]", None], [], ["/x\x00"]),
}


def random_file(path: Path, seed: int, rows: int = 400) -> Path:
    rng = random.Random(seed)
    header = HEADER[:]
    if seed % 3 == 1:
        rng.shuffle(header)  # columns are found by name
    if seed % 3 == 2:
        header = [name for name in header if name not in ("Session ID", "X Path", "Eof")]  # an old vintage
    lines = [format_row(header)]
    for number in range(rows):
        values = {
            "Conversation ID": BOT,
            "Message ID": f"m{number}",
            "Device ID": f"d{number % 37}",
            "Question Id": f"q{number % 5}",
            "Conversation Name": "Tara",
            "Session ID": f"s{number % 9}",
            "Question Type": "SINGLE_SELECT",
            "Question Description": None,
        }
        for name, (good, odd, bad) in POOLS.items():
            roll = rng.random()
            pool = bad if roll < 0.004 and bad else odd if roll < 0.02 and odd else good
            values[name] = rng.choice(pool)
        roll = rng.random()
        if roll < 0.004:
            values[rng.choice(["Message ID", "Device ID", "Question Id"])] = rng.choice(["", None])
        elif roll < 0.008:
            values["Conversation ID"] = "another-bot"
        record = format_row([values.get(name) for name in header])
        if rng.random() < 0.003:
            record = record.rstrip("\n") + ",extra\n"  # a value too many
        lines.append(record)
    if seed % 4 == 3:  # a stray quote: where records end can then only be told in order
        at = rng.randrange(len(lines) // 2, len(lines))
        lines[at] = lines[at].replace("Tara", 'Ta"ra', 1)
    path.write_text("".join(lines), encoding="utf-8", newline="")
    return path


def by_records(
    path: Path, bot: str | None, days: tuple[str | None, str | None]
) -> tuple[list[tuple], list[tuple]]:
    rejects = Rejects(keep=10_000)
    rows = []
    for _, record in read_response_lines(path, rejects, bot, *days):
        day = sync_day(record.at_timestamp, record.event_timestamp) or days[0]
        rows.append((*record, date.fromisoformat(day)))
    return rows, [(entry["line"], entry["reason"], entry["values"]) for entry in rejects.first]


def by_batches(
    path: Path, bot: str | None, days: tuple[str | None, str | None], **options: Any
) -> tuple[list[tuple], list[tuple], ResponseBatches]:
    rejects = Rejects(keep=10_000)
    reader = ResponseBatches(path, rejects, bot, *days, **options)
    rows = []
    for batch in reader:
        assert batch.schema.names == list(RESPONSE_BATCH_COLUMNS)
        rows += [tuple(row.values()) for row in batch.to_pylist()]
    return rows, [(entry["line"], entry["reason"], entry["values"]) for entry in rejects.first], reader


def typed(row: tuple) -> tuple:
    """A record's row with its timestamps as the moments they stand for (as typed batches give them)."""
    at = RESPONSE_BATCH_COLUMNS.index("event_timestamp")
    return (
        *row[:at],
        *(None if text is None else moment(text).astimezone(timezone.utc) for text in row[at : at + 2]),
        *row[at + 2 :],
    )


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("block", [300, 4096, 1 << 21])
def test_random_files_read_as_the_record_reader_reads_them(seed: int, block: int, tmp_path: Path) -> None:
    path = random_file(tmp_path / "response.csv", seed)
    days = [("2022-06-21", "2022-06-21"), ("2022-06-20", "2022-06-22"), (None, None), ("2022-06-21", None)][
        seed % 4
    ]
    expected, rejects = by_records(path, BOT, days)
    assert rejects and expected, "the file holds good records and broken ones"

    as_text, text_rejects, reader = by_batches(path, BOT, days, block_bytes=block, timestamps_as_text=True)
    as_moments, moment_rejects, _ = by_batches(path, BOT, days, block_bytes=block)

    assert as_text == expected
    assert as_moments == [typed(row) for row in expected]
    assert text_rejects == moment_rejects == rejects
    assert (reader.rows, reader.first_synced, reader.last_synced) == (
        len(expected),
        min(row[-1] for row in expected).isoformat(),
        max(row[-1] for row in expected).isoformat(),
    )
    assert reader.engine in ("arrow+records", "records")


@pytest.mark.parametrize("fixture", sorted(path.name for path in SUNBIRD.glob("response-*.csv")))
@pytest.mark.parametrize("block", [200, 1 << 21])
def test_every_real_fixture_reads_in_c_as_the_record_reader_reads_it(fixture: str, block: int) -> None:
    expected, rejects = by_records(SUNBIRD / fixture, None, (None, None))

    rows, got_rejects, reader = by_batches(
        SUNBIRD / fixture, None, (None, None), block_bytes=block, timestamps_as_text=True
    )

    assert rows == expected and got_rejects == rejects == []
    assert reader.engine == "arrow"


def test_a_bad_record_in_the_last_block_is_read_alone_record_by_record(tmp_path: Path) -> None:
    path = random_file(tmp_path / "response.csv", 100, rows=2000)
    text = path.read_text(encoding="utf-8")
    last = text.rstrip("\n").rsplit("\n", 1)[1]
    path.write_text(text.replace(last, last.replace(BOT, "another-bot", 1)), encoding="utf-8", newline="")
    expected, rejects = by_records(path, BOT, (None, None))

    rows, got_rejects, reader = by_batches(path, BOT, (None, None), block_bytes=4096, timestamps_as_text=True)

    assert (rows, got_rejects) == (expected, rejects)
    assert rejects[-1][1].startswith("conversation_id: 'another-bot' is not the requested")
    assert reader.blocks_in_c > 10 and 1 <= reader.blocks_by_records <= 1 + len(rejects)


def test_record_by_record_only_gives_the_same_batches(tmp_path: Path) -> None:
    path = random_file(tmp_path / "response.csv", 5)
    fast = by_batches(path, BOT, (None, None), block_bytes=4096)
    slow = by_batches(path, BOT, (None, None), fast=False)
    assert fast[:2] == slow[:2] and slow[2].engine == "records"
