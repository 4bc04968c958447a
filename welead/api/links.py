"""Tracked links and landing pages: register them, list them with their clicks, read a page's shares.

Views only translate: validate, call scrm.links / scrm.pages in one transaction, answer. 400 for a target that is
not an http(s) URL (`javascript:`, `data:`...), 409 for a name or slug taken.
"""

from __future__ import annotations

from typing import Any

from apiflask import Schema, abort
from apiflask.fields import Dict, Float, Integer, List, Nested, Raw, String
from apiflask.validators import Length, Range

from foundation.services import services
from scrm import link_reads, links, pages
from scrm.links import LinkInvalid
from welead.api import bp
from welead.api.access import allow, answers
from welead.api.schemas import Out, opt, req


class LinkIn(Schema):
    name = String(required=True, validate=Length(1, 64))
    url = String(required=True, validate=Length(1, links.MAX_URL))
    campaign = String(load_default=None, validate=Length(1, 64))
    tags = List(String(validate=Length(1, 64)), load_default=list, validate=Length(0, 20))
    points = Integer(load_default=None, validate=Range(-1000, 1000))


class LinkOut(Out):
    id = req(Integer())
    code = req(String())
    name = req(String())
    url = req(String())
    campaign = opt(String)
    tags = req(List(String()))
    points = opt(Integer)
    short_url = req(String(metadata={"description": "what to put in messages, menus and articles"}))
    clicks = req(Integer(metadata={"description": "attributed clicks, every one"}))
    unique_clickers = req(Integer())
    anonymous_clicks = req(Integer(metadata={"description": "clicks nobody could be named for"}))


class LinkList(Out):
    items = req(List(Nested(LinkOut)))


class LinkArgs(Schema):
    campaign = String(load_default=None, validate=Length(1, 64))


class ClickThroughArgs(Schema):
    rule = String(required=True, validate=Length(1, 100), metadata={"description": "a rule's (or journey's) name"})


class ClickThroughOut(Out):
    delivered = req(Integer(metadata={"description": "messages WeChat took (sent or delivered)"}))
    clicked = req(Integer(metadata={"description": "of those, messages clicked at least once"}))
    clicks = req(Integer())
    click_through = req(Float())


class PageIn(Schema):
    slug = String(required=True, validate=Length(1, 64))
    title = String(required=True, validate=Length(1, 128))
    body = String(load_default="", validate=Length(0, pages.MAX_BODY))
    image = String(load_default=None, validate=Length(1, links.MAX_URL))
    button = Dict(load_default=None)
    form = List(String(), load_default=None)


class PageOut(Out):
    id = req(Integer())
    slug = req(String())
    title = req(String())
    url = req(String())
    button = opt(Raw)
    form = opt(Raw)


class ShareOut(Out):
    sharer = req(String(metadata={"description": "the sharer's key (a follower's or an anonymous visitor's)"}))
    openid = opt(String)
    opened = req(Integer(metadata={"description": "distinct visitors who opened the sharer's copy"}))
    visits = req(Integer())
    followed = req(Integer(metadata={"description": "of those, followers of the account"}))
    left_details = req(Integer(metadata={"description": "of those, visitors who filled in the page's form"}))


class SharesOut(Out):
    page = req(String())
    totals = req(Dict())
    items = req(List(Nested(ShareOut)))


def _public() -> str:
    return services().settings.public_url


@bp.post("/links")
@allow("marketer")
@bp.input(LinkIn, arg_name="body")
@bp.doc(summary="Register a tracked link", description="A short code for a registered http(s) target.",
        responses=answers(LinkOut, 409, status=201))  # fmt: skip
def create_link(body: dict[str, Any]):
    try:
        with services().db.transaction() as session:
            link = links.create(session, body["name"], body["url"], campaign=body["campaign"], tags=body["tags"],
                                points=body["points"])  # fmt: skip
            out = links.describe(link, {}, _public())
    except LinkInvalid as exc:
        abort(409 if "exists" in str(exc) else 400, str(exc))
    return out, 201


@bp.get("/links")
@allow("marketer")
@bp.input(LinkArgs, location="query", arg_name="args")
@bp.doc(summary="Tracked links with their clicks", responses=answers(LinkList))
def list_links(args: dict[str, Any]):
    with services().db.sessions() as session:
        return {"items": links.listing(session, _public(), args["campaign"])}


@bp.get("/links/click-through")
@allow("marketer")
@bp.input(ClickThroughArgs, location="query", arg_name="args")
@bp.doc(summary="Click-through of a rule's (or journey's) sends",
        description="A broadcast's is in its status (`clicks`).", responses=answers(ClickThroughOut))  # fmt: skip
def click_through(args: dict[str, Any]):
    with services().db.sessions() as session:
        return link_reads.deliveries(session, f"pb:rule:{args['rule']}:")


@bp.post("/pages")
@allow("marketer")
@bp.input(PageIn, arg_name="body")
@bp.doc(summary="Create a landing page", description="Served at /p/<slug>.", responses=answers(PageOut, 409,
        status=201))  # fmt: skip
def create_page(body: dict[str, Any]):
    try:
        with services().db.transaction() as session:
            out = pages.describe(pages.create(session, body), _public())
    except LinkInvalid as exc:
        abort(409 if "exists" in str(exc) else 400, str(exc))
    return out, 201


@bp.get("/pages/<slug>/shares")
@allow("marketer")
@bp.doc(summary="Who shared a page, and what their shares brought", responses=answers(SharesOut, 404))
def page_shares(slug: str):
    with services().db.sessions() as session:
        page = pages.by_slug(session, slug) if pages.SLUG.match(slug) else None
        if page is None:
            abort(404, f"no page {slug!r}")
        return {"page": page.slug, "totals": pages.totals(session, page), "items": pages.shares(session, page)}
