"""`GET /l/<code>`: a tracked link's redirect (302 to its registered target), and `/oauth/wechat`, where WeChat's
web authorization comes back.

The redirect is as lean as the callback path: the code → target cache (scrm.links.Targets, no read on a hit), the
visitor from the signed parameter or cookie (welead.visitors, no read), ONE insert (scrm.link_accept), nothing else:
no Redis round trip (the applier's 100 ms poll finds the click; a click's effects need not beat that). A visitor
named only by the cookie costs one more indexed read (are they a follower?).

The authorization return does one outbound call, `sns/oauth2/access_token`, inside the request: that is the OAuth
redirect's own protocol (the browser waits for it, WeChat does not), with a 3-second timeout, never on the callback
path. A failure (a code used twice, 40029...) sends the visitor on unidentified.
"""

from __future__ import annotations

import logging
import re
from contextlib import suppress

from flask import Blueprint, Response, redirect, render_template, request
from sqlalchemy.exc import DBAPIError
from werkzeug.urls import iri_to_uri

from foundation.config import ROOT
from foundation.services import services
from scrm import link_accept
from scrm.links import Target, Targets
from wechat.oauth import OAuthError, exchange
from welead import visitors

log = logging.getLogger("welead.links")
bp = Blueprint("links_web", __name__, template_folder=str(ROOT / "templates"))
CODE = re.compile(r"^[A-Za-z0-9]{1,16}$")
OAUTH_TIMEOUT = 3.0
HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def targets() -> Targets:
    """This process's code → target cache for the app's database (kept on its services object)."""
    svc = services()
    found = svc.__dict__.get("link_targets")
    if found is None:
        found = svc.__dict__["link_targets"] = Targets()
    return found


def not_found(what: str = "This link does not exist", status: int = 404) -> Response:
    body = render_template("pages/not_found.html", what=what)
    return Response(body, status, mimetype="text/html", headers=HEADERS)


@bp.get("/l/<code>")
def follow(code: str) -> Response:
    if not CODE.match(code):
        return not_found()
    db = services().db
    try:
        with db.lazy_reader() as conn:
            target = targets().get(conn, code)
    except DBAPIError as exc:  # not in the cache and the database is down: say so, never a traceback
        log.error("link %s: database unavailable: %s", code, exc.__class__.__name__)
        return not_found("This link cannot be opened right now: please try again in a moment", 503)
    if target is None:
        return not_found()
    if request.method == "HEAD":  # a link checker or previewer, not a click
        return _to(target.url)
    visitor = visitors.identify(request)
    if visitors.wants_oauth(request, visitor):
        return visitors.start_oauth(visitors.here())
    with suppress(DBAPIError):  # the visitor gets where they were going even when the click cannot be recorded
        _record(target, visitor)
    return _to(target.url)


def _record(target: Target, visitor: visitors.Visitor) -> None:
    db = services().db
    named = visitor.openid and (visitor.carrier.get("via") != "oauth" or link_accept.known(db, visitor.openid))
    if not named:
        link_accept.anonymous(db, target)
        return
    assert visitor.openid is not None
    link_accept.click(db, target, visitor.openid, visitor.carrier)  # no applier hint: its 100 ms poll finds it


def _to(url: str) -> Response:
    """The 302 to a registered target, which no cache may keep (each click must reach WeLead to be counted)."""
    return Response(status=302, headers={"Location": iri_to_uri(url), **HEADERS})  # a Chinese path, percent-encoded


@bp.get(visitors.OAUTH_PATH)
def oauth_back() -> Response:
    stamp = visitors.current_stamper()
    back = visitors.return_path(stamp.signer, request)
    if back is None:
        return not_found("This authorization has expired: open the link again")
    code = request.args.get("code", "")
    openid = None
    if code and len(code) <= 128:
        try:
            openid = exchange(services().settings, code, OAUTH_TIMEOUT)
        except OAuthError as exc:
            log.warning("web authorization failed (%s): visitor continues unidentified", exc)
    return visitors.remember(redirect(back, 302), openid)
