"""The dashboard under /dashboard: the reports drawn as server-side SVG (welead.svg), and a follower's page.

Sign-in is an admin, marketer or rep API token typed into a form once: the token is checked (as the API checks
it), then only its name, role and subject go into Flask's signed session cookie (HttpOnly, SameSite=Lax, as for
the rep pages), for SESSION_HOURS. Every page looks the token up again by name, so a revoked or expired token ends
its sessions at the next click. Forms (sign-in, sign-out) carry the session's CSRF token (welead.page_security,
shared with the rep pages). A rep sees only its own leads: the reports are scoped exactly as the API scopes them,
and another follower's page is a 404. No script, no CDN: HTML, inline CSS and SVG, so the pages work offline.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from apiflask import APIBlueprint
from flask import Response, abort, g, redirect, render_template, request, session, url_for
from sqlalchemy import or_, select
from werkzeug.exceptions import HTTPException

from foundation.clock import utcnow
from foundation.config import ROOT
from foundation.services import services
from scrm import access, followers, reports, score_totals
from scrm.models import ApiToken
from scrm.report_sql import ReportError, window
from welead import dashboard_views
from welead.auth import Principal, auth
from welead.page_security import SECURITY_HEADERS, check_csrf, new_token

bp = APIBlueprint(
    "dashboard", __name__, url_prefix="/dashboard", template_folder=str(ROOT / "templates"), enable_openapi=False
)
SESSION_HOURS = 12
ROLES = ("admin", "marketer", "rep")
OPEN = ("dashboard.login", "dashboard.sign_in")
TITLES = {400: "That did not work", 401: "Please sign in", 403: "Not for this token", 404: "Not found"}


# --- who is asking ----------------------------------------------------------------------------------------------


@bp.before_request
def _identify() -> Response | None:
    session.setdefault("csrf", new_token())
    if request.endpoint in OPEN:
        return None
    who = _from_session()
    if who is None:
        session.pop("dash", None)
        return redirect(url_for(".login", next=request.full_path.rstrip("?")), 303)
    g.viewer = who
    return None


def _from_session() -> Principal | None:
    """The signed-in token, if its session is recent and the token is still active with the same role."""
    dash, since = session.get("dash"), session.get("dash_since")
    if not isinstance(dash, dict) or not isinstance(since, int) or time.time() - since > SESSION_HOURS * 3600:
        return None
    now = utcnow()
    with services().db.sessions() as s:
        row = s.scalar(
            select(ApiToken).where(
                ApiToken.name == dash.get("name"),
                ApiToken.revoked_at.is_(None),
                or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now),
            )
        )
    if row is None or row.role != dash.get("role") or row.subject != dash.get("subject"):
        return None
    return Principal(row.name, row.role, row.subject)


def viewer() -> Principal:
    return g.viewer


def rep_scope() -> int | None:
    return viewer().rep_id if viewer().role == "rep" else None


@bp.get("/login")
def login() -> str:
    return render_template("dashboard/login.html", next=_next(request.args.get("next")))


@bp.post("/login")
def sign_in() -> Response:
    check_csrf()
    token = request.form.get("token", "").strip()
    who = auth.verify_token_callback(token) if token and len(token) <= 200 else None
    if not who:
        abort(401, "That token is not valid (wrong, revoked or expired).")
    if who.role not in ROLES:
        abort(403, "The dashboard opens with an admin, marketer or rep token.")
    session.clear()
    session.update(dash={"name": who.name, "role": who.role, "subject": who.subject}, dash_since=int(time.time()),
                   csrf=new_token())  # fmt: skip
    return redirect(_next(request.form.get("next")), 303)


def _next(target: str | None) -> str:
    """Where to go after signing in: a dashboard path of this site only (never another host)."""
    parts = urlsplit(target or "")
    if parts.scheme or parts.netloc or not parts.path.startswith("/dashboard") or "\\" in (target or ""):
        return url_for(".overview")
    return target or url_for(".overview")


@bp.post("/logout")
def sign_out() -> Response:
    check_csrf()
    session.clear()
    return redirect(url_for(".login"), 303)


# --- reports -------------------------------------------------------------------------------------------------------


def report(name: str, **options: Any) -> tuple[dict[str, Any], Any]:
    """The named report for the viewer's scope and the window in the query string (a 400 page for a bad one)."""
    try:
        win = window(request.args.get("from"), request.args.get("to"), request.args.get("bucket"), utcnow())
    except ReportError as exc:
        abort(400, f"{exc}.")
    with services().db.sessions() as s:
        return reports.run(s, name, win, rep=rep_scope(), **options), win


@bp.get("")
def overview() -> str:
    return dashboard_views.overview(report)


@bp.get("/<any(funnel, sources, deliveries, journeys, reps, tags):name>")
def page(name: str) -> str:
    return dashboard_views.PAGES[name](report)


@bp.get("/<any(funnel, sources, deliveries, journeys, reps, tags):name>.csv")
def page_csv(name: str) -> Response:
    data, _ = report(name)
    headers = {"Content-Disposition": f'attachment; filename="{name}.csv"'}
    return Response(reports.csv_text(data), mimetype="text/csv", headers=headers)


# --- a follower ----------------------------------------------------------------------------------------------------


@bp.get("/followers")
def find_follower() -> Response:
    openid = request.args.get("openid", "").strip()
    if not openid or len(openid) > 64:
        abort(400, "Give an openid (or WeCom external_userid), at most 64 characters.")
    return redirect(url_for(".follower", openid=openid), 303)


@bp.get("/followers/<openid>")
def follower(openid: str) -> str:
    """Profile, tags, score explained and timeline: what /api/v1/followers/<openid>, /score and /timeline answer."""
    with services().db.sessions() as s:
        found = followers.find(s, openid)
        if found is None or not access.can_see(s, viewer(), found):
            abort(404, f"There is no follower {openid!r} you may see.")
        doc = followers.serialize(s, [found])[0]
        score = score_totals.explain(s, found.id, limit=50)
        timeline = followers.timeline(s, found, 50, None)
    return render_template("dashboard/follower.html", f=doc, score=score, timeline=timeline, model=_model(doc))


def _model(doc: dict[str, Any]) -> str:
    scores = doc.get("scores") or {}
    return next((m for m, v in scores.items() if v == doc.get("score")), next(iter(scores), ""))


# --- rendering -----------------------------------------------------------------------------------------------------


@bp.errorhandler(HTTPException)
def _error(exc: HTTPException) -> tuple[str, int]:
    code = exc.code or 500
    return render_template("dashboard/error.html", code=code, title=TITLES.get(code, exc.name),
                           message=exc.description), code  # fmt: skip


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


@bp.context_processor
def _context() -> dict[str, Any]:
    return {"viewer": g.get("viewer"), "csrf_token": session.get("csrf", ""), "args": request.args,
            "duration": duration}  # fmt: skip


def duration(seconds: float | None) -> str:
    """Seconds as a person reads them: `45 s`, `12 min`, `3.5 h`, `2.1 d`; `—` for none."""
    if seconds is None:
        return "—"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            value = seconds / size
            return f"{value:.0f} {unit}" if value >= 10 or value.is_integer() else f"{value:.1f} {unit}"
    return f"{seconds:.0f} s"
