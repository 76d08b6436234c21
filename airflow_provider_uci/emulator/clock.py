"""The emulator's clock: real time, optionally shifted so the service can stand on any day."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone


class Clock:
    """Real time plus an offset; ``set`` moves it to an instant, after which it keeps ticking."""

    def __init__(self, start: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0
        if start is not None:
            self.set(start)

    def set(self, instant: datetime) -> None:
        """Make ``now()`` return ``instant`` at this moment; ``instant`` must be timezone-aware."""
        if instant.tzinfo is None:
            raise ValueError("now: the instant must carry a UTC offset or time zone")
        with self._lock:
            self._offset = instant.timestamp() - time.time()

    def reset(self) -> None:
        """Return to real time."""
        with self._lock:
            self._offset = 0.0

    @property
    def offset_seconds(self) -> float:
        """How far the clock stands from real time."""
        return self._offset

    def timestamp(self) -> float:
        """Seconds since the epoch, as this clock sees them."""
        return time.time() + self._offset

    def now(self) -> datetime:
        """The current instant, in UTC."""
        return datetime.fromtimestamp(self.timestamp(), tz=timezone.utc)
