"""The callback pipeline end to end: every kind recorded, retries collapsed, faults answered without a 500."""

import time

import pytest

from scrm.models import Follower, Interaction, Outbox, Rep
from tests.helpers import count, drain, interactions, pending_outbox, post
from wechat.envelope import signature
from wechat.simulate import build_callback

OA_KINDS = [
    ("subscribe", {}, "subscribe"),
    ("unsubscribe", {}, "unsubscribe"),
    ("scan", {"scene": "campaign:spring"}, "scan"),  # a booth scene gets the booth's reply (tests/test_events*)
    ("click", {"key": "MENU_PRICE"}, "click"),
    ("view", {"url": "https://example.com/p"}, "view"),
    ("location-event", {}, "location"),
    ("template-status", {"msg_id": 42, "status": "failed:user block"}, "templatesendjobfinish"),
    ("text", {"content": "hello ]]> world"}, "text"),
    ("image", {}, "image"),
    ("voice", {"recognition": "你好"}, "voice"),
    ("video", {}, "video"),
    ("shortvideo", {}, "shortvideo"),
    ("location", {"label": "Expo Hall"}, "location"),
    ("link", {"url": "https://example.com/a"}, "link"),
    ("kf-create", {"kf_account": "kf1@gh_x"}, "kf_create_session"),
    ("kf-switch", {"to_kf_account": "kf2@gh_x"}, "kf_switch_session"),
    ("kf-close", {}, "kf_close_session"),
]


def timeline(client, auth_headers, openid):
    r = client.get(f"/api/v1/followers/{openid}/timeline", headers=auth_headers)
    assert r.status_code == 200, r.json
    return r.json


@pytest.mark.parametrize(("kind", "options", "recorded"), OA_KINDS)
def test_every_oa_kind_is_recorded(client, auth_headers, kind, options, recorded):
    r = post(client, kind, openid="o-kind", **options)
    assert r.status_code == 200 and r.data == b"success"
    entries = timeline(client, auth_headers, "o-kind")
    assert [e["kind"] for e in entries] == [recorded]
    assert entries[0]["at"].endswith("Z")


def test_chat_archive_keeps_content(client, auth_headers):
    post(client, "text", openid="o-chat", content="do you ship to Shanghai?")
    post(client, "image", openid="o-chat", media_id="MEDIA1", pic_url="http://pic/1.jpg")
    post(client, "link", openid="o-chat", url="https://example.com/x", title="Spec sheet")
    entries = timeline(client, auth_headers, "o-chat")
    assert [e["content"] for e in entries] == ["https://example.com/x", "http://pic/1.jpg", "do you ship to Shanghai?"]
    assert entries[1]["data"]["MediaId"] == "MEDIA1"


def test_subscribe_via_qr_keeps_first_scene_as_source(client, auth_headers):
    post(client, "subscribe", openid="o-qr", scene="campaign:qrscene_spring", create_time=1_700_000_000)
    post(client, "scan", openid="o-qr", scene="booth:expo:A1", create_time=1_700_000_100)
    r = client.get("/api/v1/followers/o-qr", headers=auth_headers).json
    assert r["source"] == "campaign:qrscene_spring" and r["subscribed"] is True
    assert {"openid", "subscribed", "tags", "score", "stage", "owner", "source"} <= set(r)
    kinds = [e["kind"] for e in timeline(client, auth_headers, "o-qr")]
    assert kinds == ["scan", "subscribe"]  # newest first


def test_unsubscribe_then_resubscribe(client, auth_headers):
    post(client, "subscribe", openid="o-un", create_time=1_700_000_000)
    post(client, "unsubscribe", openid="o-un", create_time=1_700_000_050)
    assert client.get("/api/v1/followers/o-un", headers=auth_headers).json["subscribed"] is False
    post(client, "subscribe", openid="o-un", create_time=1_700_000_100)
    assert client.get("/api/v1/followers/o-un", headers=auth_headers).json["subscribed"] is True


def test_three_deliveries_are_one_interaction_and_one_job(app, client):
    settings = app.extensions["welead"].settings
    query, body = build_callback("subscribe", settings, openid="o-retry", scene="rep:1", create_time=int(time.time()))
    for _ in range(3):
        r = client.post("/wechat/callback", query_string=query, data=body)
        assert r.status_code == 200 and r.data == b"success"
        drain(app)
    assert interactions(app) == 1
    assert count(app, Outbox) == 1


def test_message_retries_dedup_on_msgid(app, client):
    for _ in range(3):
        post(client, "text", openid="o-msg", msg_id=987654321, content="hi")
    post(client, "text", openid="o-msg", msg_id=987654322, content="hi")
    assert interactions(app) == 2


def test_unknown_kind_is_recorded_and_answered(app, client, auth_headers):
    settings = app.extensions["welead"].settings
    ts, nonce = str(int(time.time())), "7"
    xml = (
        "<xml><ToUserName>gh</ToUserName><FromUserName>o-new</FromUserName><CreateTime>1700000000</CreateTime>"
        "<MsgType>event</MsgType><Event>brand_new_thing</Event></xml>"
    )
    q = {"signature": signature(settings.wechat_token, ts, nonce), "timestamp": ts, "nonce": nonce}
    r = client.post("/wechat/callback", query_string=q, data=xml)
    assert r.status_code == 200 and r.data == b"success"
    drain(app)
    assert [e["kind"] for e in timeline(client, auth_headers, "o-new")] == ["brand_new_thing"]


def test_wecom_contact_lifecycle(app, client, auth_headers):
    r = post(client, "wecom-add-contact", userid="rep-li", external_userid="wm-ext-1", state="booth:expo:B2")
    assert r.status_code == 200 and r.data == b"success"
    follower = client.get("/api/v1/followers/wm-ext-1", headers=auth_headers).json
    with app.extensions["welead"].db.sessions() as s:
        rep = s.query(Rep).filter_by(userid="rep-li").one()
    assert follower["owner"] == rep.id and follower["source"] == "booth:expo:B2" and follower["subscribed"]
    post(client, "wecom-edit-contact", userid="rep-li", external_userid="wm-ext-1")
    post(client, "wecom-del-follow-user", userid="rep-li", external_userid="wm-ext-1")
    assert client.get("/api/v1/followers/wm-ext-1", headers=auth_headers).json["subscribed"] is False
    kinds = {e["kind"] for e in timeline(client, auth_headers, "wm-ext-1")}
    assert kinds == {"change_external_contact", "owner_assigned"}


def test_wecom_member_text_is_recorded_without_a_follower(app, client):
    r = post(client, "wecom-text", userid="rep-li", content="my leads")
    assert r.status_code == 200
    assert count(app, Interaction, Interaction.channel == "wecom", Interaction.kind == "text") == 1
    assert count(app, Follower) == 0


def test_safe_mode_roundtrip(app, client, auth_headers):
    svc = app.extensions["welead"]
    svc.settings = svc.settings.replace(wechat_aes_key="kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR")
    query, body = build_callback("subscribe", svc.settings, openid="o-safe")
    assert query["encrypt_type"] == "aes" and b"<Encrypt>" in body and b"o-safe" not in body
    assert client.post("/wechat/callback", query_string=query, data=body).data == b"success"
    drain(app)
    assert client.get("/api/v1/followers/o-safe", headers=auth_headers).json["subscribed"] is True


def test_get_verification_oa_and_wecom(app, client):
    from wechat.simulate import build_verification

    settings = app.extensions["welead"].settings
    for channel, path in (("oa", "/wechat/callback"), ("wecom", "/wecom/callback")):
        query, expected = build_verification(channel, settings, echostr="5927782489442352469")
        r = client.get(path, query_string=query)
        assert r.status_code == 200 and r.data.decode() == expected


# --- bad input --------------------------------------------------------------------------------------------------


def _plain_query(settings, ts=None, token=None):
    ts, nonce = str(ts or int(time.time())), "42"
    return {"signature": signature(token or settings.wechat_token, ts, nonce), "timestamp": ts, "nonce": nonce}


def test_bad_signature_is_403(app, client, caplog):
    settings = app.extensions["welead"].settings
    query, body = build_callback("text", settings)
    query["signature"] = "0" * 40
    r = client.post("/wechat/callback", query_string=query, data=body)
    assert r.status_code == 403 and b"Traceback" not in r.data
    assert interactions(app) == 0
    assert [rec.message for rec in caplog.records if "rejected" in rec.message] == [
        "oa callback rejected (403): bad signature"
    ]


def test_stale_timestamp_is_403(app, client):
    settings = app.extensions["welead"].settings
    query = _plain_query(settings, ts=int(time.time()) - 301)
    r = client.post("/wechat/callback", query_string=query, data=b"<xml><MsgType>text</MsgType></xml>")
    assert r.status_code == 403


@pytest.mark.parametrize(
    "body",
    [
        b"<xml><MsgType>text</MsgType>",
        b'<!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml><Content>&x;</Content></xml>',
        b'<!DOCTYPE xml [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><xml><Content>&c;</Content></xml>',
        b"<xml><FromUserName>o</FromUserName></xml>",
    ],
    ids=["malformed", "xxe", "billion-laughs", "no-msgtype"],
)
def test_bad_xml_is_400(app, client, body):
    r = client.post("/wechat/callback", query_string=_plain_query(app.extensions["welead"].settings), data=body)
    assert r.status_code == 400 and b"Traceback" not in r.data and b"root:" not in r.data
    assert interactions(app) == 0


def test_body_over_cap_is_413(app, client):
    body = b"<xml><Content>" + b"a" * (64 * 1024) + b"</Content></xml>"
    r = client.post("/wechat/callback", query_string=_plain_query(app.extensions["welead"].settings), data=body)
    assert r.status_code == 413


def test_wrong_appid_inside_ciphertext_is_403(app, client):
    settings = app.extensions["welead"].settings
    forged = settings.replace(wecom_corp_id="ww-someone-else")
    query, body = build_callback("wecom-add-contact", forged, external_userid="wm-forged")
    r = client.post("/wecom/callback", query_string=query, data=body)
    assert r.status_code == 403
    assert interactions(app) == 0


def test_encrypted_without_key_configured_is_403(app, client):
    settings = app.extensions["welead"].settings
    keyed = settings.replace(wechat_aes_key="kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR")
    query, body = build_callback("text", keyed)
    assert client.post("/wechat/callback", query_string=query, data=body).status_code == 403


# --- faults -----------------------------------------------------------------------------------------------------


def test_database_down_is_503_and_nothing_written(app, client, tmp_path):
    from foundation.db import Database

    svc = app.extensions["welead"]
    healthy = svc.db
    svc.db = Database(f"sqlite:///{tmp_path}/missing-dir/db.sqlite")
    try:
        r = post(client, "subscribe", openid="o-nodb", apply=False)
        assert r.status_code == 503 and b"Traceback" not in r.data
    finally:
        svc.db.dispose()
        svc.db = healthy
    assert interactions(app) == 0


def test_outbox_row_is_written_with_the_interaction(app, client):
    post(client, "subscribe", openid="o-out")
    assert pending_outbox(app) == 1


def test_delivery_reports_are_not_follower_activity(app, client, auth_headers):
    post(client, "text", openid="o-act", content="hi", create_time=1_700_000_000)
    post(client, "template-status", openid="o-act", msg_id=77, create_time=1_700_009_999)
    body = client.get("/api/v1/followers/o-act", headers=auth_headers).json
    assert body["last_active_at"] == "2023-11-14T22:13:20Z"


def test_retried_message_gets_the_same_passive_reply(app, client):
    from wechat.simulate import build_callback as build

    settings = app.extensions["welead"].settings
    with app.extensions["welead"].db.transaction() as s:
        from scrm.playbook import store

        store.load(
            s, "name: t\nrules:\n  - name: hi\n    when: {text: {keywords: [hello]}}\n    do:\n      - reply: Hi!\n"
        )
    query, body = build("text", settings, openid="o-again", content="hello", msg_id=555)
    first = client.post("/wechat/callback", query_string=query, data=body)
    again = client.post("/wechat/callback", query_string=query, data=body)
    assert b"Hi!" in first.data and first.data == again.data
    assert interactions(app) == 1
