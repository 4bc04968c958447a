"""Triggers that no inbound event causes, run by the scheduler: `inactive` (no interaction for N days) and stage
demotion by decay (only when the playbook enables `stages.demote`).

Candidates are found with one set-based query per rule, in bounded batches; each follower then gets an ordinary
engine run in a `Quiet` context, so the same caps, timeline entries and outbox keys apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session

from foundation.clock import utcnow
from foundation.sql import insert_ignore
from scrm import score_totals, scoring
from scrm.models import Follower
from scrm.playbook import store
from scrm.playbook.compiled import Compiled
from scrm.playbook.engine import Quiet, Run
from scrm.playbook.models import FollowerScore, RuleFiring


@dataclass
class Tick:
    inactive: int = 0
    demoted: int = 0
    outbox_ids: list[int] = field(default_factory=list)


def tick(session: Session, now: datetime | None = None, batch: int = 500) -> Tick:
    """One pass of every periodic trigger, in the caller's transaction."""
    now = now or utcnow()
    out = Tick()
    book = store.active(session)
    if book is None:
        return out
    for rule, days in book.quiet:
        out.inactive += _inactive(session, book, rule, days, now, batch, out.outbox_ids)
    if book.book.stages.demote:
        out.demoted = _demote(session, book, now, batch, out.outbox_ids)
    return out


def _inactive(
    session: Session, book: Compiled, rule: str, days: int, now: datetime, batch: int, outbox_ids: list[int]
) -> int:
    """Fire `rule` once per quiet spell of each subscribed follower silent for `days` (the spell is keyed by the
    follower's last activity, so a follower who comes back and goes quiet again is reached again).
    """
    fired = exists().where(
        RuleFiring.follower_id == Follower.id, RuleFiring.rule == rule, RuleFiring.since == Follower.last_active_at
    )
    query = (
        select(Follower)
        .where(Follower.subscribed.is_(True), Follower.last_active_at < now - timedelta(days=days), ~fired)
        .order_by(Follower.last_active_at)
        .limit(batch)
    )
    count = 0
    for follower in session.scalars(query).all():
        since = follower.last_active_at
        assert since is not None
        session.execute(
            insert_ignore(session, RuleFiring, ["follower_id", "rule", "since"]),
            {"follower_id": follower.id, "rule": rule, "since": since, "at": now},
        )
        ctx = Quiet(session, follower)
        run = Run(book, ctx, scope=f"inactive:{follower.id}:{int(scoring.epoch(since))}", now=now)
        run.emit("inactive", rule=rule, days=days)
        run.drain()
        outbox_ids += ctx.outbox_ids
        count += 1
    return count


def _demote(session: Session, book: Compiled, now: datetime, batch: int, outbox_ids: list[int]) -> int:
    """Move followers whose decayed score fell `margin` below their stage's threshold back (audited)."""
    margin, model = book.book.stages.margin, book.primary
    score = func.coalesce(score_totals.decayed_sql(now), 0.0)
    joined = and_(FollowerScore.follower_id == Follower.id, FollowerScore.model == model)
    count = 0
    for stage in book.stages:
        if stage.at is None or count >= batch:
            continue
        query = (
            select(Follower, score)
            .outerjoin(FollowerScore, joined)
            .where(Follower.stage == stage.name, score < stage.at - margin)
            .limit(batch - count)
        )
        for follower, value in session.execute(query).all():
            ctx = Quiet(session, follower)
            run = Run(book, ctx, scope=f"decay:{follower.id}:{now:%Y%m%d}", now=now)
            run.lock()
            run.restage(float(value), reason="decay")
            run.drain()
            outbox_ids += ctx.outbox_ids
            count += 1
    return count
