"""Segments: preview a filter (count and first page), save named filters, read them and their followers.

A rep token sees only its own leads: every count and page is restricted to followers it owns.
"""

from __future__ import annotations

from typing import Any

from apiflask import Schema, abort
from apiflask.fields import Raw, String
from apiflask.validators import Length
from flask import request
from sqlalchemy.orm import Session

from foundation.services import services
from scrm import segments
from scrm.access import can_see_segment
from welead.api import bp
from welead.api.access import allow, answers, principal, query_params, require
from welead.api.params import paging
from welead.api.schemas import (
    FOLLOWER_PAGING,
    SEGMENT_FILTER,
    SavedSegmentResult,
    SegmentList,
    SegmentOut,
    SegmentResult,
)

PREVIEW = (
    "Query-string filter, e.g. `tags_all=vip&score=engagement:50..&stage=mql+&source=booth:expo:*&active_after=30d`"
    " (docs/segments.md); `after` and `limit` page through the followers. `+` is read as a plus, as written"
    " (`stage=mql+`, or `mql%2B`); write a space as `%20`. An unknown key, stage or score model is a 400 naming it."
)


class SegmentIn(Schema):
    name = String(required=True, validate=Length(1, 128))
    filter = Raw(required=True, metadata={"description": "a filter mapping (docs/segments.md)"})


def _paging() -> tuple[int, int]:
    return paging(50, 500)  # `after`: a follower id cursor; `limit`: 1-500


def _owner() -> int | None:
    who = require("marketer", "rep")
    return int(who.subject or 0) if who.role == "rep" else None


def _result(session: Session, spec: Any, after: int, limit: int) -> dict[str, Any]:
    owner = _owner()
    try:
        total = segments.count(session, spec, owner=owner)
        items, nxt = segments.page(session, spec, after=after, limit=limit, owner=owner)
    except segments.SegmentError as exc:
        abort(400, str(exc))
    return {"count": total, "items": items, "next": nxt}


@bp.get("/segments/preview")
@allow("marketer", "rep")
@query_params(*FOLLOWER_PAGING, *SEGMENT_FILTER)
@bp.doc(
    summary="Preview a segment",
    description="Count and first page of the followers matching. " + PREVIEW,
    responses=answers(SegmentResult, 400),
)
def preview_segment():
    after, limit = _paging()
    try:
        spec = segments.from_query(segments.parse_query(request.query_string.decode("utf-8", "replace")))
    except segments.SegmentError as exc:
        abort(400, str(exc))
    with services().db.sessions() as session:
        return {"filter": segments.normalised(spec), **_result(session, spec, after, limit)}


@bp.post("/segments")
@allow("marketer")
@bp.input(SegmentIn, arg_name="body")
@bp.doc(
    summary="Save a segment",
    description="A named filter, evaluated whenever it is used (201, with its count).",
    responses=answers(SegmentOut, 400, 409, status=201),
)
def create_segment(body: dict):
    who = require("marketer")
    try:
        with services().db.transaction() as session:
            row = segments.save(session, body["name"], body["filter"], by=who.name)
            out = segments.describe(row)
            out["count"] = segments.count(session, row.filter)
    except segments.SegmentError as exc:
        abort(409 if str(exc).startswith("name: a segment named") else 400, str(exc))
    return out, 201


@bp.get("/segments")
@allow("marketer", "rep")
@bp.doc(
    summary="Saved segments",
    description="A rep token lists only the segments saved under its own rep (docs/roles.md).",
    responses=answers(SegmentList),
)
def list_segments():
    who = principal()
    with services().db.sessions() as session:
        return {"items": [segments.describe(r) for r in segments.saved(session) if can_see_segment(who, r)]}


@bp.get("/segments/<ref>")
@allow("marketer", "rep")
@query_params(*FOLLOWER_PAGING)
@bp.doc(
    summary="A saved segment",
    description="By id or name: its filter, count and first page (`after`, `limit`).",
    responses=answers(SavedSegmentResult, 400, 404),
)
def get_segment(ref: str):
    after, limit = _paging()
    with services().db.sessions() as session:
        row = segments.find(session, ref)
        if row is None or not can_see_segment(principal(), row):
            abort(404, f"no segment {ref!r}")
        return {**segments.describe(row), **_result(session, row.filter, after, limit)}


@bp.delete("/segments/<ref>")
@allow("marketer")
@bp.doc(
    summary="Delete a saved segment",
    description="By id or name; answers the segment as it was. 409 while a broadcast that has not finished fanning"
    " out names it (cancel the broadcast, or wait). Broadcasts started from a filter keep their own copy.",
    responses=answers(SegmentOut, 404, 409),
)
def delete_segment(ref: str):
    try:
        with services().db.transaction() as session:
            row = segments.delete(session, ref)
            out = segments.describe(row) if row is not None else None
    except segments.SegmentError as exc:
        abort(409, str(exc))
    if out is None:
        abort(404, f"no segment {ref!r}")
    return {**out, "deleted": True}
