"""Tracked links, their clicks, landing pages, page visits (with the share that brought them) and page leads.

A click is an interaction (`kind` link_click) recorded by the redirect with one insert; the applier writes the
`link_clicks` row from it, so counts and click-through are set-based reads of one table. Visitors nobody knows are
counted on the link (`anonymous_clicks`), never invented as followers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from foundation.clock import utcnow
from foundation.db import Base, BigId, Json


class Link(Base):
    """A registered target: the only places `/l/<code>` redirects to (no open redirect)."""

    __tablename__ = "links"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    url: Mapped[str] = mapped_column(Text)
    campaign: Mapped[str | None] = mapped_column(String(64), index=True)
    tags: Mapped[list[str]] = mapped_column(Json, default=list)
    points: Mapped[int | None]
    anonymous_clicks: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_by: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LinkClick(Base):
    """One attributed click, written by the applier from its interaction. `carrier`: what carried the link
    (`delivery`, `rule`, `oauth`, `cookie`); delivery and broadcast ids when a message did."""

    __tablename__ = "link_clicks"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    interaction_id: Mapped[int] = mapped_column(BigId, ForeignKey("interactions.id"), unique=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("links.id"))
    follower_id: Mapped[int] = mapped_column(BigId, ForeignKey("followers.id"))
    carrier: Mapped[str] = mapped_column(String(16))
    carrier_ref: Mapped[str | None] = mapped_column(String(128))  # the rule's name, the journey step...
    delivery_id: Mapped[int | None] = mapped_column(BigId)
    broadcast_id: Mapped[int | None] = mapped_column(Integer)
    at: Mapped[datetime]

    __table_args__ = (
        Index("ix_link_clicks_link", "link_id", "follower_id"),
        Index("ix_link_clicks_broadcast", "broadcast_id", "follower_id"),
        Index("ix_link_clicks_delivery", "delivery_id"),
    )


class Page(Base):
    """A phone-sized landing page served at /p/<slug>: title, body, image, and a button or a form."""

    __tablename__ = "pages"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(128))
    body: Mapped[str] = mapped_column(Text, default="")
    image: Mapped[str | None] = mapped_column(Text)
    button: Mapped[dict[str, Any] | None] = mapped_column(Json)  # {"text", "url"}
    form: Mapped[list[str] | None] = mapped_column(Json)  # field names the visitor fills in
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PageVisit(Base):
    """One open of a page. `visitor`: the visitor's own share key (a follower's openid-derived key, or a random
    one kept in a cookie); `sharer`: the key of whoever shared the copy that was opened (None: came directly)."""

    __tablename__ = "page_visits"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    page_id: Mapped[int] = mapped_column(ForeignKey("pages.id"))
    visitor: Mapped[str] = mapped_column(String(80))
    openid: Mapped[str | None] = mapped_column(String(64))
    sharer: Mapped[str | None] = mapped_column(String(80))
    sharer_openid: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_page_visits_page_sharer", "page_id", "sharer"),)


class PageLead(Base):
    """Details a visitor left through a page's form."""

    __tablename__ = "page_leads"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    page_id: Mapped[int] = mapped_column(ForeignKey("pages.id"))
    visitor: Mapped[str] = mapped_column(String(80))
    openid: Mapped[str | None] = mapped_column(String(64))
    fields: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_page_leads_page_visitor", "page_id", "visitor"),)
