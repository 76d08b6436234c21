"""Spark's CSV dialect: checked against hand-written bytes and the published exhaust files.

Expectations here never come from the module under test: they are bytes written out by hand from
the rule of docs/service-contract.md §3.3, or the real files the Sunbird/UCI projects published.
"""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

import pytest

from airflow_provider_uci.exhaust.spark_csv import SparkCsvError, format_row, format_value, read_records

SAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "sunbird"
WHITESPACE = "".join(chr(code) for code in range(33))


def read_text(text: str) -> list[list[str | None]]:
    return [values for _, values in read_records(io.StringIO(text, newline=""))]


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (None, ""),
        ("", '""'),
        ("plain text", "plain text"),
        ("Global Tara Bot", "Global Tara Bot"),
        ("a,b", '"a,b"'),
        ("line one\nline two", '"line one\nline two"'),
        ('say "hi"', r'"say \"hi\""'),
        # docs/service-contract.md §3.3's example: JSON of a multi-line answer with a quote
        ('[{"ans1":"a\\nb \\"q\\""}]', r'"[{\"ans1\":\"a\nb \\\"q\\\"\"}]"'),
        ('[{"1":{"text":"1 Yes"}}]', r'"[{\"1\":{\"text\":\"1 Yes\"}}]"'),
        ("C:\\Users\\x", "C:\\Users\\x"),
        ("[]", "[]"),
        ("  padded  ", '"padded"'),
    ],
)
def test_values_are_written_as_spark_writes_them(value: str | None, written: str) -> None:
    assert format_value(value) == written


def test_a_row_ends_with_a_bare_newline() -> None:
    assert format_row(["a", None, "", "b,c"]) == 'a,,"","b,c"\n'


def test_reading_hand_written_bytes_keeps_null_apart_from_empty_and_lone_backslashes() -> None:
    text = (
        "Message ID,Question Response,X Path,Eof\n"
        'ASSESS:1,"[{\\"ans1\\":\\"first\\nsecond \\\\\\"q\\\\\\"\\"}]",,""\n'
        'ASSESS:2,"multi\nline, with comma",question./data/x[1],false\n'
    )
    rows = read_text(text)
    assert rows[0] == ["Message ID", "Question Response", "X Path", "Eof"]
    assert rows[1] == ["ASSESS:1", '[{"ans1":"first\\nsecond \\"q\\""}]', None, ""]
    assert json.loads(rows[1][1]) == [{"ans1": 'first\nsecond "q"'}]
    assert rows[2] == ["ASSESS:2", "multi\nline, with comma", "question./data/x[1]", "false"]


def test_general_purpose_readers_corrupt_what_this_reader_keeps() -> None:
    """Python's csv with escapechar drops the backslash of JSON's \\n: the reason this reader exists."""
    written = format_value('[{"ans1":"a\\nb"}]') + "\n"
    naive = next(csv.reader(io.StringIO(written), escapechar="\\", doublequote=False))[0]
    assert naive == '[{"ans1":"anb"}]'
    assert json.loads(read_text(written)[0][0]) == [{"ans1": "a\nb"}]


def test_line_numbers_count_physical_lines() -> None:
    text = 'h1,h2\n"a\nb",c\nd,e\n'
    assert [number for number, _ in read_records(io.StringIO(text, newline=""))] == [1, 2, 4]


def test_unclosed_quote_is_an_error_naming_the_line() -> None:
    with pytest.raises(SparkCsvError, match="line 2"):
        read_text('h\n"never closed\n')


@pytest.mark.parametrize(
    "name",
    [
        "response-exhaust-2022-06-sample.csv",
        "response-exhaust-2022-04-sample.csv",
        "response-exhaust-2022-06-24-mentor-feedback.csv",
        "private-exhaust-2022-06-sample.csv",
        "private-exhaust-2022-04-sample.csv",
    ],
)
def test_published_files_read_like_their_own_dialect(name: str) -> None:
    """The samples hold no lone backslash, so csv with escapechar reads them right: both must agree."""
    with open(SAMPLES / name, encoding="utf-8", newline="") as handle:
        ours = [[value or "" for value in values] for _, values in read_records(handle)]
    with open(SAMPLES / name, encoding="utf-8", newline="") as handle:
        reference = list(csv.reader(handle, escapechar="\\", doublequote=False))
    assert ours == reference
    assert len({len(row) for row in ours}) == 1
    header = ours[0]
    for row in ours[1:]:
        record = dict(zip(header, row, strict=False))
        for column in ("Question Options", "Question Response"):
            if record.get(column):
                json.loads(record[column])


def test_the_june_sample_has_multi_line_titles_and_json_columns() -> None:
    with open(SAMPLES / "response-exhaust-2022-06-sample.csv", encoding="utf-8", newline="") as handle:
        rows = [values for _, values in read_records(handle)]
    header, body = rows[0], rows[1:]
    assert len(body) == 55
    titles = [row[header.index("Question Title")] for row in body]
    assert any("\n" in title for title in titles if title)
    options = json.loads(body[0][header.index("Question Options")])
    assert options[0] == {"1": {"text": "1 Your Education Boards"}}


def test_round_trip_of_random_values() -> None:
    """Whatever is written reads back (values are trimmed, as Spark's writer trims them)."""
    rng = random.Random(20221)
    alphabet = ["a", ",", '"', "\\", "\n", "\r", " ", "न", "{", "}", ":"]
    for _ in range(5000):
        values = [
            None if rng.random() < 0.1 else "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 9)))
            for _ in range(5)
        ]
        # two or more backslashes at the very end of a value are ambiguous in this dialect (module docstring)
        values = [v if v is None or not v.strip(WHITESPACE).endswith("\\\\") else v + "x" for v in values]
        expected = [None if v is None else v.strip(WHITESPACE) for v in values]
        assert read_text(format_row(values)) == [expected]
