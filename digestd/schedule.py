"""When a subscriber's next digest is due: pure functions over local wall-clock times.

Times are kept in the subscriber's IANA timezone and converted with zoneinfo, so a
weekly 08:00 digest stays at 08:00 across daylight-saving changes. A local time that
does not exist (spring forward) moves to the first minute after the gap; a time that
exists twice (fall back) is taken once, at its first occurrence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from digestd.config import WEEKDAYS

_MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class Period:
    """What one digest covers: papers that reached us in [start, end), and its ledger key."""

    start: datetime
    end: datetime
    key: str


def parse_time(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def local_to_utc(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of `day at` in `zone`; past a spring-forward gap when it falls in one."""
    naive = datetime.combine(day, at)
    aware = naive.replace(tzinfo=zone, fold=0)
    roundtrip = aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    if roundtrip != naive:
        # Inside a spring-forward gap: walk back to the instant the clock jumped, which
        # is the first wall-clock minute after the gap (02:30 → 03:00 on such a day).
        instant = aware.astimezone(UTC)
        while (instant - _MINUTE).astimezone(zone).replace(tzinfo=None) > naive:
            instant -= _MINUTE
        return instant
    return aware.astimezone(UTC)


def _is_send_day(day: date, frequency: str, send_day: str, weekdays_only: bool) -> bool:
    if frequency == "weekly":
        return day.weekday() == WEEKDAYS.index(send_day)
    return not (weekdays_only and day.weekday() >= 5)


def next_due_after(
    after: datetime,
    *,
    frequency: str,
    send_day: str,
    send_time: str,
    timezone: str,
    weekdays_only: bool = False,
) -> datetime:
    """The first due instant strictly after `after` (aware), in UTC."""
    zone = ZoneInfo(timezone)
    at = parse_time(send_time)
    day = after.astimezone(zone).date() - timedelta(days=1)  # yesterday: the gap may move it
    for _ in range(16):
        if _is_send_day(day, frequency, send_day, weekdays_only):
            due = local_to_utc(day, at, zone)
            if due > after:
                return due
        day += timedelta(days=1)
    raise AssertionError("no due day within 16 days")  # unreachable: every week has a send day


def period_length(frequency: str) -> timedelta:
    return timedelta(days=7) if frequency == "weekly" else timedelta(days=1)


def period_key(due: datetime, timezone: str) -> str:
    """The ledger's period name: the local date the digest is due, e.g. `2026-11-30`."""
    return local_day(due, timezone)


def local_day(at: datetime, timezone: str) -> str:
    """The date at `at` in `timezone`, e.g. `2026-11-30`."""
    return at.astimezone(ZoneInfo(timezone)).date().isoformat()
