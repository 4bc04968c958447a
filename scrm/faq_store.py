"""The knowledge base in the database, versioned, and its retrieval index held in memory per process.

Every change is a new version with all its entries (the highest is active), written in one short transaction, so
a bad file changes nothing and the version a reply was decided with stays readable. Callbacks find the active
version at most once a second per process (`VERSION_TTL`): a Redis key that every load sets, or the database
when Redis has no answer, and rebuild the index only when it changed (scrm.faq_match, built outside any lock).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import redis
from sqlalchemy import Connection, bindparam, func, insert, select
from sqlalchemy.orm import Session

from foundation.clock import iso, utcnow
from scrm.faq_models import FaqEntry, FaqVersion
from scrm.faq_source import Entry

log = logging.getLogger(__name__)
VERSION_TTL = 1.0
VERSION_KEY = "welead:faq:version"
KEY_TTL = 60  # seconds: a version key left stale by a Redis hiccup during a load is read from the database again
_V, _E = FaqVersion.__table__.c, FaqEntry.__table__.c
_LATEST = select(func.max(_V.version))
_STAMP = select(_V.version, _V.checksum).order_by(_V.version.desc()).limit(1)
_ENTRIES = select(FaqEntry.__table__).where(_E.version == bindparam("version")).order_by(_E.position)
_LOCK = threading.Lock()
_SEEN: dict[str, tuple[float, str | None]] = {}  # database url -> (checked at, active version's stamp)
_BUILT: dict[tuple[str, str], Knowledge] = {}


@dataclass(frozen=True)
class Knowledge:
    """One FAQ version ready to answer: its entries by id and the retrieval index over them."""

    version: int
    entries: dict[str, Entry]
    index: Any  # scrm.faq_match.Index


def checksum(entries: list[Entry]) -> str:
    text = json.dumps([e.as_json() for e in entries], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def store(session: Session, entries: list[Entry], change: str, by: str | None = None) -> FaqVersion:
    """Store `entries` as the new active version in the caller's transaction (validated already: faq_source)."""
    latest = session.execute(_LATEST).scalar() or 0
    row = FaqVersion(version=latest + 1, checksum=checksum(entries), entries=len(entries), change=change[:160],
                     created_at=utcnow(), created_by=by)  # fmt: skip
    session.add(row)
    session.flush()
    if entries:
        session.execute(insert(FaqEntry.__table__), [_row(row.version, i, e) for i, e in enumerate(entries)])
    return row


def _row(version: int, position: int, e: Entry) -> dict[str, Any]:
    return {"version": version, "entry_id": e.id, "position": position, "questions": list(e.questions),
            "answer": e.answer, "tags": list(e.tags), "points": e.points, "extra": e.extra or None}  # fmt: skip


def announce(conn: redis.Redis | None, version: int, digest: str) -> None:
    """After commit: tell every process the new version (they would find it in the database within KEY_TTL)."""
    _SEEN.clear()
    if conn is None:
        return
    try:
        conn.set(VERSION_KEY, stamp_of(version, digest), ex=KEY_TTL)
    except (redis.RedisError, OSError):
        log.warning("FAQ version %d not announced in Redis; processes see it within %d s", version, KEY_TTL)


def latest(conn: Connection | Session) -> int | None:
    return conn.execute(_LATEST).scalar()


def entries(conn: Connection | Session, version: int) -> list[Entry]:
    return [
        Entry(r.entry_id, tuple(r.questions), r.answer, tuple(r.tags or ()), r.points, r.extra or {})
        for r in conn.execute(_ENTRIES, {"version": version})
    ]


def active_entries(session: Session) -> tuple[int | None, list[Entry]]:
    number = latest(session)
    return number, entries(session, number) if number else []


def version_row(session: Session, number: int) -> FaqVersion | None:
    return session.get(FaqVersion, number)


def versions(session: Session, limit: int = 100) -> list[dict[str, Any]]:
    rows = session.scalars(select(FaqVersion).order_by(FaqVersion.version.desc()).limit(limit))
    return [summary(r) for r in rows]


def summary(row: FaqVersion) -> dict[str, Any]:
    return {"version": row.version, "entries": row.entries, "change": row.change, "checksum": row.checksum,
            "created_at": iso(row.created_at), "created_by": row.created_by}  # fmt: skip


def empty(session: Session) -> bool:
    return latest(session) is None


# --- the request's view --------------------------------------------------------------------------------------
# A version is known by its stamp, "<version>:<checksum prefix>": a database emptied and loaded again (tests do it)
# reuses version numbers, never a stamp with the same entries' checksum.


def stamp_of(version: int, digest: str) -> str:
    return f"{version}:{digest[:16]}"


def _stamp(conn: Connection) -> str | None:
    row = conn.execute(_STAMP).first()
    return stamp_of(row.version, row.checksum) if row else None


def active_stamp(conn: Connection, fast: redis.Redis | None) -> str | None:
    """The active version's stamp: Redis's announcement or one database read, at most once a second per process."""
    url = str(conn.engine.url)
    now = time.monotonic()
    seen = _SEEN.get(url)
    if seen is not None and now - seen[0] <= VERSION_TTL:
        return seen[1]
    found = _announced(fast)
    if found is None:
        found = _stamp(conn)
        if found is not None and fast is not None:
            with suppress(redis.RedisError, OSError):
                fast.set(VERSION_KEY, found, ex=KEY_TTL, nx=True)
    _SEEN[url] = (now, found)
    return found


def _announced(fast: redis.Redis | None) -> str | None:
    if fast is None:
        return None
    try:
        raw = fast.get(VERSION_KEY)
    except (redis.RedisError, OSError):
        return None
    text = raw.decode() if isinstance(raw, bytes) else raw
    return text if text and text.split(":")[0].isdigit() else None


def knowledge(conn: Connection, fast: redis.Redis | None) -> Knowledge | None:
    """The active version's index (None: no FAQ loaded, or an empty one), built once per process and version."""
    found_stamp = active_stamp(conn, fast)
    if found_stamp is None:
        return None
    key = (str(conn.engine.url), found_stamp)
    found = _BUILT.get(key)
    if found is None:
        with _LOCK:  # one build per process, whatever the number of threads asking
            found = _BUILT.get(key)
            if found is None:
                number = int(found_stamp.split(":")[0])
                found = build(number, entries(conn, number))
                for old in [k for k in _BUILT if k[0] == key[0]]:
                    del _BUILT[old]
                _BUILT[key] = found
    return found if found.entries else None


def build(number: int, items: list[Entry]) -> Knowledge:
    from scrm import faq_match

    started = time.perf_counter()
    index = faq_match.Index.build([faq_match.Entry(e.id, tuple(e.questions), e.answer) for e in items])
    log.info("FAQ version %d: index of %d entries built in %.0f ms", number, len(items),
             (time.perf_counter() - started) * 1000)  # fmt: skip
    return Knowledge(number, {e.id: e for e in items}, index)
