"""Versioned journey definitions: a playbook load stores each journey whose definition changed as its next version;
runs reference the version they started on, and read its steps from here, never from the active playbook."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from foundation.clock import utcnow
from scrm.journey_models import JourneyVersion
from scrm.playbook.grammar import Journey, Playbook

_V = JourneyVersion.__table__.c


def spec_of(journey: Journey) -> dict[str, Any]:
    return journey.model_dump(mode="json", by_alias=True, exclude_defaults=True)


def _checksum(spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def latest(session: Session, name: str) -> tuple[int, str] | None:
    """(version, checksum) of the newest definition of `name`."""
    row = session.execute(
        select(_V.version, _V.checksum).where(_V.journey == name).order_by(_V.version.desc()).limit(1)
    ).first()
    return (row.version, row.checksum) if row else None


def ensure(
    session: Session, name: str, journey: Journey, playbook_version: int | None = None, now: datetime | None = None
) -> int:
    """The version number of this definition: the newest one when it is the same, else a new version."""
    spec = spec_of(journey)
    digest = _checksum(spec)
    found = latest(session, name)
    if found is not None and found[1] == digest:
        return found[0]
    number = (found[0] if found else 0) + 1
    session.add(JourneyVersion(journey=name, version=number, checksum=digest, spec=spec,
                               playbook_version=playbook_version, created_at=now or utcnow()))  # fmt: skip
    session.flush()
    return number


def record(session: Session, book: Playbook, playbook_version: int) -> dict[str, int]:
    """Called by a playbook load: the current version of each of its journeys (new ones stored)."""
    return {name: ensure(session, name, journey, playbook_version) for name, journey in book.journeys.items()}


@lru_cache(maxsize=256)
def _parse(text: str) -> Journey:
    return Journey.model_validate(json.loads(text))


def definition(session: Session, name: str, version: int) -> Journey | None:
    """The steps a run of `version` follows (parsed once per process per definition)."""
    spec = session.scalar(select(_V.spec).where(_V.journey == name, _V.version == version))
    return _parse(json.dumps(spec, sort_keys=True)) if spec is not None else None


def versions(session: Session, name: str | None = None) -> list[dict[str, Any]]:
    query = select(_V.journey, _V.version, _V.playbook_version, _V.created_at).order_by(_V.journey, _V.version)
    if name is not None:
        query = query.where(_V.journey == name)
    return [dict(r._mapping) for r in session.execute(query)]


def names(session: Session) -> list[str]:
    return list(session.scalars(select(_V.journey).group_by(_V.journey).order_by(_V.journey)))


def newest(session: Session, name: str) -> int | None:
    return session.scalar(select(func.max(_V.version)).where(_V.journey == name))
