"""Registering the staff of an event: who may go on duty at its booths (their OA openid: the staff code is an OA
code, so a scan names the openid) and how they hear about leads (a WeCom member: a rep, or a userid).

A staff given a WeCom `userid` that no rep has yet gets an unconfirmed rep row (as WeCom members first seen in a
callback do, scrm.ingest.rep_id): notifications reach WeCom members through reps, and an unconfirmed rep takes no
assignment of ordinary leads. Registering the same person again (same openid, rep or userid in the event) updates
the row instead of adding a second one. Refusals are `StaffError` with an HTTP status, for the API and the CLI.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.orm import Session

from foundation.clock import utcnow
from scrm import event_lookup, hours
from scrm.ingest import rep_id as rep_for_userid
from scrm.lead_capture import LEADS
from scrm.models import Rep
from scrm.staff_duty import DUTY, STAFF

OPENID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
USERID = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
NAME_MAX = 128
_S, _D = STAFF.c, DUTY.c


class StaffError(ValueError):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _event_id(session: Session, slug: str) -> int:
    info = event_lookup.read_event(session.connection(), slug)
    if info is None:
        raise StaffError(f"no event {slug!r}", 404)
    return info.id


def _clean(body: dict[str, Any]) -> dict[str, Any]:
    openid, userid, rep = body.get("openid"), body.get("userid"), body.get("rep_id")
    if openid is not None and (not isinstance(openid, str) or not OPENID.fullmatch(openid)):
        raise StaffError("openid: 1-64 letters, digits, _ or -")
    if userid is not None and (not isinstance(userid, str) or not USERID.fullmatch(userid)):
        raise StaffError("userid: a WeCom member id (1-64 characters)")
    if rep is not None and (not isinstance(rep, int) or isinstance(rep, bool) or not 0 < rep < 2**31):
        raise StaffError("rep_id: a rep's id")
    name = body.get("name", "")
    if not isinstance(name, str) or len(name) > NAME_MAX:
        raise StaffError(f"name: text of at most {NAME_MAX} characters")
    if not (openid or userid or rep):
        raise StaffError("give the staff's openid (to go on duty) and/or a rep_id or WeCom userid (to be notified)")
    return {"openid": openid, "userid": userid, "rep_id": rep, "name": name.strip()}


def _rep(session: Session, given: dict[str, Any]) -> tuple[int | None, str | None]:
    """(rep id, userid): the rep named, or the rep of the userid (made, unconfirmed, when there is none)."""
    if given["rep_id"] is not None:
        rep = session.get(Rep, given["rep_id"])
        if rep is None:
            raise StaffError(f"no rep {given['rep_id']}", 404)
        return rep.id, rep.userid
    if given["userid"]:
        return rep_for_userid(session, given["userid"]), given["userid"]
    return None, None


def add(session: Session, slug: str, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Register (or update) a staff of the event; (the staff, created)."""
    event_id, given = _event_id(session, slug), _clean(body)
    rep_id, userid = _rep(session, given)
    values = {"openid": given["openid"], "userid": userid, "rep_id": rep_id}
    keys = ((_S.openid, values["openid"]), (_S.rep_id, rep_id), (_S.userid, userid))
    same = [c == v for c, v in keys if v is not None]
    conn = session.connection()
    found = conn.execute(select(_S.id).where(_S.event_id == event_id, or_(*same)).limit(1)).scalar() if same else None
    values = {k: v for k, v in values.items() if v is not None}
    name = given["name"] or (given["openid"] or userid or "")
    if found is not None:
        conn.execute(update(STAFF).where(_S.id == found).values(**values, name=name))
        return one(session, found), False
    new = conn.execute(insert(STAFF).values(event_id=event_id, name=name, **values).returning(_S.id)).scalar_one()
    return one(session, new), True


def one(session: Session, staff_id: int) -> dict[str, Any]:
    row = session.connection().execute(select(STAFF).where(_S.id == staff_id)).one()
    return _out(row._mapping)


def listing(session: Session, slug: str) -> list[dict[str, Any]]:
    """The event's staff, each with where they are on duty now (today's open duty, or null)."""
    event_id, conn = _event_id(session, slug), session.connection()
    today = (_D.event_id == event_id) & _D.off_at.is_(None) & (_D.day == hours.local_day(utcnow()))
    duty = dict(conn.execute(select(_D.staff_id, _D.booth_id).where(today)).all())
    rows = conn.execute(select(STAFF).where(_S.event_id == event_id).order_by(_S.id))
    return [{**_out(r._mapping), "on_duty_booth_id": duty.get(r.id)} for r in rows]


def remove(session: Session, slug: str, staff_id: int) -> bool:
    """Unregister a staff (their duty rows go with them); False when the event has no such staff."""
    event_id, conn = _event_id(session, slug), session.connection()
    conn.execute(delete(DUTY).where(_D.staff_id == staff_id, _D.event_id == event_id))
    conn.execute(update(LEADS).where(LEADS.c.staff_id == staff_id).values(staff_id=None))  # the leads stay
    return conn.execute(delete(STAFF).where(_S.id == staff_id, _S.event_id == event_id)).rowcount == 1


def _out(row: Any) -> dict[str, Any]:
    keys = ("id", "event_id", "name", "openid", "userid", "rep_id")
    return {k: row[k] for k in keys}
