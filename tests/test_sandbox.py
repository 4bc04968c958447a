"""The sandbox answers like WeChat: shapes, error codes, switches, records; its state lives in Redis."""

from __future__ import annotations

import pytest

from wechat.sandbox_apis import OA_APIS, WECOM_APIS
from wechat.sandbox_state import SandboxControl, unionid_for

OA = "/sandbox/oa/cgi-bin/"
WECOM = "/sandbox/wecom/cgi-bin/"


@pytest.fixture
def ctl(app) -> SandboxControl:
    return SandboxControl(app.extensions["welead"].redis_slow)


@pytest.fixture
def s(app):
    return app.extensions["welead"].settings


def _oa_token(client, s) -> str:
    r = client.get(OA + "token", query_string={"grant_type": "client_credential", "appid": s.wechat_app_id,
                                               "secret": s.wechat_app_secret})  # fmt: skip
    assert r.status_code == 200 and r.json["expires_in"] == 7200
    return r.json["access_token"]


def _wecom_token(client, s) -> str:
    r = client.get(WECOM + "gettoken", query_string={"corpid": s.wecom_corp_id, "corpsecret": s.wecom_secret})
    assert r.json["errcode"] == 0
    return r.json["access_token"]


@pytest.fixture
def oa(client, s):
    """POST/GET an OA API with a valid token; returns the JSON answer."""
    token = _oa_token(client, s)

    def call(api: str, body=None, **query):
        query = {"access_token": token, **query}
        if OA_APIS[api][0] == "GET":
            return client.get(OA + api, query_string=query).json
        return client.post(OA + api, query_string=query, json=body).json

    return call


@pytest.fixture
def wecom(client, s):
    token = _wecom_token(client, s)

    def call(api: str, body=None, **query):
        query = {"access_token": token, **query}
        if WECOM_APIS[api][0] == "GET":
            return client.get(WECOM + api, query_string=query).json
        return client.post(WECOM + api, query_string=query, json=body).json

    return call


TEMPLATE = {"touser": "oA", "template_id": "tpl-1", "data": {"k": {"value": "v"}}}


@pytest.mark.parametrize(
    ("query", "errcode"),
    [
        ({"grant_type": "password"}, 40002),
        ({"grant_type": "client_credential"}, 41002),
        ({"grant_type": "client_credential", "appid": "wxother"}, 40013),
        ({"grant_type": "client_credential", "appid": "APP", "secret": "wrong"}, 40125),
    ],
)
def test_oa_token_errors(client, s, query, errcode):
    query = {k: (s.wechat_app_id if v == "APP" else v) for k, v in query.items()}
    r = client.get(OA + "token", query_string=query)
    assert r.status_code == 200 and r.json["errcode"] == errcode and "rid:" in r.json["errmsg"]


def test_wecom_token_errors(client, s):
    assert client.get(WECOM + "gettoken", query_string={"corpid": "ww1"}).json["errcode"] == 40013
    bad = client.get(WECOM + "gettoken", query_string={"corpid": s.wecom_corp_id, "corpsecret": "x"}).json
    assert bad["errcode"] == 40001


def test_access_token_checks(client, s, ctl):
    assert client.get(OA + "user/info", query_string={"openid": "o"}).json["errcode"] == 41001
    assert client.get(OA + "user/info", query_string={"openid": "o", "access_token": "x"}).json["errcode"] == 40001
    assert client.get(WECOM + "externalcontact/get", query_string={"access_token": "x"}).json["errcode"] == 40014
    token = _oa_token(client, s)
    wecom_token = _wecom_token(client, s)
    query = {"openid": "o", "access_token": token}
    assert client.get(OA + "user/info", query_string=query).json["subscribe"] == 1
    w = client.get(WECOM + "externalcontact/get", query_string={"access_token": token, "external_userid": "wm1"})
    assert w.json["errcode"] == 40014  # an OA token is no WeCom token
    assert ctl.expire_tokens() == 2
    assert client.get(OA + "user/info", query_string=query).json["errcode"] == 42001
    w = client.get(WECOM + "externalcontact/get", query_string={"access_token": wecom_token, "external_userid": "a"})
    assert w.json["errcode"] == 42001
    ctl.revoke_tokens()
    assert client.get(OA + "user/info", query_string=query).json["errcode"] == 40001


def test_a_new_oa_token_leaves_the_old_one_valid_for_a_while(client, s):
    first, second = _oa_token(client, s), _oa_token(client, s)
    assert first != second
    for token in (first, second):
        assert client.get(OA + "user/info", query_string={"openid": "o", "access_token": token}).json["subscribe"] == 1


def test_user_info(oa, ctl):
    info = oa("user/info", openid="oUser1")
    assert info["subscribe"] == 1 and info["nickname"] == "" and info["openid"] == "oUser1"
    assert info["unionid"] == unionid_for("oUser1") and len(info["unionid"]) == 28
    assert {"subscribe_scene", "qr_scene", "qr_scene_str", "language", "subscribe_time", "tagid_list"} <= set(info)
    ctl.set_user("oUser1", subscribe_scene="ADD_SCENE_QR_CODE", qr_scene_str="rep:7")
    info = oa("user/info", openid="oUser1")
    assert (info["subscribe_scene"], info["qr_scene_str"]) == ("ADD_SCENE_QR_CODE", "rep:7")
    ctl.unsubscribe("oUser1")
    assert oa("user/info", openid="oUser1")["subscribe"] == 0
    assert oa("user/info")["errcode"] == 40003


def test_tags(oa):
    tag = oa("tags/create", {"tag": {"name": "vip"}})["tag"]
    assert tag["id"] >= 100 and tag["name"] == "vip"
    assert oa("tags/create", {"tag": {"name": "vip"}})["errcode"] == 45157
    assert oa("tags/create", {"tag": {"name": "x" * 31}})["errcode"] == 45158
    missing = oa("tags/create", {"tag": {}})
    assert missing["errcode"] == 47003 and "data.tag.name" in missing["errmsg"]
    assert oa("tags/members/batchtagging", {"tagid": tag["id"], "openid_list": ["o1", "o2"]})["errcode"] == 0
    many = [f"o{i}" for i in range(51)]
    assert oa("tags/members/batchtagging", {"tagid": tag["id"], "openid_list": many})["errcode"] == 40032
    assert oa("tags/members/batchtagging", {"tagid": 9999, "openid_list": ["o1"]})["errcode"] == 45159
    assert oa("tags/get")["tags"] == [{"id": tag["id"], "name": "vip", "count": 2}]
    assert oa("user/info", openid="o1")["tagid_list"] == [tag["id"]]


def test_template_send(oa, ctl):
    first = oa("message/template/send", TEMPLATE)
    assert first["errcode"] == 0 and first["msgid"] > 0
    missing = oa("message/template/send", {"touser": "oA", "data": {}})
    assert missing["errcode"] == 47003 and "data.template_id" in missing["errmsg"]
    ctl.set_templates("tpl-1")
    assert oa("message/template/send", {**TEMPLATE, "template_id": "tpl-2"})["errcode"] == 40037
    ctl.unsubscribe("oA")
    assert oa("message/template/send", TEMPLATE)["errcode"] == 43004
    ctl.subscribe("oA")
    assert oa("message/template/send", TEMPLATE)["errcode"] == 0


def test_template_client_msg_id_dedup(oa, ctl):
    body = {**TEMPLATE, "client_msg_id": "broadcast-1:oA"}
    a, b = oa("message/template/send", body), oa("message/template/send", body)
    assert a["msgid"] == b["msgid"]
    assert oa("message/template/send", {**body, "client_msg_id": "other"})["msgid"] != a["msgid"]


def test_custom_send(oa, ctl):
    assert oa("message/custom/send", {"touser": "oA", "msgtype": "text", "text": {"content": "hi"}})["errcode"] == 0
    missing = oa("message/custom/send", {"touser": "oA", "msgtype": "text"})
    assert missing["errcode"] == 47003 and "data.text.content" in missing["errmsg"]
    ctl.unsubscribe("oA")
    assert oa("message/custom/send", {"touser": "oA", "msgtype": "text", "text": {"content": "x"}})["errcode"] == 45015


def test_mass_send(oa):
    body = {"touser": ["oA", "oB"], "msgtype": "text", "text": {"content": "news"}, "clientmsgid": "bc-1"}
    first = oa("message/mass/send", body)
    assert first["errcode"] == 0 and first["msg_id"] > 0 and first["msg_data_id"]
    again = oa("message/mass/send", body)
    assert again["errcode"] == 45065 and again["msg_id"] == first["msg_id"]
    assert oa("message/mass/send", {**body, "touser": ["oA"], "clientmsgid": "bc-2"})["errcode"] == 40130
    assert oa("message/mass/send", {**body, "text": {}, "clientmsgid": "bc-3"})["errcode"] == 47003


def test_bad_bodies(client, s):
    token = _oa_token(client, s)
    q = {"access_token": token}
    assert client.post(OA + "message/template/send", query_string=q, data=b"").json["errcode"] == 44002
    assert client.post(OA + "message/template/send", query_string=q, data=b"{nope").json["errcode"] == 47001
    wrong_type = client.post(OA + "tags/members/batchtagging", query_string=q, json={"tagid": "x", "openid_list": []})
    assert wrong_type.json["errcode"] in (40032, 47001, 47003)
    unknown = client.get(OA + "no/such/api", query_string=q)
    assert unknown.status_code == 404


def test_qrcode(oa):
    temp = oa("qrcode/create", {"action_name": "QR_STR_SCENE", "action_info": {"scene": {"scene_str": "rep:7"}}})
    assert temp["expire_seconds"] == 60 and temp["ticket"] and temp["url"].startswith("http://weixin.qq.com/q/")
    long = oa("qrcode/create", {"action_name": "QR_SCENE", "expire_seconds": 10**9,
                                "action_info": {"scene": {"scene_id": 5}}})  # fmt: skip
    assert long["expire_seconds"] == 2_592_000
    permanent = oa("qrcode/create", {"action_name": "QR_LIMIT_SCENE", "action_info": {"scene": {"scene_id": 9}}})
    assert "expire_seconds" not in permanent
    assert (
        oa("qrcode/create", {"action_name": "QR_LIMIT_SCENE", "action_info": {"scene": {"scene_id": 0}}})["errcode"]
        == 47003
    )
    too_long = {"action_name": "QR_STR_SCENE", "action_info": {"scene": {"scene_str": "x" * 65}}}
    assert oa("qrcode/create", too_long)["errcode"] == 47003
    assert oa("qrcode/create", {"action_name": "QR_NOPE"})["errcode"] == 40097
    assert "ticket" in oa("qrcode/create", {"action_name": "QR_SCENE", "action_info": {"scene_id": 3}})  # scene 0


def test_menu(oa):
    assert oa("menu/get")["errcode"] == 46003
    click = {"type": "click", "name": "Price", "key": "PRICE"}
    assert oa("menu/create", {"button": [click] * 4})["errcode"] == 40016
    assert oa("menu/create", {"button": [{"name": "More", "sub_button": [click] * 6}]})["errcode"] == 40023
    assert oa("menu/create", {"button": [{"type": "click", "name": "Price"}]})["errcode"] == 40019
    assert oa("menu/create", {"button": [{"type": "teleport", "name": "x"}]})["errcode"] == 40017
    menu = {"button": [click, {"name": "More", "sub_button": [{"type": "view", "name": "Site", "url": "https://x/"}]}]}
    assert oa("menu/create", menu)["errcode"] == 0
    assert oa("menu/get")["menu"] == menu


def test_wecom_message_send(wecom, ctl, s):
    body = {"touser": "rep1|rep2", "agentid": int(s.wecom_agent_id), "msgtype": "text", "text": {"content": "hot"}}
    answer = wecom("message/send", body)
    assert answer["errcode"] == 0 and answer["invaliduser"] == ""
    ctl.set_wecom_members("rep1")
    assert wecom("message/send", body)["invaliduser"] == "rep2"
    assert wecom("message/send", {**body, "touser": "ghost"})["errcode"] == 81013
    assert wecom("message/send", {**body, "agentid": 1})["errcode"] == 40056
    assert wecom("message/send", {**body, "text": {"content": ""}})["errcode"] == 44004


def test_wecom_contact_way_and_external_contact(wecom, ctl):
    way = wecom("externalcontact/add_contact_way", {"type": 1, "scene": 2, "state": "rep:1", "user": ["rep1"]})
    assert way["errcode"] == 0 and way["config_id"] and way["qr_code"]
    two = wecom("externalcontact/add_contact_way", {"type": 1, "scene": 2, "user": ["a", "b"]})
    assert two["errcode"] == 40058 and "user" in two["errmsg"]
    long = wecom("externalcontact/add_contact_way", {"type": 2, "scene": 2, "user": ["a"], "state": "s" * 31})
    assert long["errcode"] == 40058 and "state" in long["errmsg"]
    contact = wecom("externalcontact/get", external_userid="wmC1")
    assert contact["external_contact"]["external_userid"] == "wmC1" and contact["follow_user"] == []
    ctl.set_external_contact("wmC1", userid="rep1", state="rep:1", name="Ms Li")
    contact = wecom("externalcontact/get", external_userid="wmC1")
    assert contact["external_contact"]["name"] == "Ms Li"
    assert contact["follow_user"][0]["userid"] == "rep1" and contact["follow_user"][0]["state"] == "rep:1"
    ctl.set_external_contact("wmC1", deleted=True)
    assert wecom("externalcontact/get", external_userid="wmC1")["errcode"] == 84061


def test_fail_next_and_fraction(oa, ctl):
    ctl.fail_next("oa/message/template/send", count=2)
    codes = [oa("message/template/send", TEMPLATE)["errcode"] for _ in range(3)]
    assert codes == [-1, -1, 0]
    ctl.fail_next("oa/message/template/send", count=1, errcode=45009)
    assert oa("message/template/send", TEMPLATE)["errcode"] == 45009
    ctl.fail_fraction(1.0)
    assert oa("user/info", openid="o")["errcode"] == -1
    ctl.fail_fraction(0.0)
    assert oa("user/info", openid="o")["subscribe"] == 1


def test_rate_limit(oa, ctl):
    ctl.set_rate_limit(2, "oa/message/template/send")
    codes = [oa("message/template/send", TEMPLATE)["errcode"] for _ in range(7)]
    assert 45009 in codes and codes.count(0) <= 4
    assert oa("user/info", openid="o")["subscribe"] == 1  # other endpoints have their own count
    ctl.set_rate_limit(0, "oa/message/template/send")
    assert oa("message/template/send", TEMPLATE)["errcode"] == 0


def test_records(oa, ctl):
    oa("message/template/send", TEMPLATE)
    ctl.unsubscribe("oA")
    oa("message/template/send", TEMPLATE)
    sent = ctl.sent("oa/message/template/send")
    assert [r["errcode"] for r in sent] == [0, 43004]
    assert sent[0]["body"] == TEMPLATE and sent[0]["answer"]["msgid"] > 0 and sent[0]["at"] > 0
    assert "access_token" not in sent[0]["query"]
    assert len(ctl.sent("oa/message/template/send", ok_only=True)) == 1
    token_calls = ctl.sent("oa/token")
    assert len(token_calls) == 1 and "secret" not in token_calls[0]["query"]


def test_control_endpoints(client, oa, ctl):
    r = client.post("/sandbox/_control", json={
        "rate_limit": 5, "fail_next": {"oa/menu/create": {"count": 1, "errcode": -1}}, "delay": {"oa/token": 0.5},
        "unsubscribe": ["oGone"], "templates": ["t1"], "users": {"oU": {"qr_scene_str": "x"}},
        "wecom_members": ["rep1"], "token_ttl": 60,
    })  # fmt: skip
    assert r.status_code == 200, r.json
    state = client.get("/sandbox/_control").json
    assert state["switches"]["rate_limit"] == {"*": 5}
    assert state["switches"]["fail_next"] == {"oa/menu/create": 1}
    assert state["switches"]["delay"] == {"oa/token": 0.5}
    assert state["unsubscribed"] == ["oGone"] and state["templates"] == ["t1"] and state["token_ttl"] == 60
    assert oa("user/info", openid="oU")["qr_scene_str"] == "x"
    sent = client.get("/sandbox/_control/sent", query_string={"endpoint": "oa/user/info"}).json
    assert sent["count"] == 1 and sent["sent"][0]["query"] == {"openid": "oU"}
    assert client.post("/sandbox/_control", json={"colour": "red"}).status_code == 400
    assert client.post("/sandbox/_control", json={"unsubscribe": "oX"}).status_code == 400
    assert client.post("/sandbox/_control", data="nope").status_code == 400
    assert client.post("/sandbox/_control", json={"expire_tokens": True}).status_code == 200
    assert oa("user/info", openid="oU")["errcode"] == 42001
    assert client.post("/sandbox/_control/reset").json["removed"] > 0
    state = client.get("/sandbox/_control").json
    assert state["sent"] == 0 and state["switches"]["rate_limit"] == {} and state["unsubscribed"] == []


def test_state_is_shared_through_redis(app, ctl, client, s):
    """A second SandboxControl (another process, in effect) sees and changes the same state."""
    other = SandboxControl(app.extensions["welead"].redis)
    other.unsubscribe("oShared")
    token = _oa_token(client, s)
    assert ctl.state()["unsubscribed"] == ["oShared"]
    info = client.get(OA + "user/info", query_string={"openid": "oShared", "access_token": token}).json
    assert info["subscribe"] == 0


def test_batchuntagging(oa):
    tag = oa("tags/create", {"tag": {"name": "vip"}})["tag"]
    assert oa("tags/members/batchtagging", {"tagid": tag["id"], "openid_list": ["o1", "o2"]})["errcode"] == 0
    assert oa("tags/members/batchuntagging", {"tagid": tag["id"], "openid_list": ["o1", "o3"]})["errcode"] == 0
    assert oa("tags/get")["tags"] == [{"id": tag["id"], "name": "vip", "count": 1}]
    assert oa("user/info", openid="o1")["tagid_list"] == []
    assert oa("user/info", openid="o2")["tagid_list"] == [tag["id"]]
    many = [f"o{i}" for i in range(51)]
    assert oa("tags/members/batchuntagging", {"tagid": tag["id"], "openid_list": many})["errcode"] == 40032
    missing = oa("tags/members/batchuntagging", {"tagid": 9999, "openid_list": ["o2"]})
    assert missing["errcode"] == 45159
    assert oa("user/info", openid="o2")["tagid_list"] == [tag["id"]]
