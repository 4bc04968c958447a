"""What every report shares: the window asked for (local days in Asia/Shanghai), buckets and medians in SQL.

Reports read naive-UTC columns. A window is whole local days `from`..`to` (both included), turned into a UTC range
[start, end) once, so every query compares a bare indexed column with two constants. Day and week buckets are
computed in SQL from the UTC column shifted by the zone's offset: Asia/Shanghai has kept UTC+8 without daylight
saving since 1991, so the shift is exact. Medians use PostgreSQL's `percentile_cont`; SQLite has no ordered-set
aggregate, so there they come from `row_number()` over the sorted values (the middle one, or the mean of two).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Date, Float, and_, cast, func, select, text
from sqlalchemy.orm import Session

from scrm.hours import local_day

OFFSET_HOURS = 8  # Asia/Shanghai, no daylight saving
BUCKETS = ("day", "week")
MAX_DAYS = 731  # two years of days: a bounded number of buckets
DEFAULT_DAYS = 30


class ReportError(ValueError):
    """A report asked for with input it cannot take; the message says which and why (the API answers 400)."""


@dataclass(frozen=True)
class Window:
    """Local days `first`..`last` (inclusive) and the bucket; `start`/`end` are the UTC range [start, end)."""

    first: date
    last: date
    bucket: str = "day"

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, datetime.min.time()) - timedelta(hours=OFFSET_HOURS)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), datetime.min.time()) - timedelta(hours=OFFSET_HOURS)

    def labels(self) -> list[str]:
        """Every bucket of the window in order (days, or the Mondays of its weeks), so charts show empty ones."""
        day = self.first if self.bucket == "day" else self.first - timedelta(days=self.first.weekday())
        step = timedelta(days=1 if self.bucket == "day" else 7)
        out = []
        while day <= self.last:
            out.append(day.isoformat())
            day += step
        return out

    def describe(self) -> dict[str, str]:
        return {"from": self.first.isoformat(), "to": self.last.isoformat(), "bucket": self.bucket}


def _day(text_: str | None, name: str) -> date | None:
    if text_ is None or text_ == "":
        return None
    try:
        return date.fromisoformat(text_) if len(text_) == 10 else _bad_date(text_, name)
    except ValueError:
        return _bad_date(text_, name)


def _bad_date(text_: str, name: str) -> date:
    raise ReportError(f"{name} must be a date like 2026-12-01 (a local day in Asia/Shanghai), not {text_[:40]!r}")


def window(first: str | None, last: str | None, bucket: str | None, now: datetime) -> Window:
    """The window a request names: `to` defaults to today (local), `from` to 29 days before `to`."""
    bucket = bucket or "day"
    if bucket not in BUCKETS:
        raise ReportError(f"bucket must be one of {', '.join(BUCKETS)}, not {bucket[:20]!r}")
    end = _day(last, "to") or local_day(now)
    start = _day(first, "from") or end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise ReportError(f"from ({start}) is after to ({end})")
    if (end - start).days + 1 > MAX_DAYS:
        raise ReportError(f"the window is at most {MAX_DAYS} days long")
    return Window(start, end, bucket)


def within(column: Any, win: Window) -> Any:
    return and_(column >= win.start, column < win.end)


def dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def bucket(session: Session, column: Any, win: Window) -> Any:
    """The local day (or the Monday of its week) of a naive-UTC column, as an ISO date."""
    if dialect(session) == "sqlite":
        shift = f"+{OFFSET_HOURS} hours"
        if win.bucket == "day":
            return func.date(column, shift)
        return func.date(column, shift, "weekday 0", "-6 days")  # the coming Sunday, then back to its Monday
    shifted = column + text(f"interval '{OFFSET_HOURS} hours'")
    if win.bucket == "day":
        return cast(shifted, Date)
    return cast(func.date_trunc("week", shifted), Date)


def seconds_between(session: Session, earlier: Any, later: Any) -> Any:
    """`later - earlier` in seconds, as a float."""
    if dialect(session) == "sqlite":
        return (func.julianday(later) - func.julianday(earlier)) * 86400.0
    return cast(func.extract("epoch", later - earlier), Float)


def medians(session: Session, values: Any) -> dict[Any, float]:
    """{group: median of secs} for a subquery with columns `g` and `secs`."""
    if dialect(session) == "postgresql":
        median = func.percentile_cont(0.5).within_group(values.c.secs)
        return {g: float(m) for g, m in session.execute(select(values.c.g, median).group_by(values.c.g))}
    ranked = select(
        values.c.g,
        values.c.secs,
        func.row_number().over(partition_by=values.c.g, order_by=values.c.secs).label("rn"),
        func.count().over(partition_by=values.c.g).label("n"),
    ).subquery()
    middle = ranked.c.rn.in_([(ranked.c.n + 1) // 2, (ranked.c.n + 2) // 2])
    query = select(ranked.c.g, func.avg(ranked.c.secs)).where(middle).group_by(ranked.c.g)
    return {g: float(m) for g, m in session.execute(query)}


def greatest(session: Session, a: Any, b: Any) -> Any:
    """The larger of two values: `greatest` on PostgreSQL, the two-argument scalar `max` on SQLite."""
    return func.max(a, b) if dialect(session) == "sqlite" else func.greatest(a, b)


def day_text(value: Any) -> str:
    """A bucket as SQL returned it (a `date` on PostgreSQL, text on SQLite) as an ISO date."""
    return value.isoformat() if isinstance(value, date) else str(value)


def ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None
