"""Settings of the local Data Exhaust service, read from flags and ``UCI_EMULATOR_*`` variables.

Secrets (API keys, the admin token, signing and encryption keys) are kept out of the settings' ``repr``,
so that printing or logging the settings never shows them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from airflow_provider_uci.emulator.crypto import DEFAULT_ENCRYPTION_SECRET
from airflow_provider_uci.emulator.faults import FaultSettings
from airflow_provider_uci.schedule import SCHEDULE_TIMEZONE

#: The API key, consumer and channel that work with no configuration at all.
DEFAULT_API_KEY = "dev-key"
DEFAULT_CONSUMER = "dev-consumer"
DEFAULT_CHANNEL = "dev-channel"

ENV_PREFIX = "UCI_EMULATOR_"

#: The shortest admin token accepted: one that guards a service on the network must not be guessable.
ADMIN_TOKEN_MIN_LENGTH = 16
#: The instants the emulator's clock may stand at: every date computed from them stays representable.
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(3000, 1, 1, tzinfo=timezone.utc)


class SettingsError(ValueError):
    """A setting has a value that breaks its rule; the message names the setting."""


def parse_pairs(value: str, setting: str) -> list[tuple[str, str]]:
    """Parse ``a=b,c=d`` into pairs, naming ``setting`` in the error for a malformed item."""
    pairs: list[tuple[str, str]] = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        left, sep, right = item.partition("=")
        if not sep or not left.strip() or not right.strip():
            raise SettingsError(f"{setting}: expected NAME=VALUE items separated by commas, got {item!r}")
        pairs.append((left.strip(), right.strip()))
    return pairs


def parse_instant(value: str, setting: str, tz: ZoneInfo) -> datetime:
    """Parse an ISO date or date-time; a naive value is read in ``tz``."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SettingsError(
            f"{setting}: expected an ISO 8601 date-time such as 2026-01-05T10:00:00+05:30, got {value!r}"
        ) from None
    return check_instant(parsed if parsed.tzinfo else parsed.replace(tzinfo=tz), setting)


def check_instant(instant: datetime, setting: str) -> datetime:
    """Return ``instant`` if the clock may stand there (from 1970 to the end of 2999, UTC)."""
    if not EARLIEST <= instant < LATEST:
        raise SettingsError(
            f"{setting}: must be from 1970-01-01 to 2999-12-31 (UTC), got {instant.isoformat()}"
        )
    return instant


def check_admin_token(token: str, setting: str) -> str:
    """Return ``token`` if it can be sent in a header and is long enough; the error never shows it."""
    if len(token) < ADMIN_TOKEN_MIN_LENGTH:
        raise SettingsError(
            f"{setting}: must be at least {ADMIN_TOKEN_MIN_LENGTH} characters, got {len(token)}"
        )
    if not all("!" <= char <= "~" for char in token):
        raise SettingsError(f"{setting}: must be printable ASCII without spaces (it is sent as a header)")
    return token


def parse_zone(value: str, setting: str) -> ZoneInfo:
    """Return the IANA time zone named ``value``."""
    try:
        return ZoneInfo(value)
    except Exception:
        raise SettingsError(f"{setting}: unknown IANA time zone {value!r}") from None


@dataclass
class EmulatorSettings:
    """Everything the emulator can be told; defaults are those of the deployed Sunbird service.

    :param data_dir: where the job store (SQLite) and the local blob storage live.
    :param database_url: a ``postgresql://`` URL to keep the job store in PostgreSQL instead.
    :param api_keys: bearer API key -> consumer id (what the real gateway's JWT plugin resolves).
    :param authorized: (consumer id, channel) pairs allowed to use the API.
    :param timezone: time zone of the submission date that enters the request id.
    :param now: where the emulator's clock starts; it then advances with real time.
    :param expiry_seconds: lifetime of signed download URLs and of ``expiresAt``.
    :param storage: ``local`` (files under the data dir) or ``azure`` (Azure Blob / Azurite).
    :param signing_key: HMAC key of local signed URLs; kept in ``<data_dir>/signing.key`` when unset.
    :param bot_pdata_id: the response job's ``context.pdata.id`` filter (exact, case-sensitive).
    :param encryption_secret: base64 AES key of identity usernames (``uci.encryption.secret``).
    :param response_cron: when the response job runs, in ``jobs_timezone`` (02:00 Asia/Kolkata).
    :param private_cron: when the private job runs (03:00 Asia/Kolkata).
    :param jobs_every: fast mode: run both jobs every this many seconds instead of on the crons.
    :param schedule: whether ``serve`` runs the jobs on their schedule at all.
    :param admin_token: the token ``/admin/*`` and ``POST /request/search`` require (header ``X-Admin-Token``);
        unset, those routes answer loopback clients only.
    :param play_errors: answer malformed input as the real (Play) service does, with its HTML pages and
        500s, instead of a 4xx error envelope; off by default.
    """

    data_dir: Path = field(default_factory=lambda: Path(".uci-emulator"))
    database_url: str | None = None
    api_keys: dict[str, str] = field(default_factory=lambda: {DEFAULT_API_KEY: DEFAULT_CONSUMER}, repr=False)
    authorized: set[tuple[str, str]] = field(default_factory=lambda: {(DEFAULT_CONSUMER, DEFAULT_CHANNEL)})
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    now: datetime | None = None
    expiry_seconds: int = 30 * 60
    list_default_limit: int = 100
    search_default_limit: int = 10
    max_iterations: int = 3
    reports_container: str = "reports"
    storage: str = "local"
    storage_account: str = "uciemulator"
    azure_connection_string: str | None = field(default=None, repr=False)
    signing_key: str | None = field(default=None, repr=False)
    server_error_delay: float = 0.0
    faults: FaultSettings = field(default_factory=FaultSettings)
    bot_pdata_id: str = "prod.uci.diksha"
    encryption_secret: str = field(default=DEFAULT_ENCRYPTION_SECRET, repr=False)
    telemetry_container: str = "telemetry-data-store"
    response_cron: str = "0 2 * * *"
    private_cron: str = "0 3 * * *"
    jobs_timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo(SCHEDULE_TIMEZONE))
    jobs_every: float | None = None
    schedule: bool = True
    admin_token: str | None = field(default=None, repr=False)
    play_errors: bool = False

    @property
    def uci_database(self) -> Path:
        """The SQLite file of UCI's bot and FusionAuth tables."""
        return self.data_dir / "uci.sqlite3"

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        if self.storage not in ("local", "azure"):
            raise SettingsError(f"storage: must be 'local' or 'azure', got {self.storage!r}")
        if self.storage == "azure" and not self.azure_connection_string:
            raise SettingsError("azure_connection_string: required when storage is 'azure'")
        if self.expiry_seconds <= 0:
            raise SettingsError(
                f"expiry_seconds: must be a positive number of seconds, got {self.expiry_seconds}"
            )
        if self.jobs_every is not None and self.jobs_every <= 0:
            raise SettingsError(f"jobs_every: must be a positive number of seconds, got {self.jobs_every}")
        for name in ("response_cron", "private_cron"):
            check_cron(getattr(self, name), name)
        if self.admin_token is not None:
            check_admin_token(self.admin_token, "admin_token")
        if self.now is not None:
            if self.now.tzinfo is None:
                raise SettingsError("now: must carry a UTC offset or time zone")
            check_instant(self.now, "now")

    @classmethod
    def from_env(
        cls, environ: os._Environ[str] | dict[str, str] | None = None, **overrides: object
    ) -> EmulatorSettings:
        """Build settings from ``UCI_EMULATOR_*`` variables; ``overrides`` (flags) win over them."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}

        def get(name: str) -> str | None:
            raw = env.get(ENV_PREFIX + name)
            return raw if raw not in (None, "") else None

        if (raw := get("DATA_DIR")) is not None:
            values["data_dir"] = Path(raw)
        if (raw := get("DATABASE_URL")) is not None:
            values["database_url"] = raw
        if (raw := get("API_KEYS")) is not None:
            values["api_keys"] = dict(parse_pairs(raw, ENV_PREFIX + "API_KEYS"))
        if (raw := get("AUTHORIZED")) is not None:
            values["authorized"] = set(parse_pairs(raw, ENV_PREFIX + "AUTHORIZED"))
        if (raw := get("TIMEZONE")) is not None:
            values["timezone"] = parse_zone(raw, ENV_PREFIX + "TIMEZONE")
        if (raw := get("EXPIRY_SECONDS")) is not None:
            values["expiry_seconds"] = _int(raw, ENV_PREFIX + "EXPIRY_SECONDS")
        for name in ("STORAGE", "STORAGE_ACCOUNT", "AZURE_CONNECTION_STRING", "SIGNING_KEY"):
            if (raw := get(name)) is not None:
                values[name.lower()] = raw
        if (raw := get("SERVER_ERROR_DELAY")) is not None:
            values["server_error_delay"] = _float(raw, ENV_PREFIX + "SERVER_ERROR_DELAY")
        for name, setting in (
            ("PDATA_ID", "bot_pdata_id"),
            ("ENCRYPTION_SECRET", "encryption_secret"),
            ("RESPONSE_CRON", "response_cron"),
            ("PRIVATE_CRON", "private_cron"),
        ):
            if (raw := get(name)) is not None:
                values[setting] = raw
        if (raw := get("JOBS_TIMEZONE")) is not None:
            values["jobs_timezone"] = parse_zone(raw, ENV_PREFIX + "JOBS_TIMEZONE")
        if (raw := get("JOBS_EVERY")) is not None:
            values["jobs_every"] = _float(raw, ENV_PREFIX + "JOBS_EVERY")
        if (raw := get("SCHEDULE")) is not None:
            values["schedule"] = _bool(raw)
        if (raw := get("ADMIN_TOKEN")) is not None:
            values["admin_token"] = check_admin_token(raw, ENV_PREFIX + "ADMIN_TOKEN")
        if (raw := get("PLAY_ERRORS")) is not None:
            values["play_errors"] = _bool(raw)
        values["faults"] = FaultSettings.from_env(env)
        values.update({key: value for key, value in overrides.items() if value is not None})
        tz = values.get("timezone", ZoneInfo("UTC"))
        if (raw := get("NOW")) is not None and "now" not in overrides:
            values["now"] = parse_instant(raw, ENV_PREFIX + "NOW", tz)  # type: ignore[arg-type]
        return cls(**values)  # type: ignore[arg-type]


def check_cron(expression: str, setting: str) -> str:
    """Return ``expression`` if it is a valid five-field cron expression."""
    from croniter import croniter

    if len(expression.split()) != 5 or not croniter.is_valid(expression):
        raise SettingsError(
            f"{setting}: expected a five-field cron expression such as '0 2 * * *', got {expression!r}"
        )
    return expression


def _bool(value: str) -> bool:
    """A switch's value: anything but 0, false, no or off turns it on."""
    return value.strip().lower() not in ("0", "false", "no", "off")


def _int(value: str, setting: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise SettingsError(f"{setting}: expected a whole number, got {value!r}") from None


def _float(value: str, setting: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise SettingsError(f"{setting}: expected a number, got {value!r}") from None
