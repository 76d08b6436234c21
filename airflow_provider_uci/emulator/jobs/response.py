"""The response exhaust job: ASSESS telemetry of one bot to a Spark-dialect CSV.

As docs/service-contract.md §3.2 and §3.3 describe it. Telemetry is streamed, one gzipped JSON-lines
blob at a time, so memory is bounded by the output's width and the users table, never by the number
of events.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import IO, Any

import orjson

from airflow_provider_uci.emulator.jobs.common import (
    JobContext,
    JobFailure,
    ProcessingError,
    conversation_of,
    output_key,
    request_dates,
    to_json,
    write_report,
)
from airflow_provider_uci.emulator.storage import wasb_url
from airflow_provider_uci.emulator.store import JobRow
from airflow_provider_uci.emulator.ucidb import RESPONSE_CONSENT_PATH, UserDataError, consent_at

DATASET = "uci-response-exhaust"
CHUNK = 1024 * 1024

#: Column order of the current job (``columnsOrder``), with the trailing raw ``@timestamp``.
COLUMNS = (
    "Message ID",
    "Conversation ID",
    "Conversation Name",
    "Device ID",
    "Session ID",
    "Question Id",
    "Question Type",
    "Question Title",
    "Question Description",
    "Question Duration",
    "Question Score",
    "Question Max Score",
    "Question Options",
    "Question Response",
    "X Path",
    "Eof",
    "Timestamp",
    "@timestamp",
)


TELEMETRY_PREFIX = "unique/raw/"


def telemetry_keys(context: JobContext, start: date, end: date) -> Iterator[str]:
    """The blobs of the sync days from ``start`` to ``end``: ``unique/raw/<yyyy-MM-dd>...``, by day.

    The container is listed once and the days picked from the names, so a request for years of days
    costs one listing, not one per day.
    """
    first, last = start.isoformat(), end.isoformat()
    cut = len(TELEMETRY_PREFIX)
    for key in context.storage.list_keys(context.settings.telemetry_container, TELEMETRY_PREFIX):
        if first <= key[cut : cut + 10] <= last:
            yield key


def _blocks(raw: IO[bytes]) -> Iterator[bytes]:
    """Whole lines of a gzip stream (of any number of members), a decompressed block at a time."""
    decompressor = zlib.decompressobj(wbits=31)
    tail = b""
    while True:
        block = raw.read(CHUNK)
        if not block:
            break
        data = decompressor.decompress(block)
        while decompressor.eof:  # a new gzip member follows
            rest = decompressor.unused_data
            decompressor = zlib.decompressobj(wbits=31)
            data += decompressor.decompress(rest) if rest else b""
            if not rest:
                break
        if not data:
            continue
        data = tail + data
        cut = data.rfind(b"\n") + 1
        tail = data[cut:]
        if cut:
            yield data[:cut]
    if tail:
        yield tail + b"\n"


def _lines_with(raw: IO[bytes], needle: bytes) -> Iterator[bytes]:
    """The lines of a gzip stream that contain ``needle``, found without splitting every line."""
    for block in _blocks(raw):
        position = block.find(needle)
        while position >= 0:
            start = block.rfind(b"\n", 0, position) + 1
            end = block.find(b"\n", position)
            yield block[start:end]
            position = block.find(needle, end)


def _long(value: Any) -> str | None:
    """Jackson's coercion of a JSON number into a Long/Int: truncate toward zero."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return str(int(float(value)))
    except (TypeError, ValueError):
        return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else to_json(value)


@dataclass(frozen=True)
class Scan:
    """One response job's pass over telemetry blobs."""

    storage: Any
    container: str
    keys: tuple[str, ...]
    conversation_id: str
    channel: str
    pdata_id: str
    bot_name: str
    users: dict[str, str | None]

    def events(self) -> Iterator[dict[str, Any]]:
        """Stream the events whose text mentions the conversation id (a cheap pre-filter)."""
        needle = self.conversation_id.encode()
        for key in self.keys:
            with self.storage.open(self.container, key) as raw:
                for line in _lines_with(raw, needle):
                    if b"ASSESS" in line:
                        yield orjson.loads(line)

    def rows(self) -> Iterator[list[str | None]]:
        """The filtered, joined rows of the report, in input order."""
        conversation_id, users = self.conversation_id, self.users
        consents: dict[str, bool] = {}
        for event in self.events():
            ctx = event.get("context") or {}
            if event.get("eid") != "ASSESS" or (ctx.get("pdata") or {}).get("id") != self.pdata_id:
                continue
            if ctx.get("channel") != self.channel:
                continue
            if not any(
                c.get("type") == "Conversation" and c.get("id") == conversation_id
                for c in ctx.get("cdata") or []
            ):
                continue
            device = ctx.get("did")
            if device not in users:
                continue  # the inner join to FusionAuth's users
            if device not in consents:
                try:
                    consents[device] = consent_at(users[device], RESPONSE_CONSENT_PATH)
                except UserDataError as exc:
                    raise ProcessingError(str(exc)) from None
            edata = event.get("edata") or {}
            item = edata.get("item") or {}
            rollup = ctx.get("rollup") or {}
            stamp = _text(event.get("@timestamp"))
            resvalues = edata.get("resvalues")
            yield [
                _text(event.get("mid")),
                conversation_id,
                self.bot_name,
                _text(device),
                _text(ctx.get("sid")),
                _text(item.get("id")),
                _text(item.get("type")),
                _text(item.get("title")),
                _text(item.get("desc")),
                _long(edata.get("duration")),
                _long(edata.get("score")),
                _long(item.get("maxscore")),
                None if item.get("params") is None else to_json(item["params"]),
                ("" if not consents[device] else None if resvalues is None else to_json(resvalues)),
                _text(rollup.get("l3")),
                _text(rollup.get("l4")),
                stamp,
                stamp,
            ]


def run(context: JobContext, request: JobRow, workdir: Path) -> tuple[list[str], int]:
    """Process one request; return the stored download URLs and the processing time in ms."""
    conversation_id = conversation_of(request)
    bot = context.uci.bot(conversation_id, request.requested_channel)
    if bot is None:
        raise JobFailure("No data found for conversation in DB")
    start, end = request_dates(request, bot, context)
    keys = sorted(telemetry_keys(context, start, end))
    scan = Scan(
        storage=context.storage,
        container=context.settings.telemetry_container,
        keys=tuple(keys),
        conversation_id=conversation_id,
        channel=request.requested_channel,
        pdata_id=context.settings.bot_pdata_id,
        bot_name=bot.name,
        users=dict(context.uci.user_data()),
    )
    name = f"{conversation_id}_response_{context.run_day()}.csv"
    local = workdir / name
    elapsed = write_report(context, local, COLUMNS, scan.rows())
    key = output_key(DATASET, request.request_id, name)
    context.storage.upload_file(context.settings.reports_container, key, local)
    return [wasb_url(context.storage.account, context.settings.reports_container, key)], elapsed
