"""Who may see what: the shared look-ups and permission checks the views use."""

from __future__ import annotations

from apiflask import abort
from sqlalchemy.orm import Session

from scrm import followers
from scrm.models import Follower
from welead.auth import Principal, auth


def principal() -> Principal:
    return auth.current_user


def bounded(value: int, low: int, high: int, name: str) -> int:
    """`value`, or 400 naming `name` and its bounds."""
    if not low <= value <= high:
        abort(400, f"{name} must be between {low} and {high}")
    return value


def require(*roles: str) -> Principal:
    """403 unless the caller has one of `roles` (admin always may)."""
    who = principal()
    if who.role != "admin" and who.role not in roles:
        abort(403, f"role {who.role!r} may not do this")
    return who


def get_follower(session: Session, openid: str) -> Follower:
    """The follower, or 404; a rep token sees only the leads it owns (404, not 403, to not leak existence)."""
    follower = followers.find(session, openid)
    who = principal()
    if follower is None or (who.role == "rep" and str(follower.owner_id) != (who.subject or "")):
        abort(404, f"no follower {openid!r}")
    return follower
