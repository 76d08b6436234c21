"""When to look at a job again: the service's nightly runs, as arithmetic on absolute times.

The real service processes requests only in its nightly batch (response exhaust at 02:00, private at
03:00, Asia/Kolkata). A waiting client sleeps until the run that can pick its request up (plus a grace
period), polls while that run may still be working, and otherwise sleeps to the following night. A
run only picks up requests that were waiting when it started: a request submitted (or failed) after
tonight's run began waits for tomorrow's. Every answer is an absolute epoch time, so a restarted
triggerer that starts over computes the same wake-up, neither longer nor shorter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: The real schedule per dataset (docs/service-contract.md §2.1).
NIGHTLY_RUN = {"uci-response-exhaust": "02:00", "uci-private-exhaust": "03:00"}
#: The service's time zone: its nightly runs, its sync days and its file names (India has no daylight saving).
SCHEDULE_TIMEZONE = "Asia/Kolkata"
#: First look this long after a nightly run starts.
DEFAULT_GRACE_SECONDS = 600.0
#: How long a nightly run may take.
DEFAULT_WINDOW_SECONDS = 4 * 3600.0
#: Seconds between looks while a run may be working.
DEFAULT_POLL_INTERVAL = 600.0


@dataclass(frozen=True)
class NightlySchedule:
    """A daily run and how to wait for it.

    :param run_at: ``HH:MM`` of the nightly run in ``timezone``; ``None`` polls every ``poll_interval``
        (for a service that runs its jobs continuously, such as the emulator's fast mode).
    :param timezone: IANA zone of ``run_at``.
    :param grace_seconds: how long after the run starts to look first.
    :param window_seconds: how long a run can take; polling stops after it until the next night.
    :param poll_interval: seconds between looks while a run may be working.
    """

    run_at: str | None = "02:00"
    timezone: str = SCHEDULE_TIMEZONE
    grace_seconds: float = DEFAULT_GRACE_SECONDS
    window_seconds: float = DEFAULT_WINDOW_SECONDS
    poll_interval: float = DEFAULT_POLL_INTERVAL

    def __post_init__(self) -> None:
        if self.run_at is not None:
            self.run_time()  # fail early on a bad value
        try:
            ZoneInfo(self.timezone)
        except (ValueError, ZoneInfoNotFoundError):
            raise ValueError(f"timezone: expected an IANA time zone name, got {self.timezone!r}") from None
        if self.poll_interval <= 0:
            raise ValueError(f"poll_interval: must be a positive number of seconds, got {self.poll_interval}")
        if self.grace_seconds < 0 or self.window_seconds <= self.grace_seconds:
            raise ValueError("window_seconds: must be longer than grace_seconds, and grace_seconds >= 0")

    def run_time(self) -> time:
        try:
            hours, minutes = (int(part) for part in str(self.run_at).split(":"))
            return time(hours, minutes)
        except ValueError:
            raise ValueError(f"run_at: expected HH:MM, got {self.run_at!r}") from None

    def run_start_at_or_before(self, instant: float) -> float:
        """Epoch seconds of the latest run start not after ``instant``."""
        zone = ZoneInfo(self.timezone)
        local = datetime.fromtimestamp(instant, zone)
        start = datetime.combine(local.date(), self.run_time(), zone)
        if start.timestamp() > instant:
            start = datetime.combine(local.date() - timedelta(days=1), self.run_time(), zone)
        return start.timestamp()

    def run_start_after(self, instant: float) -> float:
        """Epoch seconds of the first run start after ``instant``."""
        zone = ZoneInfo(self.timezone)
        previous = datetime.fromtimestamp(self.run_start_at_or_before(instant), zone)
        return datetime.combine(previous.date() + timedelta(days=1), self.run_time(), zone).timestamp()

    def next_check(self, now: float, waiting_since: float | None) -> float:
        """When to read the job next (epoch seconds, > ``now``).

        :param now: the current time.
        :param waiting_since: when the job began waiting for a run: its submission, or for a FAILED
            job that will be retried, its failure. ``None`` if unknown (assume it waits already).
        """
        if self.run_at is None:
            return now + self.poll_interval
        current = self.run_start_at_or_before(now)
        picked_up_tonight = waiting_since is None or waiting_since < current
        if picked_up_tonight and now < current + self.window_seconds:
            first_look = current + self.grace_seconds
            return first_look if now < first_look else now + self.poll_interval
        return self.run_start_after(now) + self.grace_seconds


def describe_instant(instant: float, timezone: str = SCHEDULE_TIMEZONE) -> str:
    """``2026-03-01 20:40:00 UTC (2026-03-02 02:10:00 IST)``: an instant in UTC and in the schedule's zone."""
    utc = datetime.fromtimestamp(instant, ZoneInfo("UTC"))
    local = utc.astimezone(ZoneInfo(timezone))
    return f"{utc:%Y-%m-%d %H:%M:%S} UTC ({local:%Y-%m-%d %H:%M:%S} {local.tzname() or timezone})"
