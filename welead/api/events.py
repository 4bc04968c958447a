"""Events and booths: create, list, read, change; their printable codes; staff figures and the leads export.

Admins and marketers manage events. A staff token (subject = an event's slug) reads only its own event (any other
is 404, its existence not told) and sees its leads' phone numbers in full, as admins do; marketers see them masked.
The rules are scrm.events'; codes are made by welead.event_codes; figures and exports come from scrm.event_stats.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from apiflask import Schema, abort
from apiflask.fields import Boolean, Dict, Integer, List, Nested, Raw, String
from apiflask.validators import Length, OneOf, Regexp
from flask import Response, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from foundation.clock import utcnow
from foundation.services import services
from scrm import booth_replies, event_stats, events
from scrm.event_models import Event
from welead import event_codes, event_pages
from welead.api import bp
from welead.api.access import allow, answers, principal, query_params
from welead.api.schemas import Out, opt, param, req
from welead.rep_codes import CodeFailure

MANAGERS, READERS = ("marketer",), ("marketer", "staff")
SLUG = {"validate": [Length(1, 24), Regexp(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")]}
REPLY = 'the scan\'s reply: {"text": "..."} or {"articles": [{title, description, url, image}]} (null: default)'
FILE = {"type": "string", "format": "binary"}


class BoothIn(Schema):
    slug = String(**SLUG, metadata={"description": "unique in the event (required to create); in the scene"})
    name = String(validate=Length(0, events.NAME_MAX))
    reply = Raw(allow_none=True, metadata={"description": REPLY})


class EventIn(Schema):
    slug = String(**SLUG, metadata={"description": "unique (required to create); in every booth's scene"})
    name = String(validate=Length(0, events.NAME_MAX))
    starts_at = String(metadata={"description": "ISO 8601 date-time (required to create)", "format": "date-time"})
    ends_at = String(metadata={"description": "ISO 8601 date-time, after starts_at", "format": "date-time"})
    code_kind = String(validate=OneOf(events.CODE_KINDS), metadata={"description": "temporary (default) or permanent"})
    form = Raw(allow_none=True, metadata={"description": "the lead form (null: name, company, mobile)"})
    booths = List(Nested(BoothIn), metadata={"description": "booths to create with the event"})


class CodesState(Out):
    booth_url = opt(String)
    staff_url = opt(String)
    expires_at = opt(String)
    complete = req(Boolean())
    error = opt(String)


class BoothOut(Out):
    slug = req(String())
    name = req(String())
    reply = opt(Raw)
    scene = req(String())
    staff_scene = req(String())
    codes = req(Nested(CodesState))


class EventOut(Out):
    slug = req(String())
    name = req(String())
    starts_at = req(String())
    ends_at = req(String())
    code_kind = req(String())
    form = opt(Raw)
    created_at = opt(String)
    booths = req(List(Nested(BoothOut)))


class BoothList(Out):
    items = req(List(Nested(BoothOut)))


class EventList(Out):
    items = req(List(Nested(EventOut)))


class StatsOut(Out):
    event = req(String())
    unique_visitors = req(Integer())
    checkins = req(Integer())
    scans = req(Integer())
    late = req(Integer())
    leads = req(Integer())
    converted_visitors = req(Integer())
    conversion = req(Raw(metadata={"description": "converted_visitors / unique_visitors"}))
    booths = req(List(Dict(), metadata={"description": "per booth: checkins, scans, late, leads, by_hour"}))


class MadeOut(Out):
    made = req(Integer())
    event = req(Nested(EventOut))


@contextmanager
def _rules() -> Iterator[None]:
    try:
        yield
    except events.EventError as exc:
        abort(exc.status, str(exc))
    except CodeFailure as exc:
        abort(exc.status, exc.message, detail=exc.detail)


def _readable(session: Session, slug: str) -> Event:
    """The event, or 404 (also for a staff token of another event)."""
    who = principal()
    event = events.find(session, slug)
    if event is None or (who.role == "staff" and who.subject != slug):
        abort(404, f"no event {slug[:40]!r}")
    return event


def unmasked(slug: str) -> bool:
    """Admins and the event's own staff see phone numbers in full."""
    who = principal()
    return who.role == "admin" or (who.role == "staff" and who.subject == slug)


def _changed(slug: str) -> dict[str, Any]:
    svc = services()
    with svc.db.sessions() as session:
        booth_replies.announce(session.connection(), svc.redis)
        return events.describe(session, events.get(session, slug))


@bp.post("/events")
@allow(*MANAGERS)
@bp.input(EventIn, arg_name="body", validation=False)
@bp.doc(summary="Create an event (and its booths)", description="The booths' codes are made at once when they"
        " can be (temporary codes: within 30 days of the end); otherwise `codes.error` says why and POST"
        " /events/<slug>/codes makes them later.", responses=answers(EventOut, 409, status=201))  # fmt: skip
def create_event(body: Any):
    with _rules():
        if not isinstance(body, dict):
            raise events.EventError("send a JSON object")
        with services().db.transaction() as session:
            slug = events.create(session, body).slug
    event_codes.try_make(slug)
    return _changed(slug), 201


@bp.get("/events")
@allow(*READERS)
@bp.doc(summary="List events", responses=answers(EventList))
def list_events():
    who = principal()
    with services().db.sessions() as session:
        query = select(Event).order_by(Event.starts_at.desc(), Event.id)
        if who.role == "staff":
            query = query.where(Event.slug == (who.subject or ""))
        return {"items": [events.describe(session, e) for e in session.scalars(query)]}


@bp.get("/events/<slug>")
@allow(*READERS)
@bp.doc(summary="One event with its booths and codes", responses=answers(EventOut, 404))
def get_event(slug: str):
    with services().db.sessions() as session:
        return events.describe(session, _readable(session, slug))


@bp.patch("/events/<slug>")
@allow(*MANAGERS)
@bp.input(EventIn, arg_name="body", validation=False)
@bp.doc(summary="Change an event", description="The slug cannot change.", responses=answers(EventOut, 404))
def patch_event(slug: str, body: Any):
    with _rules(), services().db.transaction() as session:
        if not isinstance(body, dict) or "booths" in body:
            raise events.EventError("send a JSON object; booths change under /events/<slug>/booths")
        events.update(session, _readable(session, slug), body)
    return _changed(slug)


@bp.post("/events/<slug>/booths")
@allow(*MANAGERS)
@bp.input(BoothIn, arg_name="body", validation=False)
@bp.doc(summary="Add a booth", responses=answers(EventOut, 404, 409, status=201))
def add_booth(slug: str, body: Any):
    with _rules():
        with services().db.transaction() as session:
            events.add_booth(session, _readable(session, slug), body if isinstance(body, dict) else {})
        event_codes.try_make(slug)
    return _changed(slug), 201


@bp.get("/events/<slug>/booths")
@allow(*READERS)
@bp.doc(summary="An event's booths", responses=answers(BoothList, 404))
def list_booths(slug: str):
    with services().db.sessions() as session:
        event = _readable(session, slug)
        return {"items": [events.describe_booth(event, b) for b in events.booths(session, event)]}


@bp.patch("/events/<slug>/booths/<booth>")
@allow(*MANAGERS)
@bp.input(BoothIn, arg_name="body", validation=False)
@bp.doc(summary="Change a booth (name, reply)", responses=answers(EventOut, 404))
def patch_booth(slug: str, booth: str, body: Any):
    with _rules(), services().db.transaction() as session:
        event = _readable(session, slug)
        events.update_booth(events.booth(session, event, booth), body if isinstance(body, dict) else {})
        event.updated_at = utcnow()
    return _changed(slug)


@bp.post("/events/<slug>/codes")
@allow(*MANAGERS)
@query_params(
    param(
        "renew",
        "true: make every code again (after the end moved, or codes expired)",
        type="string",
        enum=["true", "false"],
    )
)
@bp.doc(summary="Make the booths' missing codes", description="409 when temporary codes cannot be made now"
        " (the event ends in more than 30 days, or has ended); 502 when WeChat refuses.",
        responses=answers(MadeOut, 404, 409))  # fmt: skip
def make_codes(slug: str):
    with services().db.sessions() as session:
        _readable(session, slug)
    with _rules():
        made = event_codes.make(slug, renew=request.args.get("renew") == "true")
    return {"made": made, "event": _changed(slug)}


@bp.get("/events/<slug>/codes.pdf")
@allow(*READERS)
@query_params(
    param(
        "layout", "page (default: one code per A4 page) or sheet (six per page)", type="string", enum=["page", "sheet"]
    )
)
@bp.doc(summary="Every booth's codes, printable", description="Each booth's visitor code and staff code with the"
        " booth's and the event's names. 409 when a booth has no codes yet.",
        responses={200: {"description": "PDF", "content": {"application/pdf": {"schema": FILE}}},
                   **answers(None, 400, 404, 409)})  # fmt: skip
def codes_pdf(slug: str):
    layout = request.args.get("layout", "page")
    if layout not in ("page", "sheet"):
        abort(400, "layout is page or sheet")
    with services().db.sessions() as session:
        _readable(session, slug)
    with _rules():
        body = event_codes.pdf(slug, layout)
    return Response(body, mimetype="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{slug}-codes.pdf"'})  # fmt: skip


@bp.get("/events/<slug>/stats")
@allow(*READERS)
@bp.doc(summary="Check-ins per booth per hour, visitors, leads, conversion", responses=answers(StatsOut, 404))
def get_stats(slug: str):
    with services().db.sessions() as session:
        return event_stats.stats(session, _readable(session, slug))


def _leads(slug: str) -> tuple[Event, list[dict[str, Any]]]:
    with services().db.sessions() as session:
        event = _readable(session, slug)
        return event, event_stats.lead_rows(session, event, unmasked(slug))


@bp.get("/events/<slug>/leads.csv")
@allow(*READERS)
@bp.doc(
    summary="The event's leads as CSV (UTF-8 with BOM)",
    responses={200: {"description": "CSV", "content": {"text/csv": {"schema": FILE}}}, **answers(None, 404)},
)
def leads_csv(slug: str):
    _, rows = _leads(slug)
    return Response(event_stats.to_csv(rows), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{slug}-leads.csv"'})  # fmt: skip


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@bp.get("/events/<slug>/leads.xlsx")
@allow(*READERS)
@bp.doc(
    summary="The event's leads as an Excel workbook",
    responses={200: {"description": "XLSX", "content": {XLSX: {"schema": FILE}}}, **answers(None, 404)},
)
def leads_xlsx(slug: str):
    event, rows = _leads(slug)
    return Response(event_stats.to_xlsx(rows, event.slug), mimetype=XLSX,
                    headers={"Content-Disposition": f'attachment; filename="{slug}-leads.xlsx"'})  # fmt: skip


class LiveLinkOut(Out):
    url = req(String(metadata={"description": "the live page, signed; valid 30 days"}))


@bp.get("/events/<slug>/live-link")
@allow(*READERS)
@bp.doc(
    summary="A signed link to the event's live page (phone-sized, refreshes itself)",
    responses=answers(LiveLinkOut, 404),
)
def live_link(slug: str):
    with services().db.sessions() as session:
        _readable(session, slug)
    return {"url": event_pages.link(slug)}
