"""`/p/<slug>`: a landing page for a phone, each visitor's copy with their own share token, and its form.

The visitor is named as for links (welead.visitors). The share menu is configured through WeChat's JS-SDK when the
page runs inside WeChat and a jsapi_ticket is cached (tasks.links keeps it fresh); the script is WeChat's
(res.wx.qq.com), loaded last, and the page is complete without it (offline, outside WeChat, no ticket yet).
"""

from __future__ import annotations

import logging
from contextlib import suppress
from typing import Any

import redis
from flask import Blueprint, Response, redirect, render_template, request
from sqlalchemy.exc import DBAPIError

from foundation.config import ROOT
from foundation.services import services
from scrm import link_accept, pages
from scrm.applier import wake
from scrm.link_models import Page
from wechat import jssdk
from welead import visitors
from welead.link_web import HEADERS, not_found

log = logging.getLogger("welead.pages")
bp = Blueprint("pages_web", __name__, template_folder=str(ROOT / "templates"))
VISITOR_COOKIE = "wl_v"


def _page(slug: str) -> Page | None:
    if not pages.SLUG.match(slug):
        return None
    with services().db.sessions() as session:
        return pages.by_slug(session, slug)


def _who() -> tuple[visitors.Visitor, str | None]:
    """The visitor and their openid if they are a follower WeLead knows (a cookie-named one is checked)."""
    visitor = visitors.identify(request)
    openid = visitor.openid
    if openid and visitor.carrier.get("via") == "oauth" and not link_accept.known(services().db, openid):
        openid = None
    return visitor, openid


@bp.get("/p/<slug>")
def show(slug: str) -> Response:
    page = _page(slug)
    if page is None:
        return not_found("This page does not exist")
    visitor, openid = _who()
    if visitors.wants_oauth(request, visitor):
        return visitors.start_oauth(visitors.here())
    signer = visitors.current_stamper().signer
    key = pages.visitor_key(openid or visitor.openid, request.cookies.get(VISITOR_COOKIE))
    sharer = pages.read_share(signer, request.args.get("s"))
    with suppress(DBAPIError):  # the page shows even when the visit cannot be recorded
        pages.visit(services().db, page, key, openid, sharer, visitor.carrier)
        if openid or (sharer and sharer[1]):
            with suppress(redis.RedisError, OSError):
                wake(services().redis)
    return _render(page, key, pages.share_token(signer, key, openid), sent=False)


def _render(page: Page, key: str, token: str, sent: bool, status: int = 200) -> Response:
    settings = services().settings
    share_url = f"{settings.public_url.rstrip('/')}/p/{page.slug}?s={token}"
    body = render_template("pages/page.html", page=page, share_url=share_url, token=token, sent=sent,
                           action=visitors.here(),
                           wx=_wx_config(settings), share={"title": page.title, "link": share_url,
                           "desc": (page.body or "")[:60], "imgUrl": page.image or ""})  # fmt: skip
    response = Response(body, status, mimetype="text/html", headers=HEADERS)
    if key.startswith("v"):
        response.set_cookie(VISITOR_COOKIE, key, max_age=visitors.YEAR, httponly=True, samesite="Lax")
    return response


def _wx_config(settings: Any) -> dict[str, Any] | None:
    """`wx.config` for this URL when a ticket is cached and the visitor is inside WeChat; else None."""
    if "micromessenger" not in (request.headers.get("User-Agent") or "").lower():
        return None
    try:
        ticket = jssdk.cached_ticket(services().redis, settings.wechat_app_id)
    except (redis.RedisError, OSError):
        return None
    if not ticket:
        return None
    url = f"{settings.public_url.rstrip('/')}{visitors.here()}"
    return jssdk.config(ticket, settings.wechat_app_id, url)


@bp.post("/p/<slug>")
def submit(slug: str) -> Response:
    page = _page(slug)
    if page is None:
        return not_found("This page does not exist")
    if not page.form:
        return redirect(f"/p/{page.slug}", 303)
    visitor, openid = _who()
    key = pages.visitor_key(openid or visitor.openid, request.cookies.get(VISITOR_COOKIE))
    ok = pages.leave_details(services().db, page, key, openid, request.form.to_dict())
    if ok and openid:
        with suppress(redis.RedisError, OSError):
            wake(services().redis)
    token = pages.share_token(visitors.current_stamper().signer, key, openid)
    return _render(page, key, token, sent=ok, status=200 if ok else 400)
