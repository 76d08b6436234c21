"""The nightly schedule: the response job at 02:00 and the private job at 03:00, Asia/Kolkata.

The schedule follows the emulator's clock, so moving the clock past 02:00 IST runs the response job
as the real night would. Fast mode (``jobs_every``) runs both jobs every N seconds instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import TYPE_CHECKING

from croniter import croniter
from starlette.concurrency import run_in_threadpool

from airflow_provider_uci.emulator.jobs import private, response

if TYPE_CHECKING:
    from airflow_provider_uci.emulator.service import Service

log = logging.getLogger(__name__)

TICK_SECONDS = 0.25


class JobScheduler:
    """Runs each dataset's job when its cron comes due on the emulator's clock."""

    def __init__(self, service: Service) -> None:
        self.service = service
        settings = service.settings
        self.crons = {response.DATASET: settings.response_cron, private.DATASET: settings.private_cron}
        self.next_due: dict[str, datetime] = {}
        self.runs = 0

    def _next_after(self, dataset: str, instant: datetime) -> datetime:
        local = instant.astimezone(self.service.settings.jobs_timezone)
        return croniter(self.crons[dataset], local).get_next(datetime)

    def due(self, now: datetime) -> list[str]:
        """The datasets whose run is due at ``now``; moves their next run on."""
        ready = []
        for dataset in self.crons:
            upcoming = self._next_after(dataset, now)
            planned = self.next_due.get(dataset)
            if planned is None or upcoming < planned:
                # first look, or the clock went back: the next run is the next one from now
                self.next_due[dataset] = upcoming
            elif now >= planned:
                ready.append(dataset)
                self.next_due[dataset] = upcoming
        return ready

    async def run_forever(self) -> None:
        """Loop until cancelled."""
        every = self.service.settings.jobs_every
        last_fast_run = time.monotonic()  # fast mode runs on real time, whatever the clock shows
        while True:
            await asyncio.sleep(min(TICK_SECONDS, every or TICK_SECONDS))
            now = self.service.clock.now()
            if every:
                if time.monotonic() - last_fast_run < every:
                    continue
                last_fast_run = time.monotonic()
                datasets = list(self.crons)
            else:
                datasets = self.due(now)
            for dataset in datasets:
                try:
                    outcomes = await run_in_threadpool(self.service.run_jobs, (dataset,))
                except Exception:
                    log.exception("scheduled %s run failed", dataset)
                    continue
                self.runs += 1
                if outcomes:
                    log.info("scheduled %s run processed %d request(s)", dataset, len(outcomes))
