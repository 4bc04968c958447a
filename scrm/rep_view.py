"""What a rep's pages read: their leads (one page, filtered, sorted, counted) and one lead's card.

Every read takes the rep's id and adds `owner_id = <rep>` itself, so a lead owned by someone else does not exist
here (the pages answer 404, never 403: no existence leak). The list is set-based: one GROUP BY for the counts, one
query for the page (score joined from the running totals, decayed in SQL), one for the page's tags.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from foundation.clock import utcnow
from scrm import followers, score_totals, tags
from scrm.models import Activity, Follower, FollowerTag, Rep, Tag
from scrm.playbook import store
from scrm.playbook.grammar import DEFAULT_STAGES
from scrm.playbook.models import FollowerScore

SORTS = ("score", "activity")
PER_PAGE = 20
MAX_QUERY = 100
NAME_KEYS = ("name", "nickname", "remark")  # as scrm.notice_text reads a lead's name and company
COMPANY_KEYS = ("company", "corp_name", "corp_full_name")
MOBILE_KEYS = ("mobile", "phone", "tel")
OWNER_KINDS = ("owner_assigned", "owner_conflict", "transfer_failed")
TIMELINE = 50
MAX_ID = 2**63 - 1  # what a BIGINT id holds: a larger one names no lead


@dataclass(frozen=True)
class Filters:
    """The list's query string, checked: `stage` and `tag` exact, `q` a substring of name, openid or company."""

    stage: str | None = None
    tag: str | None = None
    q: str | None = None
    sort: str = "score"
    page: int = 1


@dataclass(frozen=True)
class LeadRow:
    id: int
    openid: str
    name: str
    company: str
    stage: str
    score: float
    last_active_at: datetime | None
    tags: list[str]


@dataclass
class LeadPage:
    items: list[LeadRow]
    total: int  # leads matching every filter
    page: int
    pages: int
    per_page: int
    stage_counts: dict[str, int]  # matching every filter but the stage: the stage chips' numbers
    stages: list[str]


@dataclass
class Card:
    follower: Follower
    name: str
    company: str
    mobile: str  # masked
    tags: list[str]
    score: dict[str, Any]  # scrm.score_totals.explain, as GET /api/v1/followers/<openid>/score
    model: str  # the stage model: its score is "the" score, as in the list and the follower JSON
    stages: list[str]
    owners: list[dict[str, Any]]
    timeline: list[dict[str, Any]]  # the newest TIMELINE entries
    more: bool = False  # older entries exist (the API's timeline pages through them)
    rep_names: dict[int, str] = field(default_factory=dict)


def stage_names(session: Session) -> list[str]:
    """The active playbook's stage order (the default order before any playbook is loaded)."""
    book = store.active(session)
    return book.stage_names() if book else [s["name"] for s in DEFAULT_STAGES]


def _text(key: str) -> ColumnElement[str]:
    return Follower.profile[key].as_string()


def _conditions(rep_id: int, filters: Filters) -> list[ColumnElement[bool]]:
    """Owner, not a merged secondary identity, tag and text search (the stage is applied separately)."""
    where = [Follower.owner_id == rep_id, Follower.merged_into.is_(None)]
    if filters.tag:
        tagged = select(FollowerTag.follower_id).join(Tag, Tag.id == FollowerTag.tag_id).where(Tag.name == filters.tag)
        where.append(Follower.id.in_(tagged))
    if filters.q:
        columns = [Follower.openid, *(_text(k) for k in NAME_KEYS + COMPANY_KEYS)]
        where.append(or_(*(c.icontains(filters.q, autoescape=True) for c in columns)))
    return where


def _stage_counts(session: Session, where: list[ColumnElement[bool]]) -> dict[str, int]:
    rows = session.execute(select(Follower.stage, func.count()).where(*where).group_by(Follower.stage))
    return {stage: count for stage, count in rows}


def leads(
    session: Session, rep_id: int, filters: Filters, per_page: int = PER_PAGE, now: datetime | None = None
) -> LeadPage:
    """One page of the rep's leads; a page past the end shows the last one."""
    where = _conditions(rep_id, filters)
    counts = _stage_counts(session, where)
    total = counts.get(filters.stage, 0) if filters.stage else sum(counts.values())
    pages = max(1, math.ceil(total / per_page))
    page = min(max(filters.page, 1), pages)
    if filters.stage:
        where.append(Follower.stage == filters.stage)
    rows = session.execute(_page_query(session, where, filters.sort, now).limit(per_page).offset((page - 1) * per_page))
    rows = list(rows)
    names = tags.names_of(session, [r.id for r in rows])
    items = [
        LeadRow(r.id, r.openid, first(r.profile, NAME_KEYS), first(r.profile, COMPANY_KEYS), r.stage,
                round(float(r.score), 1), r.last_active_at, sorted(names[r.id]))
        for r in rows
    ]  # fmt: skip
    return LeadPage(items, total, page, pages, per_page, counts, stage_names(session))


def _page_query(session: Session, where: list[ColumnElement[bool]], sort: str, now: datetime | None) -> Any:
    model = followers.stage_model(session)
    score = func.coalesce(score_totals.decayed_sql(now or utcnow()), 0.0).label("score")
    query = (
        select(Follower.id, Follower.openid, Follower.profile, Follower.stage, Follower.last_active_at, score)
        .outerjoin(FollowerScore, and_(FollowerScore.follower_id == Follower.id, FollowerScore.model == model))
        .where(*where)
    )
    if sort == "activity":
        order = [Follower.last_active_at.is_(None), Follower.last_active_at.desc()]
    else:
        order = [score.desc()]
    return query.order_by(*order, Follower.id.desc())


def first(profile: dict[str, Any] | None, keys: tuple[str, ...]) -> str:
    """The first non-empty profile value among `keys`, as text."""
    profile = profile or {}
    return next((str(profile[k]) for k in keys if profile.get(k)), "")


def mask(mobile: str) -> str:
    """A phone number as the card shows it: `138****5678` (only the last 4 digits of a short one)."""
    digits = "".join(ch for ch in mobile if ch.isdigit())
    if not digits:
        return ""
    if len(digits) >= 7:
        return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]
    return "*" * max(len(digits) - 4, 0) + digits[-4:]


def lead(session: Session, rep_id: int, follower_id: int) -> Follower | None:
    """The rep's lead with this id: the person's primary row when the id is a merged identity; None when the rep
    does not own it (or it does not exist)."""
    found = session.get(Follower, follower_id) if 0 < follower_id <= MAX_ID else None
    if found is not None and found.merged_into is not None:
        found = session.get(Follower, found.merged_into)
    if found is None or found.owner_id != rep_id:
        return None
    return found


def card(session: Session, follower: Follower, limit: int = TIMELINE) -> Card:
    """Everything the lead card shows (`follower` is one `lead` returned)."""
    profile = follower.profile or {}
    entries = followers.timeline(session, follower, limit + 1, None)
    owners = _owners(session, follower.id)
    return Card(
        follower=follower,
        name=first(profile, NAME_KEYS),
        company=first(profile, COMPANY_KEYS),
        mobile=mask(first(profile, MOBILE_KEYS)),
        tags=sorted(tags.names(session, follower.id)),
        score=score_totals.explain(session, follower.id, limit=50),
        model=followers.stage_model(session),
        stages=stage_names(session),
        owners=owners,
        timeline=entries[:limit],
        more=len(entries) > limit,
        rep_names=_rep_names(session, owners),
    )


def _owners(session: Session, follower_id: int) -> list[dict[str, Any]]:
    """Owner changes, newest first: assignments (and how), conflicts on merge, transfers WeCom refused."""
    rows = session.scalars(
        select(Activity)
        .where(Activity.follower_id == follower_id, Activity.kind.in_(OWNER_KINDS))
        .order_by(Activity.at.desc(), Activity.id.desc())
        .limit(50)
    )
    return [{"kind": a.kind, "at": a.at, **(a.data or {})} for a in rows]


def _rep_names(session: Session, owners: list[dict[str, Any]]) -> dict[int, str]:
    ids = {v for o in owners for k in ("rep", "from", "kept", "other") if isinstance(v := o.get(k), int)}
    if not ids:
        return {}
    rows = session.execute(select(Rep.id, Rep.name, Rep.userid).where(Rep.id.in_(ids)))
    return {rid: name or userid for rid, name, userid in rows}


def clip(text: Any, size: int = 120) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= size else text[: size - 1] + "…"


def summary(entry: dict[str, Any], names: dict[int, str] | None = None) -> str:
    """One line for a timeline entry as a rep reads it: what was said or clicked, or what changed."""
    data = entry.get("data") or {}
    if entry.get("source") == "wechat":
        return clip(entry.get("content") or (entry.get("event_key") or "").removeprefix("qrscene_"))
    kind, names = entry["kind"], names or {}
    if kind == "rep_action":
        return _action(data)
    if kind in ("tag_added", "tag_removed"):
        return str(data.get("tag", ""))
    if kind == "stage_changed":
        return f"{data.get('from')} → {data.get('to')}" + (f" ({data['reason']})" if data.get("reason") else "")
    if kind == "score":
        return f"{data.get('points', 0):+} points, {data.get('rule')} (now {data.get('score')})"
    if kind == "owner_assigned":
        rep = data.get("rep")
        return f"to {names.get(rep, f'rep {rep}')}" + (f" via {data['via']}" if data.get("via") else "")
    return clip(", ".join(f"{k}: {v}" for k, v in data.items() if isinstance(v, str | int | float | bool)))


def _action(data: dict[str, Any]) -> str:
    what = data.get("action")
    if what == "followed_up":
        return "followed up" + (f": {clip(data['note'])}" if data.get("note") else "")
    if what == "stage":
        return f"stage {data.get('from')} → {data.get('to')}"
    if what in ("tag_added", "tag_removed"):
        return f"{'added' if what == 'tag_added' else 'removed'} tag {data.get('tag')}"
    return clip(what)
