from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from digestd.schedule import next_due_after, period_key


def local(text: str, zone: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone))


def due(after: datetime, **kwargs: object) -> datetime:
    settings = {"frequency": "weekly", "send_day": "sun", "send_time": "08:00", "timezone": "UTC"} | kwargs
    return next_due_after(after, **settings)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("zone", "day", "expected_local", "expected_utc"),
    [
        # Spring forward: 02:30 does not exist that night; the digest goes at 03:00, once.
        ("Europe/Berlin", "2026-03-29", "2026-03-29T03:00:00+02:00", "2026-03-29T01:00:00+00:00"),
        ("America/New_York", "2026-03-08", "2026-03-08T03:00:00-04:00", "2026-03-08T07:00:00+00:00"),
        # Fall back: 02:30 exists twice in Berlin; the first one is taken.
        ("Europe/Berlin", "2026-10-25", "2026-10-25T02:30:00+02:00", "2026-10-25T00:30:00+00:00"),
        ("America/New_York", "2026-11-01", "2026-11-01T02:30:00-05:00", "2026-11-01T07:30:00+00:00"),
    ],
)
def test_dst_days_send_once_at_the_right_instant(zone: str, day: str, expected_local: str, expected_utc: str) -> None:
    after = local(f"{day}T00:00", zone) - timedelta(days=1)
    first = due(after, send_time="02:30", timezone=zone)
    assert first.isoformat() == expected_utc
    assert first.astimezone(ZoneInfo(zone)).isoformat() == expected_local
    second = due(first, send_time="02:30", timezone=zone)
    assert second - first >= timedelta(days=6, hours=23), "never twice on the same day"


def test_ambiguous_fall_back_hour_is_sent_once_for_daily_digests() -> None:
    # 02:30 Berlin on 2026-10-25 happens at 00:30 UTC and again at 01:30 UTC.
    first = due(datetime(2026, 10, 24, 12, tzinfo=UTC), frequency="daily", send_time="02:30", timezone="Europe/Berlin")
    assert first == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert due(first, frequency="daily", send_time="02:30", timezone="Europe/Berlin") == datetime(
        2026, 10, 26, 1, 30, tzinfo=UTC
    )


def test_weekly_stays_at_local_time_across_dst() -> None:
    zone = "Europe/Berlin"
    before = due(datetime(2026, 3, 20, tzinfo=UTC), send_day="mon", timezone=zone)
    after = due(before, send_day="mon", timezone=zone)
    assert [d.astimezone(ZoneInfo(zone)).strftime("%a %H:%M") for d in (before, after)] == ["Mon 08:00"] * 2
    assert after - before == timedelta(days=7, hours=-1)


def test_daily_weekdays_only_skips_the_weekend() -> None:
    friday = datetime(2026, 11, 27, 9, tzinfo=UTC)  # a Friday, after the 08:00 send
    nxt = due(friday, frequency="daily", weekdays_only=True)
    assert nxt == datetime(2026, 11, 30, 8, tzinfo=UTC)  # Monday
    assert due(friday, frequency="daily") == datetime(2026, 11, 28, 8, tzinfo=UTC)  # Saturday without the option


def test_period_key_is_the_local_due_date() -> None:
    instant = datetime(2026, 11, 29, 23, 30, tzinfo=UTC)
    assert period_key(instant, "Asia/Tokyo") == "2026-11-30"
    assert period_key(instant, "America/New_York") == "2026-11-29"
