"""Who a broadcast goes to: a segment (a saved segment's name or id, or a filter of scrm.segments), as one SQL
condition. The fan-out (scrm.fanout) reads it once, inside the database."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session

from scrm import segments

SegmentError = segments.SegmentError


def normalise(segment: Any) -> Any:
    """A segment as stored on a broadcast: a query string or JSON text becomes its filter; a saved name stays a name.

    The same forms as `flask segment count` (scrm.segments.parse_text), so one language works everywhere.
    """
    if isinstance(segment, str):
        parsed = segments.parse_text(segment)
        return parsed if isinstance(parsed, str) else segments.normalised(parsed)
    return segment


def resolve(session: Session, segment: Any) -> Any:
    """The filter of `segment`: a saved segment's name (or id), a query string, or the filter itself."""
    segment = normalise(segment)
    if isinstance(segment, str | int) and not isinstance(segment, bool):
        saved = segments.find(session, segment)
        if saved is None:
            raise SegmentError(f"no saved segment {segment!r}")
        return saved.filter
    return segment


def where(session: Session, segment: Any) -> ColumnElement[bool]:
    """The followers of `segment` as one WHERE condition; SegmentError names what is wrong."""
    return segments.where(session, resolve(session, segment))
