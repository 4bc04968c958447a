"""Who a broadcast goes to: a segment (a saved segment's name or id, or a filter of scrm.segments), streamed.

The fan-out reads the segment with one streaming query instead of keyset pages: scrm.segments compiles filters to
`followers.id IN (subquery)`, which a page query would re-evaluate in full for every page (measured on SQLite with
1M followers: 128 s of paging against 3 s of streaming). On SQLite the stream runs on a connection of its own in
autocommit mode: WeLead's sessions begin IMMEDIATE (they would hold the write lock for the whole read), while a
plain SELECT in WAL mode neither blocks the writers inserting the deliveries nor waits for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Engine, create_engine, select
from sqlalchemy.orm import Session

from foundation.db import Database
from scrm import segments
from scrm.models import Follower

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


@cache
def _reader(url: str) -> Engine:
    """A SQLite engine without WeLead's BEGIN IMMEDIATE: for long reads beside writers (WAL)."""
    return create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, pool_size=2)


def stream(db: Database, segment: Any, after: int, page: int) -> Iterator[list[tuple[int, str]]]:
    """(follower id, openid) of the segment beyond `after`, in id order, `page` rows at a time; memory stays flat."""
    with db.sessions() as session:
        condition = where(session, segment)
    query = select(Follower.id, Follower.openid).where(condition, Follower.id > after).order_by(Follower.id)
    engine = _reader(db.url) if db.dialect == "sqlite" else db.engine
    with engine.connect() as conn:
        result = conn.execution_options(yield_per=page).execute(query)
        try:
            for part in result.partitions(page):
                yield [(int(fid), str(openid)) for fid, openid in part]
        finally:  # a fan-out that stops early closes the (server-side) cursor now, not at garbage collection
            result.close()
