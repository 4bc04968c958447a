"""Shared by the contact-merge tests: a small playbook, one person on two channels, running the jobs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from scrm.models import Follower, Outbox
from scrm.playbook import store
from tasks.worker import run_worker
from tests.helpers import post
from wechat.sandbox_state import SandboxControl, unionid_for

OPENID, EID, REP = "o-amy", "wm-amy", "zhao.lei"
PLAYBOOK = """
name: merge-test
models:
  engagement: {half_life_days: 14}
rules:
  - name: oa-follow
    when: subscribe
    do:
      - tag: "channel:oa"
      - score: 10
  - name: wecom-added
    when: contact_added
    do:
      - tag: "channel:wecom"
      - score: 7
  - name: booth
    when: {scene: "booth:{event}:*"}
    do:
      - tag: "event:{event}"
  - name: everyone
    when: any
    do:
      - tag: vip
  - name: pricing
    when: {text: {keywords: [price]}}
    do:
      - tag: "interest:pricing"
      - score: 3
"""


def svc(app):
    return app.extensions["welead"]


def sandbox(app) -> SandboxControl:
    return SandboxControl(svc(app).redis_slow)


def load(app, text: str) -> None:
    with svc(app).db.transaction() as session:
        store.load(session, text)


def same_person(app, openid: str, eid: str, rep: str = REP) -> str:
    """The sandbox's externalcontact/get gives `eid` the unionid user/info gives `openid`."""
    unionid = unionid_for(openid)
    sandbox(app).set_external_contact(eid, unionid=unionid, userid=rep)
    return unionid


def person(app, client, openid: str = OPENID, eid: str = EID, rep: str = REP) -> None:
    """An OA follow through a booth code, then a WeCom contact of the same person, then the jobs (profile fetches,
    the merge they queue)."""
    same_person(app, openid, eid, rep)
    post(client, "subscribe", openid=openid, scene="booth:expo:a1")
    post(client, "wecom-add-contact", userid=rep, external_userid=eid)
    work(app)


def work(app, rounds: int = 5) -> None:
    """Burst workers until the outbox is empty: a job's follow-up (the merge a profile fetch queues) runs too."""
    for _ in range(rounds):
        run_worker(app, burst=True)
        with svc(app).db.sessions() as s:
            if s.scalar(select(Outbox.id).where(Outbox.done_at.is_(None)).limit(1)) is None:
                return
    raise AssertionError("outbox not empty after the workers ran")


def get(client, headers, openid: str) -> dict[str, Any]:
    r = client.get(f"/api/v1/followers/{openid}", headers=headers)
    assert r.status_code == 200, r.json
    return r.json


def merges(client, headers, **query: Any) -> list[dict[str, Any]]:
    r = client.get("/api/v1/merges", query_string=query, headers=headers)
    assert r.status_code == 200, r.json
    return r.json["items"]


def follower_row(app, openid: str) -> Follower:
    with svc(app).db.sessions() as s:
        return s.scalar(select(Follower).where(Follower.openid == openid))
