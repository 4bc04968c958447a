"""Reports a marketer steers by: where followers come from (and go), deliveries, tags; each one set-based query or
a few, grouped in SQL over indexes (migration 0020), never a loop over followers.

Every report takes a Session, a `Window` (scrm.report_sql) and `rep`: None for admins and marketers, a rep's id for
a rep token, which then counts only the followers that rep owns. Each returns a JSON-ready dict whose `rows` are
the flat table the CSV variant prints (`COLUMNS` names its columns). scrm.report_people has the funnel and the rep
leaderboard, scrm.report_journeys the journeys; `run` dispatches by name.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

from sqlalchemy import and_, case, func, or_, select, text
from sqlalchemy.orm import Session

from scrm import link_reads, report_journeys, report_people
from scrm.delivery_models import Delivery
from scrm.models import Follower, FollowerTag, Interaction, Tag
from scrm.report_sql import Window, bucket, day_text, ratio, within

_I, _F, _D = Interaction.__table__.c, Follower.__table__.c, Delivery.__table__.c
_FT = FollowerTag.__table__.c
# The partial index ix_interactions_gain_loss (migration 0020) covers exactly these kinds; the literal text lets
# both planners see that a query's rows lie inside it.
GAIN_LOSS_KINDS = ("subscribe", "unsubscribe", "change_external_contact")
GAIN_LOSS = text("interactions.kind IN ('subscribe', 'unsubscribe', 'change_external_contact')")
WECOM_ADDED = ("add_external_contact", "add_half_external_contact")
WECOM_LOST = ("del_external_contact", "del_follow_user")
SCENE_KINDS = ("rep", "team", "booth", "staff", "campaign", "ref")
TOP_TAGS, MAX_TAGS = 20, 200


def scene_kind(scene: str | None) -> str:
    """What kind of code a scene is: rep, team, booth, staff, campaign, ref; `none` without one, else `other`."""
    if not scene:
        return "none"
    prefix = scene.split(":", 1)[0]
    return prefix if prefix in SCENE_KINDS else "other"


def _owned(query: Any, follower_id: Any, rep: int | None) -> Any:
    """Only the rep's leads when `rep` is set (a join on the follower's primary key)."""
    if rep is None:
        return query
    return query.join(Follower, Follower.id == follower_id).where(_F.owner_id == rep)


# --- sources ---------------------------------------------------------------------------------------------------


def _gained(session: Session, win: Window, rep: int | None) -> Any:
    """Follows (OA subscribe) and WeCom contacts added in the window, by the scene of that very event."""
    day = bucket(session, _I.at, win).label("b")
    came = or_(_I.kind == "subscribe", and_(_I.kind == "change_external_contact", _I.event_key.in_(WECOM_ADDED)))
    query = select(day, _I.channel, _I.scene, func.count()).where(GAIN_LOSS, came, within(_I.at, win))
    return session.execute(_owned(query, _I.follower_id, rep).group_by(day, _I.channel, _I.scene))


def _lost(session: Session, win: Window) -> Any:
    """Unfollows and WeCom contacts lost in the window, by the follower's first source (a loss has no scene)."""
    day = bucket(session, _I.at, win).label("b")
    went = or_(_I.kind == "unsubscribe", and_(_I.kind == "change_external_contact", _I.event_key.in_(WECOM_LOST)))
    query = select(day, _I.channel, _F.source, func.count()).join(Follower, Follower.id == _I.follower_id)
    return query.where(GAIN_LOSS, went, within(_I.at, win)).group_by(day, _I.channel, _F.source)


def sources(session: Session, win: Window, rep: int | None = None, **_: Any) -> dict[str, Any]:
    """Followers gained and lost per bucket, code kind, channel (oa/wecom) and scene; totals by kind and scene."""
    cells: dict[tuple[str, str, str | None], list[int]] = {}
    for b, channel, scene, n in _gained(session, win, rep):
        cells.setdefault((day_text(b), channel, scene), [0, 0])[0] += n
    lost = _lost(session, win)
    for b, channel, scene, n in session.execute(lost if rep is None else lost.where(_F.owner_id == rep)):
        cells.setdefault((day_text(b), channel, scene), [0, 0])[1] += n
    rows = [
        {"bucket": b, "kind": scene_kind(s), "scene": s or "", "channel": c, "gained": g, "lost": lo, "net": g - lo}
        for (b, c, s), (g, lo) in sorted(cells.items(), key=lambda kv: (kv[0][0], kv[0][2] or "", kv[0][1]))
    ]
    return {"report": "sources", **win.describe(), "totals": _sums(rows), "by_kind": _by(rows, "kind"),
            "by_scene": _by(rows, "scene"), "series": _series(rows, win), "rows": rows}  # fmt: skip


def _sums(rows: list[dict[str, Any]]) -> dict[str, int]:
    gained, lost = sum(r["gained"] for r in rows), sum(r["lost"] for r in rows)
    return {"gained": gained, "lost": lost, "net": gained - lost}


def _by(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Totals per value of `key`, the biggest gain first."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row[key], []).append(row)
    out = [{key: k, **({"kind": g[0]["kind"]} if key == "scene" else {}), **_sums(g)} for k, g in groups.items()]
    return sorted(out, key=lambda r: (-r["gained"], -r["lost"], r[key]))


def _series(rows: list[dict[str, Any]], win: Window) -> list[dict[str, Any]]:
    """One entry per bucket of the window (empty ones too): gained and lost, overall and per code kind."""
    out = {b: {"bucket": b, "gained": 0, "lost": 0, "by_kind": {}} for b in win.labels()}
    for row in rows:
        entry = out.setdefault(row["bucket"], {"bucket": row["bucket"], "gained": 0, "lost": 0, "by_kind": {}})
        entry["gained"] += row["gained"]
        entry["lost"] += row["lost"]
        kind = entry["by_kind"].setdefault(row["kind"], {"gained": 0, "lost": 0})
        kind["gained"] += row["gained"]
        kind["lost"] += row["lost"]
    return [out[b] for b in sorted(out)]


# --- deliveries ------------------------------------------------------------------------------------------------


def deliveries(session: Session, win: Window, rep: int | None = None, **_: Any) -> dict[str, Any]:
    """Messages created in the window by template and state (queued ... delivered, failed, blocked, ...)."""
    query = select(_D.template, _D.state, func.count()).where(within(_D.created_at, win))
    query = _owned(query, _D.follower_id, rep).group_by(_D.template, _D.state)
    rows = [{"template": t, "state": s, "count": n} for t, s, n in session.execute(query)]
    rows.sort(key=lambda r: (r["template"], r["state"]))
    by_state: dict[str, int] = {}
    templates: dict[str, dict[str, Any]] = {}
    for row in rows:
        by_state[row["state"]] = by_state.get(row["state"], 0) + row["count"]
        entry = templates.setdefault(row["template"], {"template": row["template"], "total": 0, "states": {}})
        entry["total"] += row["count"]
        entry["states"][row["state"]] = row["count"]
    clicked = select(_D.template, link_reads.CLICKED_ONCE, link_reads.CLICKS).select_from(link_reads.CLICKED)
    clicked = _owned(clicked.where(within(_D.created_at, win)), _D.follower_id, rep).group_by(_D.template)
    clicks = {t: (int(once), int(n)) for t, once, n in session.execute(clicked)}
    for entry in templates.values():
        reached = entry["states"].get("delivered", 0) + entry["states"].get("sent", 0)
        entry["delivered_rate"] = ratio(entry["states"].get("delivered", 0), reached)
        entry["clicked"], entry["clicks"] = clicks.get(entry["template"], (0, 0))
        entry["click_through"] = ratio(entry["clicked"], reached)  # messages clicked (once each) of those reached
    by_template = sorted(templates.values(), key=lambda e: (-e["total"], e["template"]))
    return {"report": "deliveries", **win.describe(), "total": sum(by_state.values()),
            "by_state": dict(sorted(by_state.items())), "by_template": by_template, "rows": rows}  # fmt: skip


# --- tags ------------------------------------------------------------------------------------------------------


def tags(session: Session, win: Window, rep: int | None = None, limit: int = TOP_TAGS, **_: Any) -> dict[str, Any]:
    """The tags most followers carry now, each with how many got it within the window."""
    added = func.sum(case((within(_FT.added_at, win), 1), else_=0))
    counts = select(_FT.tag_id, func.count().label("followers"), added.label("added"))
    counts = _owned(counts, _FT.follower_id, rep).group_by(_FT.tag_id).subquery()
    query = (
        select(Tag.name, counts.c.followers, counts.c.added)
        .join(counts, counts.c.tag_id == Tag.id)
        .order_by(counts.c.followers.desc(), Tag.name)
        .limit(limit)
    )
    rows = [{"tag": name, "followers": n, "added": int(a or 0)} for name, n, a in session.execute(query)]
    return {"report": "tags", **win.describe(), "limit": limit, "rows": rows}


# --- dispatch --------------------------------------------------------------------------------------------------

Report = Callable[..., dict[str, Any]]
COLUMNS: dict[str, tuple[str, ...]] = {
    "sources": ("bucket", "kind", "scene", "channel", "gained", "lost", "net"),
    "funnel": ("stage", "reached", "conversion", "from_previous", "median_seconds_from_previous"),
    "deliveries": ("template", "state", "count"),
    "tags": ("tag", "followers", "added"),
    "reps": ("rep_id", "name", "leads", "mqls", "followed_up", "median_seconds_to_follow_up"),
    "journeys": ("journey", "version", "step", "entered", "waiting", "done", "converted", "exited"),
}
NAMES = tuple(COLUMNS)


def registry() -> dict[str, Report]:
    return {"sources": sources, "funnel": report_people.funnel, "deliveries": deliveries, "tags": tags,
            "reps": report_people.reps, "journeys": report_journeys.journeys}  # fmt: skip


WORK_MEM = "64MB"  # PostgreSQL, per sort or hash of a report's statements: the default 4MB spilled them to disk


def run(session: Session, name: str, win: Window, rep: int | None = None, **options: Any) -> dict[str, Any]:
    """The named report (KeyError for an unknown name: callers check `NAMES` first). On PostgreSQL its
    transaction gets `work_mem` enough for the window's grouping to stay in memory (SET LOCAL: this one only)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
    return registry()[name](session, win, rep=rep, **options)


def csv_text(report: dict[str, Any]) -> str:
    """The report's `rows` as CSV with its declared columns (None as an empty cell)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    columns = COLUMNS[report["report"]]
    writer.writerow(columns)
    for row in report["rows"]:
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
    return out.getvalue()
