"""The C engine's parts: Spark's CSV rewritten as RFC 4180 in blocks of whole records (each knowing its
bytes and first line in the file), and rows encoded in PostgreSQL's binary COPY format.

The rewrite is checked against the record reader (``read_records``, itself checked against hand-written
bytes): Python's csv module reading the rewritten bytes as plain RFC 4180 must see the same values.
The binary encoding is checked by PostgreSQL itself: rows copied in binary read back as the values.
"""

from __future__ import annotations

import csv
import io
import random
from datetime import date, datetime, timezone
from pathlib import Path

import pyarrow as pa
import pytest

from airflow_provider_uci.exhaust.arrow_csv import quotes_out_of_place, rfc4180, spark_blocks
from airflow_provider_uci.exhaust.spark_csv import format_row, read_records
from airflow_provider_uci.exhaust.warehouse.pg_binary import (
    PG_BINARY_HEADER,
    PG_BINARY_TRAILER,
    pg_binary_rows,
)
from tests.support.services import postgres_database

SUNBIRD = Path(__file__).resolve().parent.parent / "fixtures" / "sunbird"
PIECES = ["a", "é", "हाँ", ",", '"', "\\", "\\\\", '\\"', "\n", "\r\n", " ", "{", "}", "", "x\\", '""']


def random_rows(seed: int, count: int) -> list[list[str | None]]:
    """Values of the hard pieces; each ends in a letter, as a value that ends in a backslash is
    ambiguous in Spark's dialect (see ``spark_csv``: JSON text never does)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        rows.append(
            [
                None
                if rng.random() < 0.1
                else "".join(rng.choice(PIECES) for _ in range(rng.randrange(8))) + "z"
                for _ in range(4)
            ]
        )
    return rows


def rfc4180_values(data: bytes | bytearray | memoryview) -> list[list[str]]:
    return list(csv.reader(io.StringIO(bytes(data).decode("utf-8"), newline=""), strict=True))


def rewritten(text: str) -> bytes:
    """``text`` rewritten by :func:`rfc4180`, whose count of the result's quotes must hold."""
    data, quotes = rfc4180(bytearray(text.encode("utf-8")))
    assert quotes == bytes(data).count(b'"')
    return bytes(data)


@pytest.mark.parametrize("seed", range(5))
def test_the_rewrite_reads_as_the_record_reader_reads_spark(seed: int) -> None:
    text = "".join(format_row(row) for row in random_rows(seed, 300))
    expected = [values for _, values in read_records(io.StringIO(text, newline=""))]

    got = rfc4180_values(rewritten(text))

    # RFC 4180 readers see null and "" alike; the rewrite keeps "" as "" and null as nothing
    assert got == [["" if value is None else value for value in values] for values in expected]
    assert rewritten(text).count(b'""') >= text.count('""')


@pytest.mark.parametrize("size", [1, 7, 64, 1000, 1 << 20])
def test_blocks_hold_whole_records_whatever_their_size(size: int, tmp_path: Path) -> None:
    rows = random_rows(11, 500)
    path = tmp_path / "spark.csv"
    path.write_text("".join(format_row(row) for row in rows), encoding="utf-8", newline="")

    found = list(spark_blocks(path, size))
    blocks = [bytes(block.data) for block in found]

    whole = b"".join(blocks)
    assert whole == rewritten(path.read_bytes().decode("utf-8"))
    assert sum(len(rfc4180_values(block)) for block in blocks) == len(rows)  # no record split between blocks
    # each block knows its bytes in the file and its first line: read there, its records are the file's
    data = path.read_bytes()
    assert [block.offset for block in found] == [0] + [block.end for block in found[:-1]]
    assert found[-1].end == len(data) and not any(block.doubt for block in found)
    with path.open(encoding="utf-8", newline="") as handle:
        expected = list(read_records(handle))
    got = []
    for block in found:
        text = io.StringIO(data[block.offset : block.end].decode("utf-8"), newline="")
        got += [(line + block.first_line - 1, values) for line, values in read_records(text)]
    assert got == expected


@pytest.mark.parametrize(
    ("spark", "rfc"),
    [
        ('"a\\"b"\n', '"a""b"\n'),  # an escaped quote
        ('"a\\\\"\n', '"a\\"\n'),  # a value ending in a backslash
        ('"a\\\\\\"b"\n', '"a\\""b"\n'),  # a backslash, then an escaped quote
        ('"a\\\\\\\\"b"\n', '"a\\\\""b"\n'),  # two backslashes, then an escaped quote
        ('\\"a",b\n', '""a",b\n'),  # the line (inside a value) starts with an escaped quote
        ('\\\\"\n', '\\"\n'),  # ... with a value's last backslash
        ('\\\\\\"a"\n', '\\""a"\n'),  # ... with a backslash and an escaped quote
        ('a\\b,"c\\nd"\n', 'a\\b,"c\\nd"\n'),  # backslashes before anything else stay
    ],
    ids=["n=1", "n=2", "n=3", "n=4", "n=1 first", "n=2 first", "n=3 first", "no quote"],
)
def test_each_run_of_backslashes_before_a_quote(spark: str, rfc: str) -> None:
    assert rewritten(spark) == rfc.encode()


def test_a_last_line_without_its_line_end_and_a_value_left_open(tmp_path: Path) -> None:
    path = tmp_path / "spark.csv"
    path.write_bytes(b'a,b\n1,"x\\"y"\n2,')
    blocks = [bytes(block.data) for block in spark_blocks(path, 4)]
    assert b"".join(blocks) == b'a,b\n1,"x""y"\n2,\n'  # a line end added: the empty last value is null
    assert [values for block in blocks for values in rfc4180_values(block)] == [
        ["a", "b"],
        ["1", 'x"y'],
        ["2", ""],
    ]
    path.write_bytes(b'a,b\n1,"x\ny\n2,z\n')  # a quote never closed: the file is cut short
    *whole, last = spark_blocks(path, 4)
    assert [bytes(block.data) for block in whole] == [b"a,b\n"]
    assert (last.doubt, last.offset, last.first_line) == ("the file ends inside a quoted value", 4, 2)


def test_a_record_longer_than_the_longest_ends_the_blocks_with_a_doubt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_uci.exhaust import arrow_csv

    monkeypatch.setattr(arrow_csv, "LONGEST_RECORD", 64)
    path = tmp_path / "spark.csv"
    for data in (b'a,b\n1,"' + b"x\n" * 40 + b'"\n2,z\n', b"a,b\n" + b"x" * 100 + b",y\n"):
        path.write_bytes(data)
        *whole, last = spark_blocks(path, 4)
        assert [bytes(block.data) for block in whole] == [b"a,b\n"]
        assert (last.doubt, last.offset, last.first_line) == ("a record longer than 0 MiB", 4, 2)


def test_a_real_file_in_blocks() -> None:
    path = SUNBIRD / "response-exhaust-2022-06-24-mentor-feedback.csv"
    blocks = list(spark_blocks(path, 200))
    assert len(blocks) > 5
    with path.open(encoding="utf-8", newline="") as handle:
        expected = [
            ["" if value is None else value for value in values] for _, values in read_records(handle)
        ]
    assert [values for block in blocks for values in rfc4180_values(block.data)] == expected


@pytest.mark.postgres
def test_binary_rows_read_back_as_their_values() -> None:
    import psycopg2

    texts = ["", None, 'हाँ\n"quoted"\\n', "x" * 70_000, "\\.", "tab\tand\r\nreturns"]
    count = len(texts)
    columns = [
        pa.array(texts, pa.string()),
        pa.array([0, None, -1, 2**62, -(2**63), 7], pa.int64()),
        pa.array([True, False, None, True, False, None]),
        pa.array(
            [
                datetime(2022, 6, 21, 14, 45, 56, 892000, tzinfo=timezone.utc),
                None,
                datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc),
                datetime(2000, 1, 1, tzinfo=timezone.utc),
                datetime(2262, 1, 1, tzinfo=timezone.utc),
                datetime(1970, 1, 1, tzinfo=timezone.utc),
            ],
            pa.timestamp("us", "UTC"),
        ),
        pa.array(
            [
                date(2022, 6, 21),
                date(1999, 12, 31),
                None,
                date(2000, 1, 1),
                date(1900, 3, 1),
                date(9999, 12, 31),
            ],
            pa.date32(),
        ),
        pa.nulls(count, pa.string()),
    ]
    data = PG_BINARY_HEADER + bytes(pg_binary_rows(columns)) + PG_BINARY_TRAILER

    with postgres_database() as url:
        conn = psycopg2.connect(url)
        try:
            with conn.cursor() as cur:
                cur.execute("SET TIME ZONE 'UTC'")
                cur.execute("CREATE TABLE t (s text, i bigint, b boolean, ts timestamptz, d date, n text)")
                cur.copy_expert("COPY t FROM STDIN WITH (FORMAT binary)", io.BytesIO(data))
                cur.execute("SELECT s, i, b, ts, d, n FROM t")
                got = cur.fetchall()
        finally:
            conn.close()

    assert got == [tuple(column[at].as_py() for column in columns) for at in range(count)]


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_in_order_keeps_the_order_and_raises_the_first_error(workers: int) -> None:
    import threading
    import time

    from airflow_provider_uci.exhaust.pipeline import in_order

    names = set()

    def slow_square(number: int) -> int:
        names.add(threading.current_thread().name)
        time.sleep(0.001 * (number % 3))  # later items may finish first
        if number == 40:
            raise ValueError("forty")
        return number * number

    assert list(in_order(slow_square, iter(range(30)), workers)) == [number * number for number in range(30)]
    assert (len(names) > 1) == (workers > 1)
    taken = []
    results = in_order(slow_square, (taken.append(number) or number for number in range(100)), workers)
    with pytest.raises(ValueError, match="forty"):
        list(results)
    assert len(taken) <= 41 + workers  # no more items were taken than there were workers ahead


def test_a_block_longer_than_pyarrows_is_parsed_whole() -> None:
    """A record longer than the read makes a block longer than pyarrow's own block size; pyarrow must
    still see it whole (cut inside, it drops the \\n of a \\r\\n at its block's end)."""
    from airflow_provider_uci.exhaust.arrow_csv import csv_options, parse_block

    options = csv_options(2, 16)  # pyarrow's block: 32 bytes
    value = "x" * 28 + "\r\n" + "y" * 40
    block = memoryview(format_row(["1", value]).encode() + format_row(["2", "z"]).encode())
    assert len(block) > 32 and bytes(block).index(b"\r") == 31

    table, doubt = parse_block(block, options)

    assert doubt is None and table.to_pylist() == [{"c0": "1", "c1": value}, {"c0": "2", "c1": "z"}]


@pytest.mark.parametrize(
    "text",
    [
        b'1,Ta"ra,x\n',  # a quote inside an unquoted value
        b'1,"Title" 3,x\n',  # text after a closing quote
        b'1,ab",x\n2,"y",z\n',  # a stray quote that looks like a closing one
    ],
    ids=["inside", "after", "stray"],
)
def test_a_quote_out_of_place_is_found(text: bytes) -> None:
    assert quotes_out_of_place(memoryview(text))


@pytest.mark.parametrize("seed", range(3))
def test_spark_output_has_no_quote_out_of_place(seed: int) -> None:
    text = "".join(format_row(row) for row in random_rows(seed, 300))
    for line_end in ("\n", "\r\n"):
        assert not quotes_out_of_place(memoryview(rewritten(text.replace("\n", line_end))))
