"""Rep notifications end to end: signed callbacks → the applier → the outbox → "rep.notify" → the sandbox's WeCom.

Each reason (mql, removed, returned, handoff) raises one notice per crossing whatever the retries; the message names
the lead (name, company, stage, score, tags, recent interactions) and links to its card with a signed rep token.
"""

from __future__ import annotations

import itertools
import re
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from foundation.clock import utcnow
from scrm.lead_links import read_rep_token
from scrm.models import Follower, Outbox, Rep
from scrm.notification_models import RepNotification
from tasks.notify import flush
from tasks.worker import run_worker
from tests.helpers import post
from tests.messaging_kit import sandbox, svc, with_messaging
from welead.auth import issue

BOOK = """
name: notify
rules:
  - name: pricing
    when: {text: {keywords: [pricing]}}
    do: [{tag: "interest:pricing"}, {score: 45}]
  - name: wants-human
    when: {text: {keywords: ["人工", "转人工"]}}
    do: [{notify_owner: {kind: handoff, reason: "asked for a human"}}]
"""
LINK = re.compile(r"\((http[^)\s]+/rep/leads/(\d+)\?t=([^)\s]+))\)")
_clock = itertools.count(int(time.time()) - 10_000)


@pytest.fixture
def settings(settings):
    return with_messaging(settings)


@pytest.fixture
def book(client, auth_headers):
    r = client.put("/api/v1/playbook", data=BOOK, headers={**auth_headers, "Content-Type": "application/yaml"})
    assert r.status_code == 201, r.json


def add_rep(app, userid: str, name: str, manager: int | None = None) -> int:
    with svc(app).db.transaction() as s:
        rep = Rep(userid=userid, name=name, manager_id=manager, created_at=utcnow())
        s.add(rep)
        s.flush()
        return rep.id


def own(app, openid: str, rep_id: int, **profile) -> int:
    with svc(app).db.transaction() as s:
        f = s.scalar(select(Follower).where(Follower.openid == openid))
        f.owner_id, f.profile = rep_id, {**(f.profile or {}), **profile}
        return f.id


def messages(app, userid: str | None = None) -> list[dict]:
    sent = [c["body"] for c in sandbox(app).sent("wecom/message/send") if c["errcode"] == 0]
    return [b for b in sent if userid is None or b["touser"] == userid]


def notices(app, **where) -> list[RepNotification]:
    with svc(app).db.sessions() as s:
        query = select(RepNotification).order_by(RepNotification.id)
        for name, value in where.items():
            query = query.where(getattr(RepNotification, name) == value)
        return list(s.scalars(query))


def test_reaching_mql_sends_one_card_to_the_owner(app, client, live, auth_headers, book):
    rep = add_rep(app, "li.wei", "Li Wei")
    post(client, "subscribe", openid="o-lead", scene="booth:expo:a1", create_time=next(_clock))
    fid = own(app, "o-lead", rep, name="王小明", company="Acme 科技")
    when = next(_clock)
    for _ in range(2):  # WeChat retries the same message: one interaction, one crossing
        post(client, "text", openid="o-lead", content="pricing for 20 seats?", msg_id=77001, create_time=when)
    run_worker(app, burst=True)
    run_worker(app, burst=True)  # a second pass (sweeper, re-push) sends nothing more
    (body,) = messages(app)
    assert body["touser"] == "li.wei" and body["msgtype"] == "markdown"
    text = body["markdown"]["content"]
    assert "Lead reached MQL" in text and "王小明" in text and "Acme 科技" in text
    assert "mql" in text and "Score: 45" in text and "interest:pricing" in text
    assert "pricing for 20 seats?" in text and "booth:expo:a1" in text
    assert len(text.encode()) <= 2048
    (link, follower, token), *_ = LINK.findall(text)
    assert link.startswith(svc(app).settings.public_url)
    assert int(follower) == fid and read_rep_token(svc(app).signer, token) == rep
    (row,) = notices(app)
    assert (row.kind, row.state, row.userid, row.digest) == ("mql", "sent", "li.wei", False)
    assert row.key.startswith(f"rep.notify:mql:{fid}:")
    listed = client.get(f"/api/v1/notifications?rep={rep}&state=sent", headers=auth_headers).json["items"]
    assert [(n["kind"], n["openid"]) for n in listed] == [("mql", "o-lead")]
    timeline = client.get("/api/v1/followers/o-lead/timeline", headers=auth_headers).json
    assert any(e["kind"] == "rep_notified" and e["data"]["kind"] == "mql" for e in timeline)


def test_an_unowned_lead_reaching_mql_queues_nothing(app, client, live, book):
    post(client, "text", openid="o-nobody", content="pricing", create_time=next(_clock))
    with svc(app).db.sessions() as s:
        assert list(s.scalars(select(Outbox).where(Outbox.task == "rep.notify"))) == []


def test_removed_tells_the_rep_and_their_manager(app, client, live):
    boss = add_rep(app, "wang.boss", "Wang")
    rep = add_rep(app, "li.wei", "Li Wei", manager=boss)
    post(client, "wecom-add-contact", userid="li.wei", external_userid="wm-cust-1", create_time=next(_clock))
    own(app, "wm-cust-1", rep, name="Zhao", corp_name="Zhao Trading")
    removed_at = next(_clock)
    for _ in range(2):  # a retried callback
        post(client, "wecom-del-follow-user", userid="li.wei", external_userid="wm-cust-1", create_time=removed_at)
    run_worker(app, burst=True)
    (to_rep,) = [b for b in messages(app, "li.wei") if "removed" in b["markdown"]["content"]]
    (to_boss,) = messages(app, "wang.boss")
    assert "A customer removed you" in to_rep["markdown"]["content"]
    assert "A customer removed Li Wei" in to_boss["markdown"]["content"]
    assert "Zhao Trading" in to_boss["markdown"]["content"]
    boss_link = LINK.findall(to_boss["markdown"]["content"])[0]
    assert read_rep_token(svc(app).signer, boss_link[2]) == boss  # signed for whoever reads it
    rows = notices(app, kind="removed")  # (the contact add may have queued an "assigned" notice: not counted)
    assert [(r.rep_id, r.about_rep_id, r.state) for r in rows] == [(rep, None, "sent"), (boss, rep, "sent")]


def test_a_dormant_lead_coming_back_tells_the_owner(app, client, live, auth_headers):
    rep = add_rep(app, "li.wei", "Li Wei")
    post(client, "subscribe", openid="o-sleeper", create_time=next(_clock))
    own(app, "o-sleeper", rep)
    with svc(app).db.transaction() as s:
        sleeper = s.scalar(select(Follower).where(Follower.openid == "o-sleeper"))
        sleeper.last_active_at = utcnow() - timedelta(days=40, hours=1)
    post(client, "text", openid="o-sleeper", content="still there?")
    post(client, "text", openid="o-sleeper", content="hello again")  # active now: not a second return
    run_worker(app, burst=True)
    (body,) = messages(app)
    text = body["markdown"]["content"]
    assert "A dormant lead is back" in text and "back after 40 days" in text
    (row,) = notices(app)
    assert row.kind == "returned"


def test_recently_active_leads_are_not_returns(app, client, live):
    rep = add_rep(app, "li.wei", "Li Wei")
    post(client, "subscribe", openid="o-busy")
    own(app, "o-busy", rep)
    post(client, "text", openid="o-busy", content="hi")
    assert notices(app) == [] and messages(app) == []


def test_asking_for_a_human_is_a_handoff(app, client, live, book):
    rep = add_rep(app, "li.wei", "Li Wei")
    post(client, "subscribe", openid="o-human")
    fid = own(app, "o-human", rep)
    post(client, "text", openid="o-human", content="转人工")
    run_worker(app, burst=True)
    (row,) = notices(app)
    assert row.kind == "handoff" and row.key.startswith(f"rep.notify:handoff:{fid}:")
    (body,) = messages(app)
    assert "**Lead asks for a human**: asked for a human" in body["markdown"]["content"]


def test_burst_of_50_folds_into_digests_under_wecoms_limit(app, client, live, auth_headers):
    svc(app).settings = svc(app).settings.replace(extra={**svc(app).settings.extra, "notify": {"gather": 0.3}})
    rep = add_rep(app, "li.wei", "Li Wei")
    fids = []
    for i in range(50):
        post(client, "subscribe", openid=f"o-burst-{i:02d}", apply=False)
    post(client, "subscribe", openid="o-burst-last")  # applies everything
    with svc(app).db.transaction() as s:
        for f in s.scalars(select(Follower).where(Follower.openid.like("o-burst-%")).order_by(Follower.id).limit(50)):
            f.owner_id = rep
            fids.append(f.id)
            args = {"openid": f.openid, "rep_id": rep, "kind": "assigned", "key": f"rep.notify:assigned:{f.id}:1"}
            s.add(Outbox(task="rep.notify", args=args, key=args["key"], created_at=utcnow(), attempts=0))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        run_worker(app, burst=True)  # each run sweeps what came due (the flushes the pacer scheduled)
        if all(n.state != "pending" for n in notices(app)):
            break
        time.sleep(0.2)
    sent = messages(app, "li.wei")
    assert len(sent) <= 30  # WeCom's per-minute limit for one member, with the pacer's margin: at most 25
    mentioned = [int(f) for body in sent for _, f, _ in LINK.findall(body["markdown"]["content"])]
    assert sorted(mentioned) == sorted(fids)  # every lead exactly once across the messages
    rows = notices(app)
    assert {r.state for r in rows} == {"sent"} and any(r.digest for r in rows)
    digests = [b for b in sent if "Lead updates" in b["markdown"]["content"]]
    assert digests and all(len(b["markdown"]["content"].encode()) <= 2048 for b in sent)
    assert len(sent) < 50


def test_wecom_errors_are_recorded_and_visible(app, client, live, auth_headers):
    rep = add_rep(app, "gone.rep", "Gone")
    post(client, "subscribe", openid="o-err")
    own(app, "o-err", rep)
    sandbox(app).fail_next("wecom/message/send", errcode=60111)
    with svc(app).db.transaction() as s:
        args = {"openid": "o-err", "rep_id": rep, "kind": "assigned", "key": "rep.notify:assigned:err:1"}
        s.add(Outbox(task="rep.notify", args=args, key=args["key"], created_at=utcnow(), attempts=0))
    run_worker(app, burst=True)
    (row,) = notices(app)
    assert (row.state, row.errcode) == ("failed", 60111)
    with svc(app).db.sessions() as s:
        assert "60111" in s.scalar(select(Outbox.last_error).where(Outbox.task == "rep.notify"))
    (listed,) = client.get("/api/v1/notifications?state=failed", headers=auth_headers).json["items"]
    assert listed["errcode"] == 60111 and "60111" in listed["error"]


def test_busy_is_retried_by_a_later_flush(app, client, live):
    rep = add_rep(app, "li.wei", "Li Wei")
    post(client, "subscribe", openid="o-busy")
    own(app, "o-busy", rep)
    sandbox(app).fail_next("wecom/message/send", errcode=-1)
    with svc(app).db.transaction() as s:
        args = {"openid": "o-busy", "rep_id": rep, "kind": "assigned", "key": "rep.notify:assigned:busy:1"}
        s.add(Outbox(task="rep.notify", args=args, key=args["key"], created_at=utcnow(), attempts=0))
    run_worker(app, burst=True)
    (row,) = notices(app)
    assert (row.state, row.errcode) == ("pending", -1) and messages(app) == []
    with svc(app).db.sessions() as s:
        (later,) = s.scalars(select(Outbox).where(Outbox.task == "rep.notify.flush"))
        assert later.run_after > utcnow()
    with app.app_context():
        assert flush(rep) == 1  # the flush, run when due
    assert len(messages(app)) == 1 and notices(app)[0].state == "sent"


def test_a_read_timeout_is_never_resent(app, client, live):
    svc(app).settings = svc(app).settings.replace(http_timeout=1)
    rep = add_rep(app, "li.wei", "Li Wei")
    post(client, "subscribe", openid="o-slow")
    own(app, "o-slow", rep)
    sandbox(app).set_delay(1.5, "wecom/message/send")  # WeCom got it, the answer is late
    with svc(app).db.transaction() as s:
        args = {"openid": "o-slow", "rep_id": rep, "kind": "assigned", "key": "rep.notify:assigned:slow:1"}
        s.add(Outbox(task="rep.notify", args=args, key=args["key"], created_at=utcnow(), attempts=0))
    run_worker(app, burst=True)
    sandbox(app).set_delay(0, "wecom/message/send")
    with app.app_context():
        assert flush(rep) == 0
    (row,) = notices(app)
    assert row.state == "unknown" and "not resent" in row.error
    assert len(sandbox(app).sent("wecom/message/send")) == 1


def test_a_rep_token_lists_only_its_own_notifications(app, client, live):
    mine, other = add_rep(app, "li.wei", "Li Wei"), add_rep(app, "zhang.san", "Zhang")
    for openid, rep in (("o-a", mine), ("o-b", other)):
        post(client, "subscribe", openid=openid)
        own(app, openid, rep)
        with svc(app).db.transaction() as s:
            args = {"openid": openid, "rep_id": rep, "kind": "assigned", "key": f"rep.notify:assigned:{openid}:1"}
            s.add(Outbox(task="rep.notify", args=args, key=args["key"], created_at=utcnow(), attempts=0))
    run_worker(app, burst=True)
    with svc(app).db.transaction() as s:
        token = issue(s, "li-wei-token", "rep", str(mine))
    listed = client.get(f"/api/v1/notifications?rep={other}", headers={"Authorization": f"Bearer {token}"}).json
    assert [n["openid"] for n in listed["items"]] == ["o-a"]


@pytest.mark.parametrize("query", ["state=nope", "kind=spam", "limit=0", "limit=501", "rep=-1"])
def test_bad_filters_are_400_or_422(client, auth_headers, query):
    assert client.get(f"/api/v1/notifications?{query}", headers=auth_headers).status_code in (400, 422)
