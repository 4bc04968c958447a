"""Query parameters read by hand (views without a marshmallow schema), one way: ASCII digits within bounds, or 400.

Marshmallow `Integer` fields need `validate=Range(...)` (welead.api.schemas IDS/MAX_ID) for the same effect; ids in
paths are bounded by the `<int:...>` converter (welead.wire). `str.isdigit()` is not a check: it accepts `³`.
"""

from __future__ import annotations

from apiflask import abort
from flask import request

from foundation.numbers import MAX_INT, ascii_int


def query_int(name: str, default: int, low: int = 0, high: int = MAX_INT) -> int:
    """`?name=` as an int in [low, high] (`default` when absent); 400 naming the parameter and its bounds."""
    raw = request.args.get(name)
    if raw is None:
        return default
    value = ascii_int(raw, low, high)
    if value is None:
        abort(400, f"{name} must be an integer from {low} to {high}")
    return value


def paging(limit: int = 50, high: int = 500) -> tuple[int, int]:
    """(`after`, `limit`): a keyset cursor (an id, 0 to start) and a page size in 1..high."""
    return query_int("after", 0), query_int("limit", limit, 1, high)
