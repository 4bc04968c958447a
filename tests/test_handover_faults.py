"""WeCom transfers when things go wrong: the 90-day rule (WeLead's own count), busy answers (retried), permanent
errors (recorded, leads given back), per-customer refusals, a lost answer (never resent blindly), and the applier
changing a lead's owner while it is being handed over."""

import os
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import text

from foundation.clock import utcnow
from scrm.handover_models import FAILED, ONJOB, PENDING, UNKNOWN, WAITING, Transfer
from scrm.models import Follower, Outbox
from tasks import handover as jobs
from tasks.registry import GiveUp, RetryLater
from tests.handover_kit import add_leads, add_rep, deactivate, owners, run_jobs, sandbox, svc, timeline, transfers
from tests.helpers import count, post

TRANSFER = "wecom/externalcontact/transfer_customer"


@pytest.fixture
def pair(app):
    """Rep "leaving" and one rep to take over (so every lead goes to "amy")."""
    return add_rep(app, "leaving"), add_rep(app, "amy")


def queued(app, pair, n: int = 3) -> list[int]:
    """n WeCom leads of the leaving rep, reassigned (owner amy) with their transfer rows pending."""
    leaving, _ = pair
    leads = add_leads(app, leaving, n, channel="wecom")
    deactivate(app, leaving)
    with app.app_context():
        jobs.reassign(leaving)
    return leads


def ids(app) -> list[int]:
    return [t.id for t in transfers(app)]


def test_third_transfer_in_90_days_is_not_asked(app, live, pair):
    leaving, amy = pair
    (twice, once) = add_leads(app, leaving, 2, channel="wecom")
    with svc(app).db.transaction() as s:
        for days, fid in ((80, twice), (10, twice), (10, once)):
            at = utcnow() - timedelta(days=days)
            eid = s.get(Follower, fid).openid
            s.add(Transfer(key=f"old:{fid}:{days}", follower_id=fid, channel="wecom", external_userid=eid, cause="pool",
                           mode=ONJOB, from_rep_id=amy, to_rep_id=leaving, state="done", errcode=0, sent_at=at,
                           created_at=at))  # fmt: skip
    deactivate(app, leaving)
    run_jobs(app)
    (call,) = sandbox(app).sent(TRANSFER)
    refused = transfers(app, Transfer.follower_id == twice, Transfer.cause == "deactivated")[0]
    assert call["body"]["external_userid"] == [transfers(app, Transfer.follower_id == once)[-1].external_userid]
    assert (refused.state, refused.errcode, refused.to_rep_id) == (FAILED, 40128, None)
    assert "90 days" in refused.error
    assert owners(app, [twice, once]) == {twice: leaving, once: amy}
    (entry,) = timeline(app, twice, "transfer_failed")
    assert entry["errcode"] == 40128


def test_busy_is_retried_then_accepted(app, live, pair):
    queued(app, pair)
    sandbox(app).fail_next(TRANSFER, count=1, errcode=-1)
    with app.app_context(), pytest.raises(RetryLater):
        jobs.transfer(ids(app))
    assert {(t.state, t.attempts) for t in transfers(app)} == {(PENDING, 1)}
    with app.app_context():
        assert jobs.transfer(ids(app)) == {"sent": 3, "accepted": 3}
    assert {t.state for t in transfers(app)} == {WAITING}
    assert [c["errcode"] for c in sandbox(app).sent(TRANSFER)] == [-1, 0]


def test_busy_too_often_gives_up_and_gives_the_leads_back(app, live, pair):
    leaving, _ = pair
    leads = queued(app, pair)
    sandbox(app).fail_next(TRANSFER, count=10, errcode=-1)
    with app.app_context():
        for _ in range(4):
            with pytest.raises(RetryLater):
                jobs.transfer(ids(app))
        with pytest.raises(GiveUp):
            jobs.transfer(ids(app))
    assert {(t.state, t.errcode) for t in transfers(app)} == {(FAILED, -1)}
    assert set(owners(app, leads).values()) == {leaving}


def test_permanent_error_is_recorded_not_retried(app, live, pair):
    leaving, _ = pair
    leads = queued(app, pair)
    sandbox(app).fail_next(TRANSFER, count=1, errcode=48002)  # API forbidden: the app lacks the permission
    with app.app_context(), pytest.raises(GiveUp):
        jobs.transfer(ids(app))
    assert {(t.state, t.errcode) for t in transfers(app)} == {(FAILED, 48002)}
    assert set(owners(app, leads).values()) == {leaving}
    assert timeline(app, leads[0], "transfer_failed")[0]["given_back"] is True
    with app.app_context():  # a second push of the same job changes nothing and calls nobody
        assert jobs.transfer(ids(app)) == {"sent": 0, "accepted": 0}
    assert len(sandbox(app).sent(TRANSFER)) == 1


def test_one_customer_refused_the_others_accepted(app, live, pair):
    leaving, amy = pair
    leads = queued(app, pair)
    theirs = transfers(app)[1].external_userid
    sandbox(app).set_external_contact(theirs, userid="someone.else")  # not the leaving rep's customer in WeCom
    run_jobs(app)
    states = {t.external_userid: (t.state, t.errcode) for t in transfers(app)}
    assert states.pop(theirs) == (FAILED, 40131)
    assert set(states.values()) == {(WAITING, 0)}
    assert owners(app, leads) == {leads[0]: amy, leads[1]: leaving, leads[2]: amy}


def test_lost_answer_is_reconciled_not_resent(app, live, pair):
    leads = queued(app, pair)
    svc(app).settings = svc(app).settings.replace(http_timeout=1)
    sandbox(app).set_delay(1.5, TRANSFER)  # WeCom does the work, the answer comes too late
    with app.app_context(), pytest.raises(RetryLater):
        jobs.transfer(ids(app))
    assert {t.state for t in transfers(app)} == {UNKNOWN}
    sandbox(app).set_delay(0, TRANSFER)
    with app.app_context():
        assert jobs.transfer(ids(app)) == {"sent": 0, "accepted": 3}
    assert len(sandbox(app).sent(TRANSFER)) == 1  # asked transfer_result, did not ask for the transfer again
    assert {t.state for t in transfers(app)} == {WAITING} and len(leads) == 3


def test_crash_before_the_call_sends_once_later(app, live, pair):
    queued(app, pair)
    with svc(app).db.transaction() as s:  # a run marked them sending and died before calling WeCom
        s.execute(text("UPDATE transfers SET state = 'sending', sent_at = :now"), {"now": utcnow()})
    with app.app_context():
        assert jobs.transfer(ids(app)) == {"sent": 3, "accepted": 3}
    assert len(sandbox(app).sent(TRANSFER)) == 1


def test_poll_rounds_are_queued_for_later(app, live, pair):
    queued(app, pair)
    run_jobs(app)
    (poll,) = [r for r in _outbox(app) if r.task == "rep.transfer_result"]
    assert poll.run_after > utcnow() + timedelta(minutes=50) and poll.done_at is None
    assert sorted(poll.args["ids"]) == ids(app)


def _outbox(app) -> list[Outbox]:
    with svc(app).db.sessions() as s:
        return list(s.query(Outbox).order_by(Outbox.id))


@pytest.mark.skipif(not os.environ.get("DATABASE_URL"), reason="row locks: PostgreSQL (SQLite has one writer)")
def test_applier_changing_the_owner_first_wins(app, live, pair):
    """An applier batch holds a lead (its FOR NO KEY UPDATE) and gives it to carl; the reassignment waits for it and
    then leaves that lead alone."""
    leaving, amy = pair
    carl = add_rep(app, "carl", active=False)  # not eligible: only the applier gives carl anything
    leads = add_leads(app, leaving, 4)
    deactivate(app, leaving)
    engine = svc(app).db.engine
    applier = engine.connect()
    tx = applier.begin()
    applier.execute(text("SELECT id FROM followers WHERE id = :id FOR NO KEY UPDATE"), {"id": leads[1]})
    applier.execute(text("UPDATE followers SET owner_id = :carl WHERE id = :id"), {"carl": carl, "id": leads[1]})
    done: dict = {}
    worker = threading.Thread(target=lambda: done.update(result=_reassign(app, leaving)))
    worker.start()
    try:
        _wait_for_lock_waiter(engine)
        tx.commit()
    finally:  # a failure must not leave the lock held: the next test's TRUNCATE would wait for ever
        applier.close()
        worker.join(30)
    assert done["result"]["moved"] == 3
    assert owners(app, leads) == {leads[0]: amy, leads[1]: carl, leads[2]: amy, leads[3]: amy}
    assert count(app, Transfer, Transfer.follower_id == leads[1]) == 0


def _reassign(app, rep_id: int) -> dict:
    with app.app_context():
        return jobs.reassign(rep_id)


def _wait_for_lock_waiter(engine) -> None:
    """Until another backend waits for a row lock (the reassignment reached the held lead)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
    )
    with engine.connect() as conn:
        for _ in range(3000):
            if conn.execute(query).scalar():
                return
            conn.rollback()  # pg_stat_activity is a snapshot taken once per transaction: take a new one
            time.sleep(0.01)
    raise AssertionError("the reassignment never waited for the lead's lock")


def test_transfer_fail_callback_is_recorded_at_once(app, client, live, pair):
    leaving, _ = pair
    leads = queued(app, pair, 2)
    run_jobs(app)
    first, second = transfers(app)
    post(client, "wecom-transfer-fail", userid="amy", external_userid=first.external_userid,
         status="customer_limit_exceed")  # fmt: skip
    post(client, "wecom-transfer-fail", userid="somebody", external_userid=second.external_userid)  # not ours
    first, second = transfers(app)
    assert (first.state, first.status) == (FAILED, 4) and "too many customers" in first.error
    assert second.state == WAITING
    assert owners(app, leads)[first.follower_id] == leaving
    (entry,) = timeline(app, first.follower_id, "transfer_failed")
    assert entry["given_back"] is True and entry["status"] == 4
