"""NightlySchedule.next_check: when a waiting client looks at its job again, checked against hand-worked times.

Every expectation is written as a wall-clock time (datetime + ZoneInfo) and turned into epoch seconds here,
never computed with the module's own helpers.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from airflow_provider_uci.schedule import NIGHTLY_RUN, NightlySchedule

IST = ZoneInfo("Asia/Kolkata")
GRACE = 600.0
POLL = 600.0
WINDOW = 4 * 3600.0


def ist(year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> float:
    """Epoch seconds of a wall-clock time in Asia/Kolkata."""
    return datetime(year, month, day, hour, minute, second, tzinfo=IST).timestamp()


def utc(year: int, month: int, day: int, hour: int, minute: int = 0) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=timezone.utc).timestamp()


def response_schedule(**overrides: object) -> NightlySchedule:
    values: dict[str, object] = {
        "run_at": "02:00",
        "timezone": "Asia/Kolkata",
        "grace_seconds": GRACE,
        "window_seconds": WINDOW,
        "poll_interval": POLL,
    }
    values.update(overrides)
    return NightlySchedule(**values)  # type: ignore[arg-type]


def test_submitted_in_the_day_first_looks_after_next_nights_run() -> None:
    submitted = ist(2024, 6, 12, 10, 0)
    assert response_schedule().next_check(submitted, submitted) == ist(2024, 6, 13, 2, 0) + GRACE
    later = ist(2024, 6, 12, 23, 59)
    assert response_schedule().next_check(later, submitted) == ist(2024, 6, 13, 2, 10), (
        "the same night, later"
    )


def test_woken_before_the_run_still_waits_for_its_grace() -> None:
    submitted = ist(2024, 6, 12, 10, 0)
    assert response_schedule().next_check(ist(2024, 6, 13, 1, 30), submitted) == ist(2024, 6, 13, 2, 10)
    assert response_schedule().next_check(ist(2024, 6, 13, 2, 5), submitted) == ist(2024, 6, 13, 2, 10)


def test_during_the_window_after_grace_polls_every_interval() -> None:
    submitted = ist(2024, 6, 12, 10, 0)
    schedule = response_schedule()
    for now in (ist(2024, 6, 13, 2, 10), ist(2024, 6, 13, 2, 30), ist(2024, 6, 13, 5, 59, 59)):
        assert schedule.next_check(now, submitted) == now + POLL
    assert response_schedule(poll_interval=120.0).next_check(ist(2024, 6, 13, 3, 0), submitted) == ist(
        2024, 6, 13, 3, 2
    )


def test_after_the_window_a_pending_job_waits_for_the_next_night() -> None:
    submitted = ist(2024, 6, 12, 10, 0)
    schedule = response_schedule()
    assert schedule.next_check(ist(2024, 6, 13, 6, 0), submitted) == ist(2024, 6, 14, 2, 10), "window end"
    assert schedule.next_check(ist(2024, 6, 13, 9, 15), submitted) == ist(2024, 6, 14, 2, 10)
    assert schedule.next_check(ist(2024, 6, 14, 6, 30), submitted) == ist(2024, 6, 15, 2, 10), "and again"


def test_submitted_after_tonights_run_started_waits_for_tomorrows() -> None:
    submitted = ist(2024, 6, 13, 2, 30)
    schedule = response_schedule()
    assert schedule.next_check(submitted, submitted) == ist(2024, 6, 14, 2, 10)
    assert schedule.next_check(ist(2024, 6, 13, 3, 0), submitted) == ist(2024, 6, 14, 2, 10), (
        "tonight's run is still in its window, but it did not pick this request up"
    )
    assert schedule.next_check(ist(2024, 6, 14, 2, 20), submitted) == ist(2024, 6, 14, 2, 30), (
        "tomorrow's run did: poll during it"
    )


def test_failed_job_waits_for_the_next_nights_retry() -> None:
    failed_at = ist(2024, 6, 13, 2, 40)
    schedule = response_schedule()
    assert schedule.next_check(ist(2024, 6, 13, 2, 41), failed_at) == ist(2024, 6, 14, 2, 10)
    assert schedule.next_check(ist(2024, 6, 13, 14, 0), failed_at) == ist(2024, 6, 14, 2, 10)


def test_unknown_waiting_since_assumes_the_job_already_waits() -> None:
    schedule = response_schedule()
    assert schedule.next_check(ist(2024, 6, 13, 2, 30), None) == ist(2024, 6, 13, 2, 40)
    assert schedule.next_check(ist(2024, 6, 13, 1, 0), None) == ist(2024, 6, 13, 2, 10)
    assert schedule.next_check(ist(2024, 6, 13, 7, 0), None) == ist(2024, 6, 14, 2, 10)


def test_days_follow_india_not_utc_across_midnight() -> None:
    submitted = ist(2024, 6, 12, 10, 0)
    schedule = response_schedule()
    now = utc(2024, 6, 12, 20, 45)  # 02:15 IST on 13 June: the run that picks the job up is under way
    assert now == ist(2024, 6, 13, 2, 15)
    assert schedule.next_check(now, submitted) == now + POLL
    evening = utc(
        2024, 6, 12, 18, 0
    )  # 23:30 IST on 12 June: the run is 02:00 IST = 20:30 UTC the same UTC day
    assert schedule.next_check(evening, submitted) == utc(2024, 6, 12, 20, 40)
    after_utc_midnight = utc(2024, 6, 13, 0, 30)  # 06:00 IST on 13 June: the window just closed
    assert schedule.next_check(after_utc_midnight, submitted) == utc(2024, 6, 13, 20, 40)


def test_private_exhaust_runs_at_three() -> None:
    submitted = ist(2024, 6, 12, 10, 0)
    private = NightlySchedule(run_at=NIGHTLY_RUN["uci-private-exhaust"])
    assert private.run_at == "03:00"
    assert private.next_check(submitted, submitted) == ist(2024, 6, 13, 3, 10)
    assert private.next_check(ist(2024, 6, 13, 2, 30), submitted) == ist(2024, 6, 13, 3, 10), (
        "02:30 is the response run's window, not the private one's"
    )
    assert private.next_check(ist(2024, 6, 13, 3, 20), submitted) == ist(2024, 6, 13, 3, 30)
    assert private.next_check(ist(2024, 6, 13, 7, 0), submitted) == ist(2024, 6, 14, 3, 10)
    assert NightlySchedule(run_at=NIGHTLY_RUN["uci-response-exhaust"]).run_at == "02:00"


def test_no_run_time_polls_every_interval() -> None:
    schedule = NightlySchedule(run_at=None, poll_interval=30.0)
    assert schedule.run_at is None
    for now in (ist(2024, 6, 12, 10, 0), ist(2024, 6, 13, 2, 15), ist(2024, 6, 13, 9, 0)):
        assert schedule.next_check(now, ist(2024, 6, 12, 10, 0)) == now + 30.0
        assert schedule.next_check(now, None) == now + 30.0


@pytest.mark.parametrize(
    "day",
    [
        (2024, 3, 9),  # the US springs forward on 10 March
        (2024, 3, 30),  # Europe springs forward on 31 March
        (2024, 10, 26),  # Europe falls back on 27 October
        (2024, 11, 2),  # the US falls back on 3 November
        (2024, 6, 12),  # an ordinary day
    ],
)
def test_india_has_no_daylight_saving(day: tuple[int, int, int]) -> None:
    submitted = ist(*day, 10, 0)
    schedule = response_schedule()
    wake = schedule.next_check(submitted, submitted)
    following = datetime(*day, 2, 10, tzinfo=IST) + timedelta(days=1)
    assert wake == following.timestamp()
    assert wake == datetime(*day, 20, 40, tzinfo=timezone.utc).timestamp(), (
        "02:10 IST is 20:40 UTC the day before"
    )
    assert wake - submitted == 16 * 3600 + 10 * 60
    window_end = ist(*day, 6, 0) + 86400
    assert schedule.next_check(window_end, submitted) - wake == 86400, "a day is 24 hours"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"run_at": "25:00"}, "run_at"),
        ({"run_at": "2am"}, "run_at"),
        ({"run_at": "02:00:00"}, "run_at"),
        ({"grace_seconds": 600.0, "window_seconds": 600.0}, "window_seconds"),
        ({"grace_seconds": 900.0, "window_seconds": 600.0}, "window_seconds"),
        ({"poll_interval": 0.0}, "poll_interval"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
    ],
)
def test_invalid_values_name_the_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}: "):
        response_schedule(**overrides)
