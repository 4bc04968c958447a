"""Bearer tokens for the admin API: stored as SHA-256, scoped by role (admin, marketer, staff, rep)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from apiflask import HTTPTokenAuth
from sqlalchemy import select
from sqlalchemy.orm import Session

from foundation.db import Database
from foundation.services import services
from scrm.models import ApiToken

ROLES = ("admin", "marketer", "staff", "rep")
auth = HTTPTokenAuth(scheme="Bearer", security_scheme_name="BearerAuth")


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    subject: str | None


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@auth.verify_token
def _verify(token: str) -> Principal | None:
    if not token:
        return None
    with services().db.sessions() as session:
        row = session.scalar(
            select(ApiToken).where(ApiToken.token_hash == digest(token), ApiToken.revoked_at.is_(None))
        )
        return Principal(row.name, row.role, row.subject) if row else None


@auth.error_processor
def _unauthorized(error):
    return {"error": "unauthorized", "message": "missing or invalid bearer token"}, 401


def issue(session: Session, name: str, role: str, subject: str | None = None, token: str | None = None) -> str:
    """Create (or rotate) the named token and return it in clear, the only time it is seen."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    token = token or secrets.token_urlsafe(32)
    row = session.scalar(select(ApiToken).where(ApiToken.name == name))
    if row is None:
        row = ApiToken(name=name, role=role)
        session.add(row)
    row.role, row.subject, row.token_hash, row.revoked_at = role, subject, digest(token), None
    return token


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
