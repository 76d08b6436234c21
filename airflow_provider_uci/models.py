"""Typed objects of the Data Exhaust API, request validation, and the provider's errors.

The real service validates almost nothing and fails the next night instead (docs/service-contract.md §1.3
and §4.6); :meth:`ExhaustRequest.validate` fails before anything is sent, naming the field and the rule.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

#: Attempts after which a FAILED job is final (the service's ``maxIterations``).
MAX_ATTEMPTS = 3
#: The ``statusMessage`` of a job whose report had no rows (docs/service-contract.md §2.4): no file, and a
#: retry the next night reads the same sync days, so it is an answer ("nothing"), not a failure.
NO_DATA = "No data found"
#: The ``statusMessage`` of a job whose bot is not in the UCI bot table under the request's channel
#: (docs/service-contract.md §2.4): the connection's channel does not own the bot; no retry can change that.
NO_SUCH_BOT = "No data found for conversation in DB"
#: Column limits of the service's job table: longer values make it answer HTTP 500.
TAG_WITH_CHANNEL_LIMIT = 100
FIELD_LIMIT = 50


class ExhaustError(AirflowException):
    """Base of every error this provider raises."""


class ExhaustFatalError(ExhaustError, AirflowFailException):
    """An error that no retry can mend: the task fails at once, without Airflow's retries."""


class ExhaustValidationError(ExhaustFatalError, ValueError):
    """A request breaks a rule; nothing was sent.

    :param field: the request field at fault.
    :param rule: what the value must be.
    """

    def __init__(self, field: str, rule: str, value: object = None) -> None:
        shown = "" if value is None else f" (got {value!r})"
        super().__init__(f"{field}: {rule}{shown}")
        self.field = field
        self.rule = rule


class ExhaustApiError(ExhaustFatalError):
    """The service refused the call (HTTP 400, 401, 403, 404, or a non-retryable answer).

    :param status: the HTTP status.
    :param err: the envelope's ``params.err`` (e.g. ``CLIENT_ERROR``, ``FORBIDDEN``).
    :param errmsg: the envelope's ``params.errmsg``, the service's own words.
    """

    def __init__(self, status: int, err: str | None, errmsg: str | None, route: str = "") -> None:
        code = f" {err}" if err else ""
        super().__init__(f"Data Exhaust API {route} answered HTTP {status}{code}: {errmsg or '(no message)'}")
        self.status = status
        self.err = err
        self.errmsg = errmsg


class ExhaustTransientError(ExhaustError):
    """Server errors, rate limits, timeouts or dropped connections outlasted every retry."""


class ExhaustJobNotFound(ExhaustError):
    """The service knows no job with this tag and request id (it answers HTTP 200 with ``result: null``)."""


class ExhaustJobFailed(ExhaustFatalError):
    """The job failed for good; the message is the service's ``statusMessage``.

    :param job: the job, or an event's description of it (``request_id``, ``dataset``,
        ``conversation_id``, ``attempts``, ``status_message``).
    """

    def __init__(self, job: ExhaustJob | dict[str, Any]) -> None:
        self.job = job
        about = job.describe() if isinstance(job, ExhaustJob) else dict(job)
        super().__init__(self.explain(about))

    @staticmethod
    def explain(about: dict[str, Any]) -> str:
        bot = f" of bot {about['conversation_id']}" if about.get("conversation_id") else ""
        return (
            f"exhaust job {about.get('request_id')} ({about.get('dataset')}){bot} failed after "
            f"{about.get('attempts')} attempt(s): {about.get('status_message') or '(no message)'}"
        )


class ExhaustBotNotFound(ExhaustJobFailed):
    """The service has no bot with this id under the request's channel (``No data found for conversation in DB``)."""

    @staticmethod
    def explain(about: dict[str, Any]) -> str:
        return (
            f"bot {about.get('conversation_id') or '(unknown)'}: the service found no such conversation owned "
            f"by channel {about.get('channel') or '(unknown)'} ({about.get('dataset')} job "
            f"{about.get('request_id')}: {NO_SUCH_BOT!r}); check the conversation id, and that the "
            "connection's channel_id is the bot's owner org"
        )


class Outcome(str, enum.Enum):
    """What a job's state means for a client waiting on it."""

    WAITING = "waiting"  # not run yet, running, or FAILED with a nightly retry to come
    FILES = "files"  # SUCCESS: the files are ready
    EMPTY = "empty"  # FAILED with exactly "No data found": nothing in the range, and a retry finds the same
    FAILED = "failed"  # FAILED for good
    NO_SUCH_BOT = "no_such_bot"  # the channel owns no such bot

    @property
    def is_final(self) -> bool:
        return self is not Outcome.WAITING

    @property
    def is_answer(self) -> bool:
        """The job answered (files, or nothing to give): a waiting client may go on."""
        return self in (Outcome.FILES, Outcome.EMPTY)


class Dataset(str, enum.Enum):
    """The two UCI exhaust datasets."""

    RESPONSE = "uci-response-exhaust"
    PRIVATE = "uci-private-exhaust"

    @classmethod
    def parse(cls, value: str | Dataset, field_name: str = "dataset") -> Dataset:
        """The dataset named ``value`` (``response``/``private`` are accepted too)."""
        if isinstance(value, Dataset):
            return value
        aliases = {"response": cls.RESPONSE, "private": cls.PRIVATE}
        try:
            return aliases.get(str(value), None) or cls(str(value))
        except ValueError:
            raise ExhaustValidationError(
                field_name, f"must be one of {', '.join(d.value for d in cls)}", value
            ) from None


class JobStatus(str, enum.Enum):
    """A job's status; anything the service may add later reads as ``UNKNOWN``."""

    SUBMITTED = "SUBMITTED"
    PROCESSING = "PROCESSING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    UNKNOWN = "UNKNOWN"

    @classmethod
    def parse(cls, value: object) -> JobStatus:
        try:
            return cls(str(value).upper())
        except ValueError:
            return cls.UNKNOWN


def _from_ms(value: Any) -> datetime | None:
    if value in (None, 0):
        return None
    return datetime.fromtimestamp(int(value) / 1000, tz=timezone.utc)


@dataclass(frozen=True)
class ExhaustJob:
    """A job object as the API returns it (docs/service-contract.md §1.8), with times as aware UTC datetimes.

    ``download_urls`` are signed and expire (30 minutes): they are kept out of ``repr`` so that they
    never reach a log by accident.
    """

    request_id: str
    tag: str
    dataset: str
    status: JobStatus
    status_text: str
    requested_by: str
    requested_channel: str
    dataset_config: dict[str, Any]
    attempts: int
    submitted_at: datetime | None
    completed_at: datetime | None
    execution_time_ms: int | None
    last_updated: datetime | None
    expires_at: datetime | None
    status_message: str | None
    download_urls: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def from_api(cls, result: dict[str, Any]) -> ExhaustJob:
        """Build from a ``result`` (submit/read) or a ``jobs`` element (list)."""
        stats = result.get("jobStats") or {}
        config = result.get("datasetConfig")
        return cls(
            request_id=str(result.get("requestId", "")),
            tag=str(result.get("tag", "")),
            dataset=str(result.get("dataset", "")),
            status=JobStatus.parse(result.get("status")),
            status_text=str(result.get("status", "")),
            requested_by=str(result.get("requestedBy") or ""),
            requested_channel=str(result.get("requestedChannel") or ""),
            dataset_config=config if isinstance(config, dict) else {},
            attempts=int(result.get("attempts") or 0),
            submitted_at=_from_ms(stats.get("dtJobSubmitted")),
            completed_at=_from_ms(stats.get("dtJobCompleted")),
            execution_time_ms=stats.get("executionTime"),
            last_updated=_from_ms(result.get("lastUpdated")),
            expires_at=_from_ms(result.get("expiresAt")),
            status_message=result.get("statusMessage"),
            download_urls=tuple(result.get("downloadUrls") or ()),
        )

    @property
    def bare_tag(self) -> str:
        """The tag without the ``:channel`` the service appends (what read and list take)."""
        return strip_channel(self.tag, self.requested_channel)

    @property
    def conversation_id(self) -> str | None:
        value = self.dataset_config.get("conversationId")
        return str(value) if value else None

    def outcome(self, fail_on_first_failure: bool = False, max_attempts: int = MAX_ATTEMPTS) -> Outcome:
        """The one rule of what this job's state means to a waiting client.

        ``No data found`` is an answer (nothing to copy) and an unknown bot is final at once, whatever the
        attempts; any other FAILED waits for the service's nightly retry until ``max_attempts``, unless
        ``fail_on_first_failure``.
        """
        if self.status is JobStatus.SUCCESS:
            return Outcome.FILES
        if self.status is not JobStatus.FAILED:
            return Outcome.WAITING
        message = (self.status_message or "").strip()
        if message == NO_DATA:
            return Outcome.EMPTY
        if message == NO_SUCH_BOT:
            return Outcome.NO_SUCH_BOT
        if fail_on_first_failure or self.attempts >= max_attempts:
            return Outcome.FAILED
        return Outcome.WAITING

    def describe(self) -> dict[str, Any]:
        """Identifiers and state, for logs, events and errors (never URLs)."""
        return {
            **self.identifiers(),
            "status": self.status_text,
            "attempts": self.attempts,
            "status_message": self.status_message,
            "channel": self.requested_channel,
            "file_count": len(self.download_urls),
        }

    def failure(self) -> ExhaustJobFailed:
        """The error to raise for a job whose outcome is FAILED or NO_SUCH_BOT."""
        return job_failure(self.describe())

    def identifiers(self) -> dict[str, Any]:
        """What may travel in XCom: identifiers only, never URLs or keys."""
        config = self.dataset_config
        return {
            "request_id": self.request_id,
            "tag": self.bare_tag,
            "dataset": self.dataset,
            "conversation_id": config.get("conversationId"),
            "start_date": config.get("startDate"),
            "end_date": config.get("endDate"),
        }


def job_failure(about: dict[str, Any]) -> ExhaustJobFailed:
    """The error for a job (described as :meth:`ExhaustJob.describe` does) that failed for good."""
    if (about.get("status_message") or "").strip() == NO_SUCH_BOT:
        return ExhaustBotNotFound(about)
    return ExhaustJobFailed(about)


def strip_channel(tag: str, channel: str | None) -> str:
    """``tag:channel`` -> ``tag``; a bare tag is returned as it is."""
    if channel and tag.endswith(":" + channel):
        return tag[: -len(channel) - 1]
    return tag


def _check_day(name: str, value: str | date) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value)
    try:
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise ExhaustValidationError(name, "must be a date written YYYY-MM-DD", value) from None


@dataclass(frozen=True)
class ExhaustRequest:
    """One submit request, checked before it is sent.

    :param conversation_id: the bot id (a UUID).
    :param dataset: ``uci-response-exhaust`` or ``uci-private-exhaust``.
    :param start_date: first sync day, ``YYYY-MM-DD`` (ignored by the private exhaust, sent anyway).
    :param end_date: last sync day, inclusive.
    :param tag: the request's tag (bare, without ``:channel``).
    :param channel: the ``X-Channel-ID`` (the bot's owner org).
    :param requested_by: free text the service keeps.
    :param encryption_key: the private exhaust zip's password; never logged.
    """

    conversation_id: str
    dataset: Dataset | str
    start_date: str | date
    end_date: str | date
    tag: str
    channel: str
    requested_by: str = ""
    encryption_key: str | None = field(default=None, repr=False)

    def validate(self) -> ExhaustRequest:
        """Return a normalised copy, or raise :class:`ExhaustValidationError` naming field and rule."""
        try:
            conversation = str(uuid.UUID(str(self.conversation_id)))
        except ValueError:
            raise ExhaustValidationError(
                "conversation_id", "must be a UUID (the bot id)", self.conversation_id
            ) from None
        if conversation != str(self.conversation_id).lower():
            raise ExhaustValidationError(
                "conversation_id", "must be a UUID in its 36-character form", self.conversation_id
            )
        dataset = Dataset.parse(self.dataset)
        start, end = _check_day("start_date", self.start_date), _check_day("end_date", self.end_date)
        if start > end:
            raise ExhaustValidationError(
                "start_date", f"must not be after end_date ({end.isoformat()})", start.isoformat()
            )
        tag = strip_channel(str(self.tag or ""), self.channel)
        if not tag.strip():
            raise ExhaustValidationError("tag", "must not be empty (an empty tag cannot be read back)")
        if "/" in tag or "?" in tag or "#" in tag:
            raise ExhaustValidationError(
                "tag", "must not contain '/', '?' or '#' (it is part of the read URL)", tag
            )
        if not self.channel:
            raise ExhaustValidationError("channel", "must not be empty (it is sent as X-Channel-ID)")
        if len(tag) + 1 + len(self.channel) > TAG_WITH_CHANNEL_LIMIT:
            raise ExhaustValidationError(
                "tag",
                f"tag:channel must be at most {TAG_WITH_CHANNEL_LIMIT} characters",
                f"{tag}:{self.channel}",
            )
        for name, value in (
            ("requested_by", self.requested_by),
            ("channel", self.channel),
            ("encryption_key", self.encryption_key),
        ):
            if value is not None and len(value) > FIELD_LIMIT:
                shown = None if name == "encryption_key" else value
                raise ExhaustValidationError(name, f"must be at most {FIELD_LIMIT} characters", shown)
        if self.encryption_key is not None and self.encryption_key == "":
            raise ExhaustValidationError(
                "encryption_key", "must not be empty; leave it unset for an unencrypted zip"
            )
        return ExhaustRequest(
            conversation_id=conversation,
            dataset=dataset,
            start_date=start.isoformat(),
            end_date=end.isoformat(),
            tag=tag,
            channel=self.channel,
            requested_by=self.requested_by or "",
            encryption_key=self.encryption_key,
        )

    def body(self) -> dict[str, Any]:
        """The submit body, as the UCI documentation writes it."""
        dataset = Dataset.parse(self.dataset).value
        request: dict[str, Any] = {
            "tag": self.tag,
            "dataset": dataset,
            "requestedBy": self.requested_by,
            "datasetConfig": {
                "type": dataset,
                "conversationId": self.conversation_id,
                "startDate": str(self.start_date),
                "endDate": str(self.end_date),
            },
        }
        if self.encryption_key is not None:
            request["encryptionKey"] = self.encryption_key
        return {
            "id": "ekstep.analytics.job.request.submit",
            "ver": "1.0",
            "ts": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+00:00"),
            "params": {"msgid": str(uuid.uuid4())},
            "request": request,
        }
