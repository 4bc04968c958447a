"""Tracked links: registering a target, the code → target cache the redirect reads, and what the API lists.

Only registered targets are ever redirected to (no open redirect), and only http(s) ones: `javascript:`, `data:`
and every other scheme are refused when the link is created.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from scrm.link_models import Link, LinkClick

CODE_ALPHABET = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 7
MAX_URL = 2048
NAME = re.compile(r"^[\w][\w .:/()-]{0,63}$")
_L = Link.__table__.c
_BY_CODE = select(_L.id, _L.url, _L.name, _L.campaign).where(_L.code == bindparam("code"))


class LinkInvalid(ValueError):
    """A link the API refuses (bad name, a target that is not http(s), a name taken)."""


@dataclass(frozen=True, slots=True)
class Target:
    id: int
    url: str
    name: str
    campaign: str | None


def check_url(url: Any) -> str:
    """An absolute http(s) URL with a host, no whitespace or control characters: anything else could be abused."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        raise LinkInvalid(f"url: an http(s) URL of at most {MAX_URL} characters is required")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise LinkInvalid("url: whitespace and control characters are not allowed")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or "\\" in url:
        raise LinkInvalid(f"url: only http(s) targets can be registered, not {parts.scheme or 'a relative URL'!r}")
    return url


def create(session: Session, name: str, url: str, *, campaign: str | None = None, tags: list[str] | None = None,
           points: int | None = None, by: str | None = None) -> Link:  # fmt: skip
    """Register a target under a fresh short code."""
    if not isinstance(name, str) or not NAME.match(name):
        raise LinkInvalid("name: 1-64 letters, digits, spaces or . : / ( ) - _")
    link = Link(name=name, url=check_url(url), campaign=campaign or None, tags=list(tags or []), points=points or None,
                created_by=by)  # fmt: skip
    if session.scalar(select(Link.id).where(Link.name == name)) is not None:
        raise LinkInvalid(f"name: a link named {name!r} exists")
    for _ in range(5):
        link.code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        try:
            with session.begin_nested():
                session.add(link)
                session.flush()
            return link
        except IntegrityError:  # a code (or, in a race, the name) taken
            session.expunge(link) if link in session else None
    raise LinkInvalid("could not allocate a code; try again")


def describe(link: Link, clicks: dict[int, tuple[int, int]], public_url: str) -> dict[str, Any]:
    total, unique = clicks.get(link.id, (0, 0))
    return {
        "id": link.id, "code": link.code, "name": link.name, "url": link.url, "campaign": link.campaign,
        "tags": link.tags, "points": link.points, "short_url": f"{public_url.rstrip('/')}/l/{link.code}",
        "clicks": total, "unique_clickers": unique, "anonymous_clicks": link.anonymous_clicks,
        "created_at": link.created_at.isoformat() + "Z",
    }  # fmt: skip


def listing(session: Session, public_url: str, campaign: str | None = None) -> list[dict[str, Any]]:
    query = select(Link).order_by(Link.id)
    if campaign:
        query = query.where(Link.campaign == campaign)
    links = list(session.scalars(query))
    counts = select(LinkClick.link_id, func.count(), func.count(LinkClick.follower_id.distinct())).group_by(
        LinkClick.link_id
    )
    clicks = {lid: (int(t), int(u)) for lid, t, u in session.execute(counts)}
    return [describe(link, clicks, public_url) for link in links]


def by_code(session: Session, code: str) -> Link | None:
    return session.scalar(select(Link).where(Link.code == code))


class Targets:
    """code → Target for the redirect: bounded (LRU), each entry re-read after `ttl` seconds (a link's target never
    changes, so this only bounds how long a removed row is still served), unknown codes remembered briefly so a
    scan of random codes costs one read per code per `miss_ttl`. Thread-safe; one per process."""

    def __init__(self, size: int = 10_000, ttl: float = 60.0, miss_ttl: float = 5.0) -> None:
        self.size, self.ttl, self.miss_ttl = size, ttl, miss_ttl
        self._items: OrderedDict[str, tuple[float, Target | None]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, conn: Any, code: str) -> Target | None:
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(code)
            if hit is not None and hit[0] > now:
                self._items.move_to_end(code)
                return hit[1]
        row = conn.execute(_BY_CODE, {"code": code}).first()
        found = Target(row.id, row.url, row.name, row.campaign) if row is not None else None
        with self._lock:
            self._items[code] = (now + (self.ttl if found else self.miss_ttl), found)
            self._items.move_to_end(code)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return found

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def codes_by_url(conn: Connection) -> dict[str, str]:
    """Registered target → code (the first link registered for it): how sent URLs are rewritten to /l/<code>."""
    out: dict[str, str] = {}
    for code, url in conn.execute(select(_L.code, _L.url).order_by(_L.id)):
        out.setdefault(url, code)
    return out
