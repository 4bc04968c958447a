"""Who sees which followers and saved segments: one SQL condition per role, so lists, counts and look-ups agree.

An admin or marketer sees everything. A rep sees the leads it owns. Staff see their event's visitors; until the
events work records check-ins, a visitor of event `<slug>` is a follower with an interaction whose scene is
`booth:<slug>:*` or `staff:<slug>:*` (`event_visitors`, the one place that says so). docs/roles.md has the table.
"""

from __future__ import annotations

import re
from typing import Protocol

from sqlalchemy import ColumnElement, exists, false, or_, select
from sqlalchemy.orm import Session

from scrm.models import Follower, Interaction
from scrm.playbook.models import Segment

EVERYTHING = ("admin", "marketer")
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
MAX_ID = 2**63 - 1


class Viewer(Protocol):
    """What a token says about its holder (welead.auth.Principal is one)."""

    @property
    def role(self) -> str: ...

    @property
    def subject(self) -> str | None: ...


def rep_id(subject: str | None) -> int | None:
    """The rep id a rep token's subject names (a decimal string), or None when it names none."""
    if subject is None or not (subject.isascii() and subject.isdigit()) or not 0 < int(subject) <= MAX_ID:
        return None
    return int(subject)


def event_slug(subject: str | None) -> str | None:
    """The event slug a staff token's subject names, or None when it is not a slug."""
    return subject if subject is not None and SLUG.fullmatch(subject) else None


def event_visitors(slug: str) -> ColumnElement[bool]:
    """Followers who visited event `slug`: scanned one of its booth or staff codes, or hold a check-in there (the
    check-ins migrated from `checkin:<event>:<booth>` tags have no scan behind them)."""
    from scrm.event_models import Checkin, Event

    scenes = or_(
        Interaction.scene.startswith(f"booth:{slug}:", autoescape=True),
        Interaction.scene.startswith(f"staff:{slug}:", autoescape=True),
    )
    checked_in = select(Checkin.follower_id).join(Event, Event.id == Checkin.event_id).where(Event.slug == slug)
    scanned = select(Interaction.follower_id).where(scenes, Interaction.follower_id.is_not(None))
    return or_(Follower.id.in_(scanned), Follower.id.in_(checked_in))


def visible_followers(viewer: Viewer) -> ColumnElement[bool] | None:
    """The condition on `followers` a viewer's reads add; None for roles that see everyone."""
    if viewer.role in EVERYTHING:
        return None
    if viewer.role == "rep" and (rep := rep_id(viewer.subject)) is not None:
        return Follower.owner_id == rep
    if viewer.role == "staff" and (slug := event_slug(viewer.subject)) is not None:
        return event_visitors(slug)
    return false()


def can_see(session: Session, viewer: Viewer, follower: Follower) -> bool:
    """Whether `follower` is one the viewer may read (one indexed probe for staff)."""
    condition = visible_followers(viewer)
    if condition is None:
        return True
    if viewer.role == "rep":
        return follower.owner_id is not None and follower.owner_id == rep_id(viewer.subject)
    return bool(session.scalar(select(exists().where(Follower.id == follower.id, condition))))


def creator(viewer: Viewer, name: str) -> str:
    """What `created_by` records for a saved segment: the token name, or `rep:<id>` / `staff:<slug>` for the
    scoped roles, so every token of one rep shares its segments (token names cannot contain ':')."""
    if viewer.role in EVERYTHING:
        return name
    return f"{viewer.role}:{viewer.subject}"


def can_see_segment(viewer: Viewer, segment: Segment) -> bool:
    """Admins and marketers see every saved segment; a rep or staff token only those saved under its own scope,
    since a filter can name leads (`openids`) and reps (`owner`) the viewer may not see."""
    return viewer.role in EVERYTHING or segment.created_by == creator(viewer, "")
