"""Followers: list (keyset paging), one follower, its timeline."""

from __future__ import annotations

from datetime import UTC, datetime

from apiflask import Schema
from apiflask.fields import DateTime, Integer

from foundation.services import services
from scrm import followers
from welead.api import bp
from welead.api.access import bounded, get_follower, principal
from welead.auth import auth


class PageArgs(Schema):
    after = Integer(load_default=0, metadata={"description": "the `next` cursor of the previous page"})
    limit = Integer(load_default=50, metadata={"description": "1-500"})


class TimelineArgs(Schema):
    limit = Integer(load_default=100, metadata={"description": "1-1000"})
    before = DateTime(load_default=None, metadata={"description": "ISO time; entries strictly older"})


@bp.get("/followers")
@bp.auth_required(auth)
@bp.input(PageArgs, location="query", arg_name="args")
@bp.doc(summary="List followers", description="Ordered by id; pass `next` back as `after` for the next page.")
def list_followers(args: dict):
    limit = bounded(args["limit"], 1, 500, "limit")
    who = principal()
    owner = int(who.subject or 0) if who.role == "rep" else None
    with services().db.sessions() as session:
        items, nxt = followers.page(session, args["after"], limit, owner=owner)
    return {"items": items, "next": nxt}


@bp.get("/followers/<openid>")
@bp.auth_required(auth)
@bp.doc(summary="One follower", description="Tags by name, decayed score, stage, owner (rep id), first source.")
def get_one(openid: str):
    with services().db.sessions() as session:
        return followers.serialize(session, [get_follower(session, openid)])[0]


@bp.get("/followers/<openid>/timeline")
@bp.auth_required(auth)
@bp.input(TimelineArgs, location="query", arg_name="args")
@bp.doc(summary="A follower's timeline", description="Newest first; inbound kinds are WeChat's names in lower case.")
def timeline(openid: str, args: dict):
    limit = bounded(args["limit"], 1, 1000, "limit")
    before: datetime | None = args["before"]
    if before is not None and before.tzinfo is not None:
        before = before.astimezone(UTC).replace(tzinfo=None)
    with services().db.sessions() as session:
        return followers.timeline(session, get_follower(session, openid), limit, before)
