"""Spark's CSV dialect, as the real exhaust jobs write it (contract 3.3), for writing and reading.

Spark writes CSV through univocity with ``quote='"'``, ``escape='\\'`` and
``charToEscapeQuoteEscaping='\\'``, trimming leading and trailing whitespace (its write defaults):

- a value is quoted only when it needs it: it holds the delimiter, a quote, a line break, or had
  whitespace at either end (the published samples quote exactly such values);
- inside a quoted value a quote is written ``\\"`` and a backslash *that stands before a quote* is
  written ``\\\\``; every other backslash is written as it is (so JSON's ``\\n`` stays ``\\n``);
- an empty string is ``""``; null is nothing at all; UTF-8, ``\\n`` line ends, no BOM.

General-purpose readers (Python's ``csv`` with ``escapechar``, pandas, pyarrow, DuckDB) drop a
backslash before *any* character and so corrupt JSON answers; :func:`read_records` undoes exactly
the writer's rule. One ambiguity is inherent in the dialect: three or more backslashes before a
quote mean either an escaped quote or a value ending in backslashes; the reader takes the escaped
quote (JSON text, the only place backslashes occur in exhaust files, never ends in a backslash).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import IO

DELIMITER = ","
QUOTE = '"'
ESCAPE = "\\"

_NEEDS_QUOTES = re.compile(r'[,"\r\n]')
_PLAIN = re.compile(r'[^,"\r\n\x00-\x20](?:[^,"\r\n]*[^,"\r\n\x00-\x20])?\Z')
_BACKSLASHES_BEFORE_QUOTE = re.compile(r'(\\+)(?=")')
_WHITESPACE = "".join(chr(code) for code in range(0, 33))


class SparkCsvError(ValueError):
    """The text is not valid in Spark's CSV dialect; the message gives the line number."""


def format_value(value: str | None) -> str:
    """One value as Spark writes it: nothing for null, ``""`` for empty, quoted only when needed."""
    if value is None:
        return ""
    if _PLAIN.match(value):
        return value  # the common case: nothing to quote, nothing to trim
    trimmed = value.strip(_WHITESPACE)
    if trimmed == "" or trimmed != value or _NEEDS_QUOTES.search(trimmed):
        escaped = trimmed
        if ESCAPE in escaped:
            # the last backslash of a run that stands before a quote is written twice
            escaped = _BACKSLASHES_BEFORE_QUOTE.sub(lambda run: run.group(1) + ESCAPE, escaped)
        if escaped.endswith(ESCAPE):
            escaped += ESCAPE  # it stands before the closing quote
        return QUOTE + escaped.replace(QUOTE, ESCAPE + QUOTE) + QUOTE
    return trimmed


def format_row(values: Iterable[str | None]) -> str:
    """A record, with its ``\\n``."""
    return DELIMITER.join([format_value(value) for value in values]) + "\n"


def write_rows(handle: IO[str], header: Iterable[str], rows: Iterable[Iterable[str | None]]) -> int:
    """Write a header and rows to a text handle; return the number of rows."""
    handle.write(format_row(header))
    count = 0
    for row in rows:
        handle.write(format_row(row))
        count += 1
    return count


def _unescape(body: str) -> str:
    """Undo the writer's escaping of a quoted value's body (quotes already located)."""
    out: list[str] = []
    i, size = 0, len(body)
    while i < size:
        char = body[i]
        if char != ESCAPE:
            out.append(char)
            i += 1
            continue
        run_end = i
        while run_end < size and body[run_end] == ESCAPE:
            run_end += 1
        run = run_end - i
        if run_end < size and body[run_end] == QUOTE:
            # n backslashes then a quote: \" is a quote; otherwise the last backslash was doubled
            originals = 0 if run == 1 else run - 2
            out.append(ESCAPE * originals + QUOTE)
            i = run_end + 1
        elif run_end == size:
            out.append(ESCAPE * max(run - 1, 0))  # doubled before the closing quote
            i = run_end
        else:
            out.append(ESCAPE * run)
            i = run_end
    return "".join(out)


def read_records(handle: IO[str]) -> Iterator[tuple[int, list[str | None]]]:
    """Yield ``(line number, values)`` per record; null (nothing) is ``None``, ``""`` is ``""``.

    The line number is that of the record's first line, counting the header as line 1.
    """
    line_number = 0
    for line in _records_text(handle):
        line_number_start = line_number + 1
        line_number += line.count("\n") or 1
        yield line_number_start, _split(line.rstrip("\n").removesuffix("\r"), line_number_start)


def _records_text(handle: IO[str]) -> Iterator[str]:
    """Join physical lines into records: a line break inside an open quoted value continues it."""
    pending: list[str] = []
    open_quote = False
    for line in handle:
        pending.append(line)
        open_quote = _ends_inside_quotes(line, open_quote)
        if not open_quote:
            yield "".join(pending)
            pending = []
    if pending:
        yield "".join(pending)


def _ends_inside_quotes(line: str, inside: bool) -> bool:
    """Whether a quoted value is still open at the end of ``line``."""
    i, size = 0, len(line)
    at_field_start = not inside
    while i < size:
        char = line[i]
        if inside:
            if char == ESCAPE:
                run_end = i
                while run_end < size and line[run_end] == ESCAPE:
                    run_end += 1
                run = run_end - i
                if run_end < size and line[run_end] == QUOTE and run != 2:
                    i = run_end + 1  # an escaped quote (n == 1 or n >= 3)
                    continue
                i = run_end
                continue
            if char == QUOTE:
                inside = False
                at_field_start = False
            i += 1
            continue
        if char == QUOTE and at_field_start:
            inside = True
        at_field_start = char == DELIMITER
        i += 1
    return inside


def _split(record: str, line_number: int) -> list[str | None]:
    values: list[str | None] = []
    i, size = 0, len(record)
    while True:
        if i < size and record[i] == QUOTE:
            j = i + 1
            while True:
                if j >= size:
                    raise SparkCsvError(f"line {line_number}: a quoted value is not closed")
                char = record[j]
                if char == ESCAPE:
                    run_end = j
                    while run_end < size and record[run_end] == ESCAPE:
                        run_end += 1
                    if run_end < size and record[run_end] == QUOTE and run_end - j != 2:
                        j = run_end + 1
                        continue
                    j = run_end
                    continue
                if char == QUOTE:
                    break
                j += 1
            values.append(_unescape(record[i + 1 : j]))
            i = j + 1
            if i < size and record[i] != DELIMITER:
                raise SparkCsvError(f"line {line_number}: unexpected text after a quoted value at column {len(values)}")
        else:
            end = record.find(DELIMITER, i)
            end = size if end < 0 else end
            text = record[i:end]
            values.append(text if text else None)
            i = end
        if i >= size:
            return values
        i += 1  # the delimiter
        if i == size:
            values.append(None)
            return values
