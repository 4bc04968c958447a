"""Signed callbacks with odd values are refused (400) or recorded whole, never a 500 and never half-made: an
impossible CreateTime, a missing sender, values longer than WeChat sends, QR scenes naming no rep (issue 14: 7)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from foundation.clock import utcnow
from scrm.models import Follower, Interaction, Rep
from scrm.playbook import store
from tests.helpers import count, drain, post
from wechat.envelope import signature
from wechat.simulate import build_callback

DEMO_REP_RULE = """
rules:
  - name: rep-code
    when: {scene: "rep:{rep}"}
    do: [{assign: "{rep}"}, {tag: "source:rep"}]
"""


def plain_query(settings) -> dict[str, str]:
    ts, nonce = str(int(time.time())), "42"
    return {"signature": signature(settings.wechat_token, ts, nonce), "timestamp": ts, "nonce": nonce}


def send_xml(app, client, fields: dict[str, str]):
    xml = "<xml>" + "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items()) + "</xml>"
    query = plain_query(app.extensions["welead"].settings)
    return client.post("/wechat/callback", query_string=query, data=xml.encode())


TEXT = {"ToUserName": "gh_x", "FromUserName": "o-odd", "CreateTime": "1700000000", "MsgType": "text",
        "Content": "hi", "MsgId": "123456"}  # fmt: skip


@pytest.mark.parametrize(
    "change",
    [
        {"CreateTime": "99999999999999"},
        {"CreateTime": "-5"},
        {"CreateTime": "³"},
        {"FromUserName": ""},
        {"FromUserName": None},
        {"FromUserName": "o" * 65},
        {"MsgId": "9" * 65},
        {"MsgType": "x" * 49},
    ],
    ids=[
        "createtime-huge",
        "createtime-negative",
        "createtime-unicode",
        "sender-empty",
        "sender-missing",
        "sender-long",
        "msgid-long",
        "kind-long",
    ],
)
def test_impossible_values_are_400_and_nothing_is_recorded(app, client, change):
    fields = {k: v for k, v in {**TEXT, **change}.items() if v is not None}
    r = send_xml(app, client, fields)
    assert r.status_code == 400 and b"Traceback" not in r.data
    assert count(app, Interaction) == 0


def test_a_scene_longer_than_any_qr_code_is_400(app, client):
    fields = {**TEXT, "MsgType": "event", "Event": "subscribe", "EventKey": "qrscene_rep:" + "9" * 200}
    fields.pop("MsgId")
    assert send_xml(app, client, fields).status_code == 400
    assert count(app, Interaction) == 0


def test_createtime_from_the_simulator_still_works(app, client):
    assert post(client, "text", openid="o-fine", create_time=4294967295).status_code == 200  # the last 32-bit second
    assert count(app, Interaction) == 1


@pytest.mark.parametrize("scene", ["rep:³", "rep:99999999999999999999999", "rep:0", "rep:a b", "rep:" + "x" * 80])
def test_rep_scenes_naming_no_rep_are_recorded_and_applied(app, client, auth_headers, scene):
    with app.extensions["welead"].db.transaction() as s:
        store.load(s, DEMO_REP_RULE)
    r = post(client, "subscribe", openid="o-scan", scene=scene)
    assert r.status_code == 200
    drain(app)
    with app.extensions["welead"].db.sessions() as s:
        row = s.scalar(select(Interaction))
        assert row.scene == scene and row.applied_at is not None and row.apply_error is None
        follower = s.scalar(select(Follower).where(Follower.openid == "o-scan"))
        assert follower.owner_id is None and follower.source == scene
        assert s.scalars(select(Rep)).all() == []  # no rep made up from the scene
    assert "source:rep" in client.get("/api/v1/followers/o-scan", headers=auth_headers).json["tags"]


def test_rep_scenes_still_assign_by_id_and_userid(app, client, auth_headers):
    with app.extensions["welead"].db.transaction() as s:
        store.load(s, DEMO_REP_RULE)
        s.add(Rep(userid="li.wei", name="Li Wei", created_at=utcnow()))
    post(client, "subscribe", openid="o-by-id", scene="rep:1")
    post(client, "subscribe", openid="o-by-userid", scene="rep:li.wei")
    for openid in ("o-by-id", "o-by-userid"):
        assert client.get(f"/api/v1/followers/{openid}", headers=auth_headers).json["owner"] == 1


def test_wecom_contact_events_from_sys_are_still_accepted(app, client):
    query, body = build_callback("wecom-add-contact", app.extensions["welead"].settings, external_userid="wm-1")
    assert client.post("/wecom/callback", query_string=query, data=body).status_code == 200
