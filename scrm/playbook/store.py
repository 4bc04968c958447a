"""Playbook versions in the database: atomic, versioned loads, and the active version compiled once per process.

The highest version is the active one. Callbacks ask the database which version that is at most once a second per
process (`VERSION_TTL`; a load in the same process is seen at once) and reuse the compiled playbook cached under its
checksum: a load by any process is seen by all others within a second, and nothing is trusted from memory except a
compilation of text that is itself in the database. Whatever version decided a reply is stored with the interaction
and applied as it was (`at_version`), so the second costs consistency nothing.
"""

from __future__ import annotations

import hashlib
import logging
import time
import weakref
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, event, select
from sqlalchemy.orm import Session

from foundation.clock import iso, utcnow
from scrm import journey_defs, score_totals, scoring
from scrm.playbook.compiled import Compiled
from scrm.playbook.grammar import Playbook
from scrm.playbook.models import PlaybookVersion
from scrm.playbook.validate import PlaybookError, parse

log = logging.getLogger(__name__)
VERSION_TTL = 1.0
_LATEST_SEEN: weakref.WeakKeyDictionary[Engine, tuple[float, Any]] = weakref.WeakKeyDictionary()
_CACHE: dict[str, Compiled | None] = {}  # None: a stored text this release no longer accepts
_CACHE_MAX = 16
_P = PlaybookVersion.__table__.c
_LATEST = select(_P.version, _P.checksum).order_by(_P.version.desc()).limit(1)  # Core: runs on every callback
_VERSION = select(_P.checksum).where(_P.version == bindparam("version"))
_SOURCE = select(_P.source).where(_P.version == bindparam("version"))


def checksum(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()


def load(
    session: Session, source: str, by: str | None = None, now: datetime | None = None, book: Playbook | None = None
) -> PlaybookVersion:
    """Store `source` as the new active version, in the caller's transaction (all or nothing).

    Pass `book`, what `parse(source)` returned, to validate before the transaction: parsing takes milliseconds to
    seconds and must not hold the database's write lock (callbacks wait behind it); without it the text is parsed
    here. Raises PlaybookError and stores nothing when the text is invalid. A text identical to the active
    version's is valid and changes nothing: that version is returned as it is (`unchanged` tells the caller
    beforehand). A model whose half-life changed gets its running totals recomputed from the score events, so
    scores stay exact.
    """
    book = book or parse(source)
    same = unchanged(session, source)
    if same is not None:
        return same
    latest = session.execute(_LATEST).first()
    row = PlaybookVersion(
        version=(latest.version + 1) if latest else 1,
        name=book.name,
        checksum=checksum(source),
        source=source,
        spec=book.model_dump(mode="json", by_alias=True, exclude_defaults=True),
        created_at=utcnow(),
        created_by=by,
    )
    session.add(row)
    session.flush()
    journey_defs.record(session, book, row.version)  # runs finish on the version they started (scrm.journey_defs)
    event.listen(session, "after_commit", lambda _s: _LATEST_SEEN.clear(), once=True)
    for name, model in book.models.items():
        half_life = scoring.half_life_seconds(model.half_life_days)
        if score_totals.needs_rebase(session, name, half_life):
            score_totals.rebase(session, name, half_life, now)
    return row


def unchanged(session: Session, source: str) -> PlaybookVersion | None:
    """The active version when `source` is exactly its text: loading it again would only add a duplicate version."""
    latest = session.execute(_LATEST).first()
    if latest is None or latest.checksum != checksum(source):
        return None
    return session.get(PlaybookVersion, latest.version)


def active(session: Session) -> Compiled | None:
    """The compiled active playbook, or None when none was ever loaded."""
    found = current(session.connection())
    return found[1] if found else None


def current(conn: Connection) -> tuple[int, Compiled] | None:
    """(version, compiled) of the active playbook: one primary-key read at most every VERSION_TTL seconds per
    process and database, compiled once per process per checksum."""
    now = time.monotonic()
    seen = _LATEST_SEEN.get(conn.engine)
    if seen is None or now - seen[0] > VERSION_TTL:
        seen = _LATEST_SEEN[conn.engine] = (now, conn.execute(_LATEST).first())
    latest = seen[1]
    compiled = _compiled(conn, latest.version, latest.checksum) if latest is not None else None
    return (latest.version, compiled) if compiled is not None else None


def at_version(conn: Connection, number: int) -> Compiled | None:
    """The compiled playbook of one version: the applier applies the version that decided the reply."""
    row = conn.execute(_VERSION, {"version": number}).first()
    return _compiled(conn, number, row.checksum) if row else None  # None too when this release refuses it


def _compiled(conn: Connection, number: int, digest: str) -> Compiled | None:
    if digest not in _CACHE:
        source = conn.execute(_SOURCE, {"version": number}).scalar()
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[digest] = _compile(number, source or "", digest)
    return _CACHE[digest]


def _compile(number: int, source: str, digest: str) -> Compiled | None:
    """A stored version compiled; None (logged) when this release refuses its text, e.g. a backtracking regex or a
    NaN threshold loaded before they were refused: callbacks are then answered and applied without rules until a
    fixed playbook is loaded, rather than failing every one of them."""
    try:
        return Compiled(parse(source), digest)
    except PlaybookError as exc:
        log.error("playbook version %d is no longer valid, running without rules; load a fixed one: %s", number,
                  "; ".join(exc.errors))  # fmt: skip
        return None


def active_book(session: Session) -> Playbook | None:
    compiled = active(session)
    return compiled.book if compiled else None


def version(session: Session, number: int | None = None) -> PlaybookVersion | None:
    """One version (default: the active one)."""
    query = select(PlaybookVersion)
    query = query.where(PlaybookVersion.version == number) if number else query.order_by(PlaybookVersion.version.desc())
    return session.scalar(query.limit(1))


def versions(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(
        select(
            PlaybookVersion.version,
            PlaybookVersion.name,
            PlaybookVersion.checksum,
            PlaybookVersion.created_at,
            PlaybookVersion.created_by,
        ).order_by(PlaybookVersion.version.desc())
    )
    return [summary(r) for r in rows]


def summary(row: Any) -> dict[str, Any]:
    return {
        "version": row.version,
        "name": row.name,
        "checksum": row.checksum,
        "created_at": iso(row.created_at),
        "created_by": row.created_by,
    }


def describe(row: PlaybookVersion, active_version: int | None) -> dict[str, Any]:
    return {**summary(row), "active": row.version == active_version, "source": row.source, "spec": row.spec}


def empty(session: Session) -> bool:
    return session.execute(_LATEST).first() is None
