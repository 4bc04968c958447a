"""The staff's live page of an event, `/events/<slug>/live`: the figures of GET /api/v1/events/<slug>/stats on a
phone-sized page that reloads itself (a meta refresh: no script, no CDN).

Who may look: a signed link (`?t=`, from `flask event live-link` or GET /api/v1/events/<slug>/live-link, valid
LINK_DAYS) or a bearer token that may read the event (admin, marketer, that event's staff). The page shows counts
only, no names or numbers, so a link forwarded within the team leaks no lead.
"""

from __future__ import annotations

from apiflask import APIBlueprint
from flask import Response, abort, render_template, request

from foundation.clock import utcnow
from foundation.config import ROOT
from foundation.services import services
from foundation.signing import LinkError
from scrm import event_stats, events
from scrm.hours import local
from welead.auth import _verify

bp = APIBlueprint("event_pages", __name__, url_prefix="/events", template_folder=str(ROOT / "templates"),
                  enable_openapi=False)  # fmt: skip
PURPOSE = "event-live"
LINK_DAYS = 30
REFRESH_SECONDS = 15
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
}


def link(slug: str) -> str:
    """The signed URL of the live page."""
    svc = services()
    token = svc.signer.sign(PURPOSE, slug)
    return f"{svc.settings.public_url.rstrip('/')}/events/{slug}/live?t={token}"


def _allowed(slug: str) -> bool:
    token = request.args.get("t")
    if token is not None:
        try:
            return services().signer.load(PURPOSE, token, max_age=LINK_DAYS * 86400) == slug
        except LinkError:
            return False
    header = request.headers.get("Authorization", "")
    who = _verify(header.removeprefix("Bearer ").strip()) if header.startswith("Bearer ") else None
    return who is not None and (who.role in ("admin", "marketer") or (who.role == "staff" and who.subject == slug))


@bp.get("/<slug>/live")
def live(slug: str) -> Response:
    if not _allowed(slug):
        abort(403)
    with services().db.sessions() as session:
        event = events.find(session, slug)
        if event is None:
            abort(404)
        figures = event_stats.stats(session, event)
    peak = max([c for b in figures["booths"] for c in b["by_hour"].values()] or [1])
    html = render_template("events/live.html", event=event, stats=figures, peak=peak, refresh=REFRESH_SECONDS,
                           now=local(utcnow()).strftime("%H:%M:%S"))  # fmt: skip
    return Response(html, mimetype="text/html", headers=HEADERS)
