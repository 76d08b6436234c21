"""Fault knobs: injected server errors, rate limiting, latency, dropped connections, short bodies.

All are off by default. A rate is given for every route (``0.1``) or per route
(``read=0.5,submit=0.1``); the routes are ``submit``, ``read``, ``list``, ``search`` and ``download``.

Each route draws from a stream of its own (and truncation from another), every knob on every call, so
with a seed the n-th call of a route meets the same faults however the calls of the routes interleave.
What was served is counted (:class:`ServedLog`), so a run under faults can show that they fired.
"""

from __future__ import annotations

import os
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

ROUTES = ("submit", "read", "list", "search", "download")
ENV_PREFIX = "UCI_EMULATOR_FAULT_"
#: Each knob's variable (after ``ENV_PREFIX``) and command-line flag, named in error messages.
ENV_SUFFIXES = {
    "error_500": "500",
    "error_429": "429",
    "retry_after": "RETRY_AFTER",
    "latency": "LATENCY",
    "latency_seconds": "LATENCY_SECONDS",
    "drop": "DROP",
    "truncate": "TRUNCATE",
    "seed": "SEED",
}
FLAGS = {
    "error_500": "--fault-500",
    "error_429": "--fault-429",
    "retry_after": "--retry-after",
    "latency": "--fault-latency",
    "latency_seconds": "--latency-seconds",
    "drop": "--fault-drop",
    "truncate": "--fault-truncate",
    "seed": "--fault-seed",
}


#: The faults a call of a route can meet, in the order they are drawn (truncation is drawn per download body).
CALL_FAULTS = ("latency", "drop", "error_429", "error_500")
#: Every kind of fault the emulator serves, as :class:`ServedLog` names them.
KINDS = (*CALL_FAULTS, "truncate")


class FaultSpecError(ValueError):
    """A fault knob's value breaks its rule; the message names the knob."""


def parse_rates(value: str | None, knob: str) -> dict[str, float]:
    """Parse ``0.1`` or ``read=0.5,submit=0.1`` into a rate per route."""
    if value is None or not value.strip():
        return {}
    rates: dict[str, float] = {}
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        route, sep, rate_text = item.rpartition("=")
        routes = ROUTES if not sep or route.strip() in ("", "all", "*") else (route.strip(),)
        for name in routes:
            if name not in ROUTES:
                raise FaultSpecError(f"{knob}: unknown route {name!r}; routes are {', '.join(ROUTES)}")
        try:
            rate = float(rate_text)
        except ValueError:
            raise FaultSpecError(
                f"{knob}: rate must be a number between 0 and 1, got {rate_text!r}"
            ) from None
        if not 0.0 <= rate <= 1.0:
            raise FaultSpecError(f"{knob}: rate must be between 0 and 1, got {rate}")
        for name in routes:
            rates[name] = rate
    return rates


@dataclass
class FaultSettings:
    """Rates per route of each injected fault, and the fault's parameters."""

    error_500: dict[str, float] = field(default_factory=dict)
    error_429: dict[str, float] = field(default_factory=dict)
    retry_after: int = 1
    latency: dict[str, float] = field(default_factory=dict)
    latency_seconds: float = 2.0
    drop: dict[str, float] = field(default_factory=dict)
    truncate: float = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.retry_after < 0:
            raise FaultSpecError(f"retry_after: must be >= 0 seconds, got {self.retry_after}")
        if self.latency_seconds < 0:
            raise FaultSpecError(f"latency_seconds: must be >= 0 seconds, got {self.latency_seconds}")
        if not 0.0 <= self.truncate <= 1.0:
            raise FaultSpecError(f"truncate: rate must be between 0 and 1, got {self.truncate}")
        self._streams: dict[str, random.Random] = {}
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        """Whether any fault can fire."""
        return bool(self.error_500 or self.error_429 or self.latency or self.drop or self.truncate)

    def _stream(self, name: str) -> random.Random:
        if name not in self._streams:
            self._streams[name] = random.Random(None if self.seed is None else f"{self.seed}:{name}")
        return self._streams[name]

    def draw(self, route: str) -> frozenset[str]:
        """Draw which of :data:`CALL_FAULTS` fire on this call of ``route``."""
        with self._lock:
            stream = self._stream(route)
            draws = {kind: stream.random() for kind in CALL_FAULTS}
        return frozenset(kind for kind, drawn in draws.items() if drawn < getattr(self, kind).get(route, 0.0))

    def truncates(self) -> bool:
        """Draw whether this download's body is cut short."""
        if self.truncate <= 0.0:
            return False
        with self._lock:
            return self._stream("truncate").random() < self.truncate

    @classmethod
    def from_env(cls, env: os._Environ[str] | dict[str, str], **flags: str | None) -> FaultSettings:
        """Read the ``UCI_EMULATOR_FAULT_*`` variables; ``flags`` that are not ``None`` win over them."""

        def get(name: str) -> str | None:
            raw = env.get(ENV_PREFIX + name)
            return raw if raw not in (None, "") else None

        raw = {knob: get(suffix) for knob, suffix in ENV_SUFFIXES.items()}
        names = {knob: ENV_PREFIX + suffix for knob, suffix in ENV_SUFFIXES.items()}
        for knob, value in flags.items():
            if value is not None:
                raw[knob] = value
                names[knob] = FLAGS.get(knob, knob)
        return cls.from_values(names=names, **raw)

    @classmethod
    def from_values(
        cls, names: dict[str, str] | None = None, **raw: str | float | int | None
    ) -> FaultSettings:
        """Build from textual knob values (flags or environment); ``None`` means unset.

        ``names`` maps a knob to the flag or variable it came from, which error messages then name.
        """
        names = names or {}
        values: dict[str, object] = {}
        for knob in ("error_500", "error_429", "latency", "drop"):
            if raw.get(knob) is not None:
                values[knob] = parse_rates(str(raw[knob]), names.get(knob, knob))
        for knob, kind in (
            ("retry_after", int),
            ("latency_seconds", float),
            ("truncate", float),
            ("seed", int),
        ):
            if raw.get(knob) is not None:
                try:
                    values[knob] = kind(raw[knob])  # type: ignore[operator]
                except ValueError:
                    raise FaultSpecError(
                        f"{names.get(knob, knob)}: expected a number, got {raw[knob]!r}"
                    ) from None
        try:
            return cls(**values)  # type: ignore[arg-type]
        except FaultSpecError as exc:
            knob, _, rest = str(exc).partition(": ")
            raise FaultSpecError(f"{names.get(knob, knob)}: {rest}") from None


class ServedLog:
    """What the emulator served: each fault by kind and route, and each accepted submission by job.

    A submission is keyed by the job it asks for (dataset, bot, date range) and the day it came, not by
    its tag, so a client that resubmits under a new tag shows as a second submission too.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.faults: Counter[tuple[str, str]] = Counter()
        self.submissions: Counter[tuple[str, str, str, str, str]] = Counter()

    def fault(self, kind: str, route: str) -> None:
        """Count one fault of ``kind`` served on ``route``."""
        with self._lock:
            self.faults[(kind, route)] += 1

    def submission(self, dataset: str, config: Any, submitted: datetime) -> None:
        """Count one submission the service accepted (``config`` is the request's ``datasetConfig``)."""
        config = config if isinstance(config, dict) else {}
        key = (
            dataset,
            *(str(config.get(name, "")) for name in ("conversationId", "startDate", "endDate")),
            submitted.date().isoformat(),
        )
        with self._lock:
            self.submissions[key] += 1

    def report(self) -> dict[str, Any]:
        """The counts as JSON: faults by kind then route, and one entry per submitted job."""
        with self._lock:
            faults = {
                kind: {route: count for (k, route), count in sorted(self.faults.items()) if k == kind}
                for kind in KINDS
            }
            submissions = [
                {
                    "dataset": dataset,
                    "conversationId": bot,
                    "startDate": start,
                    "endDate": end,
                    "submittedOn": day,
                    "count": count,
                }
                for (dataset, bot, start, end, day), count in sorted(self.submissions.items())
            ]
        return {"faults": faults, "submissions": submissions}
