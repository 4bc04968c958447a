"""Events and their booths: the rules for creating and changing them, shared by the admin API and `flask event`.

Slugs become QR scenes (`booth:<event>:<booth>`, ≤ 64 characters for WeChat) and tags, so they are short ASCII
words. A booth's `reply` is a passive reply as the playbook writes them: {"text": ...} or {"articles": [...]}; None
answers with templates/events/booth.txt. Temporary codes live until the event ends, and WeChat allows 30 days at
most: `code_plan` says how long a code made now lives, or why none can be made.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from foundation.clock import iso, utcnow
from scrm.event_models import Booth, Event

SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,23}")
SLUG_HELP = "1-24 characters: letters, digits, '-' or '_', starting with a letter or digit"
CODE_KINDS = ("temporary", "permanent")
NAME_MAX, TEXT_MAX, ARTICLES_MAX = 128, 2000, 8
QR_MAX_DAYS = 30  # WeChat's limit for a temporary code
ARTICLE_FIELDS = ("title", "description", "url", "image")


class EventError(ValueError):
    """A change the rules refuse; `status` is the HTTP status the API answers (400, 404, 409)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def slug_of(value: Any, what: str) -> str:
    if not isinstance(value, str) or not SLUG.fullmatch(value):
        raise EventError(f"{what} slug {str(value)[:40]!r} is not valid: {SLUG_HELP}")
    return value


def when(value: Any, what: str) -> datetime:
    """An ISO 8601 date-time; an aware one is converted to naive UTC like the schema's."""
    if isinstance(value, datetime):
        at = value
    else:
        try:
            at = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise EventError(f"{what} must be an ISO 8601 date-time, e.g. 2026-05-20T09:00:00+08:00") from None
    if at.tzinfo is not None:
        at = at.astimezone(UTC).replace(tzinfo=None)
    return at


def reply_of(value: Any) -> dict[str, Any] | None:
    """A booth reply checked: {"text": "..."} or {"articles": [{title, description, url, image}]} (≤ 8)."""
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in ("text", "articles", "news"):
        raise EventError('reply must be {"text": "..."} or {"articles": [{"title", "description", "url"}]}')
    if "text" in value:
        text = value["text"]
        if not isinstance(text, str) or not 0 < len(text) <= TEXT_MAX:
            raise EventError(f"reply text must be 1-{TEXT_MAX} characters")
        return {"text": text}
    articles = value.get("articles", value.get("news"))
    if not isinstance(articles, list) or not 0 < len(articles) <= ARTICLES_MAX:
        raise EventError(f"reply articles must be a list of 1-{ARTICLES_MAX} articles")
    return {"articles": [_article(a) for a in articles]}


def _article(item: Any) -> dict[str, str]:
    if not isinstance(item, dict) or not isinstance(item.get("title"), str) or set(item) - set(ARTICLE_FIELDS):
        raise EventError(f"an article has a title and optionally {', '.join(ARTICLE_FIELDS[1:])}")
    out = {f: item.get(f) or "" for f in ARTICLE_FIELDS}
    if any(not isinstance(v, str) or len(v) > 1024 for v in out.values()):
        raise EventError("article fields are text of at most 1024 characters")
    return out


def _name(value: Any, default: str) -> str:
    if value is None:
        return default
    if not isinstance(value, str) or len(value) > NAME_MAX:
        raise EventError(f"name must be text of at most {NAME_MAX} characters")
    return value


def find(session: Session, slug: str) -> Event | None:
    return session.scalar(select(Event).where(Event.slug == slug)) if SLUG.fullmatch(slug or "") else None


def get(session: Session, slug: str) -> Event:
    found = find(session, slug)
    if found is None:
        raise EventError(f"no event {slug[:40]!r}", 404)
    return found


def create(session: Session, body: dict[str, Any]) -> Event:
    """A new event (409 when the slug is taken), with the booths the body lists."""
    slug = slug_of(body.get("slug"), "event")
    if find(session, slug) is not None:
        raise EventError(f"event {slug!r} exists already", 409)
    event = Event(slug=slug, name=_name(body.get("name"), slug), code_kind="temporary", created_at=utcnow())
    _apply(event, {k: v for k, v in body.items() if k not in ("slug", "name", "booths")}, new=True)
    session.add(event)
    session.flush()
    for booth in body.get("booths") or []:
        add_booth(session, event, booth)
    return event


def update(session: Session, event: Event, body: dict[str, Any]) -> Event:
    if "slug" in body and body["slug"] != event.slug:
        raise EventError("an event's slug cannot change: its codes carry it")
    if "name" in body:
        event.name = _name(body["name"], event.slug)
    _apply(event, {k: v for k, v in body.items() if k not in ("slug", "name")}, new=False)
    event.updated_at = utcnow()
    return event


def _apply(event: Event, body: dict[str, Any], new: bool) -> None:
    unknown = set(body) - {"starts_at", "ends_at", "code_kind", "form"}
    if unknown:
        raise EventError(f"unknown field(s): {', '.join(sorted(unknown))}")
    if new and not {"starts_at", "ends_at"} <= set(body):
        raise EventError("starts_at and ends_at are required")
    if "starts_at" in body:
        event.starts_at = when(body["starts_at"], "starts_at")
    if "ends_at" in body:
        event.ends_at = when(body["ends_at"], "ends_at")
    if event.ends_at <= event.starts_at:
        raise EventError("ends_at must be after starts_at")
    if "code_kind" in body:
        if body["code_kind"] not in CODE_KINDS:
            raise EventError(f"code_kind must be one of {', '.join(CODE_KINDS)}")
        event.code_kind = body["code_kind"]
    if "form" in body:
        if body["form"] is not None and not isinstance(body["form"], dict):
            raise EventError("form must be an object (or null for the default name, company, mobile)")
        event.form = body["form"]


def booths(session: Session, event: Event) -> list[Booth]:
    return list(session.scalars(select(Booth).where(Booth.event_id == event.id).order_by(Booth.id)))


def booth(session: Session, event: Event, slug: str) -> Booth:
    found = session.scalar(select(Booth).where(Booth.event_id == event.id, Booth.slug == slug))
    if found is None:
        raise EventError(f"no booth {slug[:40]!r} at event {event.slug!r}", 404)
    return found


def add_booth(session: Session, event: Event, body: dict[str, Any]) -> Booth:
    slug = slug_of(body.get("slug") if isinstance(body, dict) else None, "booth")
    if session.scalar(select(Booth.id).where(Booth.event_id == event.id, Booth.slug == slug)) is not None:
        raise EventError(f"booth {slug!r} exists already at event {event.slug!r}", 409)
    found = Booth(event_id=event.id, slug=slug, name=slug, created_at=utcnow(), updated_at=utcnow())
    update_booth(found, {k: v for k, v in body.items() if k != "slug"})
    session.add(found)
    session.flush()
    event.updated_at = utcnow()
    return found


def update_booth(found: Booth, body: dict[str, Any]) -> Booth:
    unknown = set(body) - {"name", "reply", "slug"}
    if unknown:
        raise EventError(f"unknown booth field(s): {', '.join(sorted(unknown))}")
    if "slug" in body and body["slug"] != found.slug:
        raise EventError("a booth's slug cannot change: its codes carry it")
    if "name" in body:
        found.name = _name(body["name"], found.slug)
    if "reply" in body:
        found.reply = reply_of(body["reply"])
    found.updated_at = utcnow()
    return found


def code_plan(event: Event, now: datetime | None = None) -> int | None:
    """Seconds a temporary code made now lives (None: permanent), or EventError 409 saying why none can be made."""
    if event.code_kind == "permanent":
        return None
    now = now or utcnow()
    left = event.ends_at - now
    if left <= timedelta(0):
        raise EventError(f"event {event.slug!r} has ended: a temporary code would be dead on arrival", 409)
    if left > timedelta(days=QR_MAX_DAYS):
        first = iso(event.ends_at - timedelta(days=QR_MAX_DAYS))
        raise EventError(
            f"event {event.slug!r} ends in {left.days} days and WeChat's temporary codes live {QR_MAX_DAYS} days at"
            f" most: make the codes from {first} on, or PATCH code_kind to permanent (counts against the"
            " account's 100,000 permanent codes)",
            409,
        )
    return int(left.total_seconds())


def scene(kind: str, event: Event, found: Booth) -> str:
    return f"{kind}:{event.slug}:{found.slug}"


def describe_booth(event: Event, found: Booth) -> dict[str, Any]:
    return {
        "slug": found.slug,
        "name": found.name,
        "reply": found.reply,
        "scene": scene("booth", event, found),
        "staff_scene": scene("staff", event, found),
        "codes": {
            "booth_url": found.booth_url,
            "staff_url": found.staff_url,
            "expires_at": iso(found.codes_expire_at),
            "complete": bool(found.booth_url and found.staff_url),
            "error": found.codes_error,
        },
    }


def describe(session: Session, event: Event) -> dict[str, Any]:
    return {
        "slug": event.slug,
        "name": event.name,
        "starts_at": iso(event.starts_at),
        "ends_at": iso(event.ends_at),
        "code_kind": event.code_kind,
        "form": event.form,
        "created_at": iso(event.created_at),
        "booths": [describe_booth(event, b) for b in booths(session, event)],
    }
