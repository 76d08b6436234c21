"""The telemetry container's files: gzipped JSON lines per IST sync day, as ``unique/raw`` holds them."""

from __future__ import annotations

import gzip
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from airflow_provider_uci.emulator.jobs.common import IST
from airflow_provider_uci.emulator.storage import BlobStorage


class DayWriter:
    """Gzipped JSON-lines files of one sync day, one per partition, uploaded when the day closes."""

    def __init__(
        self, storage: BlobStorage, container: str, day: date, partitions: int, scratch: Path, stamp_ms: int
    ) -> None:
        self.storage, self.container, self.day = storage, container, day
        self.files: list[tuple[str, Path, IO[bytes], gzip.GzipFile]] = []
        for partition in range(partitions):
            key = f"unique/raw/{day.isoformat()}-{partition}-{stamp_ms + partition}.json.gz"
            path = scratch / key.replace("/", "_")
            raw = path.open("wb")
            # mtime 0: the same seed gives the same bytes
            self.files.append(
                (key, path, raw, gzip.GzipFile(filename="", mode="wb", compresslevel=1, mtime=0, fileobj=raw))
            )
        self.count = 0

    def write(self, event: dict[str, Any]) -> None:
        self.files[self.count % len(self.files)][3].write(orjson.dumps(event) + b"\n")
        self.count += 1

    def close(self) -> None:
        for key, path, raw, compressed in self.files:
            compressed.close()
            raw.close()
            self.storage.upload_file(self.container, key, path)
            path.unlink()


def sync_day(event: dict[str, Any]) -> date | None:
    """The IST day an event was synced on (``syncts``, else ``@timestamp``)."""
    if isinstance(event.get("syncts"), (int, float)):
        return datetime.fromtimestamp(event["syncts"] / 1000, IST).date()
    stamp = event.get("@timestamp")
    if isinstance(stamp, str):
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(IST).date()
    return None
