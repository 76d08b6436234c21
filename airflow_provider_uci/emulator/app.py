"""The emulator's FastAPI application: the Data Exhaust API (docs/service-contract.md §1) and what stands beside it.

The routes live in module-level routers by area: the gateway's API and the internal search
(:mod:`~airflow_provider_uci.emulator.api`), signed downloads (:mod:`~airflow_provider_uci.emulator.files`)
and the emulator's own admin routes (:mod:`~airflow_provider_uci.emulator.admin`). They reach the shared
state through the dependencies of :mod:`~airflow_provider_uci.emulator.deps`, which read what
:func:`create_app` puts on ``app.state``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException

from airflow_provider_uci.emulator import admin, api, files, openapi
from airflow_provider_uci.emulator.config import EmulatorSettings
from airflow_provider_uci.emulator.deps import Refused, answer_refusal
from airflow_provider_uci.emulator.faults import ServedLog
from airflow_provider_uci.emulator.gateway import route_miss
from airflow_provider_uci.emulator.scheduler import JobScheduler
from airflow_provider_uci.emulator.service import Service


def create_app(settings: EmulatorSettings | None = None, *, service: Service | None = None) -> FastAPI:
    """Build the emulator's application; every piece comes from ``settings`` unless given.

    While the application runs (under uvicorn), the nightly jobs run on their schedule unless
    ``settings.schedule`` is off.
    """
    service = service or Service(settings or EmulatorSettings.from_env())
    scheduler = JobScheduler(service)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(scheduler.run_forever()) if service.settings.schedule else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = FastAPI(
        title="Sunbird Data Exhaust (local emulator)", docs_url="/docs", redoc_url=None, lifespan=lifespan
    )
    app.state.service = service
    app.state.settings = service.settings
    app.state.clock = service.clock
    app.state.scheduler = scheduler
    app.state.find_transport = None
    app.state.served = ServedLog()
    app.add_exception_handler(StarletteHTTPException, route_miss)
    app.add_exception_handler(Refused, answer_refusal)
    app.include_router(api.router)
    app.include_router(api.router, prefix="/api", include_in_schema=False)
    app.include_router(api.internal_router)
    app.include_router(files.router)
    app.include_router(admin.router)
    openapi.install(app)
    return app
