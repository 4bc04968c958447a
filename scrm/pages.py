"""Landing pages and share attribution.

Every visitor's copy of a page carries their own share token (`?s=`): a signed key of who they are (a follower's
openid when WeLead knows them, else a random key kept in a cookie). A visit through someone's token is a
`page_visits` row crediting that sharer; when the sharer is a known follower it is also a `shared_visit`
interaction on their timeline (applied by the applier like any other). A chain A → B → C credits A with B's visit
and B with C's. `shares()` answers who shared, how many opened, and how many of those followed or left details.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from foundation.clock import utcnow
from foundation.db import Database
from scrm.accept import insert, page_row, playbook_version
from scrm.link_models import Page, PageLead, PageVisit
from scrm.link_sign import LinkSigner
from scrm.links import LinkInvalid, check_url
from scrm.models import Follower

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
FIELD = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_BODY, MAX_FIELDS, MAX_VALUE = 5_000, 8, 500  # a phone page; the largest valid page fits the 64 KiB body cap
SHARED, VIEWED, FORM = "shared_visit", "page_view", "page_form"


def _text(value: Any, name: str, limit: int, required: bool = False) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > limit:
        raise LinkInvalid(f"{name}: {'required, ' if required else ''}text of at most {limit} characters")
    return value


def _button(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"text", "url"}:
        raise LinkInvalid('button: {"text": ..., "url": ...}')
    return {"text": _text(value.get("text"), "button.text", 40, True), "url": check_url(value.get("url"))}


def _form(value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not 0 < len(value) <= MAX_FIELDS or len(set(value)) != len(value):
        raise LinkInvalid(f"form: a list of 1-{MAX_FIELDS} distinct field names")
    for name in value:
        if not isinstance(name, str) or not FIELD.match(name):
            raise LinkInvalid(f"form: {name!r} is not a field name (a-z, 0-9, _; 32 characters at most)")
    return value


def create(session: Session, body: dict[str, Any]) -> Page:
    slug = body.get("slug")
    if not isinstance(slug, str) or not SLUG.match(slug):
        raise LinkInvalid("slug: 1-64 lower-case letters, digits and -")
    if session.scalar(select(Page.id).where(Page.slug == slug)) is not None:
        raise LinkInvalid(f"slug: a page {slug!r} exists")
    image = body.get("image")
    page = Page(slug=slug, title=_text(body.get("title"), "title", 128, True),
                body=_text(body.get("body"), "body", MAX_BODY), image=check_url(image) if image else None,
                button=_button(body.get("button")), form=_form(body.get("form")))  # fmt: skip
    session.add(page)
    session.flush()
    return page


def describe(page: Page, public_url: str) -> dict[str, Any]:
    return {"id": page.id, "slug": page.slug, "title": page.title, "body": page.body, "image": page.image,
            "button": page.button, "form": page.form, "url": f"{public_url.rstrip('/')}/p/{page.slug}",
            "created_at": page.created_at.isoformat() + "Z"}  # fmt: skip


def by_slug(session: Session, slug: str) -> Page | None:
    return session.scalar(select(Page).where(Page.slug == slug))


# --- visitors and shares ---------------------------------------------------------------------------------------------


def visitor_key(openid: str | None, cookie_key: str | None) -> str:
    """A follower's key is derived from their openid (the same on every device); anyone else's is random."""
    if openid:
        return "o" + hashlib.sha256(f"welead-page-visitor:{openid}".encode()).hexdigest()[:24]
    return cookie_key if cookie_key and re.fullmatch(r"v[0-9a-f]{24}", cookie_key) else new_key()


def new_key() -> str:
    return "v" + secrets.token_hex(12)


def share_token(signer: LinkSigner, key: str, openid: str | None) -> str:
    return signer.sign("share", {"k": key, **({"o": openid} if openid else {})})


def read_share(signer: LinkSigner, token: str | None) -> tuple[str, str | None] | None:
    data = signer.load("share", token)
    if not data or not isinstance(data.get("k"), str):
        return None
    openid = data.get("o")
    return data["k"], openid if isinstance(openid, str) and openid else None


def visit(db: Database, page: Page, key: str, openid: str | None, sharer: tuple[str, str | None] | None,
          carrier: dict[str, Any] | None = None) -> None:  # fmt: skip
    """Record one open: the visit row; for a follower, a `page_view` on their timeline (with what carried the URL);
    through someone else's share, a `shared_visit` crediting a known sharer. One short write transaction."""
    if sharer is not None and sharer[0] == key:
        sharer = None  # opening one's own copy is no share
    now = utcnow()
    row = {"page_id": page.id, "visitor": key, "openid": openid, "sharer": sharer[0] if sharer else None,
           "sharer_openid": sharer[1] if sharer else None, "at": now}  # fmt: skip
    credits = []
    if openid:
        shared_by = {"sharer": sharer[1]} if sharer and sharer[1] else {}
        credits.append((VIEWED, openid, {"page": page.slug, "carrier": carrier or {}, **shared_by}))
    if sharer and sharer[1]:
        credits.append((SHARED, sharer[1], {"page": page.slug, "visitor": openid, "visitor_key": key}))
    version = playbook_version(db) if credits else None
    with db.write() as conn:
        conn.execute(PageVisit.__table__.insert(), row)
        for kind, who, payload in credits:
            insert(conn, page_row(kind, who, page.slug, payload, now, version))


def leave_details(db: Database, page: Page, key: str, openid: str | None, form: dict[str, str]) -> bool:
    """A visitor's answers to the page's form; False when a required field is empty. A follower's answers are also
    a `page_form` interaction in the same transaction: the applier raises `form_submitted` (form `page:<slug>`)."""
    fields = {name: (form.get(name) or "").strip()[:MAX_VALUE] for name in page.form or []}
    if not fields or not all(fields.values()):
        return False
    now, version = utcnow(), playbook_version(db) if openid else None
    with db.write() as conn:
        conn.execute(PageLead.__table__.insert(), {"page_id": page.id, "visitor": key, "openid": openid,
                                                   "fields": fields, "at": now})  # fmt: skip
        if openid:
            insert(conn, page_row(FORM, openid, page.slug, {"page": page.slug, "fields": fields}, now, version))
    return True


def shares(session: Session, page: Page) -> list[dict[str, Any]]:
    """Per sharer: visitors who opened their copy, how many of those follow the account, how many left details."""
    v, f, lead = PageVisit.__table__.c, Follower.__table__.c, PageLead.__table__.c
    opened = (select(v.sharer, func.max(v.sharer_openid).label("sharer_openid"), v.visitor,
                     func.max(v.openid).label("openid"), func.count().label("visits"))
              .where(v.page_id == page.id, v.sharer.is_not(None)).group_by(v.sharer, v.visitor).subquery())  # fmt: skip
    followed = select(f.id).where(f.openid == opened.c.openid, f.subscribed.is_(True)).exists()
    left = select(lead.id).where(and_(lead.page_id == page.id, lead.visitor == opened.c.visitor)).exists()
    query = select(
        opened.c.sharer, func.max(opened.c.sharer_openid), func.count(), func.sum(opened.c.visits),
        func.count().filter(followed), func.count().filter(left),
    ).group_by(opened.c.sharer).order_by(func.count().desc(), opened.c.sharer)  # fmt: skip
    return [{"sharer": key, "openid": openid, "opened": int(n), "visits": int(visits or 0),
             "followed": int(fol), "left_details": int(lft)}
            for key, openid, n, visits, fol, lft in session.execute(query)]  # fmt: skip


def totals(session: Session, page: Page) -> dict[str, int]:
    v = PageVisit.__table__.c
    row = session.execute(
        select(func.count(), func.count(v.visitor.distinct()), func.count().filter(v.sharer.is_not(None)))
        .where(v.page_id == page.id)
    ).one()  # fmt: skip
    leads = session.scalar(select(func.count()).select_from(PageLead).where(PageLead.page_id == page.id))
    return {"visits": int(row[0]), "visitors": int(row[1]), "shared_visits": int(row[2]), "leads": int(leads or 0)}
