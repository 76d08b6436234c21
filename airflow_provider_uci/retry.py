"""The one retry rule of every call to the service and its storage: the hooks' and the download's.

An attempt answers with a :class:`Verdict`: a result, or a reason to try again (with the wait a
``Retry-After`` asked for); an exception it raises is an answer no retry can mend. No Airflow import:
the data code in ``exhaust/`` retries its downloads with it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import tenacity


@dataclass(frozen=True)
class Verdict:
    """What to do with an answer: keep its ``result``, or retry for the given reason."""

    result: Any = None
    retry: str | None = None
    retry_after: float | None = None

    @classmethod
    def transient(cls, reason: str, retry_after: float | None = None) -> Verdict:
        return cls(retry=reason, retry_after=retry_after)


def _last(state: tenacity.RetryCallState) -> Verdict:
    """The verdict of the attempt just made (tenacity calls back only after an attempt)."""
    if state.outcome is None:
        raise RuntimeError("tenacity called back before any attempt")
    verdict: Verdict = state.outcome.result()
    return verdict


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff for transient failures; a 429's ``Retry-After`` is honoured instead.

    The one retry rule of the sync hook, the async hook and the file download: :meth:`call` and
    :meth:`acall` drive an attempt that answers with a :class:`Verdict` (built on tenacity).

    :param attempts: calls in all, the first included.
    :param backoff: seconds before the first retry, doubled each time.
    :param max_backoff: the longest wait between two calls.
    :param max_retry_after: the longest ``Retry-After`` honoured.
    """

    attempts: int = 6
    backoff: float = 1.0
    max_backoff: float = 60.0
    max_retry_after: float = 600.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts: must be at least 1, got {self.attempts}")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        return min(self.backoff * (2.0 ** (attempt - 1)), self.max_backoff)

    def _options(
        self, what: str, log: logging.Logger | Any, give_up: Callable[[str], Exception]
    ) -> dict[str, Any]:
        def wait(state: tenacity.RetryCallState) -> float:
            return self.delay(state.attempt_number, _last(state).retry_after)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            log.warning(
                "%s: %s; retrying in %.1f s (attempt %d of %d)",
                what,
                _last(state).retry,
                state.upcoming_sleep,
                state.attempt_number,
                self.attempts,
            )

        def gave_up(state: tenacity.RetryCallState) -> Any:
            raise give_up(f"{what}: gave up after {self.attempts} attempts; last: {_last(state).retry}")

        return {
            "stop": tenacity.stop_after_attempt(self.attempts),
            "wait": wait,
            "before_sleep": before_sleep,
            "retry": tenacity.retry_if_result(lambda verdict: verdict.retry is not None),
            "retry_error_callback": gave_up,
        }

    def call(
        self,
        attempt: Callable[[], Verdict],
        *,
        what: str,
        log: logging.Logger | Any,
        sleep: Callable[[float], None],
        give_up: Callable[[str], Exception],
    ) -> Any:
        """Run ``attempt`` until its verdict holds a result; raise ``give_up(message)`` when out of tries.

        An exception from ``attempt`` is not retried: it is an answer retrying cannot mend.
        """
        retrying = tenacity.Retrying(sleep=sleep, **self._options(what, log, give_up))
        return retrying(attempt).result

    async def acall(
        self,
        attempt: Callable[[], Awaitable[Verdict]],
        *,
        what: str,
        log: logging.Logger | Any,
        sleep: Callable[[float], Awaitable[None]],
        give_up: Callable[[str], Exception],
    ) -> Any:
        """:meth:`call` for a coroutine ``attempt``, waiting with an awaitable ``sleep``."""
        retrying = tenacity.AsyncRetrying(sleep=sleep, **self._options(what, log, give_up))
        return (await retrying(attempt)).result
