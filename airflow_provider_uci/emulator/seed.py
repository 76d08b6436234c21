"""Realistic UCI data for the emulator: bots, FusionAuth users and ASSESS telemetry as UCI emits it.

Telemetry follows the transformer's ``AssessmentTelemetryBuilder`` (docs/service-contract.md §3.2): ``mid`` is
``ASSESS:`` plus the name-based UUID of the second-resolution timestamp string, so events emitted in
the same second share a ``mid``, and the pipeline's ``unique/raw`` keeps only the first of them. The
generator does the same, emitting events in time order so that de-duplication needs constant memory.
Events are written per IST sync day to ``unique/raw/<yyyy-MM-dd>-<partition>-<epoch ms>.json.gz``.

Conversations read as real ones: each bot asks a few questions of :data:`QUESTION_BANK` in order; a
session walks them in minutes (each answer's ``duration`` is the seconds since the one before) and
stops early at each step with a small chance, so most sessions finish and the funnel falls; users come
back on later days; a minority withholds consent. Multiple-choice answers are the question's options,
free text fits the question. The Spark-dialect edge cases (:data:`EDGE_ANSWERS`: quotes, raw newlines,
backslashes, Hindi) replace free-text answers, at most ``edge_cases`` of all answers (2% by default).

Everything is derived from one ``random.Random(seed)``: the same options give the same data.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import random
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from airflow_provider_uci.emulator.conversations import (
    ACTIVE_HOURS,
    BOT_NAMES,
    EDGE_ANSWERS,
    FREE_TEXT,
    QUESTION_BANK,
    Question,
    SeedBot,
    Session,
)
from airflow_provider_uci.emulator.crypto import encrypt_username
from airflow_provider_uci.emulator.jobs.common import IST
from airflow_provider_uci.emulator.storage import BlobStorage
from airflow_provider_uci.emulator.telemetry_files import DayWriter, sync_day
from airflow_provider_uci.emulator.ucidb import Bot, UciDatabase

PDATA_PID = "transformer"
#: The share of events the response job leaves out (unknown devices, other channels, bots, pdata, eids).
NOISE = 0.06


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
    edge_cases: float = 0.02

    def __post_init__(self) -> None:
        if not 0 <= self.edge_cases <= 1:
            raise ValueError(f"--edge-cases: must be a share from 0 to 1, got {self.edge_cases}")
        for name in ("bots", "users", "events", "partitions"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name}: must be zero or more, got {getattr(self, name)}")
        if self.days < 1:
            raise ValueError(f"--days: must be at least 1, got {self.days}")
        if self.partitions < 1:
            raise ValueError(f"--partitions: must be at least 1, got {self.partitions}")
        if self.events and (self.bots + len(self.extra_bots)) and not (self.users + len(self.extra_users)):
            raise ValueError("--users: events need at least one user to answer them")


class Seeder:
    """Write one seed's data into the UCI database and the telemetry container."""

    def __init__(
        self,
        options: SeedOptions,
        *,
        storage: BlobStorage,
        uci: UciDatabase,
        telemetry_container: str,
        pdata_id: str,
        encryption_secret: str,
        today: date,
    ) -> None:
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
        self.answers = self.edge_answers = 0
        self.stats = {
            "emitted": 0,
            "kept": 0,
            "duplicates_dropped": 0,
            "filtered_out": 0,
            "unknown_device": 0,
        }

    def seed(self, scratch_root: Path) -> dict[str, Any]:
        """Generate and write everything (its scratch files under ``scratch_root``); return the summary."""
        self.make_tables()
        scratch_root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=scratch_root) as scratch:
            record = self.options.record.open("w", encoding="utf-8") if self.options.record else None
            try:
                self.make_events(Path(scratch), record)
            finally:
                if record is not None:
                    record.close()
            loaded = self.load_telemetry_files(Path(scratch))
        result = self.summary()
        result["telemetry_events_loaded"] = loaded
        return result

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    # -- tables --------------------------------------------------------------------------------

    def make_tables(self) -> None:
        options, rng = self.options, self.rng
        end = self.start + timedelta(days=options.days - 1)
        bots = [
            (self._uuid(), BOT_NAMES[i % len(BOT_NAMES)] + ("" if i < len(BOT_NAMES) else f" {i + 1}"))
            for i in range(options.bots)
        ] + list(options.extra_bots)
        for bot_id, name in bots:
            questions = []
            for slug, title, answers in rng.sample(QUESTION_BANK, k=rng.randint(3, 6)):
                mcq = isinstance(answers, list)
                options_text = answers if mcq else []
                questions.append(
                    Question(
                        id=self._uuid(),
                        kind="mcq" if mcq else "ftp",
                        title=title,
                        choices=[(str(k + 1), text) for k, text in enumerate(options_text)],
                        xpath=f"question./data/{slug}[1]",
                        free_text="" if mcq else str(answers),
                        weights=[
                            0.3 + rng.random() * (2.0 if k == 0 else 1.0) for k in range(len(options_text))
                        ],
                    )
                )
            self.bots.append(SeedBot(bot_id, name, questions, stop_chance=0.02 + rng.random() * 0.08))
        self.uci.add_bots(
            Bot(b.id, b.name, options.channel, self.start.isoformat(), end.isoformat()) for b in self.bots
        )

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
        options = self.options
        bots = [bot for bot in self.bots if bot.users]
        if not bots or not options.events:
            return
        per_day = [
            options.events // options.days + (1 if d < options.events % options.days else 0)
            for d in range(options.days)
        ]
        mean_answers = sum(bot.expected_answers() for bot in bots) / len(bots)
        for offset, count in enumerate(per_day):
            self._day_events(self.start + timedelta(days=offset), count, bots, mean_answers, scratch, record)

    def _day_events(
        self,
        day: date,
        count: int,
        bots: list[Any],
        mean_answers: float,
        scratch: Path,
        record: IO[str] | None,
    ) -> None:
        """Emit ``count`` events of ``day`` into its telemetry files, as sessions that overlap in time."""
        rng = self.rng
        first_hour, last_hour = ACTIVE_HOURS
        day_start = datetime(day.year, day.month, day.day, tzinfo=IST).timestamp()
        writer = DayWriter(
            self.storage,
            self.container,
            day,
            self.options.partitions,
            scratch,
            int(day_start * 1000) + 86_400_000,
        )
        window = (last_hour - first_hour) * 3600.0
        # sessions start as a Poisson process over the active hours, so the day's answers fill them
        rate = count / max(mean_answers, 1.0) / window
        next_start = day_start + first_hour * 3600.0 + rng.expovariate(rate)
        waiting: list[tuple[float, int, Session]] = []
        last_second, emitted, number = None, 0, 0
        while emitted < count:
            if not waiting or next_start <= waiting[0][0]:
                number += 1
                heapq.heappush(waiting, (next_start, number, self._new_session(rng.choice(bots), next_start)))
                next_start += rng.expovariate(rate)
                continue
            moment, _, session = heapq.heappop(waiting)
            moment = min(moment, day_start + 86_390.0)
            if rng.random() < NOISE:
                event, expected = self._noise(session, moment, day_start)
                number += 1
                heapq.heappush(waiting, (moment + 1.0, number, session))  # the answer comes a second later
            else:
                event, expected = self._event(session, moment, day_start)
                session.step += 1
                if session.step < session.length:
                    number += 1
                    heapq.heappush(waiting, (moment + self._duration(), number, session))
            emitted += 1
            self.stats["emitted"] += 1
            second = int(moment)
            if second == last_second:
                self.stats["duplicates_dropped"] += 1  # same mid: unique/raw keeps the first only
                continue
            last_second = second
            self._keep(event, expected, day, writer, record)
        writer.close()

    def _keep(self, event: Any, expected: Any, day: date, writer: DayWriter, record: IO[str] | None) -> None:
        """Write an event the pipeline keeps, and count it: as an answer the job reports (recorded in
        ``record``), or by the reason the job leaves it out (``expected`` names it)."""
        writer.write(event)
        self.stats["kept"] += 1
        if isinstance(expected, str):
            self.stats[expected] += 1
            return
        bot = expected.pop("_bot")
        bot.events_by_day[day.isoformat()] = bot.events_by_day.get(day.isoformat(), 0) + 1
        self.answers += 1
        self.edge_answers += expected.pop("_edge")
        if record is not None:
            record.write(json.dumps(expected, ensure_ascii=False) + "\n")

    def _duration(self) -> float:
        """Seconds a user takes to answer a question: mostly 5 to 60, a few take minutes."""
        return float(max(3, min(600, round(self.rng.lognormvariate(3.4, 0.6)))))

    def _new_session(self, bot: SeedBot, start: float) -> Session:
        """A session of ``bot`` by one of its users, which stops after each step with the bot's chance."""
        rng = self.rng
        length = 1
        while length < len(bot.questions) and rng.random() >= bot.stop_chance * (2.0 if length == 1 else 1.0):
            length += 1
        user = rng.choice(bot.users)
        return Session(bot, user, name_uuid(f"{self.options.seed}:{user}:{bot.id}:{start!r}"), length)

    def _answer(self, question: Question) -> tuple[list[dict[str, Any]], bool]:
        """What a user answers ``question``, and whether it is one of the edge cases."""
        rng, share = self.rng, self.options.edge_cases
        if question.kind == "mcq":  # a choice is always one of the options
            key, text = rng.choices(question.choices, weights=question.weights)[0]
            return [{key: {"text": text}}], False
        if share and rng.random() < share * 3 and self.edge_answers + 1 <= share * (self.answers + 1):
            return [
                {"ans1": rng.choice(EDGE_ANSWERS)}
            ], True  # free text only, at most `share` of all answers
        if question.free_text == "count":
            return [{"ans1": str(rng.randint(6, 48))}], False
        if question.free_text == "staff_id":
            return [{"ans1": f"UP{rng.randint(1_000_000, 9_999_999)}"}], False
        return [{"ans1": rng.choice(FREE_TEXT[question.free_text])}], False

    def _stamps(self, moment: float, day_start: float) -> tuple[str, int, int, str]:
        """The event's ``timestamp`` and ``ets``, its ``syncts`` (within the sync day) and ``@timestamp``."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(moment)))
        ets = int(moment * 1000)
        syncts = min(ets + self.rng.randint(50, 1500), int((day_start + 86_399) * 1000))
        at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(syncts // 1000)) + f".{syncts % 1000:03d}Z"
        return stamp, ets, syncts, at

    def _noise(self, session: Session, moment: float, day_start: float) -> tuple[dict[str, Any], str]:
        """An event the response job leaves out: an unknown device, another channel, bot or pdata, not ASSESS."""
        rng = self.rng
        kind = rng.randrange(5)
        event = self._telemetry(session, moment, day_start, [{"ans1": "ok"}], 0.0)
        context = event["context"]
        if kind == 0:
            event["actor"]["id"] = context["did"] = self._uuid()
            return event, "unknown_device"
        if kind == 1:
            context["channel"] = "other-channel"
            context["env"] = "other-channel.gupshup-whatsapp"
        elif kind == 2:
            context["pdata"]["id"] = "staging.uci.other"
        elif kind == 3:
            other = self._uuid()
            context["rollup"]["l2"] = other
            context["cdata"][1]["id"] = other
        else:
            event["eid"] = "INTERACT"
        return event, "filtered_out"

    def _event_context(self, session: Session, xpath: str, form_end: str) -> dict[str, Any]:
        """An ASSESS event's ``context``: the channel (which owns every bot), the bot, the question."""
        channel = owner = self.options.channel
        bot_id = session.bot.id
        return {
            "channel": channel,
            "pdata": {"id": self.pdata_id, "pid": PDATA_PID, "ver": "1.0"},
            "env": f"{channel}.gupshup-whatsapp",
            "did": session.user,
            "sid": session.id,
            "cdata": [
                {"type": "ConversationOwner", "id": owner},
                {"type": "Conversation", "id": bot_id},
                {"type": "XPath", "id": xpath},
                {"type": "FormEnd", "id": form_end},
            ],
            "rollup": {"l1": owner, "l2": bot_id, "l3": xpath, "l4": form_end},
        }

    def _telemetry(
        self,
        session: Session,
        moment: float,
        day_start: float,
        resvalues: list[dict[str, Any]],
        duration: float,
    ) -> dict[str, Any]:
        """The ASSESS event of the session's current step, as UCI's transformer writes it."""
        bot, number = session.bot, min(session.step, len(session.bot.questions) - 1)
        question = bot.questions[number]
        stamp, ets, syncts, at = self._stamps(moment, day_start)
        params = [{key: {"text": text}} for key, text in question.choices]
        form_end = "true" if number == len(bot.questions) - 1 else "false"
        return {
            "eid": "ASSESS",
            "ets": ets,
            "ver": "3.0",
            "mid": assess_mid(stamp),
            "actor": {"type": "User", "id": session.user},
            "context": self._event_context(session, question.xpath, form_end),
            "object": {
                "id": question.id,
                "type": question.kind.upper(),
                "ver": "1.0",
                "rollup": {"l1": "BotOwnerID", "l2": "BotID", "l3": "QuestionXPath", "l4": "FormEnd"},
            },
            "edata": {
                "duration": duration,
                "score": 1.0,
                "pass": "Yes",
                "index": 1.0,
                "resvalues": resvalues,
                "item": {
                    "id": question.id,
                    "type": question.kind,
                    "title": question.title,
                    "desc": "",
                    "maxscore": 1.0,
                    "exlength": 0.0,
                    "mc": [],
                    "mmc": [],
                    "uri": "",
                    "params": params,
                },
            },
            "type": "event",
            "tags": [],
            "flags": [],
            "timestamp": stamp,
            "syncts": syncts,
            "@timestamp": at,
        }

    def _event(
        self, session: Session, moment: float, day_start: float
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The session's next answer, with what the report must hold for it."""
        bot = session.bot
        question = bot.questions[session.step]
        resvalues, edge = self._answer(question)
        duration = (
            float(int(moment - session.last_moment)) if session.step else float(self.rng.randint(4, 40))
        )
        session.last_moment = moment
        event = self._telemetry(session, moment, day_start, resvalues, duration)
        return event, {
            "_bot": bot,
            "_edge": edge,
            "mid": event["mid"],
            "conversation_id": bot.id,
            "conversation_name": bot.name,
            "device_id": session.user,
            "session_id": session.id,
            "question_id": question.id,
            "question_type": question.kind,
            "title": question.title,
            "params": event["edata"]["item"]["params"],
            "resvalues": resvalues,
            "consent": self.consent[session.user] is not False,
            "x_path": question.xpath,
            "eof": event["context"]["rollup"]["l4"],
            "timestamp": event["@timestamp"],
            "duration": int(duration),
        }

    def load_telemetry_files(self, scratch: Path) -> int:
        """Copy real telemetry files into ``unique/raw``, grouped by the IST date of ``syncts``."""
        writers: dict[date, DayWriter] = {}
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
                    day = sync_day(event)
                    if day is None:
                        raise ValueError(
                            f"--telemetry {path}: line {number} has neither syncts nor @timestamp"
                        )
                    if day not in writers:
                        writers[day] = DayWriter(
                            self.storage,
                            self.container,
                            day,
                            1,
                            scratch,
                            int(datetime(day.year, day.month, day.day, tzinfo=IST).timestamp() * 1000),
                        )
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
            "bots": [
                {"id": b.id, "name": b.name, "events_by_day": dict(sorted(b.events_by_day.items()))}
                for b in self.bots
            ],
            "users": {
                "consent_true": values.count(True),
                "consent_false": values.count(False),
                "consent_unset": values.count(None),
            },
            "events": dict(self.stats),
            "answers": {"rows": self.answers, "edge_cases": self.edge_answers},
            "start": self.start.isoformat(),
            "days": self.options.days,
        }


def _user_data(consent: bool | None) -> dict[str, Any]:
    """``users.data`` carrying the flag where each job reads it (``device`` and ``data.device``)."""
    device: dict[str, Any] = {"type": "phone"}
    if consent is not None:
        device["consent"] = consent
    return {"device": dict(device), "data": {"device": dict(device)}}
