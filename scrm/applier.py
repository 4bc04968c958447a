"""The applier: interactions the requests recorded, applied in batches, set-based, exactly once.

One transaction per batch: the batch's followers created and loaded in two statements, every interaction's effects
and playbook run (the version that decided its reply), the applied marks in one statement. A crash before commit
leaves the whole batch unapplied, so it is applied again once; after commit it is never applied again. Interactions
apply in id order, so one follower's events apply in the order they were recorded.

A poison interaction (an effect raises) rolls the batch back; the batch is then applied one interaction per
transaction, and the one that raises is marked failed with its error and the rule that was firing. Database
outages are not poison: they propagate and the batch is retried as it was.

Several appliers on PostgreSQL: followers are hashed into `accept.SHARDS` partitions, and each batch takes
transaction-scoped advisory locks on the partitions it works on (its share of those with pending work, by the
number of live appliers), so two appliers never hold one follower's events at once and neither waits for the other.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis
from sqlalchemy import bindparam, func, inspect, select, text, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from foundation.clock import utcnow
from foundation.db import Database
from foundation.sql import insert_ignore
from scrm import effects, playbook
from scrm.ingest import Event, Visit
from scrm.models import Follower, Interaction
from scrm.playbook import store
from scrm.playbook.compiled import Compiled
from scrm.playbook.shared import Shared

log = logging.getLogger(__name__)

BATCH = {"postgresql": 500, "sqlite": 100}  # SQLite: a batch holds the one write lock callbacks queue for (~30 ms)
APPLIER_NAME = "welead-applier"  # PostgreSQL application_name: peers count each other by it
WAKE = "welead:apply:wake"
LOCK_SPACE = 7_202_611  # first key of the advisory locks on follower partitions
TRANSIENT = (OperationalError, InterfaceError)  # the database, not the interaction: retry the batch as it was

_I = Interaction.__table__.c
_COLUMNS = (_I.id, _I.channel, _I.kind, _I.openid, _I.dedup_key, _I.at, _I.event_key, _I.msg_id, _I.content,
            _I.scene, _I.payload, _I.decision, _I.playbook_version, _I.received_at)  # fmt: skip
_PENDING = select(*_COLUMNS).where(_I.applied_at.is_(None)).order_by(_I.id)
_IN_SHARDS = _PENDING.where(_I.shard.in_(bindparam("shards", expanding=True)))
_SHARDS = (
    select(_I.shard, func.min(_I.id).label("first")).where(_I.applied_at.is_(None)).group_by(_I.shard).order_by("first")
)
_PEERS = text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name")
_TRY_LOCK = text("SELECT s FROM unnest(CAST(:shards AS integer[])) AS s WHERE pg_try_advisory_xact_lock(:space, s)")
_MARK = (
    update(Interaction.__table__)
    .where(_I.id == bindparam("iid"))
    .values(applied_at=bindparam("done"), follower_id=bindparam("fid"))
)
_FAIL = (
    update(Interaction.__table__)
    .where(_I.id == bindparam("iid"), _I.applied_at.is_(None))
    .values(applied_at=bindparam("done"), apply_error=bindparam("error"), follower_id=bindparam("fid"))
)
_STATE = frozenset({"channel", "subscribed", "subscribed_at", "unsubscribed_at", "source", "stage", "owner_id",
                    "last_active_at"})  # fmt: skip
_F = Follower.__table__.c
_WRITE_STATE = (
    update(Follower.__table__).where(_F.id == bindparam("fid")).values({c: bindparam(f"v_{c}") for c in _STATE})
)
_BACKLOG = select(func.count(), func.min(_I.received_at)).where(_I.applied_at.is_(None))
_NAMED_ROW = Follower.__table__.alias("named")  # the row of the openid itself, joined to the person it resolves to
_NAMED = _NAMED_ROW.c
_RESOLVE = select(Follower, _NAMED.openid).join_from(
    Follower, _NAMED_ROW, Follower.id == func.coalesce(_NAMED.merged_into, _NAMED.id)
)


@dataclass(slots=True)
class Pending:
    id: int
    event: Event
    decided: frozenset[str] | None
    version: int | None
    received_at: datetime
    decision: dict[str, Any] | None = None  # what the request decided, the chatbot's part included


@dataclass(slots=True)
class Report:
    applied: int = 0
    failed: int = 0
    outbox_ids: list[int] = field(default_factory=list)
    received: list[datetime] = field(default_factory=list)  # when each applied interaction was recorded

    def add(self, other: Report) -> None:
        self.applied += other.applied
        self.failed += other.failed
        self.outbox_ids += other.outbox_ids
        self.received += other.received


class EffectFailed(Exception):
    """An interaction's effects raised: `rule` was firing (None: the kind's own effect)."""

    def __init__(self, interaction_id: int | None, rule: str | None, cause: BaseException) -> None:
        where = f"interaction {interaction_id}" if interaction_id is not None else "the batch's writes"
        super().__init__(f"{where}: {type(cause).__name__}: {cause}")
        self.interaction_id, self.rule, self.cause = interaction_id, rule, cause


def batch_size(db: Database) -> int:
    return BATCH.get(db.dialect, 100)


def apply_batch(db: Database, limit: int | None = None) -> Report:
    """Apply up to `limit` pending interactions; an empty report when there are none (or peers hold them all)."""
    limit = limit or batch_size(db)
    try:
        with db.transaction() as session:
            rows = _claim(session, limit)
            report = _apply(session, rows)
        return report
    except EffectFailed as exc:
        log.warning("batch rolled back (%s); applying its %d interactions one by one", exc, len(rows))
        return _isolate(db, [r.id for r in rows])


def drain(db: Database, limit: int | None = None) -> Report:
    """Apply until nothing is pending."""
    total = Report()
    while True:
        report = apply_batch(db, limit)
        if not report.applied and not report.failed:
            return total
        total.add(report)


def _claim(session: Session, limit: int) -> list[Pending]:
    conn = session.connection()
    if session.get_bind().dialect.name != "postgresql":
        return [_pending(r) for r in conn.execute(_PENDING.limit(limit))]  # BEGIN IMMEDIATE: one writer at a time
    shards = [r.shard for r in conn.execute(_SHARDS)]
    if not shards:
        return []
    peers = max(1, conn.execute(_PEERS, {"name": APPLIER_NAME}).scalar() or 1)
    share = math.ceil(len(shards) / peers)
    for start in range(0, len(shards), share):
        got = list(conn.execute(_TRY_LOCK, {"shards": shards[start : start + share], "space": LOCK_SPACE}).scalars())
        if got:
            return [_pending(r) for r in conn.execute(_IN_SHARDS.limit(limit), {"shards": got})]
    return []


def _pending(row: Any) -> Pending:
    created = int(row.at.replace(tzinfo=UTC).timestamp())
    event = Event(channel=row.channel, kind=row.kind, openid=row.openid, dedup_key=row.dedup_key, created=created,
                  event_key=row.event_key, msg_id=row.msg_id, content=row.content, scene=row.scene,
                  payload=row.payload or {})  # fmt: skip
    decided = frozenset((row.decision or {}).get("rules") or ()) if row.playbook_version is not None else None
    return Pending(row.id, event, decided, row.playbook_version, row.received_at, row.decision)


def _apply(session: Session, rows: list[Pending]) -> Report:
    """Apply `rows` in the caller's transaction. Any failure but the database's becomes EffectFailed, naming the
    interaction when it can be told (always, for a batch of one), so the caller can isolate it."""
    if not rows:
        return Report()
    try:
        report = _apply_rows(session, rows)
        session.flush()  # the followers' changes: a failure here is the batch's too
        return report
    except (EffectFailed, *TRANSIENT):
        raise
    except Exception as exc:
        raise EffectFailed(rows[0].id if len(rows) == 1 else None, None, exc) from exc


def _apply_rows(session: Session, rows: list[Pending]) -> Report:
    report = Report()
    followers = _followers(session, rows)
    people = list({f.id: f for f in followers.values()}.values())  # two identities of one person: one row
    books = _books(session, rows)
    fids = [f.id for f in people]
    shared = Shared(session, fids, utcnow(), [b for b in books.values() if b is not None])
    marks = []
    for row in rows:
        follower = followers.get(row.event.openid) if row.event.has_follower else None
        visit = Visit(session, row.event, follower, row.id, row.decided)
        visit.shared = shared
        visit.decision = row.decision
        visit.book = books.get(row.version)  # its settings (assignment) apply to the effects too
        try:
            effects.apply(visit)
            playbook.run(visit, books.get(row.version))
        except TRANSIENT:
            raise
        except Exception as exc:  # any other failure is this interaction's: isolate it
            raise EffectFailed(row.id, visit.firing, exc) from exc
        report.outbox_ids += visit.outbox_ids
        report.received.append(row.received_at)
        marks.append({"iid": row.id, "fid": follower.id if follower else None})
    shared.flush()
    _write_followers(session, people)
    report.outbox_ids += shared.outbox_ids
    now = utcnow()
    session.connection().execute(_MARK, [{**m, "done": now} for m in marks])
    report.applied = len(marks)
    return report


def _followers(session: Session, rows: list[Pending]) -> dict[str, Follower]:
    """The batch's followers by openid, created where new: one insert-or-ignore, one select. An identity merged
    into another follower (scrm.merge) maps to that primary: the select joins each openid's row to the row it
    resolves to. On PostgreSQL the select locks the resolved rows (FOR NO KEY UPDATE: the interactions' foreign
    keys hold KEY SHARE locks) for the engine runs' caps and totals, in id order so that two lockers of
    overlapping sets queue instead of deadlocking. A merge holds the partitions of both openids while it moves
    rows, so what an openid resolves to cannot change under a batch."""
    fresh: dict[str, dict[str, Any]] = {}
    for row in rows:
        ev = row.event
        if ev.has_follower and ev.openid not in fresh:
            fresh[ev.openid] = {"openid": ev.openid, "channel": ev.channel, "profile": {}}
    if not fresh:
        return {}
    session.connection().execute(insert_ignore(session, Follower, ["openid"]), list(fresh.values()))
    query = _RESOLVE.where(_NAMED.openid.in_(list(fresh)))
    if session.get_bind().dialect.name == "postgresql":  # against other writers (journeys, periodic runs, the API)
        query = query.order_by(Follower.id).with_for_update(key_share=True, of=Follower)
    return {openid: f for f, openid in session.execute(query)}


def _write_followers(session: Session, followers: list[Follower]) -> None:
    """The followers' new state in one executemany (the ORM writes an UPDATE per follower). A follower with a change
    outside these columns is left to the ORM's flush."""
    rows = []
    for follower in followers:
        changed = {a.key for a in inspect(follower).attrs if a.history.has_changes()}
        if changed and changed <= _STATE:
            rows.append({"fid": follower.id, **{f"v_{c}": getattr(follower, c) for c in _STATE}})
            session.expunge(follower)  # written here: nothing left for the ORM to flush
    if rows:
        session.connection().execute(_WRITE_STATE, rows)


def _books(session: Session, rows: list[Pending]) -> dict[int, Compiled | None]:
    versions = {r.version for r in rows if r.version is not None}
    return {v: store.at_version(session.connection(), v) for v in versions}


def _isolate(db: Database, ids: list[int]) -> Report:
    total = Report()
    for iid in ids:
        try:
            with db.transaction() as session:
                rows = [_pending(r) for r in session.connection().execute(_PENDING.where(_I.id == iid))]
                total.add(_apply(session, rows))
        except EffectFailed as exc:
            log.error("interaction %d failed (rule %s): %r", iid, exc.rule, exc.cause, exc_info=exc.cause)
            _fail(db, iid, exc)
            total.failed += 1
    return total


def _fail(db: Database, iid: int, exc: EffectFailed) -> None:
    error = f"{type(exc.cause).__name__}: {exc.cause}"[:2000]
    if exc.rule:
        error = f"rule {exc.rule}: {error}"
    with db.transaction() as session:
        conn = session.connection()
        openid = conn.execute(select(_I.openid).where(_I.id == iid)).scalar()
        fid = conn.execute(select(func.coalesce(_F.merged_into, _F.id)).where(_F.openid == openid)).scalar()
        conn.execute(_FAIL, {"iid": iid, "done": utcnow(), "error": error, "fid": fid})


def backlog(session: Session) -> tuple[int, float]:
    """(interactions not applied yet, age in seconds of the oldest of them)."""
    count, oldest = session.connection().execute(_BACKLOG).one()
    lag = (utcnow() - oldest).total_seconds() if oldest is not None else 0.0
    return int(count), max(lag, 0.0)


def failures(session: Session, limit: int = 100, after: int = 0) -> list[dict[str, Any]]:
    """Interactions whose effects raised, oldest first: what the API lists."""
    query = (
        select(_I.id, _I.kind, _I.openid, _I.at, _I.applied_at, _I.apply_error)
        .where(_I.apply_error.is_not(None), _I.id > after)
        .order_by(_I.id)
        .limit(limit)
    )
    return [dict(r._mapping) for r in session.connection().execute(query)]


def retry(session: Session, iid: int, *, active_playbook: bool = False) -> bool:
    """Put a failed interaction back in the queue. It is applied with the playbook version that decided its reply,
    unless `active_playbook`: then with the active one (a fixed rule), its reply rules still those the request
    fired (by name). False when `iid` is not a failed interaction."""
    values: dict[str, Any] = {"applied_at": None, "apply_error": None}
    if active_playbook:
        found = store.current(session.connection())
        values["playbook_version"] = found[0] if found else None
    stmt = update(Interaction.__table__).where(_I.id == iid, _I.apply_error.is_not(None)).values(**values)
    return session.connection().execute(stmt).rowcount == 1


class Waker:
    """Tells an idle applier there is work, at most once per `every` seconds per process (best effort: it polls the
    database anyway). Under load the applier is never idle, and a hint per callback cost as much as the callback's
    insert; an applier that found nothing waits for the next hint or its poll, so a skipped hint costs at most one
    poll interval of latency. The list holds one item."""

    def __init__(self, every: float = 0.02) -> None:
        self.every, self.last = every, float("-inf")

    def __call__(self, conn: redis.Redis) -> None:
        now = time.monotonic()
        if now - self.last < self.every:
            return
        self.last = now
        with conn.pipeline(transaction=False) as pipe:
            pipe.rpush(WAKE, 1)
            pipe.ltrim(WAKE, 0, 0)
            pipe.execute()


wake = Waker()
