"""Making a booth's two OA codes (visitor `booth:<event>:<booth>`, staff `staff:<event>:<booth>`) when an admin
asks (`POST /api/v1/events`, `POST /api/v1/events/<slug>/codes`, `flask event codes`), synchronously, the way team
and rep codes are made (welead.code_making): one qrcode/create per missing code, each saved as soon as WeChat
answers, under a Redis lock per event so two requests never spend two permanent codes on one booth.

Temporary codes expire when the event ends (WeChat allows 30 days at most: scrm.events.code_plan refuses, with a
409 that says what to do, when the end is further away or past); permanent codes never expire and count against
the account's 100,000. `renew` makes every code again (after the event's end moved, or codes expired).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from foundation.clock import utcnow
from foundation.services import services
from scrm import event_pdf, events
from scrm.event_models import Booth, Event
from wechat.api import QR_MAX_EXPIRE, OAClient
from welead.rep_codes import CodeLock
from welead.rep_codes import call as call_wechat

LOCK = "welead:event-codes:"  # + event slug
BUSY = "this event's codes are being made by another request: ask again in a moment"
LABELS = {"booth": "扫码签到 Scan to check in", "staff": "工作人员码 Staff only"}
log = logging.getLogger(__name__)


def make(slug: str, renew: bool = False) -> int:
    """Make the event's missing codes (every code with `renew`): how many were made. EventError, CodeFailure."""
    with CodeLock(f"{LOCK}{slug}", BUSY):
        with services().db.sessions() as session:
            event = events.get(session, slug)
            todo = [(b.id, kind) for b in events.booths(session, event) for kind in ("booth", "staff")
                    if renew or not getattr(b, f"{kind}_url")]  # fmt: skip
        if todo:
            events.code_plan(event)  # refuses before any call when no code can be made
        for booth_id, kind in todo:
            _make_one(slug, booth_id, kind)
        return len(todo)


def _make_one(slug: str, booth_id: int, kind: str) -> None:
    db = services().db
    with db.sessions() as session:
        event = events.get(session, slug)
        booth = session.get(Booth, booth_id)
        assert booth is not None
        scene, seconds = events.scene(kind, event, booth), events.code_plan(event)
    made = call_wechat("qrcode/create", OAClient,
                       lambda c: c.create_qrcode(scene, permanent=seconds is None,
                                                 expire_seconds=seconds or QR_MAX_EXPIRE))  # fmt: skip
    with db.transaction() as session:
        booth = session.get(Booth, booth_id)
        assert booth is not None
        setattr(booth, f"{kind}_ticket", made["ticket"])
        setattr(booth, f"{kind}_url", made["url"])
        booth.codes_expire_at = utcnow() + timedelta(seconds=seconds) if seconds is not None else None
        booth.codes_error = None


def try_make(slug: str) -> None:
    """After a create: make what can be made; a refusal is kept on the booths (`codes.error`), not raised."""
    from welead.rep_codes import CodeFailure

    try:
        make(slug)
    except (events.EventError, CodeFailure) as exc:
        log.info("event %s: codes not made now: %s", slug, exc)
        with services().db.transaction() as session:
            for booth in events.booths(session, events.get(session, slug)):
                if not (booth.booth_url and booth.staff_url):
                    booth.codes_error = str(exc)[:255]


def cards(event: Event, booths: list[Booth]) -> list[event_pdf.Card]:
    """Visitor and staff card of every booth; EventError 409 naming the booths without codes."""
    missing = [b.slug for b in booths if not (b.booth_url and b.staff_url)]
    if missing:
        raise events.EventError(
            f"booths without codes: {', '.join(missing)}: POST /api/v1/events/{event.slug}/codes"
            f" (or `flask event codes {event.slug}`) makes them", 409)  # fmt: skip
    if not booths:
        raise events.EventError(f"event {event.slug!r} has no booths yet", 409)
    return [event_pdf.Card(b.name, event.name, LABELS[kind], str(getattr(b, f"{kind}_url")),
                           events.scene(kind, event, b))
            for b in booths for kind in ("booth", "staff")]  # fmt: skip


def pdf(slug: str, layout: str) -> bytes:
    with services().db.sessions() as session:
        event = events.get(session, slug)
        return event_pdf.render(cards(event, events.booths(session, event)), layout)


def describe(slug: str) -> dict[str, Any]:
    with services().db.sessions() as session:
        return events.describe(session, events.get(session, slug))
