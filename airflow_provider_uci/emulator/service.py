"""The service's state, shared by every route, the admin routes and the job scheduler: settings,
clock, job store, blob storage and UCI's tables."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool

from airflow_provider_uci.emulator import protocol
from airflow_provider_uci.emulator.clock import Clock
from airflow_provider_uci.emulator.config import EmulatorSettings
from airflow_provider_uci.emulator.crypto import sealing_key
from airflow_provider_uci.emulator.jobs import Outcome, run_jobs
from airflow_provider_uci.emulator.jobs.common import JobContext
from airflow_provider_uci.emulator.seed import Seeder, SeedOptions
from airflow_provider_uci.emulator.storage import AzureStorage, BlobStorage, LocalStorage, key_from_stored_url
from airflow_provider_uci.emulator.store import JobRow, JobStore
from airflow_provider_uci.emulator.ucidb import UciDatabase
from airflow_provider_uci.exhaust.safe_files import atomic_write_text


def build_storage(settings: EmulatorSettings) -> BlobStorage:
    """The blob storage the settings ask for."""
    if settings.storage == "azure":
        assert settings.azure_connection_string is not None
        return AzureStorage(settings.azure_connection_string)
    return LocalStorage(
        settings.data_dir / "blobs",
        account=settings.storage_account,
        signing_key=settings.signing_key or _stored_signing_key(settings.data_dir),
    )


def _stored_signing_key(data_dir: Path) -> str:
    """The data dir's own signing key, made on first use, so URLs survive a restart."""
    path = data_dir / "signing.key"
    if not path.exists():
        atomic_write_text(path, secrets.token_urlsafe(32), field="signing key")  # 0600, in a folder made 0700
    return path.read_text().strip()


def build_store(settings: EmulatorSettings) -> JobStore:
    """The job store the settings ask for: PostgreSQL given a URL, else SQLite under the data dir; zip
    passwords sealed under a key derived from the signing key (kept in the data dir when not set)."""
    key = sealing_key(settings.signing_key or _stored_signing_key(settings.data_dir))
    if settings.database_url:
        return JobStore(settings.timezone, database_url=settings.database_url, sealing_key=key)
    return JobStore(settings.timezone, sqlite_path=settings.data_dir / "job_request.sqlite3", sealing_key=key)


class Service:
    """The service's state: settings, clock, job store and storage, shared by every route."""

    def __init__(
        self,
        settings: EmulatorSettings,
        clock: Clock | None = None,
        store: JobStore | None = None,
        storage: BlobStorage | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or Clock(settings.now)
        self.store = store or build_store(settings)
        self.storage = storage or build_storage(settings)
        self._uci: UciDatabase | None = None

    @property
    def uci(self) -> UciDatabase:
        """UCI's bot and FusionAuth tables (opened on first use)."""
        if self._uci is None:
            self._uci = UciDatabase(self.settings.uci_database)
        return self._uci

    def job_context(self) -> JobContext:
        """What the nightly jobs run with."""
        return JobContext(settings=self.settings, clock=self.clock, storage=self.storage, uci=self.uci)

    def run_jobs(self, datasets: tuple[str, ...] | None = None) -> list[Outcome]:
        """Run the nightly jobs now (both, response first, unless ``datasets`` says otherwise)."""
        return run_jobs(self.store, self.job_context(), datasets)

    def seed(self, options: SeedOptions, today: date) -> dict[str, Any]:
        """Write seed data into this service's UCI tables and telemetry container."""
        seeder = Seeder(
            options,
            storage=self.storage,
            uci=self.uci,
            telemetry_container=self.settings.telemetry_container,
            pdata_id=self.settings.bot_pdata_id,
            encryption_secret=self.settings.encryption_secret,
            today=today,
        )
        return seeder.seed(scratch_root=self.settings.data_dir / "tmp")

    async def db(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a store call: inline for SQLite (microseconds), in a thread for PostgreSQL."""
        if self.store.is_postgres:
            return await run_in_threadpool(function, *args, **kwargs)
        return function(*args, **kwargs)

    def job_fields(self, row: JobRow, base_url: str | Callable[[], str]) -> dict[str, Any]:
        """The job object's values with freshly signed download URLs.

        ``base_url`` may be a function, called only when there is a URL to sign.
        """
        now = self.clock.now()
        ttl = timedelta(seconds=self.settings.expiry_seconds)
        container = self.settings.reports_container

        def sign(stored: str) -> str:
            base = base_url if isinstance(base_url, str) else base_url()
            return self.storage.signed_url(
                container, key_from_stored_url(stored), now=now, ttl=ttl, base_url=base
            )

        expires = int((now + ttl).timestamp() * 1000)
        return protocol.job_fields(row, expires_at_ms=expires, sign=sign)
