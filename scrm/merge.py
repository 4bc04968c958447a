"""One person, one contact: an OA follower and a WeCom external contact with the same unionid become one contact.

Both rows stay. The secondary (the WeCom contact, or the newer row) points at the primary (the OA follower, or the
older row) with `followers.merged_into`; its timeline (interactions and activities), score ledger and the tags the
primary lacked move to the primary in set-based statements, each moved row recorded in `contact_merge_moves`, so an
undo moves exactly those rows back and leaves whatever the primary gained since. Owner: the primary's wins (the
secondary's is noted on the timeline), or the secondary's when the primary had none. Score totals are recomputed
from the ledger, so the person's score is the sum of both histories. Reads resolve a secondary's openid to the
primary (scrm.followers.find), segments skip secondaries (scrm.segments), and the applier applies a secondary's new
events to the primary (scrm.applier).

Locks: a merge or undo takes the applier's partition locks of both openids (PostgreSQL advisory locks, blocking, in
partition order; appliers only try them, so no applier waits on a merge and a merge waits for the batches holding
them), then both follower rows in id order as the applier does. So no batch applies events of either identity while
their rows move, and two merges of one pair queue; the second finds the pair merged. SQLite: one writer at a time.
docs/contacts.md has the rules.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    String,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    text,
    true,
    update,
)
from sqlalchemy.orm import Session

from foundation.clock import utcnow
from scrm.accept import shard
from scrm.applier import LOCK_SPACE
from scrm.merge_models import MERGED, UNDONE, ContactMerge, MergeMove
from scrm.models import Activity, Follower, FollowerTag, Interaction, Tag
from scrm.playbook import store
from scrm.playbook.grammar import DEFAULT_STAGES
from scrm.playbook.models import FollowerScore, ScoreEvent
from scrm.scoring import DAY, epoch
from scrm.tags import TagRemoval

log = logging.getLogger(__name__)

# Tables whose rows move wholesale (by id) from the secondary to the primary.
MOVABLE = {"interaction": Interaction.__table__, "activity": Activity.__table__, "score_event": ScoreEvent.__table__}
TAG = "tag"
_M, _FT, _S = MergeMove.__table__.c, FollowerTag.__table__.c, FollowerScore.__table__.c
_FT2, _S2 = FollowerTag.__table__.alias("ft2").c, FollowerScore.__table__.alias("fs2").c
_LOCK = text("SELECT pg_advisory_xact_lock(:space, :shard)")


class MergeError(ValueError):
    """A merge or undo that cannot be done; `status` is the HTTP status the API answers (400, 404 or 409)."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


# --- locking ----------------------------------------------------------------------------------------------------


def lock(session: Session, ids: list[int]) -> dict[int, Follower]:
    """The followers `ids`, locked against appliers and other merges, read fresh (see the module docstring)."""
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        openids = session.scalars(select(Follower.openid).where(Follower.id.in_(ids)))
        for part in sorted({shard(o) for o in openids}):
            session.connection().execute(_LOCK, {"space": LOCK_SPACE, "shard": part})
    query = select(Follower).where(Follower.id.in_(ids)).order_by(Follower.id)
    if postgres:
        query = query.with_for_update(key_share=True)
    return {f.id: f for f in session.scalars(query.execution_options(populate_existing=True))}


# --- merging ----------------------------------------------------------------------------------------------------


def by_unionid(session: Session, unionid: str, now: datetime | None = None) -> list[ContactMerge]:
    """Merge every unmerged identity with `unionid` into one primary; pairs an admin un-merged stay apart.

    Idempotent: run again (or twice at once), it finds the identities merged and does nothing.
    """
    ids = list(session.scalars(select(Follower.id).where(Follower.unionid == unionid)))
    if len(ids) < 2:
        return []
    live = [f for f in lock(session, ids).values() if f.merged_into is None and f.unionid == unionid]
    if len(live) < 2:
        return []
    primary = choose(session, live)
    apart = undone_pairs(session, [f.id for f in live])
    done = []
    for follower in live:
        if follower is primary or frozenset((primary.id, follower.id)) in apart:
            continue
        try:
            done.append(merge(session, primary, follower, reason="unionid", unionid=unionid, now=now))
        except MergeError as exc:
            log.warning("unionid %s: %s not merged into %s: %s", unionid, follower.openid, primary.openid, exc)
    return done


def choose(session: Session, people: list[Follower]) -> Follower:
    """The primary: the OA follower (template messages go to its openid), then one that is a primary already,
    then the oldest row."""
    primaries = set(
        session.scalars(select(Follower.merged_into).where(Follower.merged_into.in_([f.id for f in people])))
    )
    return min(people, key=lambda f: (f.channel != "oa", f.id not in primaries, f.id))


def undone_pairs(session: Session, ids: list[int]) -> set[frozenset[int]]:
    """Pairs among `ids` an admin un-merged: never merged again automatically."""
    rows = session.execute(
        select(ContactMerge.primary_id, ContactMerge.secondary_id).where(
            ContactMerge.state == UNDONE, ContactMerge.primary_id.in_(ids), ContactMerge.secondary_id.in_(ids)
        )
    )
    return {frozenset(r) for r in rows}


def merge_openids(session: Session, primary: str, secondary: str, by: str | None = None) -> ContactMerge:
    """An admin's merge of two identities named by openid / external_userid (MergeError: 404, 409, 400)."""
    named = select(Follower.openid, Follower.id).where(Follower.openid.in_([primary, secondary]))
    ids = {openid: fid for openid, fid in session.execute(named)}
    for openid in (primary, secondary):
        if openid not in ids:
            raise MergeError(f"no follower {openid!r}", 404)
    rows = lock(session, list(ids.values()))
    return merge(session, rows[ids[primary]], rows[ids[secondary]], reason="manual", by=by)


def merge(
    session: Session,
    primary: Follower,
    secondary: Follower,
    *,
    reason: str,
    unionid: str | None = None,
    by: str | None = None,
    now: datetime | None = None,
) -> ContactMerge:
    """Merge `secondary` into `primary`, both locked by `lock` in this transaction."""
    check(session, primary, secondary)
    now = now or utcnow()
    row = ContactMerge(primary_id=primary.id, secondary_id=secondary.id, unionid=unionid or secondary.unionid,
                       reason=reason, state=MERGED, before=_before(session, primary, secondary), moved={},
                       created_at=now, created_by=by)  # fmt: skip
    session.add(row)
    session.flush()
    row.moved = _move(session, row.id, secondary.id, primary.id)
    _copy_totals(session, secondary.id, primary.id, now)
    _rescore(session, [primary.id], now)
    _combine(session, row, primary, secondary, now)
    secondary.merged_into = primary.id
    data = {"merge": row.id, "reason": reason, "unionid": row.unionid}
    _note(session, primary, "merged", now, secondary=secondary.openid, channel=secondary.channel, **data)
    _note(session, secondary, "merged_into", now, primary=primary.openid, **data)
    session.flush()
    log.info("merged %s into %s (merge %d: %s)", secondary.openid, primary.openid, row.id, row.moved)
    return row


def check(session: Session, primary: Follower, secondary: Follower) -> None:
    """Why these two cannot be merged, as a MergeError; nothing when they can."""
    if primary.id == secondary.id:
        raise MergeError("a follower cannot be merged with itself", 400)
    for who in (primary, secondary):
        if who.merged_into is not None:
            raise MergeError(f"{who.openid!r} is merged into another follower already; undo that merge first")
    if session.scalar(select(Follower.id).where(Follower.merged_into == secondary.id).limit(1)) is not None:
        raise MergeError(f"{secondary.openid!r} is the primary of other merges; it cannot become a secondary")
    if secondary.channel == "oa" and primary.channel != "oa":
        raise MergeError("the OA follower must be the primary: template messages and broadcasts go to its openid", 400)


def _before(session: Session, primary: Follower, secondary: Follower) -> dict[str, Any]:
    models = sorted(session.scalars(select(_S.model).where(_S.follower_id == primary.id)))
    return {
        "primary": {"owner_id": primary.owner_id, "stage": primary.stage, "source": primary.source, "models": models},
        "secondary": {"owner_id": secondary.owner_id, "stage": secondary.stage, "source": secondary.source},
    }


def _moved(merge_id: int, kind: str) -> Any:
    return select(_M.row_id).where(_M.merge_id == merge_id, _M.kind == kind)


def _move(session: Session, merge_id: int, src: int, dst: int) -> dict[str, int]:
    """Record, then move, the secondary's timeline, ledger and the tags the primary lacks: two statements a kind."""
    conn, counts = session.connection(), {}
    mid = literal(merge_id, BigInteger)
    for kind, table in MOVABLE.items():
        rows = select(mid, literal(kind, String), table.c.id).where(table.c.follower_id == src)
        conn.execute(insert(MergeMove.__table__).from_select(["merge_id", "kind", "row_id"], rows))
        moved = conn.execute(update(table).where(table.c.id.in_(_moved(merge_id, kind))).values(follower_id=dst))
        counts[kind] = moved.rowcount
    has = select(_FT2.tag_id).where(_FT2.follower_id == dst)
    tags = select(mid, literal(TAG, String), _FT.tag_id).where(_FT.follower_id == src, _FT.tag_id.not_in(has))
    conn.execute(insert(MergeMove.__table__).from_select(["merge_id", "kind", "row_id"], tags))
    moved = conn.execute(
        update(FollowerTag.__table__)
        .where(_FT.follower_id == src, _FT.tag_id.in_(_moved(merge_id, TAG)))
        .values(follower_id=dst, synced_at=None)  # mirrored to WeChat for the primary's openid by the next sync
    )
    counts[TAG] = moved.rowcount
    return counts


def _combine(session: Session, row: ContactMerge, primary: Follower, secondary: Follower, now: datetime) -> None:
    """Owner, stage, source and activity of the person; `row.before` keeps what they were."""
    other = secondary.owner_id
    if other is not None and primary.owner_id is None:
        primary.owner_id = other
        _note(session, primary, "owner_assigned", now, rep=other, via="merge", merge=row.id)
    elif other is not None and other != primary.owner_id:
        _note(session, primary, "owner_conflict", now, kept=primary.owner_id, other=other, merge=row.id,
              secondary=secondary.openid)  # fmt: skip
    secondary.owner_id = None  # the person's leads are the primary's: nobody's list shows the secondary
    primary.stage = later(session, primary.stage, secondary.stage)
    primary.source = primary.source or secondary.source
    times = [t for t in (primary.last_active_at, secondary.last_active_at) if t is not None]
    primary.last_active_at = max(times) if times else None
    row.before = {**row.before, "after": {"owner_id": primary.owner_id, "stage": primary.stage,
                                         "source": primary.source}}  # fmt: skip


def stage_order(session: Session) -> list[str]:
    book = store.active_book(session)
    return [s.name for s in book.stages.order] if book else [s["name"] for s in DEFAULT_STAGES]


def later(session: Session, one: str, other: str) -> str:
    """The later of two stages in the active playbook's order (an unknown stage counts as the earliest)."""
    order = stage_order(session)
    rank = {name: i for i, name in enumerate(order)}
    return max((one, other), key=lambda s: rank.get(s, -1))


def _epoch_sql(session: Session, column: Any) -> Any:
    if session.get_bind().dialect.name == "sqlite":
        return (func.julianday(column) - 2440587.5) * DAY
    return func.extract("epoch", column)


def _copy_totals(session: Session, src: int, dst: int, now: datetime) -> None:
    """A total (0 for now, with the model's half-life) for each model `src` has a score in and `dst` has not."""
    has = select(_S2.model).where(_S2.follower_id == dst)
    rows = select(literal(dst, BigInteger), _S.model, literal(0.0, Float), literal(epoch(now), Float), _S.half_life)
    rows = rows.where(_S.follower_id == src, _S.model.not_in(has))
    columns = ["follower_id", "model", "value", "as_of", "half_life"]
    session.connection().execute(insert(FollowerScore.__table__).from_select(columns, rows))


def _rescore(session: Session, fids: list[int], now: datetime) -> None:
    """The running totals of `fids` recomputed from their score events (the ledger is the truth), each event with
    its decay: the person's score is the sum of both histories, and an undo splits it again exactly."""
    ts = literal(epoch(now), Float)
    ev = ScoreEvent.__table__.c
    conn = session.connection()
    age = ts - _epoch_sql(session, ev.at)
    factor = case((_S.half_life.is_(None), literal(1.0, Float)), else_=func.pow(0.5, age / _S.half_life))
    total = (
        select(func.coalesce(func.sum(ev.points * factor), 0.0))
        .where(ev.follower_id == _S.follower_id, ev.model == _S.model)
        .scalar_subquery()
    )
    conn.execute(update(FollowerScore.__table__).where(_S.follower_id.in_(fids)).values(value=total, as_of=ts))


def _note(session: Session, follower: Follower, kind: str, now: datetime, **data: Any) -> None:
    session.add(Activity(follower_id=follower.id, kind=kind, at=now, interaction_id=None, data=data))


# --- undoing ----------------------------------------------------------------------------------------------------


def undo(session: Session, merge_id: int, by: str | None = None, now: datetime | None = None) -> ContactMerge:
    """Put both identities back as they were before merge `merge_id`; what the primary gained since stays on it.
    The pair is then never merged again automatically (MergeError 404: no such merge; 409: undone already)."""
    row = session.get(ContactMerge, merge_id)
    if row is None:
        raise MergeError(f"no merge {merge_id}", 404)
    people = lock(session, [row.primary_id, row.secondary_id])
    session.refresh(row)
    if row.state != MERGED:
        raise MergeError(f"merge {merge_id} was undone already")
    now = now or utcnow()
    primary, secondary = people[row.primary_id], people[row.secondary_id]
    back = _move_back(session, row.id, primary.id, secondary.id, now)
    _rescore(session, [primary.id, secondary.id], now)
    _drop_empty_totals(session, primary.id, row.before["primary"].get("models", []))
    _restore(row, primary, secondary)
    secondary.merged_into = None
    row.state, row.undone_at, row.undone_by = UNDONE, now, by
    data = {"merge": row.id, "by": by}
    _note(session, primary, "unmerged", now, secondary=secondary.openid, moved_back=back, **data)
    _note(session, secondary, "unmerged", now, primary=primary.openid, **data)
    session.flush()
    log.info("merge %d undone: %s and %s apart again (%s)", row.id, secondary.openid, primary.openid, back)
    return row


def _move_back(session: Session, merge_id: int, src: int, dst: int, now: datetime) -> dict[str, int]:
    conn, counts = session.connection(), {}
    for kind, table in MOVABLE.items():
        moved = conn.execute(
            update(table)
            .where(table.c.id.in_(_moved(merge_id, kind)), table.c.follower_id == src)
            .values(follower_id=dst)
        )
        counts[kind] = moved.rowcount
    tags = _FT.tag_id.in_(_moved(merge_id, TAG))
    _untag_in_wechat(session, src, tags, now)
    moved = conn.execute(
        update(FollowerTag.__table__)
        .where(_FT.follower_id == src, tags, ~exists().where(_FT2.follower_id == dst, _FT2.tag_id == _FT.tag_id))
        .values(follower_id=dst, synced_at=None)
    )
    counts[TAG] = moved.rowcount
    return counts


def _untag_in_wechat(session: Session, fid: int, tags: Any, now: datetime) -> None:
    """Tags leaving the primary that the sync had mirrored to WeChat for it: queued for untagging (scrm.tags)."""
    mirrored = (
        select(_FT.follower_id, _FT.tag_id, Tag.wechat_tag_id, literal(now, DateTime))
        .join(Tag, Tag.id == _FT.tag_id)
        .where(_FT.follower_id == fid, tags, _FT.synced_at.is_not(None), Tag.wechat_tag_id.is_not(None))
    )
    columns = ["follower_id", "tag_id", "wechat_tag_id", "removed_at"]
    session.connection().execute(insert(TagRemoval.__table__).from_select(columns, mirrored))


def _drop_empty_totals(session: Session, fid: int, kept: list[str]) -> None:
    """Totals the merge gave the primary for models it had no score in, and still has no events in, go."""
    ev = ScoreEvent.__table__.c
    session.connection().execute(
        delete(FollowerScore.__table__).where(
            _S.follower_id == fid,
            _S.model.not_in(kept) if kept else true(),
            ~exists().where(ev.follower_id == fid, ev.model == _S.model),
        )
    )


def _restore(row: ContactMerge, primary: Follower, secondary: Follower) -> None:
    """Owner, stage and source back to their state before the merge, on the primary only where the merge set them
    and nothing changed them since."""
    before, after = row.before["primary"], row.before.get("after", {})
    for name in ("owner_id", "stage", "source"):
        if getattr(primary, name) == after.get(name) and after.get(name) != before[name]:
            setattr(primary, name, before[name])
    secondary.owner_id = row.before["secondary"]["owner_id"]
