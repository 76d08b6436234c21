"""Spark's CSV read by pyarrow: the file in blocks of whole records, rewritten as RFC 4180, parsed in C.

pyarrow (like every general-purpose reader) drops a backslash before any character when told of an
escape character, which corrupts JSON answers (see ``spark_csv``); told of none, it reads RFC 4180
exactly. So each block is first rewritten as RFC 4180 by :func:`rfc4180`, the rule the record reader
follows (``spark_csv._rfc4180``), in numpy: every ``\\"`` becomes ``""`` in place, and the rare run of
backslashes before a quote is mended. numpy lets go of the GIL while it works, so other threads go on
parsing and encoding the blocks before. Null (nothing between commas) stays apart from ``""``.

What this path cannot read as the record reader would is told to its caller, which reads those
records record by record (``exhaust.reader``). pyarrow is more lenient than Python's csv module, so
what it would take and the record reader would not is looked for first: a quote out of place
(:func:`quotes_out_of_place`), a file that ends inside a value, a value longer than the csv module's
limit.
"""

from __future__ import annotations

import csv
from collections.abc import Generator
from pathlib import Path
from typing import Any, NamedTuple

_BYTE_ORDER_MARK = b"\xef\xbb\xbf"
_QUOTE, _BACKSLASH, _COMMA, _NEWLINE, _CARRIAGE_RETURN = 0x22, 0x5C, 0x2C, 0x0A, 0x0D
#: A record longer than this is left to the record reader (which takes values of 128 Ki characters at most:
#: 22 of them, at up to four bytes a character, come to less).
LONGEST_RECORD = 1 << 24


def rfc4180(data: bytearray) -> tuple[bytearray | bytes, int]:
    """Whole lines of Spark's CSV rewritten as RFC 4180, and how many quotes the result holds.

    ``data`` (UTF-8; Spark's escapes never span lines) is changed in place and returned, unless a
    run of backslashes before a quote must be mended: then a new, shorter ``bytes`` is. A quote after
    one backslash was escaped (``\\"`` becomes ``""``); after two, the value's last character is a
    backslash (``\\\\"`` becomes ``\\"``); after n >= 3, it was escaped after n - 2 backslashes.
    """
    import numpy as np

    text = np.frombuffer(data, dtype=np.uint8)  # of a bytearray: writes go to its bytes
    quotes = int(np.count_nonzero(text == _QUOTE))
    backslashes = np.flatnonzero(text[:-1] == _BACKSLASH)
    escaped = backslashes[text[backslashes + 1] == _QUOTE]  # the last backslash before a quote
    if not len(escaped):
        return data, quotes
    runs = escaped[(escaped > 0) & (text[escaped - 1] == _BACKSLASH)]
    value_ends = (runs < 2) | (text[runs - 2] != _BACKSLASH)  # exactly two backslashes
    drop = np.where(value_ends, runs + 1, runs - 1).tolist()  # a quote, or a backslash
    text[escaped] = _QUOTE
    quotes += len(escaped) - int(np.count_nonzero(value_ends))
    del text
    if not drop:
        return data, quotes
    view = memoryview(data)
    pieces, kept = [], 0
    for at in drop:  # ascending: runs lie at least three bytes apart
        pieces.append(view[kept:at])
        kept = at + 1
    pieces.append(view[kept:])
    mended = b"".join(pieces)
    del pieces, view
    return mended, quotes


class Block(NamedTuple):
    """Whole records of a file, rewritten as RFC 4180 (``data``), and where they stand in the file.

    ``offset`` and ``end`` are the bytes of the file the records take (as Spark wrote them), and
    ``first_line`` the line they start on (the file's first line is 1). ``doubt`` says why the block
    cannot be read in C and where its records end cannot be told by counting quotes (a file that ends
    inside a quoted value, a record too long): the file from ``offset`` on is then read record by
    record.
    """

    data: memoryview
    offset: int
    end: int
    first_line: int
    doubt: str | None = None

    def after_line(self, length: int) -> Block:
        """The block without its first line of ``length`` bytes (a header: plain text, so as written)."""
        return self._replace(
            data=self.data[length + 1 :], offset=self.offset + length + 1, first_line=self.first_line + 1
        )


def line_breaks(data: bytes | bytearray, end: int) -> int:
    """How many lines ``data[:end]`` ends (``\\n``, ``\\r\\n`` or a lone ``\\r``, as the record reader counts
    them). numpy compares the bytes without the GIL, and five times as fast as ``bytes.count``."""
    import numpy as np

    text = np.frombuffer(data, dtype=np.uint8, count=end)
    breaks = int(np.count_nonzero(text == _NEWLINE))
    returns = int(np.count_nonzero(text == _CARRIAGE_RETURN))
    return breaks + returns - data.count(b"\r\n", 0, end) if returns else breaks


def _whole_records(block: bytearray | bytes, quotes: int) -> tuple[int, int]:
    """Where the block's whole records end, and how many of its last lines that leaves out: a block with
    an odd number of quotes ends inside a value, so its last lines go until the count is even."""
    cut, dropped = len(block), 0
    while quotes % 2 and cut > 0:
        cut_line = block.rfind(b"\n", 0, cut - 1) + 1
        quotes -= block.count(b'"', cut_line, cut)
        cut, dropped = cut_line, dropped + 1
    return cut, dropped


def spark_blocks(path: Path, size: int) -> Generator[Block, None, None]:
    """The file rewritten as RFC 4180, in blocks of whole records (of about ``size`` bytes or more).

    Each read ends at a line end and is rewritten alone (:func:`rfc4180`). A record ends at a line end
    with an even number of quotes before it (RFC 4180 quotes come in pairs): when a block ends inside
    a value, its last lines are left to the next read, which starts at the record they begin. A record
    longer than ``size`` gets a read as long as it needs, up to :data:`LONGEST_RECORD`. A file that
    ends inside a quoted value, or a longer record, ends the blocks with one whose ``doubt`` says so.
    What is given back is only read from (blocks are views of data nothing else holds).
    """
    line = 1
    with open(path, "rb") as handle:
        want = size
        while True:
            start = handle.tell()
            data = bytearray(want)
            got = handle.readinto(data)
            if not got:
                return
            at_end = got < want  # a file's read comes short only at its end
            del data[got:]
            end = got if at_end else data.rfind(b"\n") + 1
            block: bytearray | bytes
            block, cut, dropped = bytearray(), 0, 0
            if end:
                del data[end:]
                block, quotes = rfc4180(data)
                if at_end:
                    if quotes % 2:
                        yield Block(
                            memoryview(b""), start, start + got, line, "the file ends inside a quoted value"
                        )
                        return
                    if not block.endswith(b"\n"):  # so that an empty last value is null, as at any line end
                        block = bytes(block) + b"\n"
                    yield Block(memoryview(block), start, start + got, line)
                    return
                cut, dropped = _whole_records(block, quotes)
            if cut == 0:  # a line longer than the read, or no whole record yet: read more at once
                if want >= LONGEST_RECORD:
                    yield Block(
                        memoryview(b""),
                        start,
                        start,
                        line,
                        f"a record longer than {LONGEST_RECORD >> 20} MiB",
                    )
                    return
                want *= 2
                handle.seek(start)
                continue
            for _ in range(dropped):  # the next read starts at the first line left out, or after the last
                end = data.rfind(b"\n", 0, end - 1) + 1
            handle.seek(start + end)
            want = size
            kept = memoryview(block)[:cut]
            yield Block(kept, start, start + end, line)
            line += line_breaks(block, cut)


def headed_blocks(path: Path, size: int) -> tuple[list[str], Generator[Block, None, None]] | None:
    """The file's header and its blocks after the header (:func:`spark_blocks`; a generator, to close);
    ``None`` when the file does not start with a plain header, so the record reader must read it all."""
    blocks = spark_blocks(path, size)
    first = next(blocks, None)
    head = plain_header(first) if first is not None and first.doubt is None else None
    if first is None or head is None:
        blocks.close()
        return None
    header, length = head
    return header, _following(first.after_line(length), blocks)


def _following(first: Block, rest: Generator[Block, None, None]) -> Generator[Block, None, None]:
    try:
        yield first
        yield from rest
    finally:
        rest.close()


def plain_header(block: Block) -> tuple[list[str], int] | None:
    """The header of a file's first block, if it is a line of plain names (no quotes), and its length in
    bytes (without its line end, with a byte order mark before it); else ``None``."""
    head = block.data[: 1 << 16].tobytes()
    end = head.find(b"\n")
    if end < 0 or b'"' in head[:end]:
        return None
    names = head[:end].rstrip(b"\r")
    names = (
        names[len(_BYTE_ORDER_MARK) :] if names.startswith(_BYTE_ORDER_MARK) else names
    )  # as a spreadsheet saves
    try:
        return names.decode("utf-8").split(","), end
    except UnicodeDecodeError:
        return None


def csv_options(width: int, block_bytes: int) -> dict[str, Any]:
    """pyarrow's options to parse a block of :func:`spark_blocks` into text columns ``c0``, ``c1``...:
    null (nothing) is null and ``""`` is ``""``; text that is not UTF-8 fails the parse (``parse_block``)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = [f"c{index}" for index in range(width)]
    return {
        "read_options": pacsv.ReadOptions(use_threads=False, block_size=2 * block_bytes, column_names=names),
        "parse_options": pacsv.ParseOptions(
            delimiter=",",
            quote_char='"',
            double_quote=True,
            escape_char=False,
            newlines_in_values=True,
            ignore_empty_lines=False,
        ),
        "convert_options": pacsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()),
            strings_can_be_null=True,
            null_values=[""],
            quoted_strings_can_be_null=False,
        ),
    }


def quotes_out_of_place(block: memoryview) -> bool:
    """Whether a block of RFC 4180 records (starting at a record) has a quote out of place.

    pyarrow takes a quote inside an unquoted value, or text after a closing quote, where Python's csv
    module (the record reader) fails or reads otherwise; a stray quote also means that where records
    end cannot be told by counting quotes. Counting quotes from the block's start, an odd one opens a
    value or is the second of a doubled pair (so stands after a delimiter, a line end or a quote) and
    an even one closes a value or is the first of a pair (so stands before a delimiter, a line end or
    a quote).
    """
    import numpy as np

    text = np.frombuffer(block, dtype=np.uint8)
    quotes = np.flatnonzero(text == _QUOTE)
    if not len(quotes):
        return False
    opening, closing = quotes[0::2], quotes[1::2]
    before = text[np.maximum(opening - 1, 0)]
    bad_open = (opening > 0) & (before != _COMMA) & (before != _NEWLINE) & (before != _QUOTE)
    after = text[np.minimum(closing + 1, len(text) - 1)]
    bad_close = (
        (closing < len(text) - 1)
        & (after != _COMMA)
        & (after != _NEWLINE)
        & (after != _QUOTE)
        & (after != _CARRIAGE_RETURN)
    )
    return bool(bad_open.any() or bad_close.any())


def blank_line(text: Any) -> bool:
    """Whether RFC 4180 records (a numpy view of their bytes, from a record's start) hold a blank line: a
    line end right after the start or after another line end, outside a quoted value (a quoted value may
    hold empty lines: Hindi titles do)."""
    import numpy as np

    if not len(text):
        return False
    ends = text == _NEWLINE
    if ends[0] or (len(text) > 1 and text[0] == _CARRIAGE_RETURN and ends[1]):
        return True
    after = np.flatnonzero(ends[:-1] & ends[1:])  # "\n\n"
    if len(text) > 2:
        after = np.concatenate(
            [after, np.flatnonzero(ends[:-2] & (text[1:-1] == _CARRIAGE_RETURN) & ends[2:])]
        )
    if not len(after):
        return False
    quotes_before = np.cumsum(text == _QUOTE, dtype=np.int64)[after]
    return bool(np.any(quotes_before % 2 == 0))  # an even count: outside any quoted value


def parse_block(block: memoryview, options: dict[str, Any]) -> tuple[Any, str | None]:
    """A block of whole records (with no quote out of place) as a pyarrow table, or ``None`` and why
    the record reader must read it: a record with more or fewer values than the header, a NUL
    character (which PostgreSQL text cannot hold: the record reader rejects it), a value longer than
    the record reader takes, or anything else pyarrow cannot parse (text that is not UTF-8)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if len(block) >= options["read_options"].block_size:  # pyarrow must see the block whole
        read = options["read_options"]
        options = {
            **options,
            "read_options": pacsv.ReadOptions(
                use_threads=read.use_threads, block_size=len(block) + 1, column_names=read.column_names
            ),
        }
    text = np.frombuffer(block, dtype=np.uint8)
    if np.any(text == 0):
        return None, "a NUL character"
    if blank_line(text):  # pyarrow reads it as a row of nulls: two million of them in a block of line ends
        return None, "a blank line"
    del text
    try:
        table = pacsv.read_csv(pa.py_buffer(block), **options)
    except pa.ArrowInvalid as exc:
        return None, f"pyarrow: {str(exc)[:200]}"
    longest = csv.field_size_limit()  # in characters; a UTF-8 character is one to four bytes
    for name, values in zip(table.column_names, table.columns, strict=True):
        for chunk in values.chunks:
            if len(chunk) == 0:
                continue
            offsets = np.frombuffer(
                chunk.buffers()[1], dtype=np.int32, count=len(chunk) + 1, offset=chunk.offset * 4
            )
            if int(np.max(np.diff(offsets))) > longest and _longest_text(chunk) > longest:
                return None, f"{name}: a value longer than {longest} characters"
    return table, None


def _longest_text(values: Any) -> int:
    """The length in characters of the longest text of ``values``."""
    import pyarrow.compute as pc

    return pc.max(pc.utf8_length(values)).as_py() or 0
