"""Staff of an event: register them (who may go on duty at its booths, and how they hear about leads), list them
with where they are on duty today, unregister them. The rules are scrm.event_staff's."""

from __future__ import annotations

from typing import Any

from apiflask import Schema, abort
from apiflask.fields import Integer, List, Nested, String
from apiflask.validators import Length

from foundation.services import services
from scrm import access, event_staff
from welead.api import bp
from welead.api.access import allow, answers, principal
from welead.api.schemas import opt, req

MANAGERS = ("marketer",)


class StaffIn(Schema):
    name = String(validate=Length(0, event_staff.NAME_MAX))
    openid = String(metadata={"description": "their OA openid: a scan of a staff code is matched by it"})
    rep_id = Integer(metadata={"description": "a rep: notified in WeCom, and leads go round-robin among reps"})
    userid = String(metadata={"description": "a WeCom member id (an unconfirmed rep is made for notifications)"})


class StaffOut(Schema):
    id = req(Integer())
    event_id = req(Integer())
    name = req(String())
    openid = opt(String)
    userid = opt(String)
    rep_id = opt(Integer)
    on_duty_booth_id = opt(Integer, metadata={"description": "the booth they are on duty at today, or null"})


class StaffPage(Schema):
    items = req(List(Nested(StaffOut)))


def _refused(exc: event_staff.StaffError) -> None:
    abort(exc.status, str(exc))


@bp.post("/events/<slug>/staff")
@allow(*MANAGERS)
@bp.input(StaffIn, arg_name="body", validation=False)
@bp.doc(summary="Register a staff of the event", description="201 when added, 200 when the same person (openid "
        "or rep) was registered already and is updated; 400 names the bad field; 404 for an unknown event or rep.",
        responses=answers(StaffOut, 404, status=(200, 201)))  # fmt: skip
def add_event_staff(slug: str, body: Any):
    if not isinstance(body, dict):
        abort(400, "expected a JSON object")
    try:
        with services().db.transaction() as session:
            staff, created = event_staff.add(session, slug, body)
    except event_staff.StaffError as exc:
        _refused(exc)
    staff["on_duty_booth_id"] = None
    return staff, 201 if created else 200


@bp.get("/events/<slug>/staff")
@allow(*MANAGERS, "staff")
@bp.doc(summary="List the event's staff", description="With the booth each is on duty at today; a staff token "
        "sees only its own event's.",
        responses=answers(StaffPage, 404))  # fmt: skip
def list_event_staff(slug: str):
    who = principal()
    if who.role == "staff" and access.event_slug(who.subject) != slug:
        abort(404, f"no event {slug!r}")  # another event's staff: its existence is not told
    try:
        with services().db.sessions() as session:
            return {"items": event_staff.listing(session, slug)}
    except event_staff.StaffError as exc:
        _refused(exc)


@bp.delete("/events/<slug>/staff/<int:staff_id>")
@allow(*MANAGERS)
@bp.doc(summary="Unregister a staff", description="204; their leads stay, unassigned from them.",
        responses=answers(None, 404, status=204))  # fmt: skip
def remove_event_staff(slug: str, staff_id: int):
    try:
        with services().db.transaction() as session:
            removed = event_staff.remove(session, slug, staff_id)
    except event_staff.StaffError as exc:
        _refused(exc)
    if not removed:
        abort(404, f"no staff {staff_id} in event {slug!r}")
    return "", 204
