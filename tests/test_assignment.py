"""The picker (scrm.assignment): weighted round-robin among eligible reps, caps, working hours, no catch-up bursts."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select

from scrm import assignment
from scrm.assignment_models import AssignmentTurn
from scrm.models import Follower
from tests.assignment_kit import add_rep, at, change_rep, svc


def picks(app, candidates, n: int, when, pool: str = "p") -> Counter:
    """`n` picks in one transaction, as an applier batch makes them."""
    got: Counter = Counter()
    with svc(app).db.transaction() as s:
        for _ in range(n):
            got[assignment.pick(s, candidates, when, pool)] += 1
    return got


def test_weights_share_the_leads_exactly(app):
    a, b, c = add_rep(app, "a"), add_rep(app, "b", weight=2), add_rep(app, "c", weight=5)
    got = picks(app, [(a, None), (b, None), (c, 3)], 1200, at())  # c's weight in this pool: 3, not its own 5
    assert got == {a: 200, b: 400, c: 600}


def test_order_interleaves_rather_than_batching(app):
    a, b = add_rep(app, "a"), add_rep(app, "b", weight=3)
    with svc(app).db.transaction() as s:
        order = [assignment.pick(s, [(a, None), (b, None)], at(), "p") for _ in range(8)]
    assert order.count(a) == 2 and order.count(b) == 6
    assert order[:4].count(a) == 1  # every run of 4 holds one lead for a: no streak of 6 b's then 2 a's


def test_picks_continue_across_transactions_and_pools_are_separate(app):
    a, b = add_rep(app, "a"), add_rep(app, "b")
    first = [next(iter(picks(app, [(a, 1), (b, 1)], 1, at()))) for _ in range(4)]
    assert first == [a, b, a, b]
    assert picks(app, [(a, 1), (b, 1)], 1, at(), pool="other") == {a: 1}  # a fresh pool starts at the lowest id


def test_only_active_confirmed_working_reps_under_their_caps(app):
    ok = add_rep(app, "ok")
    gone = add_rep(app, "gone", active=False)
    new = add_rep(app, "new", confirmed=False)
    off = add_rep(app, "off", hours={"weekly": {"sat": ["09:00-18:00"]}})  # T0 is a Wednesday
    full = add_rep(app, "full", daily_cap=0)
    with svc(app).db.transaction() as s:
        assert assignment.eligible(s, [ok, gone, new, off, full, 999], at()) == [ok]
    assert picks(app, [(r, None) for r in (gone, new, off, full, 999)], 3, at()) == {None: 3}


def test_daily_cap_counts_per_local_day(app):
    a, b = add_rep(app, "a", daily_cap=2), add_rep(app, "b")
    assert picks(app, [(a, 5), (b, 1)], 6, at()) == {a: 2, b: 4}
    with svc(app).db.transaction() as s:
        assert assignment.today(s, a, at()) == 2 and assignment.at_cap(s, a, at())
    # 2026-01-07 15:59 UTC is still the 7th in Shanghai; 16:00 UTC is the 8th there: a has room again.
    assert picks(app, [(a, 5)], 1, at(13 * 3600 + 59 * 60)) == {None: 1}
    assert picks(app, [(a, 5)], 1, at(14 * 3600)) == {a: 1}


def test_open_cap_counts_leads_held_including_unflushed_changes(app):
    a, b = add_rep(app, "a", open_cap=2), add_rep(app, "b")
    with svc(app).db.transaction() as s:
        for i in range(3):
            s.add(Follower(openid=f"o{i}", subscribed=True, profile={}))
        s.flush()
        followers = list(s.scalars(select(Follower).order_by(Follower.id)))
        s.commit()
    with svc(app).db.transaction() as s:
        leads = [s.get(Follower, f.id) for f in followers]
        got = []
        for lead in leads:  # owners set in memory only, as an applier batch does until its end
            lead.owner_id = assignment.pick(s, [(a, 10), (b, 1)], at(), "p")
            got.append(lead.owner_id)
        assert got == [a, a, b]
        assert assignment.open_leads(s, [a, b]) == {a: 2, b: 1} and assignment.at_cap(s, a, at())
        leads[0].subscribed = False  # an unfollow frees a slot
        assert assignment.eligible(s, [a], at()) == [a]


def test_a_rep_back_from_time_off_gets_a_share_not_a_burst(app):
    a = add_rep(app, "a")
    b = add_rep(app, "b", hours={"weekly": {"wed": ["12:00-18:00"]}})
    morning = picks(app, [(a, None), (b, None)], 100, at())  # 10:00: b is not working
    assert morning == {a: 100}
    afternoon = picks(app, [(a, None), (b, None)], 100, at(3 * 3600))  # 13:00: both are
    assert afternoon == {a: 50, b: 50}


def test_charge_counts_a_lead_given_without_a_pick(app):
    a, b = add_rep(app, "a", daily_cap=1), add_rep(app, "b")
    with svc(app).db.transaction() as s:
        assignment.charge(s, a, at(), "p")  # WeCom chose a: a's slot is used, and its turn in the pool taken
        assert assignment.eligible(s, [a, b], at()) == [b]
        turns = {t.rep_id: t.picks for t in s.scalars(select(AssignmentTurn))}
    assert turns == {a: 1}
    change_rep(app, a, daily_cap=None)
    assert picks(app, [(a, 1), (b, 1)], 2, at()) == {a: 1, b: 1}  # b's turn first: a already had one


def test_everyone_lists_active_confirmed_reps(app):
    a, _, c = add_rep(app, "a"), add_rep(app, "x", confirmed=False), add_rep(app, "c")
    with svc(app).db.sessions() as s:
        assert assignment.everyone(s) == [(a, None), (c, None)]
        assert assignment.everyone(s, exclude=[a]) == [(c, None)]


@pytest.mark.parametrize("weights", [(1, 1), (1, 4), (3, 7, 10)])
def test_fair_within_one_lead_whatever_the_weights(app, weights):
    reps = [add_rep(app, f"r{i}", weight=w) for i, w in enumerate(weights)]
    n = 1000
    got = picks(app, [(r, None) for r in reps], n, at() + timedelta(seconds=1))
    for rep, weight in zip(reps, weights, strict=True):
        assert abs(got[rep] - n * weight / sum(weights)) <= 1, got
