"""Rep pages under /rep: "my leads" and the lead card, server-rendered for a phone (templates/rep/).

Who is asking, in this order:
- a signed link from a WeCom notification (`?t=<token>`, scrm.lead_links): on a GET it starts a session (Flask's
  signed cookie: HttpOnly, SameSite=Lax) and redirects to the same page without the token, so the token leaves
  the address bar and the history, and later clicks keep working without it;
- a rep API token (`Authorization: Bearer`, role rep, subject = the rep's id), for scripts;
- the session, for SESSION_HOURS after the link was opened.
A rep sees and changes only their own leads: any other lead is a 404. Forms POST with a per-session CSRF token
(`csrf`, checked with a constant-time comparison); bearer requests need none, since no browser sends a bearer
header on its own. Errors are small HTML pages with the right status, never a traceback.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from apiflask import APIBlueprint
from flask import Response, abort, flash, g, redirect, render_template, request, session, url_for
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from foundation.config import ROOT
from foundation.services import services
from foundation.signing import LinkError
from scrm import outbox, rep_actions, rep_view
from scrm.hours import ZONE
from scrm.lead_links import read_rep_token
from scrm.models import Rep
from welead.auth import auth
from welead.page_security import SECURITY_HEADERS, check_csrf, new_token

# An APIBlueprint only to say "not in the OpenAPI document": APIFlask's spec walks every blueprint that has a
# before_request function and expects `enable_openapi` on it.
bp = APIBlueprint(
    "rep_pages", __name__, url_prefix="/rep", template_folder=str(ROOT / "templates"), enable_openapi=False
)
SESSION_HOURS = 12
MAX_PAGE = 10_000
LIMITS = {"stage": 32, "tag": 64, "q": rep_view.MAX_QUERY}
TITLES = {400: "That did not work", 401: "Please sign in from WeCom", 403: "This link cannot be used",
          404: "Lead not found", 405: "Not allowed"}  # fmt: skip


@dataclass(frozen=True)
class Viewer:
    rep_id: int
    name: str
    bearer: bool  # came with a bearer token: no cookie, no CSRF token needed


# --- who is asking ----------------------------------------------------------------------------------------------


@bp.before_request
def _identify() -> Response | None:
    token = request.args.get("t")
    if token is not None and request.method == "GET":
        return _from_link(token)
    header = request.headers.get("Authorization")
    rep_id, bearer = (_from_bearer(header), True) if header else (_from_session(), False)
    g.viewer = _viewer(rep_id, bearer)
    return None


def _from_link(token: str) -> Response:
    try:
        rep_id = read_rep_token(services().signer, token)
    except LinkError as exc:
        if exc.expired:
            abort(403, "This link has expired. Open the latest notification in WeCom, or ask for a new link.")
        abort(403, "This link is not valid. Open it again from your WeCom notification.")
    _viewer(rep_id, bearer=False)
    kept = session.get("csrf") if session.get("rep") == rep_id else None  # forms open in other tabs keep working
    session.clear()
    session.update(rep=rep_id, since=int(time.time()), csrf=kept or new_token())
    rest = [(k, v) for k, v in request.args.items(multi=True) if k != "t"]
    return redirect(request.path + (f"?{urlencode(rest)}" if rest else ""), 303)


def _from_bearer(header: str) -> int:
    scheme, _, token = header.partition(" ")
    who = auth.verify_token_callback(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
    if not who:
        abort(401, "This API token is missing, invalid, expired or revoked.")
    if who.rep_id is None:
        abort(403, "Rep pages open with a rep's token (role rep) only.")
    return who.rep_id


def _from_session() -> int:
    rep_id, since = session.get("rep"), session.get("since")
    if not isinstance(rep_id, int) or not isinstance(since, int):
        abort(401, "Open this page from the link in your WeCom notification.")
    if time.time() - since > SESSION_HOURS * 3600:
        session.clear()
        abort(401, "You were signed out after a while. Open the link in your WeCom notification again.")
    return rep_id


def _viewer(rep_id: int, bearer: bool) -> Viewer:
    """403 unless the rep exists and is active (a deactivated rep's links stop working)."""
    with services().db.sessions() as s:
        rep = s.get(Rep, rep_id) if 0 < rep_id < 2**31 else None
        if rep is None or not rep.active:
            session.clear()
            abort(403, "This rep account is not active. Ask your admin.")
        return Viewer(rep.id, rep.name or rep.userid, bearer)


def viewer() -> Viewer:
    return g.viewer


def _csrf() -> None:
    """400 unless the form carries this session's token (bearer requests need none)."""
    if not viewer().bearer:
        check_csrf()


# --- pages --------------------------------------------------------------------------------------------------------


@bp.get("/leads")
def my_leads() -> str:
    filters = _filters()
    with services().db.sessions() as s:
        page = rep_view.leads(s, viewer().rep_id, filters)
    return render_template("rep/leads.html", page=page, filters=filters, sorts=rep_view.SORTS)


def _filters() -> rep_view.Filters:
    """The list's query string, or a 400 page naming the bad parameter."""
    args = {k: request.args.get(k, "").strip() or None for k in LIMITS}
    for name, value in args.items():
        if value is not None and (len(value) > LIMITS[name] or "\x00" in value):
            abort(400, f"The {name} filter takes at most {LIMITS[name]} characters.")
    sort = request.args.get("sort", "score")
    if sort not in rep_view.SORTS:
        abort(400, f"Sort by {' or '.join(rep_view.SORTS)}.")
    page = request.args.get("page", "1")
    if not page.isascii() or not page.isdigit() or not 1 <= int(page) <= MAX_PAGE:
        abort(400, f"The page is a number from 1 to {MAX_PAGE}.")
    return rep_view.Filters(args["stage"], args["tag"], args["q"], sort, int(page))


@bp.get("/leads/<int:follower_id>")
def lead_card(follower_id: int) -> Any:
    with services().db.sessions() as s:
        found = rep_view.lead(s, viewer().rep_id, follower_id)
        if found is None:
            abort(404, "There is no such lead among yours.")
        if found.id != follower_id:  # a merged identity: its person's card
            return redirect(url_for(".lead_card", follower_id=found.id), 303)
        card = rep_view.card(s, found)
    return render_template("rep/card.html", card=card, summary=rep_view.summary, note_max=rep_actions.MAX_NOTE)


# --- actions (POST, then back to the card) ----------------------------------------------------------------------


@bp.post("/leads/<int:follower_id>/follow-up")
def follow_up(follower_id: int) -> Response:
    note = request.form.get("note", "")
    said = "Marked as followed up."
    return _act(follower_id, lambda s, rep: rep_actions.followed_up(s, rep, follower_id, note), said)


@bp.post("/leads/<int:follower_id>/stage")
def set_stage(follower_id: int) -> Response:
    stage = request.form.get("stage", "")
    return _act(follower_id, lambda s, rep: rep_actions.set_stage(s, rep, follower_id, stage), f"Stage: {stage}.")


@bp.post("/leads/<int:follower_id>/tags")
def add_tag(follower_id: int) -> Response:
    name = request.form.get("tag", "")
    return _act(follower_id, lambda s, rep: rep_actions.tag(s, rep, follower_id, name, True), "Tag added.")


@bp.post("/leads/<int:follower_id>/tags/remove")
def remove_tag(follower_id: int) -> Response:
    name = request.form.get("tag", "")
    return _act(follower_id, lambda s, rep: rep_actions.tag(s, rep, follower_id, name, False), "Tag removed.")


def _act(follower_id: int, do: Callable[[Session, int], rep_actions.Done], said: str) -> Response:
    """CSRF check, then the action in one short transaction; 404 when the lead is not the rep's."""
    _csrf()
    svc = services()
    try:
        with svc.db.transaction() as s:
            done = do(s, viewer().rep_id)
    except rep_actions.NotYours:
        abort(404, "There is no such lead among yours.")
    except rep_actions.Refused as exc:
        abort(400, f"{exc}.")
    outbox.announce(svc.redis, done.outbox_ids)
    if not viewer().bearer:
        flash(said if done.changed else "Nothing changed (noted as an action on the lead).")
    return redirect(url_for(".lead_card", follower_id=follower_id), 303)


# --- rendering ----------------------------------------------------------------------------------------------------


@bp.errorhandler(HTTPException)
def _error(exc: HTTPException) -> tuple[str, int]:
    code = exc.code or 500
    title = TITLES.get(code, exc.name)
    return render_template("rep/error.html", code=code, title=title, message=exc.description), code


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


@bp.context_processor
def _context() -> dict[str, Any]:
    return {"viewer": g.get("viewer"), "csrf_token": session.get("csrf", ""), "page_url": _page_url}


def _page_url(filters: rep_view.Filters, **changes: Any) -> str:
    """The list's URL with `filters` and `changes` (empty values dropped)."""
    args = {"stage": filters.stage, "tag": filters.tag, "q": filters.q, "sort": filters.sort, "page": filters.page}
    args.update(changes)
    defaults = {"sort": "score", "page": 1}
    return url_for(".my_leads", **{k: v for k, v in args.items() if v not in (None, "") and defaults.get(k) != v})


@bp.app_template_filter("rep_time")
def rep_time(at: datetime | str | None) -> str:
    """A stored UTC time (or the API's ISO text) in Asia/Shanghai: `12-01 09:30`, with the year when not this one."""
    if not at:
        return "—"
    if isinstance(at, str):
        at = datetime.fromisoformat(at.removesuffix("Z"))
    local = at.replace(tzinfo=UTC).astimezone(ZONE)
    now = datetime.now(ZONE)
    return local.strftime("%m-%d %H:%M" if local.year == now.year else "%Y-%m-%d %H:%M")
