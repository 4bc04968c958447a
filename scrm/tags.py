"""Tags: created on first use, attached to followers idempotently (a retried write changes nothing).

Writes answer "did anything change?" so the playbook engine records a timeline entry and fires `tag_added` only for
a real change: that is what makes "tag added → add the same tag" terminate.

Removing a tag that had been mirrored to WeChat for the follower also queues a `TagRemoval` in the same transaction;
the sync job (tasks/tagsync.py) untags the follower in WeChat and deletes the row.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import BigInteger, DateTime, Engine, ForeignKey, bindparam, delete, event, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from foundation.clock import utcnow
from foundation.db import Base, BigId
from foundation.sql import insert_ignore
from scrm.models import FollowerTag, Tag

MAX_NAME = 64


class TagRemoval(Base):
    """A tag taken off a follower after it was mirrored to WeChat: the sync job untags them there, then deletes this.

    `wechat_tag_id` is the WeChat tag at removal time. Rows are not unique per (follower, tag): untagging twice is
    harmless, and the job deletes exactly the rows it handled.
    """

    __tablename__ = "tag_removals"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    follower_id: Mapped[int] = mapped_column(ForeignKey("followers.id"))
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id"))
    wechat_tag_id: Mapped[int]
    removed_at: Mapped[datetime] = mapped_column(default=utcnow)


# Core statements on the tables, built once and executed with parameters: on the callback path, building a
# statement (and the ORM's per-statement work) costs more than the SQL itself.
_T, _FT = Tag.__table__.c, FollowerTag.__table__.c
_ID = select(_T.id).where(_T.name == bindparam("name"))
_FOR_REMOVAL = select(_T.id, _T.wechat_tag_id).where(_T.name == bindparam("name"))
_REMOVE = (
    delete(FollowerTag.__table__)
    .where(_FT.follower_id == bindparam("fid"), _FT.tag_id == bindparam("tid"))
    .returning(_FT.synced_at)
)
_QUEUE_UNTAG = insert(TagRemoval.__table__)
_NAMES = select(_T.name).join_from(Tag.__table__, FollowerTag.__table__).where(_FT.follower_id == bindparam("fid"))


# Tag names known to exist, per engine (that is, per database and process). Nothing deletes or renames a tag, so
# knowing that a tag exists lets `add` conclude "the follower had it" from a missed insert without asking again. A
# name becomes known only when the transaction that saw it commits: a tag created by a transaction that rolled back
# (an applier batch with a poison interaction) does not exist. A database emptied under a running engine (only test
# fixtures do that, and they make a new app and engine) needs a new engine.
_KNOWN: weakref.WeakKeyDictionary[Engine, set[str]] = weakref.WeakKeyDictionary()
_KNOWN_MAX = 100_000


def _known(session: Session) -> set[str]:
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    known = _KNOWN.get(engine)
    if known is None or len(known) > _KNOWN_MAX:
        known = _KNOWN[engine] = set()
    return known


@dataclass(frozen=True, slots=True)
class Removed:
    """A tag taken off a follower; `wechat_tag_id` is set when the tag had been mirrored to WeChat for them."""

    tag_id: int
    wechat_tag_id: int | None


def tag_id(session: Session, name: str, *, create: bool = True) -> int | None:
    """The tag's id; with `create`, the tag is created on first use (race-safe: insert-or-ignore, then read)."""
    conn = session.connection()
    found = conn.execute(_ID, {"name": name}).scalar()
    if found is None and create:
        create_stmt = insert_ignore(session, Tag, ["name"], "id")
        found = conn.execute(create_stmt, {"name": name, "created_at": utcnow()}).scalar()
        if found is None:  # created concurrently
            found = conn.execute(_ID, {"name": name}).scalar()
    if found is not None:
        session.info.setdefault(_SEEN, set()).add(name)
    return found


_SEEN = "welead.tags.seen"


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    seen = session.info.pop(_SEEN, None)
    if seen:
        _known(session).update(seen)


@event.listens_for(Session, "after_rollback")
def _rolled_back(session: Session) -> None:
    session.info.pop(_SEEN, None)


@cache
def _attach(dialect: str, returning: bool = True) -> Any:
    """INSERT INTO follower_tags SELECT :fid, tags.id, :at FROM tags WHERE name = :name, ignoring a repeat."""
    source = select(bindparam("fid", type_=BigInteger), _T.id, bindparam("at", type_=DateTime)).where(
        _T.name == bindparam("name")
    )
    stmt = (postgresql if dialect == "postgresql" else sqlite).insert(FollowerTag.__table__)
    stmt = stmt.from_select(["follower_id", "tag_id", "added_at"], source)
    stmt = stmt.on_conflict_do_nothing(index_elements=["follower_id", "tag_id"])
    return stmt.returning(_FT.follower_id) if returning else stmt


def attach_many(session: Session, rows: list[dict[str, Any]]) -> None:
    """Tag many followers at once (`{"fid", "name", "at"}` each), creating the tags first: the applier's batch."""
    if not rows:
        return
    conn, known = session.connection(), _known(session)
    names = sorted({r["name"] for r in rows} - known)
    if names:
        now = utcnow()
        conn.execute(insert_ignore(session, Tag, ["name"]), [{"name": n, "created_at": now} for n in names])
        session.info.setdefault(_SEEN, set()).update(names)
    conn.execute(_attach(session.get_bind().dialect.name, returning=False), rows)


def add(session: Session, follower_id: int, name: str, at: datetime | None = None) -> bool:
    """Tag a follower; True when the tag was not there before. One statement when the tag exists already."""
    if not name or len(name) > MAX_NAME:
        raise ValueError(f"a tag name has 1-{MAX_NAME} characters: {name!r}")
    row = {"fid": follower_id, "name": name, "at": at or utcnow()}
    conn = session.connection()
    if conn.execute(_attach(session.get_bind().dialect.name), row).scalar() is not None:
        return True
    if name in _known(session) or tag_id(session, name, create=False) is not None:
        return False  # the follower had it
    stmt = insert_ignore(session, FollowerTag, ["follower_id", "tag_id"], "follower_id")
    row = {"follower_id": follower_id, "tag_id": tag_id(session, name), "added_at": row["at"]}
    return conn.execute(stmt, row).scalar() is not None


def remove(session: Session, follower_id: int, name: str) -> Removed | None:
    """Untag a follower; None when the follower did not have the tag. A mirrored tag is queued for WeChat untagging."""
    conn = session.connection()
    tag = conn.execute(_FOR_REMOVAL, {"name": name}).first()
    if tag is None:
        return None
    row = conn.execute(_REMOVE, {"fid": follower_id, "tid": tag.id}).first()
    if row is None:
        return None
    removed = Removed(tag.id, tag.wechat_tag_id if row.synced_at is not None else None)
    if removed.wechat_tag_id is not None:
        queued = {"follower_id": follower_id, "tag_id": tag.id, "wechat_tag_id": removed.wechat_tag_id}
        conn.execute(_QUEUE_UNTAG, {**queued, "removed_at": utcnow()})
    return removed


def names(session: Session, follower_id: int) -> set[str]:
    return set(session.connection().execute(_NAMES, {"fid": follower_id}).scalars())


_NAMES_OF = (
    select(_FT.follower_id, _T.name)
    .join_from(Tag.__table__, FollowerTag.__table__)
    .where(_FT.follower_id.in_(bindparam("fids", expanding=True)))
)


def names_of(session: Session, follower_ids: list[int]) -> dict[int, set[str]]:
    """Tag names of many followers in one statement; every id gets a set, empty when untagged."""
    out: dict[int, set[str]] = {fid: set() for fid in follower_ids}
    if follower_ids:
        for fid, name in session.connection().execute(_NAMES_OF, {"fids": follower_ids}):
            out[fid].add(name)
    return out
