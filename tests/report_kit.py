"""A small, exactly known data set for the reports and the dashboard: two reps, five followers created in the week
of 2026-11-01..07 (Asia/Shanghai) plus one older, follows and unfollows, stage history, assignments, rep actions,
deliveries and tags. Every count and median the tests expect is worked out in the comments next to the rows.

Rows are written directly (not through callbacks): the reports read history, and the history needs exact times.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import count
from typing import Any

from scrm.delivery_models import Delivery
from scrm.journey_models import EXITED, FINISHED, RUNNING, JourneyRun, JourneyStep
from scrm.link_models import Link, LinkClick
from scrm.models import Activity, Follower, FollowerTag, Interaction, Rep, Tag
from welead.auth import issue

WINDOW = {"from": "2026-11-01", "to": "2026-11-07"}
HOUR = timedelta(hours=1)
_ids = count(1)


def local(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    """A local time in Asia/Shanghai as the naive UTC the database stores."""
    return datetime(2026, month, day, hour, minute) - timedelta(hours=8)


@dataclass
class Data:
    li: int
    wang: int
    ids: dict[str, int]
    tokens: dict[str, dict[str, str]]


def _interaction(openid: str, fid: int, kind: str, at: datetime, scene: str | None = None, **kw: Any) -> Interaction:
    n = next(_ids)
    return Interaction(dedup_key=f"{n:040x}", channel=kw.pop("channel", "oa"), kind=kind, follower_id=fid,
                       openid=openid, at=at, scene=scene, payload={}, applied_at=at, **kw)  # fmt: skip


def _followers(s: Any, li: int, wang: int) -> dict[str, int]:
    rows = {
        # openid: (created local, source, stage now, owner)
        "f1": (local(2, 10), "rep:1", "mql", li),
        "f2": (local(3, 1), "booth:expo:A1", "engaged", li),
        "f3": (local(4, 9), None, "sql", wang),
        "f4": (local(5, 12), "team:5", "mql", None),  # set to mql directly: no history, still reached new..mql
        "f5": (local(1, 0, 30), "campaign:spring", "new", None),
        "old": (local(20, 9, month=10), "rep:1", "customer", li),  # created before the window: not in the funnel
    }
    for openid, (at, source, stage, owner) in rows.items():
        channel = "wecom" if openid == "f4" else "oa"
        s.add(Follower(openid=openid, channel=channel, subscribed=True, source=source, stage=stage, owner_id=owner,
                       created_at=at, subscribed_at=at))  # fmt: skip
    s.flush()
    return {f.openid: f.id for f in s.query(Follower).all()}


def _sources(s: Any, ids: dict[str, int]) -> None:
    """Gained in the window: rep:1 (11-02), booth:expo:A1 (11-03 local, still 11-02 in UTC), none (11-04),
    team:5 via WeCom (11-05), campaign:spring (11-01 00:30 local, 10-31 in UTC). Lost: f1 on 11-06 (its source
    rep:1), `old` on 11-07 by WeCom deleting (source rep:1). Outside: a follow on 10-31 23:00 local."""
    s.add_all([
        _interaction("f1", ids["f1"], "subscribe", local(2, 10), "rep:1"),
        _interaction("f2", ids["f2"], "subscribe", local(3, 1), "booth:expo:A1"),
        _interaction("f3", ids["f3"], "subscribe", local(4, 9)),
        _interaction("f4", ids["f4"], "change_external_contact", local(5, 12), "team:5", channel="wecom",
                     event_key="add_external_contact"),
        _interaction("f5", ids["f5"], "subscribe", local(1, 0, 30), "campaign:spring"),
        _interaction("f1", ids["f1"], "unsubscribe", local(6, 8)),
        _interaction("old", ids["old"], "change_external_contact", local(7, 20), channel="wecom",
                     event_key="del_follow_user"),
        _interaction("old", ids["old"], "subscribe", local(31, 23, month=10), "rep:1"),
        _interaction("f1", ids["f1"], "text", local(2, 11), content="price?"),
    ])  # fmt: skip


def _stage(fid: int, at: datetime, old: str, new: str) -> Activity:
    return Activity(follower_id=fid, kind="stage_changed", at=at, data={"from": old, "to": new, "reason": "score"})


def _history(s: Any, ids: dict[str, int], li: int, wang: int) -> None:
    """new→engaged: f1 1 h, f2 2 h, f3 5 h (median 2 h); engaged→mql: f1 2 h, f3 1 h (median 1.5 h); mql→sql: f3
    4 h. Leads: li got f1 and f2, wang f3. li followed f1 up after 30 min and f2 after 90 min (median 1 h); wang
    has not followed f3 up (wang's action on f1 is not on a lead of his). MQLs: li 1 (f1), wang 1 (f3)."""
    f1, f2, f3 = (ids[k] for k in ("f1", "f2", "f3"))
    t1, t2, t3 = local(2, 10), local(3, 1), local(4, 9)
    s.add_all([
        _stage(f1, t1 + HOUR, "new", "engaged"), _stage(f1, t1 + 3 * HOUR, "engaged", "mql"),
        _stage(f2, t2 + 2 * HOUR, "new", "engaged"),
        _stage(f3, t3 + 5 * HOUR, "new", "engaged"), _stage(f3, t3 + 6 * HOUR, "engaged", "mql"),
        _stage(f3, t3 + 10 * HOUR, "mql", "sql"),
        Activity(follower_id=f1, kind="owner_assigned", at=t1, data={"rep": li, "via": "code"}),
        Activity(follower_id=f2, kind="owner_assigned", at=t2, data={"rep": li, "via": "code"}),
        Activity(follower_id=f3, kind="owner_assigned", at=t3, data={"rep": wang, "via": "round_robin"}),
        Activity(follower_id=f1, kind="rep_action", at=t1 + HOUR / 2, data={"rep": li, "action": "followed_up"}),
        Activity(follower_id=f1, kind="rep_action", at=t1 + 5 * HOUR, data={"rep": li, "action": "followed_up"}),
        Activity(follower_id=f2, kind="rep_action", at=t2 + HOUR * 1.5,
                 data={"rep": li, "action": "tag_added", "tag": "vip", "changed": True}),
        Activity(follower_id=f1, kind="rep_action", at=t1 + HOUR, data={"rep": wang, "action": "followed_up"}),
    ])  # fmt: skip


def _deliveries(s: Any, ids: dict[str, int]) -> None:
    """welcome: delivered 2 (f1, f2), failed 1 (f3); pricing: queued 1 (f3); one welcome before the window.
    f1's welcome was clicked (twice), so welcome's click-through is 1 of 2 reached."""
    rows = [("f1", "welcome", "delivered", local(2, 11)), ("f2", "welcome", "delivered", local(3, 2)),
            ("f3", "welcome", "failed", local(4, 10)), ("f3", "pricing", "queued", local(6, 9)),
            ("old", "welcome", "delivered", local(21, 9, month=10))]  # fmt: skip
    sent = [Delivery(key=f"k{i}", follower_id=ids[openid], openid=openid, channel="template", template=template,
                     state=state, created_at=at) for i, (openid, template, state, at) in enumerate(rows)]  # fmt: skip
    s.add_all(sent)
    s.flush()
    _clicks(s, ids, sent[0], sent[0], sent[4])


def _clicks(s: Any, ids: dict[str, int], *deliveries: Delivery) -> None:
    """A tracked link clicked from these messages, a click each: f1's welcome twice (one message clicked, two
    clicks), and the welcome before the window once (not counted)."""
    link = Link(code="rk1", name="report-kit", url="https://example.com/")
    s.add(link)
    s.flush()
    for i, d in enumerate(deliveries):
        seen = Interaction(dedup_key=f"click{i}", channel="oa", kind="link_click", openid=d.openid, at=d.created_at,
                           received_at=d.created_at, follower_id=ids[d.openid])  # fmt: skip
        s.add(seen)
        s.flush()
        s.add(LinkClick(interaction_id=seen.id, link_id=link.id, follower_id=ids[d.openid], carrier="delivery",
                        delivery_id=d.id, at=d.created_at))  # fmt: skip


def _tags(s: Any, ids: dict[str, int]) -> None:
    """vip: f1, f2 (added in the window), f3 (before); hot: f1 (in the window)."""
    vip, hot = Tag(name="vip"), Tag(name="hot")
    s.add_all([vip, hot])
    s.flush()
    for openid, tag, at in (("f1", vip, local(2, 12)), ("f2", vip, local(3, 3)), ("f3", vip, local(1, 9, month=10)),
                            ("f1", hot, local(2, 13))):  # fmt: skip
        s.add(FollowerTag(follower_id=ids[openid], tag_id=tag.id, added_at=at))


def _journeys(s: Any, ids: dict[str, int]) -> None:
    """`nurture` v1, four runs started in the window (one before): f1 waits at step 1, f2 at step 2, f3 exited at
    1, f4 finished. Steps done: 0 by all four; 1 by f2 and f4; 2 by f4. So step 0: 4 entered; step 1: 2 done + 1
    waiting = 3 entered, 1 exited there; step 2: 1 done + 1 waiting = 2 entered."""
    runs = [("f1", RUNNING, "1", ["0"]), ("f2", RUNNING, "2", ["0", "1"]), ("f3", EXITED, "1", ["0"]),
            ("f4", FINISHED, None, ["0", "1", "2"]), ("old", RUNNING, "1", ["0"])]  # fmt: skip
    for openid, state, position, done in runs:
        at = local(25, 9, month=10) if openid == "old" else local(5, 14)
        run = JourneyRun(follower_id=ids[openid], journey="nurture", key=f"nurture:{openid}", step=len(done),
                         state=state, started_at=at, updated_at=at, version=1, position=position)  # fmt: skip
        s.add(run)
        s.flush()
        s.add_all([JourneyStep(run_id=run.id, path=p, outcome="done", at=at) for p in done])


def build(app: Any) -> Data:
    with app.extensions["welead"].db.transaction() as s:
        li, wang = Rep(id=1, userid="li.wei", name="Li Wei"), Rep(id=2, userid="wang.fang", name="Wang Fang")
        s.add_all([li, wang])
        s.flush()
        ids = _followers(s, li.id, wang.id)
        _sources(s, ids)
        _history(s, ids, li.id, wang.id)
        _deliveries(s, ids)
        _tags(s, ids)
        _journeys(s, ids)
        tokens = {"marketer": issue(s, "mkt", "marketer"), "li": issue(s, "li-phone", "rep", str(li.id)),
                  "staff": issue(s, "booth", "staff", "expo")}  # fmt: skip
    headers = {k: {"Authorization": f"Bearer {t}"} for k, t in tokens.items()}
    return Data(1, 2, ids, {"admin": {"Authorization": "Bearer test-admin-token"}, **headers})
