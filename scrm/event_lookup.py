"""What the request needs to know about an event to answer a booth or staff code: its ids, names, form and booths,
read with one indexed statement and kept in this process for `TTL` seconds (a booth rush is thousands of scans of
a few events; a form edited through the API is seen by every process within `TTL`). Unknown slugs are cached too,
so a flood of scans of a bad code costs one read per process and period.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, bindparam, select

from scrm.event_models import Booth, Event, EventStaff

TTL = 10.0
MAX_CACHED = 256
_E, _B, _S = Event.__table__, Booth.__table__, EventStaff.__table__
_EVENT = (
    select(_E.c.id, _E.c.name, _E.c.form, _B.c.slug, _B.c.id, _B.c.name)
    .select_from(_E.outerjoin(_B, _B.c.event_id == _E.c.id))
    .where(_E.c.slug == bindparam("slug"))
)
_STAFF_OF = select(_S.c.id, _S.c.name).where(_S.c.event_id == bindparam("event"), _S.c.openid == bindparam("openid"))
_STAFF_ANY = select(_S.c.id).where(_S.c.openid == bindparam("who"))
_STAFF_MEMBER = select(_S.c.id).where(_S.c.userid == bindparam("who"))


@dataclass(frozen=True)
class EventInfo:
    id: int
    slug: str
    name: str
    form: Any  # events.form as stored (None: the default form)
    booths: dict[str, tuple[int, str]] = field(default_factory=dict)  # slug → (id, name)


Cache = dict[str, tuple[float, EventInfo | None]]
_CACHES: weakref.WeakKeyDictionary[Any, Cache] = weakref.WeakKeyDictionary()  # one per database engine


def _cache(conn: Any) -> Cache:
    return _CACHES.setdefault(conn.engine, {})


def event_info(conn: Connection, slug: str, now: float | None = None) -> EventInfo | None:
    """The event `slug` and its booths (None: no such event), at most `TTL` seconds old."""
    now = time.monotonic() if now is None else now
    cache = _cache(conn)
    hit = cache.get(slug)
    if hit is not None and now - hit[0] < TTL:
        return hit[1]
    found = read_event(conn, slug)
    if len(cache) >= MAX_CACHED:
        cache.clear()
    cache[slug] = (now, found)
    return found


def forget(slug: str | None = None) -> None:
    """Drop the cached event (every one when `slug` is None): this process sees an edit at once."""
    for cache in list(_CACHES.values()):
        if slug is None:
            cache.clear()
        else:
            cache.pop(slug, None)


def read_event(conn: Connection, slug: str) -> EventInfo | None:
    """The event as stored now (the applier reads it fresh: no cache)."""
    rows = conn.execute(_EVENT, {"slug": slug}).all()
    if not rows:
        return None
    first = rows[0]
    booths = {r[3]: (int(r[4]), r[5] or r[3]) for r in rows if r[3] is not None}
    return EventInfo(int(first[0]), slug, first[1] or slug, first[2], booths)


def staff_of(conn: Connection, event_id: int, openid: str) -> tuple[int, str] | None:
    """(staff id, name) when `openid` is registered staff of the event: one indexed read."""
    row = conn.execute(_STAFF_OF.limit(1), {"event": event_id, "openid": openid}).first()
    return (int(row[0]), row[1] or "") if row else None


def staff_ids(conn: Connection, who: str, by_userid: bool = False) -> list[int]:
    """Every staff registration of openid (or WeCom userid) `who`, any event: the off-duty word ends all of them."""
    return [int(r) for r in conn.execute(_STAFF_MEMBER if by_userid else _STAFF_ANY, {"who": who}).scalars()]
