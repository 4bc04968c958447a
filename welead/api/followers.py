"""Followers: list (keyset paging), one follower, its timeline; each scoped to what the caller may see."""

from __future__ import annotations

from datetime import UTC, datetime

from apiflask import Schema, abort
from apiflask.fields import DateTime, Integer

from foundation.services import services
from scrm import followers
from welead.api import bp
from welead.api.access import allow, answers, bounded, get_follower, visible
from welead.api.schemas import IDS, MAX_ID, FollowerOut, FollowerPage, TimelineEntry

READERS = ("marketer", "staff", "rep")


class PageArgs(Schema):
    after = Integer(load_default=0, metadata={"description": "the `next` cursor of the previous page", **IDS})
    limit = Integer(load_default=50, metadata={"description": "1-500 (400 outside)", "minimum": 1, "maximum": 500})


class TimelineArgs(Schema):
    limit = Integer(load_default=100, metadata={"description": "1-1000 (400 outside)", "minimum": 1, "maximum": 1000})
    before = DateTime(load_default=None, metadata={"description": "ISO time; entries strictly older"})


@bp.get("/followers")
@allow(*READERS)
@bp.input(PageArgs, location="query", arg_name="args")
@bp.doc(
    summary="List followers",
    description="Ordered by id; pass `next` back as `after` for the next page. A rep token lists its own leads, "
    "a staff token its event's visitors (docs/roles.md).",
    responses=answers(FollowerPage, 400),
)
def list_followers(args: dict):
    after, limit = bounded(args["after"], 0, MAX_ID, "after"), bounded(args["limit"], 1, 500, "limit")
    with services().db.sessions() as session:
        items, nxt = followers.page(session, after, limit, where=visible())
    return {"items": items, "next": nxt}


@bp.get("/followers/<openid>")
@allow(*READERS)
@bp.doc(
    summary="One follower",
    description="Tags by name, decayed score, stage, owner (rep id), first source. 404 also when the token may "
    "not see it.",
    responses=answers(FollowerOut, 404),
)
def get_one(openid: str):
    with services().db.sessions() as session:
        return followers.serialize(session, [get_follower(session, openid)])[0]


@bp.get("/followers/<openid>/timeline")
@allow(*READERS)
@bp.input(TimelineArgs, location="query", arg_name="args")
@bp.doc(
    summary="A follower's timeline",
    description="Newest first; inbound kinds are WeChat's names in lower case.",
    responses=answers(TimelineEntry(many=True), 400, 404),
)
def timeline(openid: str, args: dict):
    limit, before = bounded(args["limit"], 1, 1000, "limit"), _utc(args["before"])
    with services().db.sessions() as session:
        return followers.timeline(session, get_follower(session, openid), limit, before)


def _utc(at: datetime | None) -> datetime | None:
    """A naive UTC time as stored; 400 for one that is out of range once moved to UTC."""
    try:
        return at.astimezone(UTC).replace(tzinfo=None) if at is not None and at.tzinfo is not None else at
    except OverflowError:
        abort(400, "before is out of range")
