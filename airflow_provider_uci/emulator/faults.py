"""Fault knobs: injected server errors, rate limiting, latency, dropped connections, short bodies.

All are off by default. A rate is given for every route (``0.1``) or per route
(``read=0.5,submit=0.1``); the routes are ``submit``, ``read``, ``list``, ``search`` and ``download``.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field

ROUTES = ("submit", "read", "list", "search", "download")
ENV_PREFIX = "UCI_EMULATOR_FAULT_"
#: Each knob's variable (after ``ENV_PREFIX``) and command-line flag, named in error messages.
ENV_SUFFIXES = {"error_500": "500", "error_429": "429", "retry_after": "RETRY_AFTER", "latency": "LATENCY",
                "latency_seconds": "LATENCY_SECONDS", "drop": "DROP", "truncate": "TRUNCATE", "seed": "SEED"}
FLAGS = {"error_500": "--fault-500", "error_429": "--fault-429", "retry_after": "--retry-after",
         "latency": "--fault-latency", "latency_seconds": "--latency-seconds", "drop": "--fault-drop",
         "truncate": "--fault-truncate", "seed": "--fault-seed"}


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
            raise FaultSpecError(f"{knob}: rate must be a number between 0 and 1, got {rate_text!r}") from None
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
        self._random = random.Random(self.seed)

    @property
    def active(self) -> bool:
        """Whether any fault can fire."""
        return bool(self.error_500 or self.error_429 or self.latency or self.drop or self.truncate)

    def fires(self, knob: dict[str, float], route: str) -> bool:
        """Draw whether the fault ``knob`` fires on a call of ``route``."""
        rate = knob.get(route, 0.0)
        return rate > 0.0 and self._random.random() < rate

    def truncates(self) -> bool:
        """Draw whether this download's body is cut short."""
        return self.truncate > 0.0 and self._random.random() < self.truncate

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
    def from_values(cls, names: dict[str, str] | None = None, **raw: str | float | int | None) -> FaultSettings:
        """Build from textual knob values (flags or environment); ``None`` means unset.

        ``names`` maps a knob to the flag or variable it came from, which error messages then name.
        """
        names = names or {}
        values: dict[str, object] = {}
        for knob in ("error_500", "error_429", "latency", "drop"):
            if raw.get(knob) is not None:
                values[knob] = parse_rates(str(raw[knob]), names.get(knob, knob))
        for knob, kind in (("retry_after", int), ("latency_seconds", float), ("truncate", float), ("seed", int)):
            if raw.get(knob) is not None:
                try:
                    values[knob] = kind(raw[knob])  # type: ignore[operator]
                except ValueError:
                    raise FaultSpecError(f"{names.get(knob, knob)}: expected a number, got {raw[knob]!r}") from None
        try:
            return cls(**values)  # type: ignore[arg-type]
        except FaultSpecError as exc:
            knob, _, rest = str(exc).partition(": ")
            raise FaultSpecError(f"{names.get(knob, knob)}: {rest}") from None
