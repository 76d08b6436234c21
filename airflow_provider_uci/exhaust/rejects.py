"""Records that could not be read, kept with their line numbers, in bounded memory, time and disk.

A file of hostile records must not make its reject log larger than itself (or many times larger):

- the read stops as soon as more records are rejected than the load bears (``limit``): the record
  over it raises :class:`RejectLimitExceeded` where it is read, and the load rolls back;
- a run of blank lines is one entry (``line`` to ``last_line``), each line still counted;
- the reject file holds at most :data:`FILE_ENTRIES` entries and about :data:`FILE_BYTES` bytes, each
  value cut to :data:`VALUE_CHARS` characters; past the cap records are counted, not written, and a
  last line says how many were left out.

The file holds the records' values, so it is personal data: created ``0600`` (missing folders
``0700``) with ``O_CREAT | O_EXCL | O_NOFOLLOW`` (``exhaust.safe_files.create_private``), never through
a link planted at its name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

from airflow_provider_uci.exhaust.safe_files import check_target, create_private

#: Entries a reject file holds at most.
FILE_ENTRIES = 100_000
#: Bytes a reject file holds at most (about: the entry that passes it is the last written).
FILE_BYTES = 64 << 20
#: Characters of one value written to a reject file at most (a record can hold 16 Mi characters).
VALUE_CHARS = 4096


class RejectLimitExceeded(ValueError):
    """More records were rejected than allowed; the read stopped there and nothing was loaded."""


class Rejects:
    """Records that could not be read: kept in a JSON-lines file with their line numbers (see the module).

    :param path: where to write them; ``None`` keeps only the count and the first few in memory.
    :param keep: how many to keep in memory, for messages.
    :param limit: how many to bear: the next one raises :class:`RejectLimitExceeded` (``None``: no limit).
    :param entries: the most entries the file holds (default :data:`FILE_ENTRIES`).
    :param file_bytes: about the most bytes the file holds (default :data:`FILE_BYTES`).
    """

    def __init__(
        self,
        path: Path | None = None,
        keep: int = 20,
        *,
        limit: int | None = None,
        entries: int = FILE_ENTRIES,
        file_bytes: int = FILE_BYTES,
    ) -> None:
        self.path = None if path is None else Path(path)
        self.limit = limit
        self.count = 0
        self.first: list[dict[str, Any]] = []
        self.omitted = 0
        self._keep, self._entries, self._file_bytes = keep, entries, file_bytes
        self._written = self._bytes = 0
        self._handle: IO[str] | None = None
        self._blank: dict[str, Any] | None = None  # the run of blank lines being counted
        if self.path is not None:
            check_target(self.path, "rejects")

    def add(
        self,
        source: str,
        line: int,
        reason: str,
        values: list[str | None] | None,
        withheld: str | None = None,
    ) -> None:
        """Keep one rejected record; ``values`` is ``None`` when they are ``withheld`` (the reason why). An
        empty list of values (a blank line) joins the run of blank lines it follows.

        :raises RejectLimitExceeded: this record is one more than ``limit``.
        """
        if values is not None and len(values) == 0:
            self._add_blank(source, line)
            return
        self._end_blank()
        entry: dict[str, Any] = {
            "file": source,
            "line": line,
            "reason": reason,
            "values": None if values is None else [_cut(value) for value in values],
        }
        if withheld:
            entry["values_withheld"] = withheld
        self._counted(entry)
        self._write(entry)
        self._check_limit()

    def _add_blank(self, source: str, line: int) -> None:
        run = self._blank
        if run is not None and run["file"] == source and run["last_line"] == line - 1:
            run["last_line"] = line
            run["blank_lines"] += 1
            run["reason"] = f"{run['blank_lines']} blank lines (no values where the header has some)"
            self.count += 1
        else:
            self._end_blank()
            run = self._blank = {
                "file": source,
                "line": line,
                "last_line": line,
                "blank_lines": 1,
                "reason": "a blank line (no values where the header has some)",
                "values": [],
            }
            self._counted(run)
        self._check_limit()

    def _end_blank(self) -> None:
        if self._blank is not None:
            self._write(self._blank)
            self._blank = None

    def _counted(self, entry: dict[str, Any]) -> None:
        self.count += 1
        if len(self.first) < self._keep:
            self.first.append(entry)

    def _check_limit(self) -> None:
        if self.limit is not None and self.count > self.limit:
            self.close()
            where = (
                f"; they are in {self.path}"
                if self.path is not None and (self._written or self.omitted)
                else ""
            )
            raise RejectLimitExceeded(
                f"{self.count} record(s) rejected, more than max_rejects={self.limit}: "
                f"{self.summary()}{where}; the read stopped there and nothing was loaded"
            )

    def _write(self, entry: dict[str, Any]) -> None:
        if self.path is None:
            return
        if self._written >= self._entries or self._bytes >= self._file_bytes:
            self.omitted += 1
            return
        if self._handle is None:
            self._handle = create_private(self.path, "w", field="rejects", encoding="utf-8")
        text = json.dumps(entry, ensure_ascii=False) + "\n"
        self._handle.write(text)
        self._written += 1
        self._bytes += len(text)

    def restart(self) -> None:
        """Forget every record kept: the file is read again from its start."""
        self._blank = None
        if self._handle is not None:
            self._handle.seek(0)
            self._handle.truncate()
        self.count = self.omitted = self._written = self._bytes = 0
        self.first = []

    def close(self) -> None:
        """Write what is pending (a run of blank lines; how many entries the cap left out) and close the file."""
        self._end_blank()
        if self.omitted and self._handle is not None:
            self._handle.write(
                json.dumps(
                    {
                        "omitted": self.omitted,
                        "reason": (
                            f"the reject file holds at most {self._entries} entries and {self._file_bytes >> 20} MiB: "
                            f"{self.omitted} more rejected record(s) were counted, not written"
                        ),
                    }
                )
                + "\n"
            )
            self.omitted = 0
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def summary(self) -> str:
        """The first few rejects, one clause each, and how many more there are."""
        lines = []
        for entry in self.first[:5]:
            last = entry.get("last_line", entry["line"])
            where = f"lines {entry['line']}-{last}" if last != entry["line"] else f"line {entry['line']}"
            lines.append(f"{where} of {entry['file']}: {entry['reason']}")
        shown = sum(entry.get("blank_lines", 1) for entry in self.first[:5])
        more = f" (and {self.count - shown} more)" if self.count > shown else ""
        return "; ".join(lines) + more


def _cut(value: str | None) -> str | None:
    if value is None or len(value) <= VALUE_CHARS:
        return value
    return value[:VALUE_CHARS] + f"... ({len(value) - VALUE_CHARS} more characters)"
