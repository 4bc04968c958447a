"""The lead pool: leads whose owner has not acted for WELEAD_LEAD_POOL_DAYS go to other reps, under their open-lead
caps, once per idle spell however often (or however concurrently) the periodic job runs. Time is driven by `now`."""

import threading
from collections import Counter
from datetime import timedelta

import pytest

from foundation.clock import utcnow
from scrm.handover_models import ONJOB, WAITING, Transfer
from tasks import handover as jobs
from tests.handover_kit import act, add_leads, add_rep, days_ago, owners, run_jobs, sandbox, svc, timeline, transfers

DAYS = 3


@pytest.fixture
def pool_on(app):
    svc(app).settings = svc(app).settings.replace(lead_pool_days=DAYS)


def tick(app, now=None) -> dict:
    with app.app_context():
        return jobs.pool(now=now)


def test_off_by_default(app):
    slow = add_rep(app, "slow")
    add_rep(app, "fast")
    add_leads(app, slow, 2, assigned_at=days_ago(400))
    assert tick(app) == {"disabled": True}


def test_idle_leads_go_back_and_are_reassigned(app, live, pool_on):
    slow, fast = add_rep(app, "slow"), add_rep(app, "fast")
    idle = add_leads(app, slow, 3, assigned_at=days_ago(5))
    fresh = add_leads(app, slow, 1, assigned_at=days_ago(1))
    worked = add_leads(app, slow, 1, assigned_at=days_ago(10))
    act(app, worked[0], slow, days_ago(1))  # the owner called this one yesterday
    nudged = add_leads(app, slow, 1, assigned_at=days_ago(10))
    act(app, nudged[0], fast, days_ago(1))  # someone else's action does not count for the owner
    won = add_leads(app, slow, 1, assigned_at=days_ago(10), stage="customer")
    assert tick(app) == {"moved": 4, "transferring": 0, "refused": 0, "no_rep": 0}
    assert set(owners(app, idle + nudged).values()) == {fast}
    assert set(owners(app, fresh + worked + won).values()) == {slow}
    (entry,) = timeline(app, idle[0], "owner_assigned")[1:]
    assert entry["via"] == "pool" and entry["from"] == slow and entry["rep"] == fast


def test_rerun_and_the_next_days(app, live, pool_on):
    slow, fast = add_rep(app, "slow"), add_rep(app, "fast")
    idle = add_leads(app, slow, 4, assigned_at=days_ago(5))
    assert tick(app)["moved"] == 4
    assert set(owners(app, idle).values()) == {fast}
    assert tick(app)["moved"] == 0  # the same spell is handled once
    assert tick(app, now=utcnow() + timedelta(days=DAYS - 1))["moved"] == 0  # fast has had them for two days
    assert tick(app, now=utcnow() + timedelta(days=DAYS + 1))["moved"] == 4  # fast did nothing either
    assert set(owners(app, idle).values()) == {slow}
    assert len(transfers(app)) == 8


def test_open_cap_is_kept(app, live, pool_on):
    slow = add_rep(app, "slow")
    capped, roomy = add_rep(app, "capped", open_cap=3), add_rep(app, "roomy")
    add_leads(app, capped, 2)  # capped holds 2 of its 3
    idle = add_leads(app, slow, 6, assigned_at=days_ago(5))
    assert tick(app)["moved"] == 6
    assert Counter(owners(app, idle).values()) == {capped: 1, roomy: 5}


def test_nobody_eligible_leaves_the_leads(app, live, pool_on):
    slow = add_rep(app, "slow")
    add_rep(app, "full", open_cap=0)
    idle = add_leads(app, slow, 2, assigned_at=days_ago(5))
    assert tick(app) == {"moved": 0, "transferring": 0, "refused": 0, "no_rep": 2}
    assert set(owners(app, idle).values()) == {slow} and transfers(app) == []


def test_two_schedulers_at_once_move_each_lead_once(app, live, pool_on):
    slow, a, b = add_rep(app, "slow"), add_rep(app, "a"), add_rep(app, "b")
    idle = add_leads(app, slow, 60, assigned_at=days_ago(5))
    now = utcnow()
    results: list[dict] = []
    runs = [threading.Thread(target=lambda: results.append(tick(app, now))) for _ in range(2)]
    for run in runs:
        run.start()
    for run in runs:
        run.join(60)
    assert sum(r["moved"] for r in results) == 60
    assert Counter(t.follower_id for t in transfers(app)) == dict.fromkeys(idle, 1)
    assert Counter(owners(app, idle).values()) == {a: 30, b: 30}


def test_idle_wecom_contact_is_transferred_on_the_job(app, live, pool_on):
    slow, fast = add_rep(app, "slow"), add_rep(app, "fast")
    (contact,) = add_leads(app, slow, 1, channel="wecom", assigned_at=days_ago(5))
    assert tick(app)["transferring"] == 1
    run_jobs(app)
    (t,) = transfers(app, Transfer.follower_id == contact)
    assert (t.mode, t.state, t.from_rep_id, t.to_rep_id) == (ONJOB, WAITING, slow, fast)
    (call,) = sandbox(app).sent("wecom/externalcontact/transfer_customer")
    assert (call["body"]["handover_userid"], call["body"]["takeover_userid"]) == ("slow", "fast")


def test_deactivated_owners_are_left_to_the_reassignment(app, live, pool_on):
    gone, other = add_rep(app, "gone", active=False), add_rep(app, "other")
    idle = add_leads(app, gone, 2, assigned_at=days_ago(5))
    assert tick(app)["moved"] == 0
    assert set(owners(app, idle).values()) == {gone} and other


def test_the_scheduler_runs_it():
    from tasks.worker import PERIODIC

    assert ("tasks.handover.pool", 300) in PERIODIC
