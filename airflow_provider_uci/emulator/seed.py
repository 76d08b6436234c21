"""Realistic UCI data for the emulator: bots, FusionAuth users and ASSESS telemetry as UCI emits it.

Telemetry follows the transformer's ``AssessmentTelemetryBuilder`` (contract 3.2): ``mid`` is
``ASSESS:`` plus the name-based UUID of the second-resolution timestamp string, so events emitted in
the same second share a ``mid``, and the pipeline's ``unique/raw`` keeps only the first of them. The
generator does the same, emitting events in time order so that de-duplication needs constant memory.
Events are written per IST sync day to ``unique/raw/<yyyy-MM-dd>-<partition>-<epoch ms>.json.gz``.

Everything is derived from one ``random.Random(seed)``: the same options give the same data.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import orjson

from airflow_provider_uci.emulator.crypto import encrypt_username
from airflow_provider_uci.emulator.jobs.common import IST
from airflow_provider_uci.emulator.storage import BlobStorage
from airflow_provider_uci.emulator.ucidb import Bot, UciDatabase

BOT_NAMES = ["Global Tara Bot", "MPC-UP-Mentor Feedback", "DST Form Bot", "UCI Demo", "Comic Book Bot",
             "शिक्षक सहायता बॉट", "Nipun Lakshya Survey"]
TITLES = [
    "Hi, I'm Tara,\nMay I help you?\n\nReply with a number from the options shown to explore further",
    "Have fun while you learn using comic books! \nEach comic book is aligned to a chapter.\n\nChoose your class",
    "सत्यापन के लिए कृपया अपना *मानव संपदा* आईडी दर्ज करें",
    "कृपया मेंटर का नाम लिखे",
    'Did the session cover "Foundational Literacy"?',
    "Record your location.",
    "How many students attended, in total?",
    "Rate the training: 1 (poor) to 5 (excellent)",
]
CHOICES = [["Yes", "No"], ["Class 1", "Class 2", "Class 3", "Class 4"], ["हाँ", "नहीं", "पता नहीं"],
           ["1 Your Education Boards", "2 Comic books", "3 DIKSHA mobile app", "4 DIKSHA queries"]]
FREE_ANSWERS = [
    "89898989", "Sinha", "26.824541 75.8505031", "Line one\nline two of the answer", 'He said "hello", then left',
    "C:\\Users\\teacher\\notes.txt", "a \\n is not a newline here", "मेरा उत्तर: \"ठीक है\"", "42", "ok 👍",
    'ends with a quote "', "multi\nline\nwith, commas",
]
PDATA_PID = "transformer"


def _name_uuid_hex(text: str) -> str:
    digest = bytearray(hashlib.md5(text.encode("utf-8")).digest())
    digest[6] = (digest[6] & 0x0F) | 0x30  # version 3
    digest[8] = (digest[8] & 0x3F) | 0x80  # IETF variant
    return digest.hex()


def name_uuid(text: str) -> str:
    """Java's ``UUID.nameUUIDFromBytes``: an MD5 (version 3) UUID of the bytes."""
    value = _name_uuid_hex(text)
    return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"


def assess_mid(stamp: str) -> str:
    """The transformer's ``mid`` for an event stamped ``yyyy-MM-dd'T'HH:mm:ss'Z'``."""
    return "ASSESS:" + _name_uuid_hex(stamp)


@dataclass
class SeedOptions:
    """What to generate; see ``uci-exhaust emulator seed --help``."""

    bots: int = 3
    users: int = 50
    events: int = 5000
    start: date | None = None
    days: int = 3
    seed: int = 1
    channel: str = "dev-channel"
    partitions: int = 2
    record: Path | None = None
    telemetry_files: list[Path] = field(default_factory=list)
    extra_bots: list[tuple[str, str]] = field(default_factory=list)
    extra_users: list[tuple[str, bool | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in ("bots", "users", "events", "partitions"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name}: must be zero or more, got {getattr(self, name)}")
        if self.days < 1:
            raise ValueError(f"--days: must be at least 1, got {self.days}")
        if self.partitions < 1:
            raise ValueError(f"--partitions: must be at least 1, got {self.partitions}")
        if self.events and (self.bots + len(self.extra_bots)) and not (self.users + len(self.extra_users)):
            raise ValueError("--users: events need at least one user to answer them")


@dataclass
class Question:
    id: str
    kind: str
    title: str
    choices: list[tuple[str, str]]
    xpath: str


@dataclass
class SeedBot:
    id: str
    name: str
    questions: list[Question]
    users: list[str] = field(default_factory=list)
    events_by_day: dict[str, int] = field(default_factory=dict)


class _DayWriter:
    """Gzipped JSON-lines files of one sync day, one per partition, uploaded when the day closes."""

    def __init__(self, storage: BlobStorage, container: str, day: date, partitions: int, scratch: Path,
                 stamp_ms: int) -> None:
        self.storage, self.container, self.day = storage, container, day
        self.files: list[tuple[str, Path, IO[bytes], gzip.GzipFile]] = []
        for partition in range(partitions):
            key = f"unique/raw/{day.isoformat()}-{partition}-{stamp_ms + partition}.json.gz"
            path = scratch / key.replace("/", "_")
            raw = path.open("wb")
            # mtime 0: the same seed gives the same bytes
            self.files.append((key, path, raw, gzip.GzipFile(filename="", mode="wb", compresslevel=1, mtime=0,
                                                             fileobj=raw)))
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


class Seeder:
    """Write one seed's data into the UCI database and the telemetry container."""

    def __init__(self, options: SeedOptions, *, storage: BlobStorage, uci: UciDatabase, telemetry_container: str,
                 pdata_id: str, encryption_secret: str, today: date) -> None:
        self.options = options
        self.storage = storage
        self.uci = uci
        self.container = telemetry_container
        self.pdata_id = pdata_id
        self.secret = encryption_secret
        self.rng = random.Random(options.seed)
        self.start = options.start or today - timedelta(days=options.days)
        self.consent: dict[str, bool | None] = {}
        self.bots: list[SeedBot] = []
        self._sessions: dict[tuple[str, str, int], str] = {}
        self.stats = {"emitted": 0, "kept": 0, "duplicates_dropped": 0, "filtered_out": 0, "unknown_device": 0}

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    # -- tables --------------------------------------------------------------------------------

    def make_tables(self) -> None:
        options, rng = self.options, self.rng
        end = self.start + timedelta(days=options.days - 1)
        bots = [(self._uuid(), BOT_NAMES[i % len(BOT_NAMES)] + ("" if i < len(BOT_NAMES) else f" {i + 1}"))
                for i in range(options.bots)] + list(options.extra_bots)
        for bot_id, name in bots:
            questions = []
            for number in range(rng.randint(3, 6)):
                mcq = rng.random() < 0.6
                options_text = rng.choice(CHOICES) if mcq else []
                questions.append(Question(
                    id=self._uuid(), kind="mcq" if mcq else "ftp", title=rng.choice(TITLES),
                    choices=[(str(k + 1), text) for k, text in enumerate(options_text)],
                    xpath=f"question./data/group_{number // 3 + 1}[1]/question_{number + 1}[1]"))
            self.bots.append(SeedBot(bot_id, name, questions))
        self.uci.add_bots(Bot(b.id, b.name, options.channel, self.start.isoformat(), end.isoformat()) for b in self.bots)

        users: list[tuple[str, bool | None]] = []
        for _ in range(options.users):
            draw = rng.random()
            users.append((self._uuid(), True if draw < 0.7 else False if draw < 0.85 else None))
        users += list(options.extra_users)
        rows, registrations, identities = [], [], []
        for user_id, consent in users:
            self.consent[user_id] = consent
            rows.append((user_id, json.dumps(_user_data(consent))))
            phone = f"phone:{rng.randint(6_000_000_000, 9_999_999_999)}"
            identities.append((user_id, encrypt_username(phone, self.secret)))
        for index, (user_id, _) in enumerate(users):
            given = index >= options.users
            chosen = self.bots if given else rng.sample(self.bots, k=min(len(self.bots), rng.randint(1, 2)))
            for bot in chosen:
                bot.users.append(user_id)
                registrations.append((user_id, bot.id))
        self.uci.add_users(rows)
        self.uci.add_registrations(registrations)
        self.uci.add_identities(identities)

    # -- telemetry -----------------------------------------------------------------------------

    def make_events(self, scratch: Path, record: IO[str] | None) -> None:
        options, rng = self.options, self.rng
        bots = [bot for bot in self.bots if bot.users]
        if not bots or not options.events:
            return
        per_day = [options.events // options.days + (1 if d < options.events % options.days else 0)
                   for d in range(options.days)]
        last_second = None
        for offset, count in enumerate(per_day):
            day = self.start + timedelta(days=offset)
            day_start = datetime(day.year, day.month, day.day, tzinfo=IST).timestamp()
            writer = _DayWriter(self.storage, self.container, day, options.partitions, scratch,
                                int(day_start * 1000) + 86_400_000)
            step = 86_000.0 / max(count, 1)
            moment = day_start + 60.0
            for _ in range(count):
                moment += step * (0.2 + rng.random() * 1.6) / 1.0 if rng.random() > 0.01 else 0.0
                moment = min(moment, day_start + 86_390.0)
                event, expected = self._event(rng.choice(bots), moment, day_start)
                self.stats["emitted"] += 1
                second = int(moment)
                if second == last_second:
                    self.stats["duplicates_dropped"] += 1  # same mid: unique/raw keeps the first only
                    continue
                last_second = second
                writer.write(event)
                self.stats["kept"] += 1
                if isinstance(expected, str):
                    self.stats[expected] += 1
                else:
                    bot = expected.pop("_bot")
                    bot.events_by_day[day.isoformat()] = bot.events_by_day.get(day.isoformat(), 0) + 1
                    if record is not None:
                        record.write(json.dumps(expected, ensure_ascii=False) + "\n")
            writer.close()

    def _event(self, bot: SeedBot, moment: float, day_start: float) -> tuple[dict[str, Any], dict[str, Any] | str]:
        """One event, with what the report must hold for it, or why the report leaves it out."""
        rng = self.rng
        user = rng.choice(bot.users)
        number = rng.randrange(len(bot.questions))
        question = bot.questions[number]
        channel, pdata_id, conversation, eid = self.options.channel, self.pdata_id, bot.id, "ASSESS"
        noise = rng.random()
        if noise < 0.02:
            user = self._uuid()
        elif noise < 0.03:
            channel = "other-channel"
        elif noise < 0.04:
            pdata_id = "staging.uci.other"
        elif noise < 0.05:
            conversation = self._uuid()
        elif noise < 0.06:
            eid = "INTERACT"
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(moment)))
        ets = int(moment * 1000)
        syncts = min(ets + rng.randint(50, 1500), int((day_start + 86_399) * 1000))
        at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(syncts // 1000)) + f".{syncts % 1000:03d}Z"
        if question.kind == "mcq" and rng.random() < 0.85:
            key, text = rng.choice(question.choices)
            resvalues: list[dict[str, Any]] = [{key: {"text": text}}]
        else:
            resvalues = [{"ans1": rng.choice(FREE_ANSWERS)}]
        params = [{key: {"text": text}} for key, text in question.choices]
        form_end = "true" if number == len(bot.questions) - 1 else "false"
        session_key = (user, bot.id, int(day_start))
        session = self._sessions.get(session_key)
        if session is None:
            if len(self._sessions) > 100_000:
                self._sessions.clear()
            session = self._sessions[session_key] = name_uuid(f"{self.options.seed}:{user}:{bot.id}:{int(day_start)}")
        owner = self.options.channel
        rollup = {"l1": owner, "l2": conversation, "l3": question.xpath, "l4": form_end}
        event = {
            "eid": eid, "ets": ets, "ver": "3.0", "mid": assess_mid(stamp),
            "actor": {"type": "User", "id": user},
            "context": {
                "channel": channel, "pdata": {"id": pdata_id, "pid": PDATA_PID, "ver": "1.0"},
                "env": f"{channel}.gupshup-whatsapp", "did": user, "sid": session,
                "cdata": [{"type": "ConversationOwner", "id": owner}, {"type": "Conversation", "id": conversation},
                          {"type": "XPath", "id": question.xpath}, {"type": "FormEnd", "id": form_end}],
                "rollup": rollup,
            },
            "object": {"id": question.id, "type": question.kind.upper(), "ver": "1.0",
                       "rollup": {"l1": "BotOwnerID", "l2": "BotID", "l3": "QuestionXPath", "l4": "FormEnd"}},
            "edata": {"duration": 0.0, "score": 1.0, "pass": "Yes", "index": 1.0, "resvalues": resvalues,
                      "item": {"id": question.id, "type": question.kind, "title": question.title, "desc": "",
                               "maxscore": 1.0, "exlength": 0.0, "mc": [], "mmc": [], "uri": "", "params": params}},
            "type": "event", "tags": [], "flags": [], "timestamp": stamp, "syncts": syncts, "@timestamp": at,
        }
        if noise < 0.06:
            return event, "unknown_device" if noise < 0.02 else "filtered_out"
        consent = self.consent[user]
        expected = {
            "_bot": bot, "mid": event["mid"], "conversation_id": bot.id, "conversation_name": bot.name, "device_id": user,
            "session_id": session, "question_id": question.id, "question_type": question.kind, "title": question.title,
            "params": params, "resvalues": resvalues, "consent": consent is not False, "x_path": question.xpath,
            "eof": form_end, "timestamp": at,
        }
        return event, expected

    def load_telemetry_files(self, scratch: Path) -> int:
        """Copy real telemetry files into ``unique/raw``, grouped by the IST date of ``syncts``."""
        writers: dict[date, _DayWriter] = {}
        count = 0
        for path in self.options.telemetry_files:
            with open(path, encoding="utf-8") as handle:
                for number, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    try:
                        event = json.loads(line)
                    except ValueError as exc:
                        raise ValueError(f"--telemetry {path}: line {number} is not JSON: {exc}") from None
                    day = _sync_day(event)
                    if day is None:
                        raise ValueError(f"--telemetry {path}: line {number} has neither syncts nor @timestamp")
                    if day not in writers:
                        writers[day] = _DayWriter(self.storage, self.container, day, 1, scratch,
                                                  int(datetime(day.year, day.month, day.day, tzinfo=IST).timestamp() * 1000))
                    writers[day].write(event)
                    count += 1
        for writer in writers.values():
            writer.close()
        return count

    def summary(self) -> dict[str, Any]:
        values = list(self.consent.values())
        return {
            "channel": self.options.channel,
            "pdata_id": self.pdata_id,
            "bots": [{"id": b.id, "name": b.name, "events_by_day": dict(sorted(b.events_by_day.items()))}
                     for b in self.bots],
            "users": {"consent_true": values.count(True), "consent_false": values.count(False),
                      "consent_unset": values.count(None)},
            "events": dict(self.stats),
            "start": self.start.isoformat(),
            "days": self.options.days,
        }


def _user_data(consent: bool | None) -> dict[str, Any]:
    """``users.data`` carrying the flag where each job reads it (``device`` and ``data.device``)."""
    device: dict[str, Any] = {"type": "phone"}
    if consent is not None:
        device["consent"] = consent
    return {"device": dict(device), "data": {"device": dict(device)}}


def _sync_day(event: dict[str, Any]) -> date | None:
    if isinstance(event.get("syncts"), (int, float)):
        return datetime.fromtimestamp(event["syncts"] / 1000, IST).date()
    stamp = event.get("@timestamp")
    if isinstance(stamp, str):
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(IST).date()
    return None


def seed(options: SeedOptions, *, storage: BlobStorage, uci: UciDatabase, telemetry_container: str, pdata_id: str,
         encryption_secret: str, today: date, scratch_root: Path) -> dict[str, Any]:
    """Generate and write everything; return the summary."""
    seeder = Seeder(options, storage=storage, uci=uci, telemetry_container=telemetry_container, pdata_id=pdata_id,
                    encryption_secret=encryption_secret, today=today)
    seeder.make_tables()
    scratch_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch_root) as scratch:
        record = options.record.open("w", encoding="utf-8") if options.record else None
        try:
            seeder.make_events(Path(scratch), record)
        finally:
            if record is not None:
                record.close()
        loaded = seeder.load_telemetry_files(Path(scratch))
    result = seeder.summary()
    result["telemetry_events_loaded"] = loaded
    return result


def iter_days(start: date, days: int) -> Iterator[date]:
    for offset in range(days):
        yield start + timedelta(days=offset)
