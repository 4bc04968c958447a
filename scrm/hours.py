"""Working hours: a weekly schedule in the shop's timezone, with dated exceptions (holidays, make-up workdays).

Stored as JSON on the rep: `{"weekly": {"mon": ["09:00-12:00", "13:00-18:00"], ...}, "exceptions": {"2026-10-01":
[], "2026-09-27": ["09:00-18:00"]}}`. A day listed in `exceptions` replaces its weekday's slots (an empty list: off all
day). Slots are half-open [start, end); "24:00" ends a day. None (no schedule) means always available.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ZONE = ZoneInfo("Asia/Shanghai")
_SLOT = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")
MAX_EXCEPTIONS = 400


class HoursError(ValueError):
    """A schedule that cannot be read; the message names the bad part."""


def _minutes(slot: str, where: str) -> tuple[int, int]:
    found = _SLOT.match(slot) if isinstance(slot, str) else None
    if not found:
        raise HoursError(f"{where}: {slot!r} is not a slot like 09:00-18:00")
    h1, m1, h2, m2 = (int(g) for g in found.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if end > 24 * 60 or end <= start:
        raise HoursError(f"{where}: {slot!r} must end after it starts, by 24:00 at the latest")
    return start, end


def _slots(value: Any, where: str) -> list[str]:
    if not isinstance(value, list):
        raise HoursError(f"{where}: a list of slots like ['09:00-18:00']")
    spans = sorted(_minutes(s, where) for s in value)
    for (_, end), (start, _) in pairwise(spans):
        if start < end:
            raise HoursError(f"{where}: slots overlap")
    return [f"{a // 60:02d}:{a % 60:02d}-{b // 60:02d}:{b % 60:02d}" for a, b in spans]


def validate(hours: Any) -> dict[str, Any] | None:
    """The schedule normalised (sorted slots), or HoursError naming what is wrong."""
    if hours is None:
        return None
    if not isinstance(hours, dict) or set(hours) - {"weekly", "exceptions"}:
        raise HoursError("hours: an object with 'weekly' and 'exceptions'")
    weekly, exceptions = hours.get("weekly") or {}, hours.get("exceptions") or {}
    if not isinstance(weekly, dict) or set(weekly) - set(DAYS):
        raise HoursError(f"hours.weekly: keys are days ({', '.join(DAYS)})")
    if not isinstance(exceptions, dict) or len(exceptions) > MAX_EXCEPTIONS:
        raise HoursError(f"hours.exceptions: an object of at most {MAX_EXCEPTIONS} dates")
    for day in exceptions:
        try:
            date.fromisoformat(day)
        except (TypeError, ValueError):
            raise HoursError(f"hours.exceptions: {day!r} is not a date like 2026-10-01") from None
    return {
        "weekly": {d: _slots(weekly[d], f"hours.weekly.{d}") for d in DAYS if d in weekly},
        "exceptions": {d: _slots(exceptions[d], f"hours.exceptions.{d}") for d in sorted(exceptions)},
    }


def local(at: datetime) -> datetime:
    """A stored naive-UTC time in the shop's timezone."""
    return at.replace(tzinfo=UTC).astimezone(ZONE)


def local_day(at: datetime) -> date:
    return local(at).date()


def _day_slots(hours: dict[str, Any], day: date) -> list[tuple[int, int]]:
    exceptions = hours.get("exceptions") or {}
    slots = exceptions.get(day.isoformat())
    if slots is None:
        slots = (hours.get("weekly") or {}).get(DAYS[day.weekday()], [])
    return [_minutes(s, "hours") for s in slots]


def available(hours: dict[str, Any] | None, at: datetime) -> bool:
    """Whether a schedule covers the naive-UTC instant `at` (no schedule: always)."""
    if hours is None:
        return True
    here = local(at)
    minute = here.hour * 60 + here.minute
    return any(start <= minute < end for start, end in _day_slots(hours, here.date()))


def _utc(day: date, minute: int) -> datetime:
    moment = datetime.combine(day, time(0), ZONE) + timedelta(minutes=minute)
    return moment.astimezone(UTC).replace(tzinfo=None)


def next_change(hours: dict[str, Any] | None, at: datetime, horizon_days: int = 14) -> datetime | None:
    """The first naive-UTC instant after `at` where availability flips (a slot starts or ends), or None."""
    if hours is None:
        return None
    now = available(hours, at)
    day = local_day(at)
    for offset in range(horizon_days + 1):
        current = day + timedelta(days=offset)
        for start, end in _day_slots(hours, current):
            for edge in (start, end):
                moment = _utc(current, edge)
                if moment > at and available(hours, moment) != now:
                    return moment
    return None


def next_midnight(at: datetime) -> datetime:
    """The next local midnight as naive UTC: daily caps reset there."""
    return _utc(local_day(at) + timedelta(days=1), 0)
