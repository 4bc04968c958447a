"""Outbox tasks for the playbook: "rep.notify" (WeCom markdown to the owner rep) and "template.send"."""

import pytest
from sqlalchemy import select

from foundation.clock import utcnow
from scrm import outbox
from scrm.models import Follower, Outbox, Rep
from tasks.notify import notify_rep
from tasks.notify_pace import NotifyRules, Pacer
from tasks.queue import push
from tasks.worker import run_worker
from tests.helpers import post
from tests.messaging_kit import rows, sandbox, svc, template_sends, with_messaging


@pytest.fixture
def settings(settings):
    return with_messaging(settings)


def enqueue(app, task: str, args: dict, key: str | None = None) -> int:
    with svc(app).db.transaction() as s:
        oid = outbox.add(s, task, args, key=key)
    push(svc(app).redis_slow, [oid])
    return oid


def outbox_row(app, oid: int) -> Outbox:
    with svc(app).db.sessions() as s:
        return s.get(Outbox, oid)


@pytest.fixture
def lead(app, client):
    """A follower owned by rep "li.wei", with a little history."""
    post(client, "subscribe", openid="o-lead", scene="booth:expo:a1")
    post(client, "text", openid="o-lead", content="多少钱? how much is the pro plan")
    with svc(app).db.transaction() as s:
        rep = Rep(userid="li.wei", name="Li Wei", created_at=utcnow())
        s.add(rep)
        s.flush()
        s.scalar(select(Follower).where(Follower.openid == "o-lead")).owner_id = rep.id
        return rep.id


def test_rep_gets_a_markdown_summary(app, client, live, auth_headers, lead):
    oid = enqueue(
        app, "rep.notify", {"openid": "o-lead", "rep_id": lead, "reason": "asked for a demo", "rule": "wants-demo"}
    )
    run_worker(app, burst=True)
    assert outbox_row(app, oid).done_at is not None and outbox_row(app, oid).last_error is None
    (call,) = sandbox(app).sent("wecom/message/send")
    body = call["body"]
    assert body["touser"] == "li.wei" and body["msgtype"] == "markdown"
    text = body["markdown"]["content"]
    assert "asked for a demo" in text and "booth:expo:a1" in text and "how much is the pro plan" in text
    assert "rule: wants-demo" in text
    timeline = client.get("/api/v1/followers/o-lead/timeline", headers=auth_headers).json
    assert timeline[0]["kind"] == "rep_notified" and timeline[0]["data"]["userid"] == "li.wei"


def test_rep_outside_the_app_gives_up_with_the_reason(app, live, lead):
    sandbox(app).set_wecom_members("someone.else")
    oid = enqueue(app, "rep.notify", {"openid": "o-lead", "rep_id": lead, "reason": "hot", "rule": None})
    run_worker(app, burst=True)
    row = outbox_row(app, oid)
    assert row.done_at is not None and "81013" in row.last_error


def test_over_wecoms_per_minute_limit_waits(app, live, lead):
    """A rep at the per-minute limit gets nothing now: the notification waits for a flush at the next free slot."""
    with app.app_context():
        filler = Pacer(svc(app).redis_slow, NotifyRules(gather=0))  # the same per-member log, no digest pacing
        for _ in range(filler.rules.per_minute):
            assert filler.admit("li.wei")[0] is not None
        result = notify_rep("o-lead", lead, "hot", key="rep.notify:rule:test:1")
    assert result["state"] == "pending" and sandbox(app).sent("wecom/message/send") == []
    with svc(app).db.sessions() as s:
        (flush,) = s.scalars(select(Outbox).where(Outbox.task == "rep.notify.flush"))
        assert 50 <= (flush.run_after - utcnow()).total_seconds() <= 61


def test_playbook_template_send_is_one_delivery_per_key(app, live, lead):
    args = {"openid": "o-lead", "template": "mql_welcome", "data": {"first": "您已进入优先名单"}, "key": "r7:i42"}
    enqueue(app, "template.send", args)
    enqueue(app, "template.send", args)  # the same action, queued twice
    run_worker(app, burst=True)
    (row,) = rows(app)
    assert (row.key, row.source, row.state) == ("pb:r7:i42", "playbook", "sent")
    (call,) = template_sends(app)
    assert call["body"]["data"]["thing2"] == {"value": "您已进入优先名单"}


def test_playbook_marketing_goes_by_customer_service_or_not_at_all(app, live, lead):
    enqueue(app, "template.send", {"openid": "o-lead", "template": "pricing_intro", "data": {}, "key": "k1"})
    run_worker(app, burst=True)
    (row,) = rows(app)
    assert (row.channel, row.state) == ("custom", "sent")  # the lead wrote to us minutes ago: the window is open
    assert template_sends(app) == [] and len(sandbox(app).sent("oa/message/custom/send")) == 1


def test_unknown_template_closes_the_outbox_row(app, live, lead):
    oid = enqueue(app, "template.send", {"openid": "o-lead", "template": "nope", "data": {}, "key": "k2"})
    run_worker(app, burst=True)
    assert "no message template 'nope'" in outbox_row(app, oid).last_error
