"""Time helpers: one representation stored (naive UTC) and one printed (ISO 8601 with a `Z`)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Naive UTC: the one time representation stored, on SQLite and PostgreSQL alike."""
    return datetime.now(UTC).replace(tzinfo=None)


def iso(at: datetime | None) -> str | None:
    """A stored time as the API prints it (seconds, `Z`); None stays None."""
    return at.isoformat(timespec="seconds") + "Z" if at else None
