"""Read models for followers: the JSON the admin API serves, built with set-based queries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from foundation.clock import iso
from scrm import score_totals
from scrm.models import Activity, Follower, FollowerTag, Interaction, Tag
from scrm.playbook import store


def find(session: Session, openid: str) -> Follower | None:
    """The person behind `openid`: its own row, or the primary it was merged into (scrm.merge). One statement."""
    named = Follower.__table__.alias("named").c
    person = select(func.coalesce(named.merged_into, named.id)).where(named.openid == openid).scalar_subquery()
    return session.scalar(select(Follower).where(Follower.id == person))


def identities(session: Session, follower_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """The identities merged into each of `follower_ids` (openid or external_userid, channel, subscribed)."""
    rows = session.execute(
        select(Follower.merged_into, Follower.openid, Follower.channel, Follower.subscribed)
        .where(Follower.merged_into.in_(follower_ids))
        .order_by(Follower.id)
    )
    out: dict[int, list[dict[str, Any]]] = {}
    for primary, openid, channel, subscribed in rows:
        out.setdefault(primary, []).append({"openid": openid, "channel": channel, "subscribed": subscribed})
    return out


def tag_names(session: Session, follower_ids: list[int]) -> dict[int, list[str]]:
    rows = session.execute(
        select(FollowerTag.follower_id, Tag.name)
        .join(Tag, Tag.id == FollowerTag.tag_id)
        .where(FollowerTag.follower_id.in_(follower_ids))
        .order_by(Tag.name)
    )
    out: dict[int, list[str]] = {fid: [] for fid in follower_ids}
    for fid, name in rows:
        out[fid].append(name)
    return out


def scores(session: Session, follower_ids: list[int]) -> dict[int, dict[str, float]]:
    """Decayed score per model."""
    return score_totals.totals(session, follower_ids)


def stage_model(session: Session) -> str:
    """The scoring model the active playbook's stages use: what `score` means in follower JSON and exports."""
    book = store.active_book(session)
    return book.primary_model if book else "engagement"


def serialize(session: Session, followers: list[Follower]) -> list[dict[str, Any]]:
    """Follower JSON: `score` is the stage model's decayed score (what moves the stage), `scores` every model's."""
    ids = [f.id for f in followers]
    tags, score, model = tag_names(session, ids), scores(session, ids), stage_model(session)
    merged = identities(session, ids)
    return [
        {
            "openid": f.openid,
            "channel": f.channel,
            "subscribed": f.subscribed,
            "tags": tags[f.id],
            "score": score.get(f.id, {}).get(model, 0.0),
            "scores": score.get(f.id, {}),
            "stage": f.stage,
            "owner": f.owner_id,
            "source": f.source,
            "unionid": f.unionid,
            "profile": f.profile or {},
            "subscribed_at": iso(f.subscribed_at),
            "last_active_at": iso(f.last_active_at),
            "created_at": iso(f.created_at),
            "identities": [
                {"openid": f.openid, "channel": f.channel, "subscribed": f.subscribed},
                *merged.get(f.id, []),
            ],
        }
        for f in followers
    ]


def page(
    session: Session, after: int, limit: int, owner: int | None = None, where: ColumnElement[bool] | None = None
) -> tuple[list[dict[str, Any]], int | None]:
    """Keyset paging by id: stable under inserts, no OFFSET scans over the big table. `owner` limits to a rep,
    `where` to a segment. Merged identities are listed through their primary only."""
    query = select(Follower).where(Follower.id > after, Follower.merged_into.is_(None))
    if where is not None:
        query = query.where(where)
    if owner is not None:
        query = query.where(Follower.owner_id == owner)
    rows = list(session.scalars(query.order_by(Follower.id).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return serialize(session, rows), (rows[-1].id if more and rows else None)


def timeline(session: Session, follower: Follower, limit: int, before: datetime | None) -> list[dict[str, Any]]:
    """Interactions and activities, newest first: two indexed range scans merged."""
    inter = select(Interaction).where(Interaction.follower_id == follower.id)
    act = select(Activity).where(Activity.follower_id == follower.id)
    if before is not None:
        inter, act = inter.where(Interaction.at < before), act.where(Activity.at < before)
    entries = [
        {"kind": i.kind, "at": iso(i.at), "source": "wechat", "channel": i.channel, "event_key": i.event_key,
         "content": i.content, "msg_id": i.msg_id, "data": i.payload, "_at": i.at, "_id": (1, i.id)}
        for i in session.scalars(inter.order_by(Interaction.at.desc(), Interaction.id.desc()).limit(limit))
    ]  # fmt: skip
    entries += [
        {"kind": a.kind, "at": iso(a.at), "source": "welead", "data": a.data, "_at": a.at, "_id": (0, a.id)}
        for a in session.scalars(act.order_by(Activity.at.desc(), Activity.id.desc()).limit(limit))
    ]
    entries.sort(key=lambda e: (e["_at"], e["_id"]), reverse=True)
    for e in entries:
        del e["_at"], e["_id"]
    return entries[:limit]
