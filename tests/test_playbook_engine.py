"""The rules engine against a real database: matching, loops, fire-once, conditions, thresholds with hysteresis over
time, periodic triggers. Time is passed in explicitly (`now`), so decay is exercised without sleeping.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from scrm import playbook, score_totals, tags
from scrm.accept import Accepted, accept
from scrm.applier import drain
from scrm.ingest import Event, Visit, rep_id
from scrm.models import Activity, Follower, Outbox
from scrm.playbook import periodic, signals, store
from scrm.playbook.compiled import Compiled, Signal
from scrm.playbook.engine import Quiet, Run
from scrm.playbook.validate import parse

T0 = datetime(2026, 1, 5, 9, 0, 0)
_scope = itertools.count(1)


@pytest.fixture
def db(app):
    return app.extensions["welead"].db


def load(db, text: str) -> None:
    with db.transaction() as session:
        store.load(session, text)


def new_follower(db, openid: str = "o1", owned: bool = True, **values) -> int:
    """A subscribed follower, owned by a rep unless `owned` is False (notify_owner needs an owner)."""
    with db.transaction() as session:
        if owned:
            values.setdefault("owner_id", rep_id(session, f"rep-of-{openid}"))
        f = Follower(openid=openid, profile={}, subscribed=True, **values)
        session.add(f)
        session.flush()
        return f.id


def fire(db, fid: int, kind: str, now: datetime = T0, **facts) -> Quiet:
    """One engine run for follower `fid` with one signal, at time `now`."""
    with db.transaction() as session:
        follower = session.get(Follower, fid)
        ctx = Quiet(session, follower)
        run = Run(store.active(session), ctx, scope=f"t{next(_scope)}", now=now)
        run.emit(kind, **facts)
        run.drain()
        return ctx


def state(db, fid: int, now: datetime = T0) -> dict:
    with db.sessions() as session:
        f = session.get(Follower, fid)
        return {
            "tags": tags.names(session, fid),
            "stage": f.stage,
            "owner": f.owner_id,
            "score": round(score_totals.current(session, fid, "engagement", now), 3),
        }


def activities(db, fid: int, kind: str) -> list[dict]:
    with db.sessions() as session:
        rows = session.scalars(select(Activity).where(Activity.follower_id == fid, Activity.kind == kind))
        return [a.data for a in rows]


def process(db, event: Event) -> Accepted:
    """Record `event` as a callback would, then apply everything pending as the applier does."""
    accepted = accept(db, event)
    drain(db)
    return accepted


def outbox(db, task: str) -> list[dict]:
    with db.sessions() as session:
        return [r.args for r in session.scalars(select(Outbox).where(Outbox.task == task).order_by(Outbox.id))]


def rule_notices(db) -> list[dict]:
    """The rules' own notify_owner rows (reaching mql queues a notice of its own: scrm.notices)."""
    return [args for args in outbox(db, "rep.notify") if args["kind"] == "rule"]


# --- matching ---------------------------------------------------------------------------------------------------


def test_literal_index_keeps_playbook_order():
    book = Compiled(
        parse(
            "rules:\n"
            "  - {name: any-menu, when: {click: 'MENU_*'}, do: [{tag: a}]}\n"
            "  - {name: exact, when: {click: MENU_X}, do: [{tag: b}]}\n"
            "  - {name: other, when: {click: OTHER}, do: [{tag: c}]}\n"
            "  - {name: two, when: {click: [MENU_X, OTHER]}, do: [{tag: d}]}\n"
        ),
        "x",
    )
    names = [r.name for r, _ in book.matches(Signal("click", {"key": "MENU_X"}))]
    assert names == ["any-menu", "exact", "two"]
    assert [r.name for r, _ in book.matches(Signal("click", {"key": "NOPE"}))] == []
    assert book.matches(Signal("view", {"url": "x"})) == []


def test_text_matching():
    book = Compiled(
        parse(
            "rules:\n"
            "  - {name: contains, when: {text: [Price, 价格]}, do: [{tag: a}]}\n"
            "  - {name: exact, when: {text: {keywords: [demo], exact: true}}, do: [{tag: b}]}\n"
            "  - {name: regex, when: {text: {regex: 'order (?P<no>\\d+)'}}, do: [{tag: 'o:{no}'}]}\n"
            "  - {name: cased, when: {text: {keywords: [VIP], ignore_case: false}}, do: [{tag: c}]}\n"
        ),
        "x",
    )

    def hits(text: str) -> dict[str, dict]:
        return {r.name: b for r, b in book.matches(Signal("text", {"text": text}))}

    assert set(hits("what's the PRICE?")) == {"contains"}
    assert set(hits("请问价格")) == {"contains"}
    assert set(hits(" Demo ")) == {"exact"}
    assert set(hits("a demo please")) == set()
    assert hits("where is order 1234?") == {"regex": {"no": "1234"}}
    assert set(hits("vip")) == set() and set(hits("VIP")) == {"cased"}


def test_scene_patterns_bind_parts():
    book = Compiled(parse("rules: [{name: b, when: {scene: 'booth:{event}:*'}, do: [{tag: 'e:{event}'}]}]"), "x")
    ((_rule, bound),) = book.matches(Signal("scene", {"scene": "booth:expo:A1:extra"}))
    assert bound == {"event": "expo"}
    assert book.matches(Signal("scene", {"scene": "rep:7"})) == []
    assert book.matches(Signal("scene", {"scene": None})) == []


def test_inbound_signals():
    def kinds(**kw) -> list[tuple[str, dict]]:
        ev = Event(channel="oa", openid="o", dedup_key="k", created=0, **kw)
        return [(s.kind, s.facts) for s in signals(ev)]

    assert kinds(kind="subscribe", scene="rep:1") == [
        ("subscribe", {"scene": "rep:1"}), ("scene", {"scene": "rep:1", "via": "subscribe"}),
        ("any", {"kind": "subscribe"}),
    ]  # fmt: skip
    assert kinds(kind="subscribe") == [("subscribe", {"scene": None}), ("any", {"kind": "subscribe"})]
    assert kinds(kind="templatesendjobfinish", event_key="failed:user block")[0] == (
        "template_failed", {"status": "failed:user block"}
    )  # fmt: skip
    assert kinds(kind="voice", content="价格")[0] == ("text", {"text": "价格"})
    assert kinds(kind="image") == [("any", {"kind": "image"})]
    added = kinds(
        kind="change_external_contact", event_key="add_external_contact", scene="rep:3", payload={"State": "rep:3"}
    )
    assert [k for k, _ in added] == ["contact_added", "scene", "any"]


# --- loops and fire-once ----------------------------------------------------------------------------------------


def test_loops_terminate_and_each_rule_fires_once(db):
    load(
        db,
        "rules:\n"
        "  - {name: start, when: {click: GO}, do: [{tag: x}]}\n"
        "  - {name: self, when: {tag_added: x}, do: [{tag: x}, {score: 1}]}\n"
        "  - {name: ping, when: {tag_added: x}, do: [{tag: y}, {untag: x}]}\n"
        "  - {name: pong, when: {tag_removed: x}, do: [{tag: x}]}\n"
        "  - {name: again, when: {tag_added: y}, do: [{untag: x}]}\n"
        "  - {name: every-tag, when: {tag_added: '*'}, do: [{score: 10}]}\n",
    )
    fid = new_follower(db)
    fire(db, fid, "click", key="GO")
    s = state(db, fid)
    # start +x → self (+1 point), ping (+y, -x), every-tag (+10); then y → again (x already gone);
    # then x removed → pong (+x); x added again matches self, ping and every-tag, which all fired already: the end.
    assert s["tags"] == {"x", "y"} and s["score"] == 11
    assert [a["tag"] for a in activities(db, fid, "tag_added")] == ["x", "y", "x"]


def test_retried_inbound_event_runs_no_rules(db):
    load(db, "rules: [{name: r, when: {click: K}, do: [{tag: t}, {score: 5}, {assign: amy}, {notify_owner: hi}]}]")
    event = Event(channel="oa", kind="click", openid="oR", dedup_key="same", created=1_700_000_000, event_key="K")
    first = process(db, event)
    second = process(db, event)
    assert first.id is not None and second.id is None
    with db.sessions() as session:
        fid = session.scalar(select(Follower.id).where(Follower.openid == "oR"))
    kinds = sorted(args["kind"] for args in outbox(db, "rep.notify"))
    assert state(db, fid)["score"] == 5 and kinds == ["assigned", "rule"]  # the assignment tells the rep too


# --- actions and conditions -------------------------------------------------------------------------------------


def test_conditions(db):
    load(
        db,
        "rules:\n"
        "  - {name: vip, when: {click: K}, if: {tagged: [vip], not_tagged: ['block:*']}, do: [{tag: a}]}\n"
        "  - {name: hot, when: {click: K}, if: {score: {min: 10}}, do: [{tag: b}]}\n"
        "  - {name: late, when: {click: K}, if: {stage_at_least: mql}, do: [{tag: c}]}\n"
        "  - {name: early, when: {click: K}, if: {stage: [new, engaged], owned: false}, do: [{tag: d}]}\n"
        "  - {name: any, when: {click: K}, if: {any_tagged: ['interest:*']}, do: [{tag: e}]}\n"
        "  - {name: gone, when: {click: K}, if: {subscribed: false}, do: [{tag: f}]}\n",
    )
    fid = new_follower(db, owned=False)
    fire(db, fid, "click", key="K")
    assert state(db, fid)["tags"] == {"d"}
    with db.transaction() as session:
        tags.add(session, fid, "vip")
        tags.add(session, fid, "interest:crm")
        session.get(Follower, fid).stage = "sql"
    fire(db, fid, "click", key="K")
    assert state(db, fid)["tags"] == {"vip", "interest:crm", "a", "c", "d", "e"}
    fid2 = new_follower(db, "o2", owned=False)
    with db.transaction() as session:
        tags.add(session, fid2, "vip")
        tags.add(session, fid2, "block:spam")
    fire(db, fid2, "click", key="K")
    assert state(db, fid2)["tags"] == {"vip", "block:spam", "d"}


def test_assign_keeps_an_owner_unless_overwrite(db):
    load(
        db,
        "rules:\n"
        "  - {name: a, when: {scene: 'rep:{rep}'}, do: [{assign: '{rep}'}]}\n"
        "  - {name: b, when: {click: STEAL}, do: [{assign: boss, overwrite: true}]}\n",
    )
    fid = new_follower(db, owned=False)
    fire(db, fid, "scene", scene="rep:amy")
    amy = state(db, fid)["owner"]
    fire(db, fid, "scene", scene="rep:bob")
    assert state(db, fid)["owner"] == amy
    fire(db, fid, "scene", scene=f"rep:{amy}")  # a numeric part is the rep id
    assert state(db, fid)["owner"] == amy
    fire(db, fid, "click", key="STEAL")
    assert state(db, fid)["owner"] not in (None, amy)
    assert [a["rule"] for a in activities(db, fid, "owner_assigned")] == ["a", "b"]


def test_notify_without_an_owner_is_noted_not_queued(db):
    load(db, "rules: [{name: r, when: {click: K}, do: [{notify_owner: 'call {openid}'}]}]")
    fid = new_follower(db, owned=False)
    fire(db, fid, "click", key="K")
    assert outbox(db, "rep.notify") == []
    assert activities(db, fid, "notify_skipped") == [{"rule": "r", "reason": "call o1", "why": "no owner"}]


def test_set_stage_fires_stage_trigger_and_outbox_keys(db):
    load(
        db,
        "rules:\n"
        "  - {name: won, when: {click: WON}, do: [{stage: customer}]}\n"
        "  - {name: welcome-customer, when: {stage_changed: customer}, do: [{send_template: {template: thanks}},"
        " {send_template: {template: survey, data: {stage: '{stage}', was: '{from}'}}}, {start_journey: j}]}\n"
        "journeys: {j: {steps: [{wait: 1h}, {do: [{notify_owner: 'ping'}]}]}}\n",
    )
    fid = new_follower(db)
    fire(db, fid, "click", key="WON")
    assert state(db, fid)["stage"] == "customer"
    sent = outbox(db, "template.send")
    assert [s["template"] for s in sent] == ["thanks", "survey"]
    assert sent[1]["data"] == {"stage": "customer", "was": "new"}
    assert sent[0]["key"] != sent[1]["key"] and all(s["key"].startswith("rule:welcome-customer:") for s in sent)
    (journey,) = outbox(db, "journey.start")
    assert journey == {"openid": "o1", "journey": "j", "key": journey["key"]}


# --- thresholds, hysteresis, decay ------------------------------------------------------------------------------

THRESHOLDS = """
models: {engagement: {half_life_days: 1, rearm_margin: 10}}
stages: {order: [{name: new, at: 0}, {name: engaged, at: 20}, {name: mql, at: 50}, customer]}
rules:
  - {name: pts, when: {click: '{n}'}, do: [{score: 1}]}
  - {name: big, when: {click: BIG}, do: [{score: 60}]}
  - {name: two, when: {click: TWO}, do: [{score: 2}]}
  - {name: hot, when: {score_crossed: 50}, do: [{notify_owner: 'hot at {score}'}]}
"""


def test_threshold_fires_once_per_upward_crossing_with_hysteresis(db):
    load(db, THRESHOLDS)
    fid = new_follower(db)
    fire(db, fid, "click", key="BIG", now=T0)  # 0 → 60: fires
    fire(db, fid, "click", key="TWO", now=T0 + timedelta(minutes=5))  # still above: nothing
    assert len(rule_notices(db)) == 1
    # decays to ~15 after 2 days (< 50 - 10): re-armed, and the next big award crosses again
    fire(db, fid, "click", key="BIG", now=T0 + timedelta(days=2))
    assert len(rule_notices(db)) == 2
    assert state(db, fid, T0 + timedelta(days=2))["stage"] == "mql"


def test_hovering_at_the_line_alerts_once(db):
    load(db, THRESHOLDS)
    fid = new_follower(db)
    now = T0
    for _ in range(49):
        fire(db, fid, "click", key="x", now=now)  # +1 each, within the same minute: 49
    assert len(rule_notices(db)) == 0
    fire(db, fid, "click", key="TWO", now=now)  # 51: fires
    later = now + timedelta(hours=3)  # decays to ~42.9: below 50, but not 10 below
    fire(db, fid, "click", key="BIG", now=later)
    assert len(rule_notices(db)) == 1


def test_decay_never_demotes_unless_configured(db):
    load(db, THRESHOLDS)
    fid = new_follower(db)
    fire(db, fid, "click", key="BIG", now=T0)
    done = _tick(db, T0 + timedelta(days=30))
    assert done.demoted == 0 and state(db, fid)["stage"] == "mql"


def test_demotion_by_decay_is_audited(db):
    load(db, THRESHOLDS.replace("stages: {", "stages: {demote: true, margin: 5, "))
    fid = new_follower(db)
    fire(db, fid, "click", key="BIG", now=T0)
    assert _tick(db, T0 + timedelta(hours=6)).demoted == 0  # ~50.5: keeps mql
    done = _tick(db, T0 + timedelta(days=3))  # 7.5: below engaged's 20 - 5
    assert done.demoted == 1 and state(db, fid)["stage"] == "new"
    last = activities(db, fid, "stage_changed")[-1]
    assert last["reason"] == "decay" and last["direction"] == "down" and last["from"] == "mql"


def _tick(db, now: datetime) -> periodic.Tick:
    with db.transaction() as session:
        return periodic.tick(session, now=now)


def test_inactive_fires_once_per_quiet_spell(db):
    load(
        db,
        "rules: [{name: quiet, when: {inactive: 7}, if: {not_tagged: [customer]}, do: [{send_template: nudge}]}]",
    )
    fid = new_follower(db, last_active_at=T0)
    new_follower(db, "o2", last_active_at=T0 + timedelta(days=6))
    assert _tick(db, T0 + timedelta(days=8)).inactive == 1
    assert _tick(db, T0 + timedelta(days=9)).inactive == 0
    with db.transaction() as session:
        session.get(Follower, fid).last_active_at = T0 + timedelta(days=10)
    assert _tick(db, T0 + timedelta(days=18)).inactive == 2  # o1's second spell, and o2's first
    assert [r["template"] for r in outbox(db, "template.send")] == ["nudge"] * 3


def test_followers_quiet_since_the_same_moment_each_get_the_template(db):
    """A periodic run's outbox keys name the follower: two followers imported together go quiet at the same instant,
    and each is sent the nudge (the keys once collided, so only the first follower got it)."""
    load(db, "rules: [{name: quiet, when: {inactive: 7}, do: [{send_template: nudge}]}]")
    for openid in ("o1", "o2", "o3"):
        new_follower(db, openid, last_active_at=T0)
    assert _tick(db, T0 + timedelta(days=8)).inactive == 3
    assert sorted(r["openid"] for r in outbox(db, "template.send")) == ["o1", "o2", "o3"]


def test_capabilities_raise_their_own_triggers(db):
    load(
        db,
        "rules:\n"
        "  - {name: lead-form, when: {form_submitted: 'demo-*'}, do: [{tag: 'form:{form}'}, {score: 20}]}\n"
        "  - {name: booth, when: {checked_in: '{event}'}, do: [{tag: 'visited:{event}:{booth}'}]}\n",
    )

    def form_and_checkin(visit):
        visit.signal("form_submitted", form="demo-request", fields={"phone": "1"})
        visit.signal("checked_in", event="expo", booth="A1")

    event = Event(channel="oa", kind="text", openid="oForm", dedup_key="form-1", created=1_700_000_000, content="x")
    recorded = accept(db, event)
    with db.transaction() as session:
        follower = Follower(openid="oForm", profile={}, subscribed=True)
        session.add(follower)
        session.flush()
        visit = Visit(session, event, follower, recorded.id)
        form_and_checkin(visit)
        playbook.run(visit, store.active(session))
    with db.sessions() as session:
        fid = session.scalar(select(Follower.id).where(Follower.openid == "oForm"))
    s = state(db, fid)
    assert s["tags"] == {"form:demo-request", "visited:expo:A1"} and s["score"] == 20


def test_concurrent_events_for_one_follower_respect_caps(db):
    """Callbacks for one follower in parallel (gunicorn workers), applied by appliers racing each other: a
    follower's partition lock (PostgreSQL) or the write lock (SQLite) serialises them, so a total cap holds exactly
    and `once` gives one award."""
    from concurrent.futures import ThreadPoolExecutor

    load(
        db,
        "rules:\n"
        "  - {name: capped, when: {click: K}, do: [{score: 10, cap: {total: 30}}, {score: 5, model: fit, cap: once}]}\n"
        "models: {engagement: {}, fit: {}}\n",
    )
    process(db, Event(channel="oa", kind="text", openid="oC", dedup_key="c-0", created=1, content="hi"))

    def click(i: int) -> None:
        accept(db, Event(channel="oa", kind="click", openid="oC", dedup_key=f"c-{i}", created=i, event_key="K"))
        drain(db, limit=2)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(click, range(1, 17)))
    drain(db)
    with db.sessions() as session:
        fid = session.scalar(select(Follower.id).where(Follower.openid == "oC"))
        assert score_totals.current(session, fid, "engagement") == 30
        assert score_totals.current(session, fid, "fit") == 5
