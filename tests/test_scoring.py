"""Scoring: decay, running totals, caps. Property tests (hypothesis) for the promises of the issue: decay is
monotone, a score is never negative unless a rule subtracts, capped rules never exceed their cap; and the running
total kept per follower equals the sum of the explained events.
"""

from __future__ import annotations

import itertools
import math
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from scrm import score_totals, scoring
from scrm.models import Follower
from scrm.playbook import store
from scrm.playbook.models import FollowerScore
from scrm.scoring import CapSpec, Usage, accumulate, allowed, decay, decayed

DAY = 86400.0
T0 = datetime(2026, 3, 1, 12, 0, 0)
half_lives = st.one_of(st.none(), st.floats(min_value=60, max_value=400 * DAY))
ages = st.floats(min_value=0, max_value=3650 * DAY)
points = st.integers(min_value=-50, max_value=50)
positive = st.integers(min_value=1, max_value=50)


def test_decay_halves_each_half_life():
    assert decay(0, 7 * DAY) == 1.0
    assert decay(7 * DAY, 7 * DAY) == pytest.approx(0.5)
    assert decay(21 * DAY, 7 * DAY) == pytest.approx(0.125)
    assert decay(1e9, None) == 1.0
    assert decay(-100, 7 * DAY) == 1.0  # clock skew never inflates a score


@given(half_life=half_lives, a=ages, b=ages, value=st.floats(min_value=0, max_value=1e6))
def test_decay_is_monotone(half_life, a, b, value):
    young, old = sorted((a, b))
    assert decayed(value, 0, old, half_life) <= decayed(value, 0, young, half_life) <= value


@given(half_life=half_lives, events=st.lists(st.tuples(points, ages), min_size=1, max_size=30), at=ages)
def test_running_total_equals_sum_of_decayed_events(half_life, events, at):
    value, as_of = 0.0, 0.0
    for pts, when in events:  # arrival order is arbitrary: some events are older than the running total
        value, as_of = accumulate(value, as_of, pts, when, half_life)
    now = max(at, as_of)
    expected = sum(p * decay(now - t, half_life) for p, t in events)
    assert decayed(value, as_of, now, half_life) == pytest.approx(expected, rel=1e-9, abs=1e-9)


@given(half_life=half_lives, events=st.lists(st.tuples(positive, ages), min_size=1, max_size=30), at=ages)
def test_never_negative_without_subtracting_rules(half_life, events, at):
    value, as_of = 0.0, 0.0
    for pts, when in sorted(events, key=lambda e: e[1]):
        value, as_of = accumulate(value, as_of, pts, when, half_life)
        assert value >= 0
    assert decayed(value, as_of, max(at, as_of), half_life) >= 0


caps = st.builds(
    CapSpec,
    once=st.booleans(),
    per_day=st.one_of(st.none(), st.integers(1, 5)),
    total=st.one_of(st.none(), st.integers(1, 100)),
)


@given(cap=caps, awards=st.lists(st.tuples(points, st.integers(0, 5)), max_size=60))
def test_capped_rules_never_exceed_their_cap(cap, awards):
    given_points, per_day, count = 0, dict.fromkeys(range(6), 0), 0
    for pts, day in sorted(awards, key=lambda a: a[1]):
        got = allowed(pts, cap, Usage(count=count, today=per_day[day], points=given_points))
        assert abs(got) <= abs(pts) and (got == 0 or math.copysign(1, got) == math.copysign(1, pts))
        if got:
            count, per_day[day], given_points = count + 1, per_day[day] + 1, given_points + abs(got)
        if cap.total is not None:
            assert given_points <= cap.total
        if cap.per_day is not None:
            assert per_day[day] <= cap.per_day
        if cap.once:
            assert count <= 1


# --- against the database ---------------------------------------------------------------------------------------

_openids = itertools.count()


def _follower(session) -> int:
    f = Follower(openid=f"oS{next(_openids)}", profile={})
    session.add(f)
    session.flush()
    return f.id


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cap=caps,
    half_life=st.one_of(st.none(), st.sampled_from([3600.0, DAY, 14 * DAY])),
    awards=st.lists(st.tuples(points, st.integers(0, 3 * 24 * 60)), min_size=1, max_size=25),
)
def test_awards_in_the_database_respect_caps_and_explain_the_total(app, cap, half_life, awards):
    db = app.extensions["welead"].db
    with db.transaction() as session:
        fid = _follower(session)
        for i, (pts, minute) in enumerate(sorted(awards, key=lambda a: a[1])):
            scoring.award(session, follower_id=fid, model="m", half_life=half_life, points=pts, rule="r",
                          interaction_id=None, dedup=f"{fid}:{i}", cap=cap,
                          now=T0 + timedelta(minutes=minute))  # fmt: skip
        end = T0 + timedelta(days=4)
        explained = score_totals.explain(session, fid, now=end)
    given_points = [e["points"] for e in explained["events"]]
    if cap.once:
        assert len(given_points) <= 1
    if cap.total is not None:
        assert sum(abs(p) for p in given_points) <= cap.total
    if cap.per_day is not None:
        days = [e["at"][:10] for e in explained["events"]]
        assert all(days.count(d) <= cap.per_day for d in days)
    total = explained["models"].get("m", {"score": 0.0})["score"]
    assert total == pytest.approx(sum(e["points_now"] for e in explained["events"]), abs=0.01)


def test_dedup_key_gives_points_once(app):
    db = app.extensions["welead"].db
    with db.transaction() as session:
        fid = _follower(session)
        kw = {"follower_id": fid, "model": "m", "half_life": None, "points": 5, "rule": "r", "interaction_id": None}
        assert scoring.award(session, dedup="k", **kw) is not None
        assert scoring.award(session, dedup="k", **kw) is None
        assert score_totals.current(session, fid, "m") == 5


def test_totals_and_sql_decay_agree(app):
    db = app.extensions["welead"].db
    with db.transaction() as session:
        fid = _follower(session)
        for i, (pts, hours) in enumerate([(10, 0), (20, 30), (-5, 50)]):
            scoring.award(session, follower_id=fid, model="m", half_life=DAY, points=pts, rule="r",
                          interaction_id=None, dedup=f"x{i}", now=T0 + timedelta(hours=hours))  # fmt: skip
    now = T0 + timedelta(days=5)
    with db.sessions() as session:
        python = score_totals.totals(session, [fid], now)[fid]["m"]
        sql = session.scalar(select(score_totals.decayed_sql(now)).where(FollowerScore.follower_id == fid))
    expected = sum(p * 0.5 ** ((120 - h) / 24) for p, h in [(10, 0), (20, 30), (-5, 50)])
    assert python == pytest.approx(expected, abs=0.01) and sql == pytest.approx(expected, rel=1e-9)


def test_changing_a_half_life_rebases_the_totals(app):
    db = app.extensions["welead"].db
    with db.transaction() as session:
        store.load(session, "models: {engagement: {half_life_days: 14}}")
        fid = _follower(session)
        for i, days in enumerate([0, 7]):
            scoring.award(session, follower_id=fid, model="engagement", half_life=14 * DAY, points=8, rule="r",
                          interaction_id=None, dedup=f"y{i}", now=T0 + timedelta(days=days))  # fmt: skip
    with db.transaction() as session:
        store.load(session, "models: {engagement: {half_life_days: 1}}", now=T0 + timedelta(days=7))
    with db.sessions() as session:
        row = session.get(FollowerScore, (fid, "engagement"))
        assert row.half_life == DAY
        now = T0 + timedelta(days=9)
        assert score_totals.current(session, fid, "engagement", now) == pytest.approx(8 * 0.25 + 8 * 0.5**9, rel=1e-6)
    with db.transaction() as session:  # a playbook without decay: the plain sum
        store.load(session, "models: {engagement: {}}")
    with db.sessions() as session:
        assert score_totals.current(session, fid, "engagement") == pytest.approx(16.0)
