"""Numbers from outside (query strings, filters, callbacks, scene codes) read one way: ASCII digits, bounded.

`str.isdigit()` is true for `³` and `٣`, which `int()` then refuses or reads; and an id of 2^64 fits no BIGINT
column, so the database driver raises OverflowError. Everything that turns outside text into an id, a count or a
duration goes through here and gets an int in range or a clean refusal.
"""

from __future__ import annotations

from datetime import timedelta

MAX_INT = 2**63 - 1  # what a BIGINT column holds
MAX_SPAN = timedelta(days=100 * 365)  # durations beyond a century are typos, and soon overflow datetime
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def ascii_int(text: object, low: int = 0, high: int = MAX_INT) -> int | None:
    """`text` as an int when it is ASCII digits only and within [low, high]; None otherwise."""
    if not isinstance(text, str) or not text or len(text) > 19 or not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if low <= value <= high else None


def span(amount: str, unit: str) -> timedelta:
    """`amount` (ASCII digits) of `unit` (s, m, h, d, w) as a timedelta; ValueError beyond MAX_SPAN or malformed."""
    days = MAX_SPAN.days
    count = ascii_int(amount)
    if unit not in UNITS or count is None:
        raise ValueError(f"not a duration: {amount}{unit}")
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]
    if count * seconds > MAX_SPAN.total_seconds():
        raise ValueError(f"duration {amount}{unit} is longer than {days} days")
    return timedelta(seconds=count * seconds)
