"""Bearer tokens for the admin API: stored as SHA-256, scoped by role (admin, marketer, staff, rep), optionally
expiring, revocable.

A rep token's subject is the rep's id (a decimal string); a staff token's is an event slug. `issue` refuses any
other shape, so no read ever has to guess what a subject means; `resolve_subject` turns what a person types (a rep
id or a WeCom userid) into that form and refuses reps that do not exist.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from apiflask import HTTPTokenAuth
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from foundation.clock import iso, utcnow
from foundation.db import Database
from foundation.services import services
from scrm import access
from scrm.models import ApiToken, Rep

ROLES = ("admin", "marketer", "staff", "rep")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")
DURATION = re.compile(r"^([1-9][0-9]{0,4})([dhm])$")
UNITS = {"d": "days", "h": "hours", "m": "minutes"}
auth = HTTPTokenAuth(scheme="Bearer", security_scheme_name="BearerAuth")


class TokenError(ValueError):
    """A token that cannot be issued as asked; the message says why."""


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    subject: str | None

    @property
    def rep_id(self) -> int | None:
        """The rep a rep token speaks for (None for other roles)."""
        return access.rep_id(self.subject) if self.role == "rep" else None


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@auth.verify_token
def _verify(token: str) -> Principal | None:
    if not token:
        return None
    now = utcnow()
    with services().db.sessions() as session:
        row = session.scalar(
            select(ApiToken).where(
                ApiToken.token_hash == digest(token),
                ApiToken.revoked_at.is_(None),
                or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now),
            )
        )
        if row is None or not _scoped(row.role, row.subject):
            return None
        return Principal(row.name, row.role, row.subject)


def _scoped(role: str, subject: str | None) -> bool:
    """A rep or staff token whose subject names no rep id or event slug (one issued before subjects were
    checked, naming a userid no rep has) scopes nothing: it is refused rather than guessed at."""
    if role == "rep":
        return access.rep_id(subject) is not None
    return role != "staff" or access.event_slug(subject) is not None


@auth.error_processor
def _unauthorized(error):
    return {"error": "unauthorized", "message": "missing, invalid, expired or revoked bearer token", "detail": {}}, 401


def check_subject(role: str, subject: str | None) -> str | None:
    """The subject if its shape fits the role: a rep id for rep, an event slug for staff, none for the others."""
    if role not in ROLES:
        raise TokenError(f"role must be one of {', '.join(ROLES)}")
    if role == "rep" and access.rep_id(subject) is None:
        raise TokenError(f"a rep token's subject is the rep's id (a positive decimal number), not {subject!r}")
    if role == "staff" and access.event_slug(subject) is None:
        raise TokenError(f"a staff token's subject is an event slug (a-z, 0-9, '-', up to 64), not {subject!r}")
    if role in access.EVERYTHING and subject is not None:
        raise TokenError(f"{role} tokens see everything: they take no subject")
    return subject


def resolve_subject(session: Session, role: str, subject: str | None) -> str | None:
    """What a person typed, as the stored subject: for a rep, its id or WeCom userid becomes the id of a rep that
    exists (TokenError otherwise); other roles are only checked for shape."""
    if role != "rep" or subject is None:
        return check_subject(role, subject)
    rep = session.get(Rep, int(subject)) if access.rep_id(subject) is not None else None
    rep = rep or session.scalar(select(Rep).where(Rep.userid == subject))
    if rep is None:
        raise TokenError(f"no rep with id or WeCom userid {subject!r} (see `flask rep list`)")
    return str(rep.id)


def expiry(text: str | None, now: datetime | None = None) -> datetime | None:
    """`30d`, `12h`, `90m` from now (UTC), or None for `never` / nothing."""
    if text is None or text == "never":
        return None
    found = DURATION.fullmatch(text)
    if found is None:
        raise TokenError(f"--expires takes a duration such as 30d, 12h or 90m (up to 99999), or never; not {text!r}")
    return (now or utcnow()) + timedelta(**{UNITS[found.group(2)]: int(found.group(1))})


def issue(
    session: Session,
    name: str,
    role: str,
    subject: str | None = None,
    token: str | None = None,
    expires_at: datetime | None = None,
) -> str:
    """Create (or rotate) the named token and return it in clear, the only time it is seen."""
    if not NAME.fullmatch(name):
        raise TokenError(f"token name {name!r}: 1-128 letters, digits, '.', '_', '@', '-' (no spaces or ':')")
    subject = check_subject(role, subject)
    token = token or secrets.token_urlsafe(32)
    row = session.scalar(select(ApiToken).where(ApiToken.name == name))
    if row is None:
        row = ApiToken(name=name, role=role, created_at=utcnow())
        session.add(row)
    row.role, row.subject, row.token_hash, row.revoked_at = role, subject, digest(token), None
    row.expires_at = expires_at
    return token


def revoke(session: Session, name: str) -> bool:
    """Revoke the named token now; False when there is no such token or it was already revoked."""
    row = session.scalar(select(ApiToken).where(ApiToken.name == name))
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = utcnow()
    return True


def listing(session: Session, now: datetime | None = None) -> list[dict[str, Any]]:
    """Every token without its secret: name, role, subject, dates and its state (active, expired, revoked)."""
    now = now or utcnow()
    rows = session.scalars(select(ApiToken).order_by(ApiToken.name))
    return [
        {"name": t.name, "role": t.role, "subject": t.subject, "state": _state(t, now), "created_at": iso(t.created_at),
         "expires_at": iso(t.expires_at), "revoked_at": iso(t.revoked_at)}
        for t in rows
    ]  # fmt: skip


def _state(row: ApiToken, now: datetime) -> str:
    if row.revoked_at is not None:
        return "revoked"
    return "expired" if row.expires_at is not None and row.expires_at <= now else "active"


def ensure_admin(db: Database, configured: str, stored_file) -> str:
    """The bootstrap admin token: WELEAD_ADMIN_TOKEN if set, else one generated once and kept under instance/."""
    token = configured
    if not token:
        if stored_file.exists():
            token = stored_file.read_text().strip()
        else:
            token = secrets.token_urlsafe(32)
            stored_file.parent.mkdir(parents=True, exist_ok=True)
            stored_file.write_text(token + "\n")
            stored_file.chmod(0o600)
    with db.transaction() as session:
        issue(session, "bootstrap-admin", "admin", token=token)
    return token
