"""Exhausts as DataFrames: the values a reader of Spark's escape rule finds, and what the warehouse holds.

The expected values come from a reader written out here (a backslash escapes the quote after it, and
nothing else), not from the project's readers.
"""

from __future__ import annotations

import io
import zipfile
from datetime import timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from airflow_provider_uci.analytics import read_joined_exhaust, read_private_exhaust, read_response_exhaust
from airflow_provider_uci.analytics.frames import RESPONSE_FRAME_COLUMNS
from airflow_provider_uci.emulator.crypto import zip_single_file
from airflow_provider_uci.exhaust.load import load_exhaust
from airflow_provider_uci.exhaust.private_zip import ZipPasswordError
from airflow_provider_uci.exhaust.records import ExhaustFormatError
from airflow_provider_uci.exhaust.warehouse import open_warehouse
from tests.support.services import postgres_database
from tests.support.warehouse import fetch_normalised

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "sunbird"
RESPONSES = sorted(FIXTURES.glob("response-exhaust-*.csv"))
PAIRS = [
    (FIXTURES / "response-exhaust-2022-04-sample.csv", None),  # its private sample is of another bot
    (FIXTURES / "response-exhaust-2022-06-sample.csv", FIXTURES / "private-exhaust-2022-06-sample.csv"),
    (FIXTURES / "response-exhaust-2022-06-24-mentor-feedback.csv", None),
]
NAMES = {
    "Conversation ID": "conversation_id",
    "Message ID": "message_id",
    "Device ID": "device_id",
    "Question Id": "question_id",
    "Conversation Name": "conversation_name",
    "Session ID": "session_id",
    "Question Type": "question_type",
    "Question Title": "question_title",
    "Question Description": "question_description",
    "Question Duration": "question_duration",
    "Question Score": "question_score",
    "Question Max Score": "question_max_score",
    "Question Options": "question_options",
    "Question Response": "question_response",
    "X Path": "x_path",
    "Eof": "eof",
    "Timestamp": "event_timestamp",
    "@timestamp": "at_timestamp",
}


def spark_records(text: str) -> list[list[str | None]]:
    """Spark's CSV by its rule: a backslash is escaped only before a quote, so in a quoted value a run
    of n backslashes before a quote is an escaped quote (n = 1), a value ending in a backslash (n = 2),
    or n - 2 backslashes and a quote (n >= 3); any other backslash is itself. An unquoted empty value
    is null."""
    records, values, at = [], [], 0
    while at < len(text):
        if text[at] == '"':
            at += 1
            chars = []
            while True:
                if text[at] == "\\":
                    run = len(text[at:]) - len(text[at:].lstrip("\\"))
                    if text[at + run] != '"':
                        chars.append("\\" * run)
                        at += run
                    elif run == 2:
                        chars.append("\\")
                        at += run + 1
                        break
                    else:
                        chars.append("\\" * (run - 2 if run > 2 else 0) + '"')
                        at += run + 1
                    continue
                if text[at] == '"':
                    at += 1
                    break
                chars.append(text[at])
                at += 1
            values.append("".join(chars))
        else:
            end = min(x for x in (text.find(",", at), text.find("\n", at), len(text)) if x >= 0)
            values.append(text[at:end] or None)
            at = end
        if at >= len(text) or text[at] == "\n":
            records.append(values)
            values = []
        at += 1
    return records


def spark_value(value: str) -> str:
    """A value as Spark writes it: quoted, each quote escaped, a backslash before a quote (or at the end) too."""
    out = []
    for at, char in enumerate(value):
        if char == '"':
            out.append('\\"')
        elif char == "\\" and (at + 1 == len(value) or value[at + 1] == '"'):
            out.append("\\\\")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def expected_frame(path: Path) -> list[dict[str, Any]]:
    header, *rows = spark_records(path.read_text(encoding="utf-8"))
    result = []
    for values in rows:
        row = {NAMES[name]: value for name, value in zip(header, values, strict=True) if name in NAMES}
        result.append({field: row.get(field) for field in NAMES.values()})
    return result


def plain(value: Any) -> Any:
    """A frame's value as the reader above would write it."""
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)) or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@pytest.mark.parametrize("path", RESPONSES, ids=lambda path: path.name)
def test_every_value_of_a_real_exhaust_is_what_spark_wrote(path: Path) -> None:
    frame = read_response_exhaust(path)
    expected = expected_frame(path)
    assert list(frame.columns) == list(RESPONSE_FRAME_COLUMNS)
    assert len(frame) == len(expected) > 0
    for got, want in zip(frame.to_dict("records"), expected, strict=True):
        assert {field: plain(got[field]) for field in NAMES.values()} == want
    assert str(frame["question_duration"].dtype) == "Int64" and str(frame["eof"].dtype) == "boolean"
    assert (
        str(frame["event_timestamp"].dtype).startswith("datetime64")
        and str(frame["event_timestamp"].dt.tz) == "UTC"
    )


def test_pandas_read_csv_alone_misreads_what_the_frame_reads_right() -> None:
    path = FIXTURES / "response-exhaust-2022-06-sample.csv"
    right = read_response_exhaust(path)
    try:
        naive = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.ParserError:
        return  # rows split at a backslash-escaped quote until the counts no longer agree
    assert (
        len(naive) != len(right) or naive["Question Response"].tolist() != right["question_response"].tolist()
    )


def test_json_with_escapes_kept_exact_and_a_value_ending_in_a_backslash(tmp_path: Path) -> None:
    answer = '[{"ans1":"line one\\nline \\"two\\" \\\\ end"}]'  # JSON text: \n, \" and \\ escapes
    title = "ends in \\"
    path = tmp_path / "answers.csv"
    path.write_text(
        "Message ID,Conversation ID,Device ID,Question Id,Question Response,Question Title,Timestamp,@timestamp\n"
        f"m1,bot,d1,q1,{spark_value(answer)},{spark_value(title)},2026-01-10T10:00:00.000Z,2026-01-10T10:00:01.000Z\n"
        'm2,bot,d1,q2,"",,2026-01-10T19:00:00.000Z,\n',
        encoding="utf-8",
    )
    frame = read_response_exhaust(path)
    assert frame["question_response"].tolist() == [answer, ""]
    assert [row["question_response"] for row in expected_frame(path)] == [answer, ""], (
        "the rule reads it alike"
    )
    assert frame.loc[0, "question_title"] == title
    assert frame.loc[1, "question_title"] is pd.NA, (
        "null (nothing between commas) stays apart from an empty string"
    )
    assert frame["x_path"].isna().all() and frame["eof"].isna().all(), "columns the vintage lacks are null"
    assert [str(day) for day in frame["sync_date"]] == ["2026-01-10", "2026-01-11"], (
        "the IST day of @timestamp"
    )
    naive = pd.read_csv(io.StringIO(path.read_text(encoding="utf-8")), escapechar="\\", dtype=str)
    assert naive["Question Response"][0] != answer, (
        "an escape character drops the backslash of JSON's escapes"
    )


def test_a_file_with_rows_of_two_bots_reads_every_row(tmp_path: Path) -> None:
    source = FIXTURES / "response-exhaust-2022-06-sample.csv"
    two_bots = tmp_path / "two-bots.csv"
    text = source.read_text(encoding="utf-8")
    two_bots.write_text(
        text.replace("c387e983-f87b-4471-aef5-c31634fd1433", "another-bot", 1), encoding="utf-8"
    )
    one, other = read_response_exhaust(source), read_response_exhaust(two_bots)
    assert other.loc[0, "conversation_id"] == "another-bot"
    other.loc[0, "conversation_id"] = "c387e983-f87b-4471-aef5-c31634fd1433"
    pd.testing.assert_frame_equal(one, other)


def test_a_broken_record_fails_the_read_naming_its_line_and_rule(tmp_path: Path) -> None:
    path = tmp_path / "broken.csv"
    path.write_text(
        "Message ID,Conversation ID,Device ID,Question Id,Question Duration\nm1,bot,d1,q1,soon\n",
        encoding="utf-8",
    )
    with pytest.raises(ExhaustFormatError, match=r"line 2 .*question_duration: expected a whole number"):
        read_response_exhaust(path)


def test_private_exhaust_from_csv_and_from_an_encrypted_zip(tmp_path: Path) -> None:
    source = FIXTURES / "private-exhaust-2022-06-sample.csv"
    archive = tmp_path / "uci-private-exhaust.zip"
    zip_single_file(source, archive, "uci-private-exhaust.csv", "secret-key")
    from_csv, from_zip = read_private_exhaust(source), read_private_exhaust(archive, password="secret-key")
    pd.testing.assert_frame_equal(from_csv, from_zip)
    assert from_csv["phone"].tolist() == ["phone:8148413883", "phone:7597185708"]
    assert from_csv["consented"].tolist() == [True, True]
    hashed = read_private_exhaust(archive, password="secret-key", phone_numbers="hashed")
    assert all(len(phone) == 64 for phone in hashed["phone"])
    with pytest.raises(ZipPasswordError):
        read_private_exhaust(archive, password="wrong")
    assert zipfile.is_zipfile(archive)


def _warehouse_values(url: str) -> list[tuple[Any, ...]]:
    with open_warehouse(url) as warehouse:
        return sorted(fetch_normalised(warehouse, "uci_responses"), key=lambda row: row[:4])


def _frame_values(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    rows = []
    for record in frame.drop(columns=["sync_date"]).to_dict("records"):
        row = []
        for key, value in record.items():
            if value is pd.NA or value is None or value is pd.NaT:
                row.append(None)
            elif isinstance(value, pd.Timestamp):
                moment = value.to_pydatetime().astimezone(timezone.utc)
                row.append(f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z")
            elif key in ("question_duration", "question_score", "question_max_score"):
                row.append(int(value))
            elif key == "eof":
                row.append(bool(value))
            else:
                row.append(value)
        rows.append(tuple(row))
    return sorted(rows, key=lambda row: row[:4])


def _assert_frames_equal_the_warehouse(url: str) -> None:
    expected = []
    for response, private in PAIRS:
        load_exhaust(response_csv=response, private=private, warehouse_url=url)
        expected += _frame_values(read_joined_exhaust(response, private))
    assert _warehouse_values(url) == sorted(expected, key=lambda row: row[:4])
    assert any(row[-2] for row in expected), "some answers have their user's phone joined"


def test_the_joined_frames_equal_what_the_load_writes_to_sqlite(tmp_path: Path) -> None:
    _assert_frames_equal_the_warehouse(f"sqlite:///{tmp_path / 'warehouse.db'}")


def test_the_joined_frames_equal_what_the_load_writes_to_postgres() -> None:
    with postgres_database() as url:
        _assert_frames_equal_the_warehouse(url)


def test_sync_date_is_the_day_the_warehouse_gives_each_row(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    path = FIXTURES / "response-exhaust-2022-04-sample.csv"
    load_exhaust(response_csv=path, private=None, warehouse_url=url)
    with open_warehouse(url) as warehouse:
        stored = {
            (row[0], row[3]): row[1]
            for row in warehouse._query(
                'SELECT message_id, sync_date, question_id, device_id FROM "uci_responses"'
            )
        }
    frame = read_response_exhaust(path)
    assert {
        (m, d): str(day)
        for m, d, day in zip(frame["message_id"], frame["device_id"], frame["sync_date"], strict=False)
    } == {(m, d): day for (m, d), day in stored.items()}
