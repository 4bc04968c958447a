"""A booth scan's passive reply, decided in the request with no database read on the hot path.

Every process keeps the table of booths (event, booth → ids, name, reply, the event's end) in memory, built with
one read and rebuilt when the events' stamp changes. The stamp (count and last change of events and booths) is
announced in Redis by every change made through WeLead; a process looks at it at most once a second, and reads it
from the database (one small aggregate) only when Redis has none or is down. So a booth edited through the API
answers the new content within about a second in every web worker.

Reply order for a `booth:<event>:<booth>` scan: the booth's own reply → the playbook's reply rule → the default
template (templates/events/booth.txt); a scan after the event's end answers templates/events/late.txt; an unknown
event or booth (or a malformed booth scene) answers the playbook's reply rule if one matched (booths a playbook
knows and nobody created as an event), else templates/events/unknown.txt; nothing is checked in.
The decision keeps `booth` = {event, booth, known, late, event_id, booth_id} for the applier's check-in and the
form flow (scrm.event_turns).
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

import redis
from sqlalchemy import Connection, Engine, func, select

from foundation.config import ROOT
from scrm.event_models import Booth, Event
from scrm.playbook.engine import render
from scrm.scenes import parse_scene

if TYPE_CHECKING:
    from scrm.ingest import Event as Inbound

log = logging.getLogger(__name__)
STAMP_KEY = "welead:events:stamp"
STAMP_TTL = 300  # seconds a stamp read from the database stays announced (changes announce their own)
VERSION_TTL = 1.0  # a process looks at the stamp at most this often
SCAN_KINDS = ("subscribe", "scan")
TEMPLATES = ROOT / "templates" / "events"
PART_MAX = 64  # characters of a scene part kept in the decision

_E, _B = Event.__table__.c, Booth.__table__.c
_STAMP = select(
    select(func.count()).select_from(Event.__table__).scalar_subquery(),
    select(func.max(_E.updated_at)).scalar_subquery(),
    select(func.count()).select_from(Booth.__table__).scalar_subquery(),
    select(func.max(_B.updated_at)).scalar_subquery(),
)
_TABLE = select(_E.id, _E.slug, _E.name, _E.ends_at, _B.id.label("bid"), _B.slug.label("bslug"),
                _B.name.label("bname"), _B.reply).join_from(Event.__table__, Booth.__table__)  # fmt: skip


@dataclass(frozen=True, slots=True)
class BoothInfo:
    event_id: int
    booth_id: int
    event_name: str
    booth_name: str
    ends_at: datetime
    reply: dict[str, Any] | None


_SEEN: WeakKeyDictionary[Engine, tuple[float, str]] = WeakKeyDictionary()  # engine → (when looked, stamp)
_BUILT: WeakKeyDictionary[Engine, tuple[str, dict[tuple[str, str], BoothInfo]]] = WeakKeyDictionary()
_LOCK = threading.Lock()


def stamp(conn: Connection) -> str:
    events, changed, booths, booth_changed = conn.execute(_STAMP).one()
    return f"{events}:{changed}:{booths}:{booth_changed}"


def announce(conn: Connection, fast: redis.Redis | None) -> None:
    """After a change is committed: this process rebuilds its table at the next scan, the others within a second."""
    _SEEN.clear()
    if fast is None:
        return
    try:
        fast.set(STAMP_KEY, stamp(conn), ex=STAMP_TTL)
    except (redis.RedisError, OSError) as exc:
        log.warning("booth replies: stamp not announced (%s): processes notice within %s s", exc, VERSION_TTL)


def _current(conn: Connection, fast: redis.Redis | None) -> str:
    now = time.monotonic()
    seen = _SEEN.get(conn.engine)
    if seen is not None and now - seen[0] <= VERSION_TTL:
        return seen[1]
    found = _announced(fast)
    if found is None:
        found = stamp(conn)
        if fast is not None:
            with suppress(redis.RedisError, OSError):
                fast.set(STAMP_KEY, found, ex=STAMP_TTL, nx=True)
    _SEEN[conn.engine] = (now, found)
    return found


def _announced(fast: redis.Redis | None) -> str | None:
    if fast is None:
        return None
    try:
        raw = fast.get(STAMP_KEY)
    except (redis.RedisError, OSError):
        return None
    return raw.decode() if isinstance(raw, bytes) else raw


def table(conn: Connection, fast: redis.Redis | None) -> dict[tuple[str, str], BoothInfo]:
    """Every booth by (event slug, booth slug), as of the current stamp (built once per process and stamp)."""
    current = _current(conn, fast)
    built = _BUILT.get(conn.engine)
    if built is not None and built[0] == current:
        return built[1]
    with _LOCK:
        rows = conn.execute(_TABLE).all()
        found = {(r.slug, r.bslug): BoothInfo(r.id, r.bid, r.name, r.bname, r.ends_at, r.reply) for r in rows}
        _BUILT[conn.engine] = (current, found)
    return found


def forget() -> None:
    """Drop what this process cached (tests that rebuild the database)."""
    _SEEN.clear()
    _BUILT.clear()


@cache
def template(name: str) -> str:
    return (TEMPLATES / f"{name}.txt").read_text(encoding="utf-8").strip()


def decide(conn: Connection, event: Inbound, stored: dict[str, Any] | None, fast: redis.Redis | None) -> Any:
    """The decision with the booth's reply and facts; `stored` unchanged for anything but a booth scan."""
    parts = parse_scene(event.scene) if event.channel == "oa" and event.kind in SCAN_KINDS else {}
    if parts.get("kind") != "booth":
        return stored
    slugs = (parts.get("event", ""), parts.get("booth", ""))
    info = table(conn, fast).get(slugs) if all(slugs) else None
    facts: dict[str, Any] = {"event": slugs[0][:PART_MAX], "booth": slugs[1][:PART_MAX], "known": info is not None}
    out = dict(stored or {"rules": []})
    if info is None:
        if out.get("reply"):  # a booth only the playbook knows: its decision stands as it is
            return stored
        out["reply"] = {"text": template("unknown")}
    else:
        late = event.at > info.ends_at
        facts.update(late=late, event_id=info.event_id, booth_id=info.booth_id)
        out["reply"] = _reply(info, late, out.get("reply"))
    out["booth"] = facts
    return out


def _reply(info: BoothInfo, late: bool, playbook: dict[str, Any] | None) -> dict[str, Any]:
    names = {"event_name": info.event_name, "booth_name": info.booth_name}
    if late:
        return {"text": render(template("late"), names) or template("late")}
    if info.reply is not None:
        return info.reply
    return playbook or {"text": render(template("booth"), names) or template("booth")}
