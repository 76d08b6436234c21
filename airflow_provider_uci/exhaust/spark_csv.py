"""Spark's CSV dialect, as the real exhaust jobs write it (docs/service-contract.md §3.3): write and read.

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

import csv
import re
from collections.abc import Iterable, Iterator
from typing import IO

DELIMITER = ","
QUOTE = '"'
ESCAPE = "\\"

#: The most characters one record may take in the file, its line breaks included: far more than 20 values
#: of the csv module's field limit (128 Ki characters) need. A longer record can only hold a value over
#: that limit, or far more values than an exhaust has; it fails the file before more of it is read.
RECORD_LIMIT = 1 << 24

_NEEDS_QUOTES = re.compile(r'[,"\r\n]')
_BACKSLASHES_BEFORE_QUOTE = re.compile(r'(\\+)(?=")')
_WHITESPACE = "".join(chr(code) for code in range(0, 33))


class SparkCsvError(ValueError):
    """The text is not valid in Spark's CSV dialect; the message gives the line number."""

    def __init__(self, line: int, what: str) -> None:
        super().__init__(f"line {line}{what}")
        self.line, self.what = line, what

    def moved(self, lines: int) -> str:
        """The message, for text that started ``lines`` lines into its file."""
        return f"line {self.line + lines}{self.what}"


def _quoted(value: str) -> str:
    trimmed = value.strip(_WHITESPACE)
    escaped = trimmed
    if ESCAPE in escaped:
        # the last backslash of a run that stands before a quote is written twice
        escaped = _BACKSLASHES_BEFORE_QUOTE.sub(lambda run: run.group(1) + ESCAPE, escaped)
    if escaped.endswith(ESCAPE):
        escaped += ESCAPE  # it stands before the closing quote
    return QUOTE + escaped.replace(QUOTE, ESCAPE + QUOTE) + QUOTE


def format_value(value: str | None) -> str:
    """One value as Spark writes it: nothing for null, ``""`` for empty, quoted only when needed."""
    if value is None:
        return ""
    if (
        value
        and value[0] > " "
        and value[-1] > " "
        and "," not in value
        and QUOTE not in value
        and "\n" not in value
        and "\r" not in value
    ):
        return value  # the common case: nothing to quote, nothing to trim
    if value.strip(_WHITESPACE) == "" or value.strip(_WHITESPACE) != value or _NEEDS_QUOTES.search(value):
        return _quoted(value)
    return value


def format_row(values: Iterable[str | None]) -> str:
    """A record, with its ``\\n``."""
    return DELIMITER.join([format_value(value) for value in values]) + "\n"


#: Stands for an empty quoted value while Python's csv module parses (a private-use character).
_EMPTY_MARK = "\ue000"
_EMPTY_FIELD = re.compile(r'(?:(?<=^)|(?<=,))""(?=,|\r?\n|$)')


def _unescape_run(match: re.Match[str]) -> str:
    """n backslashes then a quote, in RFC 4180 terms (a quote inside a value is doubled)."""
    run = len(match.group(1))
    if run == 2:
        return ESCAPE + QUOTE  # a value's last character is a backslash: it was doubled
    return ESCAPE * max(run - 2, 0) + QUOTE + QUOTE  # an escaped quote, after run-2 backslashes


def _rfc4180(lines: Iterable[str], marked: list[bool] | None = None) -> Iterator[str]:
    """Rewrite Spark's escapes as RFC 4180 doubling, line by line, keeping null apart from ``""``.

    Spark's escapes never span lines and only stand inside quoted values, so each line can be
    rewritten alone. An empty quoted value becomes a marker (an existing marker character is doubled,
    and ``marked[0]`` set).
    """
    empty = QUOTE + _EMPTY_MARK + QUOTE
    for line in lines:
        if _EMPTY_MARK in line:
            line = line.replace(_EMPTY_MARK, _EMPTY_MARK * 2)
            if marked is not None:
                marked[0] = True
        if '""' in line:
            line = line.replace(',"",', f",{empty},").replace(',"",', f",{empty},")
            if line.startswith('""') or ',""' in line:
                line = _EMPTY_FIELD.sub(empty, line)
        if '\\"' in line:
            if '\\\\"' in line:
                line = _BACKSLASHES_BEFORE_QUOTE_RUN.sub(_unescape_run, line)
            else:
                line = line.replace('\\"', '""')
        yield line


_BACKSLASHES_BEFORE_QUOTE_RUN = re.compile(r'(\\+)"')


def _value(text: str) -> str | None:
    if not text:
        return None
    if _EMPTY_MARK in text:
        if text == _EMPTY_MARK:
            return ""
        return text.replace(_EMPTY_MARK * 2, _EMPTY_MARK)
    return text


class _Budget:
    """What is left of :data:`RECORD_LIMIT` for the record being read, and the lines read so far."""

    __slots__ = ("left", "lines")

    def __init__(self) -> None:
        self.left = RECORD_LIMIT
        self.lines = 0


def _lines(handle: IO[str], budget: _Budget) -> Iterator[str]:
    """The handle's lines, each read no further than the record's budget allows (so a line of gigabytes
    is never held whole)."""
    readline = handle.readline
    while line := readline(budget.left + 1):
        budget.lines += 1
        budget.left -= len(line)
        if budget.left < 0:
            raise SparkCsvError(
                budget.lines,
                f": a record longer than {RECORD_LIMIT} characters, which can "
                f"only hold a value over the field limit of {csv.field_size_limit()} characters "
                "or far more values than an exhaust has; refused without reading the rest",
            )
        yield line


def read_records(handle: IO[str]) -> Iterator[tuple[int, list[str | None]]]:
    """Yield ``(line number, values)`` per record; null (nothing) is ``None``, ``""`` is ``""``.

    The line number is that of the record's first line, counting the header as line 1. Open files
    with ``newline=""`` so that line breaks inside values are kept as they are. A value longer than the
    csv module's field limit, or a record longer than :data:`RECORD_LIMIT` characters, fails the file
    (:class:`SparkCsvError`) as soon as it is seen, with memory bounded by those limits.
    """
    marked = [False]  # whether the text itself holds the marker character
    budget = _Budget()
    reader = csv.reader(
        _rfc4180(_lines(handle, budget), marked),
        delimiter=DELIMITER,
        quotechar=QUOTE,
        doublequote=True,
        escapechar=None,
        strict=True,
    )
    mark = _EMPTY_MARK
    first_line = 1
    try:
        for values in reader:
            budget.left = RECORD_LIMIT
            if marked[0]:
                yield first_line, [_value(text) for text in values]
            else:  # then a marker is one that stands for a whole "" value
                yield first_line, [(text if text != mark else "") if text else None for text in values]
            first_line = reader.line_num + 1
    except csv.Error as exc:
        raise SparkCsvError(first_line, f": {exc}") from None
    except (
        UnicodeDecodeError
    ) as exc:  # the text is decoded ahead of the records: the bad byte may be a little further
        raise SparkCsvError(first_line, f" or a little after it: not UTF-8 text ({exc.reason})") from None
