"""A deactivated rep's open leads: OA leads reassigned in WeLead, WeCom contacts transferred in WeCom too (在职继承 /
离职继承), in calls of at most 100, with WeCom's 90-day rule, its errors and its outcomes recorded."""

from collections import Counter

import pytest

from scrm.handover_models import DONE, FAILED, ONJOB, RESIGNED, WAITING, Transfer
from tasks import handover as jobs
from tests.handover_kit import (
    add_leads,
    add_rep,
    deactivate,
    owners,
    run_jobs,
    sandbox,
    svc,
    timeline,
    transfers,
)
from wechat import sandbox_transfer

TRANSFER = "wecom/externalcontact/transfer_customer"
RESIGNED_TRANSFER = "wecom/externalcontact/resigned/transfer_customer"


@pytest.fixture
def team(app):
    """Rep "leaving" and three reps to take over, weights 1, 1, 2."""
    leaving = add_rep(app, "leaving")
    takers = [add_rep(app, "amy"), add_rep(app, "bo"), add_rep(app, "cy", weight=2)]
    return leaving, takers


def test_oa_leads_are_reassigned_by_weight(app, live, team):
    leaving, (amy, bo, cy) = team
    leads = add_leads(app, leaving, 40)
    won = add_leads(app, leaving, 2, stage="customer")  # the final stage: won, not open
    gone = add_leads(app, leaving, 2, subscribed=False)  # unfollowed: not reachable
    deactivate(app, leaving)
    run_jobs(app)
    got = Counter(owners(app, leads).values())
    assert got == {amy: 10, bo: 10, cy: 20}
    assert set(owners(app, won + gone).values()) == {leaving}
    (entry,) = timeline(app, leads[0], "owner_assigned")[1:]
    assert entry["via"] == "reassign" and entry["from"] == leaving and entry["rep"] == owners(app, leads[:1])[leads[0]]
    assert all(t.state == DONE and t.channel == "oa" for t in transfers(app))
    assert sandbox(app).sent(TRANSFER) == []  # OA followers need no WeCom call


def test_wecom_contacts_go_to_wecom_in_calls_of_at_most_100(app, live, team):
    leaving, takers = team
    contacts = add_leads(app, leaving, 230, channel="wecom")
    deactivate(app, leaving)
    run_jobs(app)
    calls = sandbox(app).sent(TRANSFER)
    assert calls and all(len(c["body"]["external_userid"]) <= 100 for c in calls)
    assert sum(len(c["body"]["external_userid"]) for c in calls) == 230
    assert {c["body"]["handover_userid"] for c in calls} == {"leaving"}
    assert {c["body"]["takeover_userid"] for c in calls} == {"amy", "bo", "cy"}
    rows = transfers(app)
    assert len(rows) == 230 and {(t.state, t.errcode, t.mode) for t in rows} == {(WAITING, 0, ONJOB)}
    by_owner = Counter(owners(app, contacts).values())
    assert sum(by_owner.values()) == 230 and set(by_owner) == set(takers)
    first = contacts[0]
    (entry,) = timeline(app, first, "owner_assigned")[1:]
    assert entry["via"] == "transfer"


def test_resigned_rep_uses_the_resigned_transfer(app, live, team):
    leaving, _ = team
    contacts = add_leads(app, leaving, 3, channel="wecom")
    sandbox_transfer.resign(svc(app).redis_slow, "leaving")
    deactivate(app, leaving, resigned=True)
    run_jobs(app)
    assert sandbox(app).sent(TRANSFER) == []
    calls = sandbox(app).sent(RESIGNED_TRANSFER)
    assert sum(len(c["body"]["external_userid"]) for c in calls) == 3
    assert {t.mode for t in transfers(app)} == {RESIGNED} and len(contacts) == 3


def test_outcomes_done_and_refused(app, live, team):
    leaving, _ = team
    a, b = add_leads(app, leaving, 2, channel="wecom")
    deactivate(app, leaving)
    run_jobs(app)
    ta, tb = transfers(app)
    conn = svc(app).redis_slow
    sandbox_transfer.settle(conn, ta.external_userid, sandbox_transfer.DONE)
    sandbox_transfer.settle(conn, tb.external_userid, sandbox_transfer.REFUSED)
    with app.app_context():
        assert jobs.transfer_result([ta.id, tb.id]) == {"waiting": 0, "settled": 2, "given_up": 0}
    ta, tb = transfers(app)
    assert (ta.state, ta.status) == (DONE, 1)
    assert (tb.state, tb.status) == (FAILED, 3) and "refused" in tb.error
    assert owners(app, [a, b]) == {a: ta.to_rep_id, b: leaving}  # refused: back where WeCom still has it
    (failed,) = timeline(app, b, "transfer_failed")
    assert failed["status"] == 3 and failed["given_back"] is True


def test_rerun_moves_nothing_twice(app, live, team):
    leaving, _ = team
    leads = add_leads(app, leaving, 5) + add_leads(app, leaving, 5, channel="wecom")
    oid = deactivate(app, leaving)
    run_jobs(app)
    before = owners(app, leads)
    with app.app_context():
        again = jobs.reassign(leaving)
    assert again == {"moved": 0, "transferring": 0, "refused": 0, "no_rep": 0}
    run_jobs(app)
    assert owners(app, leads) == before
    assert len(transfers(app)) == 10 and len(sandbox(app).sent(TRANSFER)) <= 3
    assert oid


def test_reactivated_rep_keeps_the_leads(app, live, team):
    leaving, _ = team
    leads = add_leads(app, leaving, 3)
    deactivate(app, leaving)
    with svc(app).db.transaction() as s:
        s.get(jobs.Rep, leaving).active = True
    run_jobs(app)
    assert set(owners(app, leads).values()) == {leaving} and transfers(app, Transfer.id > 0) == []


def test_a_long_list_continues_in_a_follow_up_job(app, live, team):
    leaving, takers = team
    leads = add_leads(app, leaving, 260)
    deactivate(app, leaving)
    with app.app_context():
        first = jobs.reassign(leaving, budget=200)
    assert first["moved"] == 200
    run_jobs(app)  # the follow-up (and the deactivation's own job, which finds nothing left)
    assert set(owners(app, leads).values()) == set(takers)
    assert len(transfers(app)) == 260
