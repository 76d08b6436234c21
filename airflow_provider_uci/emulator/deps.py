"""What the emulator's routes share, as FastAPI dependencies.

The application factory keeps the shared state on ``app.state`` (the service with its settings, clock
and stores; the served-faults log; the job scheduler); each function here hands one piece to a route
that declares it, so the routes live in module-level routers and not in closures over that state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request, Response

from airflow_provider_uci.emulator.access import ADMIN_ID, admin_refusal
from airflow_provider_uci.emulator.clock import Clock
from airflow_provider_uci.emulator.config import EmulatorSettings
from airflow_provider_uci.emulator.faults import ServedLog
from airflow_provider_uci.emulator.inputs import error_response
from airflow_provider_uci.emulator.scheduler import JobScheduler
from airflow_provider_uci.emulator.service import Service


class Refused(Exception):
    """Raised by a dependency that answers in the route's place; :func:`answer_refusal` sends ``response``."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


async def answer_refusal(request: Request, exc: Exception) -> Response:
    """The application's handler of :class:`Refused`."""
    assert isinstance(exc, Refused)
    return exc.response


def from_state(name: str) -> Callable[[Request], Any]:
    """A dependency that gives the application's ``app.state.<name>``."""

    def shared(request: Request) -> Any:
        return getattr(request.app.state, name)

    shared.__name__ = f"get_{name}"
    return shared


#: The service: settings, clock, job store, blob storage and UCI's tables.
ServiceDep = Annotated[Service, Depends(from_state("service"))]
SettingsDep = Annotated[EmulatorSettings, Depends(from_state("settings"))]
ClockDep = Annotated[Clock, Depends(from_state("clock"))]
#: The count of faults served and submissions accepted since the emulator started.
ServedDep = Annotated[ServedLog, Depends(from_state("served"))]
SchedulerDep = Annotated[JobScheduler, Depends(from_state("scheduler"))]


def admin_guard(api_id: str) -> Any:
    """A dependency that lets in only the callers :mod:`~airflow_provider_uci.emulator.access` allows,
    and answers anyone else with the service's envelope under ``api_id``."""

    def admin_only(request: Request, settings: SettingsDep, clock: ClockDep) -> None:
        if (refused := admin_refusal(request, settings)) is not None:
            raise Refused(error_response(api_id, clock.now(), refused))

    return Depends(admin_only)


#: The guard of the ``/admin`` routes.
ADMIN_ONLY = admin_guard(ADMIN_ID)
