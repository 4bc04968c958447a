"""End to end: signed callbacks through the simulator, rules from a loaded playbook, results read from the API."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from scrm.models import Outbox
from tests.helpers import post
from wechat.simulate import read_reply

DEMO = (Path(__file__).resolve().parent.parent / "playbooks" / "demo.yml").read_text()
_clock = itertools.count(int(time.time()) - 100_000)

BOOK = """
name: e2e
models:
  engagement: {half_life_days: 14, rearm_margin: 10}
  fit: {}
stages:
  order: [{name: new, at: 0}, {name: engaged, at: 10}, {name: mql, at: 40}, {name: sql, at: 80}, customer]
rules:
  - name: booth
    when: {scene: "booth:{event}:{booth}"}
    do:
      - tag: ["event:{event}", "checkin:{event}:{booth}"]
      - score: 15
        cap: daily
      - reply: "Welcome to booth {booth}"
  - name: rep-code
    when: {scene: "rep:{rep}"}
    do: [{assign: "{rep}"}]
  - name: pricing
    when: {click: MENU_PRICING}
    do:
      - tag: interest:pricing
      - score: 10
        cap: {total: 30}
  - name: news
    when: {click: MENU_NEWS}
    do: [{reply: {articles: [{title: "Hello {openid}", url: "https://example.com/n"}]}}]
  - name: demo
    when: {text: {regex: "^demo (?P<product>\\\\w+)$"}}
    do:
      - tag: "wants:{product}"
      - score: 50
        cap: once
      - send_template: {template: demo_booked, data: {product: "{product}"}}
  - name: hot
    when: {score_crossed: 50}
    do: [{notify_owner: "score {score}"}, {tag: hot}]
  - name: mql
    when: {stage_changed: mql}
    do: [{start_journey: nurture}]
  - name: fit-on-checkin
    when: {checked_in: "{event}"}
    do: [{score: 7, model: fit, cap: once}]
journeys:
  nurture:
    steps: [{wait: 1d}, {do: [{send_template: case_study}]}]
"""


def load(client, headers, text: str = BOOK):
    r = client.put("/api/v1/playbook", data=text, headers={**headers, "Content-Type": "application/yaml"})
    assert r.status_code == 201, r.json
    return r.json


def event(client, kind: str, openid: str = "oE2E", **options):
    options.setdefault("create_time", next(_clock))
    return post(client, kind, openid=openid, **options)


def follower(client, headers, openid: str = "oE2E") -> dict:
    r = client.get(f"/api/v1/followers/{openid}", headers=headers)
    assert r.status_code == 200, r.json
    return r.json


def outbox_rows(app, task: str) -> list[dict]:
    with app.extensions["welead"].db.sessions() as session:
        rows = session.scalars(select(Outbox).where(Outbox.task == task).order_by(Outbox.id))
        return [{"outbox_key": r.key, **r.args} for r in rows]


def test_put_get_and_versions(client, auth_headers):
    first = load(client, auth_headers)
    assert first["version"] == 1 and first["active"] is True
    second = load(client, auth_headers, DEMO)
    assert second["version"] == 2
    active = client.get("/api/v1/playbook", headers=auth_headers).json
    assert active["version"] == 2 and active["name"] == "demo" and active["source"] == DEMO
    old = client.get("/api/v1/playbook/versions/1", headers=auth_headers).json
    assert old["name"] == "e2e" and old["active"] is False and old["source"] == BOOK
    listed = client.get("/api/v1/playbook/versions", headers=auth_headers).json["items"]
    assert [v["version"] for v in listed] == [2, 1]


def test_bad_playbook_is_refused_and_old_version_stays(client, auth_headers):
    load(client, auth_headers)
    bad = BOOK.replace("score: 50", "score: fifty")
    r = client.put("/api/v1/playbook", data=bad, headers=auth_headers)
    assert r.status_code == 422
    assert "rules[4].do[1].score: expected integer (rule 'demo')" in r.json["detail"]["errors"]
    assert client.get("/api/v1/playbook", headers=auth_headers).json["version"] == 1
    r = client.post("/api/v1/playbook/check", data=bad, headers=auth_headers)
    assert r.status_code == 422
    r = client.post("/api/v1/playbook/check", data=BOOK, headers=auth_headers)
    assert r.json == {"ok": True, "name": "e2e", "rules": 8, "journeys": 1}


def test_no_playbook_and_roles(client, auth_headers, app):
    assert client.get("/api/v1/playbook", headers=auth_headers).status_code == 404
    assert client.put("/api/v1/playbook", data=BOOK).status_code == 401
    from welead.auth import issue

    with app.extensions["welead"].db.transaction() as session:
        token = issue(session, "rep-1", "rep", "1")
    r = client.put("/api/v1/playbook", data=BOOK, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403
    assert client.put("/api/v1/playbook", data="  ", headers=auth_headers).status_code == 400


def test_booth_scan_tags_scores_replies_and_checks_in(client, app, auth_headers):
    load(client, auth_headers)
    booth = {"slug": "expo2026", "starts_at": "2020-01-01T00:00:00Z", "ends_at": "2099-01-01T00:00:00Z",
             "code_kind": "permanent", "booths": [{"slug": "A1"}]}  # fmt: skip
    assert client.post("/api/v1/events", json=booth, headers=auth_headers).status_code == 201  # checked_in needs it
    r = event(client, "subscribe", scene="booth:expo2026:A1")
    assert r.status_code == 200
    reply = read_reply(r.data, app.extensions["welead"].settings, "oa")
    assert "Welcome to booth A1" in reply
    f = follower(client, auth_headers)
    assert f["tags"] == ["checkin:expo2026:A1", "event:expo2026"]
    assert f["source"] == "booth:expo2026:A1"
    assert f["scores"] == {"engagement": 15.0, "fit": 7.0}
    assert f["stage"] == "engaged"
    kinds = [e["kind"] for e in client.get("/api/v1/followers/oE2E/timeline", headers=auth_headers).json]
    assert kinds.count("tag_added") == 2 and kinds.count("score") == 2
    assert "stage_changed" in kinds and "subscribe" in kinds


def test_retried_callback_gives_nothing_twice(client, auth_headers):
    load(client, auth_headers)
    at = next(_clock)
    for _ in range(3):
        assert event(client, "click", key="MENU_PRICING", create_time=at).status_code == 200
    f = follower(client, auth_headers)
    assert f["scores"]["engagement"] == 10.0 and f["tags"] == ["interest:pricing"]
    explained = client.get("/api/v1/followers/oE2E/score", headers=auth_headers).json
    assert len(explained["events"]) == 1


def test_total_cap_trims_and_stops(client, auth_headers):
    load(client, auth_headers)
    for _ in range(5):
        event(client, "click", key="MENU_PRICING")
    explained = client.get("/api/v1/followers/oE2E/score", headers=auth_headers).json
    assert [e["points"] for e in explained["events"]] == [10, 10, 10]
    assert explained["models"]["engagement"]["score"] == pytest.approx(30.0, abs=0.01)
    assert explained["models"]["engagement"]["half_life_days"] == 14


def test_score_explained(client, auth_headers):
    load(client, auth_headers)
    event(client, "click", key="MENU_PRICING")
    r = client.get("/api/v1/followers/oE2E/score", headers=auth_headers)
    assert r.status_code == 200
    body = r.json
    assert body["openid"] == "oE2E" and body["total"] == pytest.approx(10.0)
    (ev,) = body["events"]
    assert ev["rule"] == "pricing" and ev["model"] == "engagement" and ev["points"] == 10
    assert ev["interaction_kind"] == "click" and isinstance(ev["interaction_id"], int)
    assert ev["points_now"] == pytest.approx(10.0, abs=0.01)
    assert client.get("/api/v1/followers/nobody/score", headers=auth_headers).status_code == 404


def test_regex_binding_threshold_stage_and_outbox(client, app, auth_headers):
    load(client, auth_headers)
    event(client, "scan", scene="rep:sales-amy")
    event(client, "text", content="demo crm")
    f = follower(client, auth_headers)
    assert {"wants:crm", "hot"} <= set(f["tags"])
    assert f["stage"] == "mql" and f["owner"] is not None
    (tpl,) = outbox_rows(app, "template.send")
    assert tpl["template"] == "demo_booked" and tpl["data"] == {"product": "crm"} and tpl["openid"] == "oE2E"
    assert tpl["key"].startswith("rule:demo:") and tpl["outbox_key"] == f"template.send:{tpl['key']}"
    (note,) = [n for n in outbox_rows(app, "rep.notify") if n["kind"] == "rule"]
    assert note["rep_id"] == f["owner"] and note["rule"] == "hot" and note["reason"] == "score 50.0"
    (mql,) = [n for n in outbox_rows(app, "rep.notify") if n["kind"] == "mql"]  # reaching mql tells the owner
    assert mql["rep_id"] == f["owner"] and mql["outbox_key"].startswith("rep.notify:mql:")
    (journey,) = outbox_rows(app, "journey.start")
    assert journey["journey"] == "nurture" and journey["key"].startswith("rule:mql:")
    kinds = [e["kind"] for e in client.get("/api/v1/followers/oE2E/timeline", headers=auth_headers).json]
    assert kinds.count("stage_changed") == 2  # new → engaged → mql, one entry per stage passed
    assert "score_crossed" in kinds


def test_news_reply(client, app, auth_headers):
    load(client, auth_headers)
    r = event(client, "click", key="MENU_NEWS")
    xml = read_reply(r.data, app.extensions["welead"].settings, "oa")
    assert "<MsgType><![CDATA[news]]></MsgType>" in xml and "Hello oE2E" in xml


def test_demo_playbook_end_to_end(client, app, auth_headers):
    load(client, auth_headers, DEMO)
    r = event(client, "subscribe", openid="oDemo")
    assert "Welcome to WeLead" in read_reply(r.data, app.extensions["welead"].settings, "oa")
    event(client, "scan", openid="oDemo", scene="rep:amy")  # a rep's code: amy owns the lead
    r = event(client, "text", openid="oDemo", content="what is the price?")
    assert "1980 元" in read_reply(r.data, app.extensions["welead"].settings, "oa")
    event(client, "text", openid="oDemo", content="DEMO")
    event(client, "text", openid="oDemo", content="call me on 13812345678")
    f = follower(client, auth_headers, "oDemo")
    assert {"interest:pricing", "demo-requested", "has-phone"} <= set(f["tags"])
    assert f["scores"]["fit"] == 35.0
    assert f["scores"]["engagement"] == pytest.approx(43.0, abs=0.01)  # 5 + 8 + 25 + 5 x 1 (any, daily cap 5)
    assert f["stage"] == "mql"
    assert any(n["reason"] == "asked for a demo" for n in outbox_rows(app, "rep.notify"))


CHANNELS = """
rules:
  - name: wecom-contact
    when: {contact_added: "rep:{rep}"}
    do: [{tag: "wecom:{rep}"}, {assign: nobody-else}, {score: 4}]
  - name: scene-any-channel
    when: {scene: "rep:*"}
    do: [{tag: from-rep-code}]
  - name: gone
    when: contact_removed
    do: [{tag: lost}]
  - name: undeliverable
    when: {template_failed: "failed:*"}
    do: [{tag: unreachable}]
  - name: delivered
    when: template_delivered
    do: [{score: 1}]
  - name: where
    when: location
    do: [{tag: shared-location}]
"""


def test_wecom_contact_template_status_and_location(client, auth_headers):
    load(client, auth_headers, CHANNELS)
    r = event(client, "wecom-add-contact", openid=None, external_userid="wmE2E", userid="amy", state="rep:amy")
    assert r.status_code == 200
    f = follower(client, auth_headers, "wmE2E")
    assert set(f["tags"]) == {"wecom:amy", "from-rep-code"} and f["scores"] == {"engagement": 4.0}
    kinds = [e for e in client.get("/api/v1/followers/wmE2E/timeline", headers=auth_headers).json]
    owner = [e["data"] for e in kinds if e["kind"] == "owner_assigned"]
    assert len(owner) == 1 and owner[0]["via"] == "wecom_contact"  # the callback's owner is kept: no overwrite
    event(client, "wecom-del-contact", openid=None, external_userid="wmE2E", userid="amy")
    assert "lost" in follower(client, auth_headers, "wmE2E")["tags"]

    event(client, "template-status", msg_id=123, status="failed:user block")
    event(client, "template-status", msg_id=124, status="success")
    event(client, "location-event")
    f = follower(client, auth_headers)
    assert set(f["tags"]) == {"unreachable", "shared-location"} and f["scores"] == {"engagement": 1.0}


def test_openapi_documents_the_playbook_and_segment_routes(client):
    paths = client.get("/api/v1/openapi.json").json["paths"]
    for path in ("/api/v1/playbook", "/api/v1/playbook/check", "/api/v1/playbook/versions/{number}",
                 "/api/v1/followers/{openid}/score", "/api/v1/segments/preview", "/api/v1/segments"):  # fmt: skip
        assert path in paths, path
