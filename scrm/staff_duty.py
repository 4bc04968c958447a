"""Staff on duty at a booth, applied by the applier from what the request decided (scrm.event_turns):

- `on`: the staff scanned `staff:<event>:<booth>`: any duty of theirs still open elsewhere (another booth, an earlier
  day) ends now, and one for that booth and today (Asia/Shanghai) starts unless it is already open;
- `off`: "下班"/"off duty": every open duty of theirs ends now;
- the day's end ends a duty by itself: only today's open duties count (`on_duty`).

`on_duty(session, booth_id, at)` is what lead routing reads (scrm.lead_capture).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, insert, or_, select, update
from sqlalchemy.orm import Session

from scrm import hours
from scrm.event_models import EventStaff, StaffDuty

if TYPE_CHECKING:
    from scrm.ingest import Visit

log = logging.getLogger(__name__)
DUTY, STAFF = StaffDuty.__table__, EventStaff.__table__
_D, _S = DUTY.c, STAFF.c
_OPEN = and_(_D.staff_id == bindparam("staff"), _D.off_at.is_(None))


def apply(visit: Visit, staff: dict[str, Any]) -> None:
    """The staff part of a decision: on (at a booth) or off duty."""
    action, at = staff.get("action"), visit.event.at
    if action == "on" and isinstance(staff.get("staff_id"), int) and isinstance(staff.get("booth_id"), int):
        moved = go_on(visit.session, staff["staff_id"], staff["event_id"], staff["booth_id"], at)
        _note(visit, "staff_on_duty", {"event": staff.get("event"), "booth": staff.get("booth"), "moved": moved})
    elif action == "off":
        ended = go_off(visit.session, [int(s) for s in staff.get("staff_ids") or [] if isinstance(s, int)], at)
        _note(visit, "staff_off_duty", {"ended": ended})


def go_on(session: Session, staff_id: int, event_id: int, booth_id: int, at: datetime) -> int:
    """Open today's duty at `booth_id`; the number of other open duties it ended (moving booths)."""
    conn, day = session.connection(), hours.local_day(at)
    elsewhere = or_(_D.booth_id != booth_id, _D.day != day)
    moved = conn.execute(update(DUTY).where(_OPEN, elsewhere).values(off_at=at), {"staff": staff_id}).rowcount
    here = select(_D.id).where(_OPEN, _D.booth_id == booth_id, _D.day == day)
    if conn.execute(here, {"staff": staff_id}).first() is None:
        row = {"staff_id": staff_id, "event_id": event_id, "booth_id": booth_id, "day": day, "on_at": at}
        conn.execute(insert(DUTY), row)
    return int(moved or 0)


def go_off(session: Session, staff_ids: list[int], at: datetime) -> int:
    """End every open duty of `staff_ids`; how many ended."""
    if not staff_ids:
        return 0
    stmt = update(DUTY).where(_D.staff_id.in_(staff_ids), _D.off_at.is_(None)).values(off_at=at)
    return int(session.connection().execute(stmt).rowcount or 0)


def on_duty(session: Session, booth_id: int, at: datetime) -> list[tuple[int, int | None]]:
    """(staff id, rep id) of those on duty at the booth on the local day of `at`, by staff id."""
    query = (
        select(_S.id, _S.rep_id)
        .select_from(DUTY.join(STAFF, _S.id == _D.staff_id))
        .where(_D.booth_id == booth_id, _D.day == hours.local_day(at), _D.off_at.is_(None))
        .order_by(_S.id)
        .distinct()
    )
    return [(int(s), r) for s, r in session.connection().execute(query)]


def _note(visit: Visit, kind: str, data: dict[str, Any]) -> None:
    if visit.follower is not None:
        visit.note(kind, data)
