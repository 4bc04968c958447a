"""The fake WeChat OA and WeCom endpoints: one handler per API, WeChat's JSON shapes and error codes.

`serve(control, call, handler)` answers one call, failure switches first; the blueprint in `wechat.sandbox` wires
HTTP to it.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

from wechat.sandbox_state import ApiError, Call, K, SandboxControl, as_text, external_name, unionid_for

MAX_TAGS, MAX_TAGS_PER_USER, TAG_NAME_MAX, TAG_BATCH = 100, 20, 30, 50
QR_TEMP_DEFAULT, QR_TEMP_MAX, QR_LIMIT_MAX_ID, SCENE_STR_MAX = 60, 2_592_000, 100_000, 64
CLIENT_MSG_WINDOW = 600
MASS_MIN, MASS_MAX, MASS_DEDUP = 2, 10_000, 86_400
MENU_TYPES = frozenset({
    "click", "view", "scancode_push", "scancode_waitmsg", "pic_sysphoto", "pic_photo_or_album", "pic_weixin",
    "location_select", "media_id", "article_id", "article_view_limited", "miniprogram",
})  # fmt: skip
KEYED_TYPES = frozenset({
    "click", "scancode_push", "scancode_waitmsg", "pic_sysphoto", "pic_photo_or_album", "pic_weixin", "location_select",
})  # fmt: skip


def ok(**fields: Any) -> dict[str, Any]:
    return {"errcode": 0, "errmsg": "ok", **fields}


# OA ------------------------------------------------------------------------------------------------------------------


def oa_token(ctl: SandboxControl, call: Call) -> dict:
    s = call.settings
    if call.arg("grant_type") != "client_credential":
        raise ApiError(40002, "invalid grant_type")
    if not call.arg("appid"):
        raise ApiError(41002, "appid missing")
    if call.arg("appid") != s.wechat_app_id:
        raise ApiError(40013, "invalid appid")
    if not call.arg("secret"):
        raise ApiError(41004, "appsecret missing")
    if call.arg("secret") != s.wechat_app_secret:
        raise ApiError(40125, "invalid appsecret")
    token, ttl = ctl.issue_token("oa")
    return {"access_token": token, "expires_in": ttl}


def _profile(ctl: SandboxControl, openid: str) -> dict[str, Any]:
    key = K.user + openid
    ctl.redis.hsetnx(key, "subscribe_time", json.dumps(int(time.time())))
    return {as_text(k): json.loads(v) for k, v in ctl.redis.hgetall(key).items()}


def oa_user_info(ctl: SandboxControl, call: Call) -> dict:
    openid = call.arg("openid")
    if not openid:
        raise ApiError(40003, "invalid openid")
    if ctl.redis.sismember(K.unsubscribed, openid):
        return {"subscribe": 0, "openid": openid, "unionid": unionid_for(openid)}
    stored = _profile(ctl, openid)
    tag_ids = sorted(int(t) for t in ctl.redis.smembers(K.user_tags + openid))
    info = {
        "subscribe": 1, "openid": openid, "nickname": "", "language": "zh_CN", "headimgurl": "",
        "subscribe_time": 0, "unionid": unionid_for(openid), "remark": "", "groupid": 0, "tagid_list": tag_ids,
        "subscribe_scene": "ADD_SCENE_SEARCH", "qr_scene": 0, "qr_scene_str": "",
    }  # fmt: skip
    info.update(stored)
    if (stored.get("qr_scene_str") or stored.get("qr_scene")) and "subscribe_scene" not in stored:
        info["subscribe_scene"] = "ADD_SCENE_QR_CODE"  # WeChat gives a QR scene only to followers who came by one
    return info


def _tag_names(ctl: SandboxControl) -> dict[int, str]:
    return {int(k): as_text(v) for k, v in ctl.redis.hgetall(K.tags).items()}


def oa_tags_create(ctl: SandboxControl, call: Call) -> dict:
    name = str(call.need("tag.name"))
    if len(name) > TAG_NAME_MAX:
        raise ApiError(45158, "tag name too long")
    tags = _tag_names(ctl)
    if name in tags.values():
        raise ApiError(45157, "invalid tag name")
    if len(tags) >= MAX_TAGS:
        raise ApiError(45056, "too many tags now, no need to add new")
    tag_id = int(ctl.redis.incr(K.tag_seq)) + 99  # ids 0-2 belong to WeChat's own tags
    ctl.redis.hset(K.tags, tag_id, name)
    return {"tag": {"id": tag_id, "name": name}}


def oa_tags_get(ctl: SandboxControl, call: Call) -> dict:
    tags = _tag_names(ctl)
    return {"tags": [{"id": i, "name": n, "count": ctl.redis.scard(K.tag_members + str(i))} for i, n in tags.items()]}


def _tag_batch(ctl: SandboxControl, call: Call) -> tuple[int, list[str]]:
    """The checks batchtagging and batchuntagging share: list size (40032), known tag (45159)."""
    tag_id = call.need("tagid")
    openids = call.need("openid_list")
    if not isinstance(openids, list) or len(openids) > TAG_BATCH:
        raise ApiError(40032, "invalid openid list size, at most 50")
    if int(tag_id) not in _tag_names(ctl):
        raise ApiError(45159, "invalid tag id")
    return int(tag_id), openids


def oa_batchtagging(ctl: SandboxControl, call: Call) -> dict:
    tag_id, openids = _tag_batch(ctl, call)
    for openid in openids:
        tags = ctl.redis.smembers(K.user_tags + openid)
        if len(tags) >= MAX_TAGS_PER_USER and str(tag_id).encode() not in tags:
            raise ApiError(45059, "has too many tags")
    with ctl.redis.pipeline() as pipe:
        for openid in openids:
            pipe.sadd(K.user_tags + openid, int(tag_id))
            pipe.sadd(K.tag_members + str(tag_id), openid)
        pipe.execute()
    return ok()


def oa_batchuntagging(ctl: SandboxControl, call: Call) -> dict:
    tag_id, openids = _tag_batch(ctl, call)
    with ctl.redis.pipeline() as pipe:
        for openid in openids:
            pipe.srem(K.user_tags + openid, int(tag_id))
            pipe.srem(K.tag_members + str(tag_id), openid)
        pipe.execute()
    return ok()


def oa_template_send(ctl: SandboxControl, call: Call) -> dict:
    touser = str(call.need("touser"))
    template_id = str(call.need("template_id"))
    call.need("data")
    allowed = ctl.redis.smembers(K.templates)
    if allowed and template_id.encode() not in allowed:
        raise ApiError(40037, "invalid template_id")
    if ctl.redis.sismember(K.unsubscribed, touser):
        raise ApiError(43004, "require subscribe")
    client_msg_id = call.body.get("client_msg_id")
    if client_msg_id:  # WeChat sends one message per openid + client_msg_id within 10 minutes
        key = f"{K.client_msg}{touser}:{client_msg_id}"
        msgid = int(ctl.redis.incr(K.msgid)) + 2_000_000_000
        if not ctl.redis.set(key, msgid, nx=True, ex=CLIENT_MSG_WINDOW):
            return ok(msgid=int(ctl.redis.get(key) or 0))  # the first send's msgid, nothing sent again
        return ok(msgid=msgid)
    return ok(msgid=int(ctl.redis.incr(K.msgid)) + 2_000_000_000)


def oa_custom_send(ctl: SandboxControl, call: Call) -> dict:
    touser = str(call.need("touser"))
    msgtype = str(call.need("msgtype"))
    if msgtype == "text":
        call.need("text.content")
    elif not isinstance(call.body.get(msgtype), dict):
        raise ApiError(47003, f"argument invalid! data.{msgtype} is empty")
    if ctl.redis.sismember(K.unsubscribed, touser):
        raise ApiError(45015, "response out of time limit or subscription is canceled")
    return ok()


def oa_mass_send(ctl: SandboxControl, call: Call) -> dict:
    """Mass message to an openid list (2-10,000); the same clientmsgid twice answers 45065 with the first msg_id."""
    touser = call.need("touser")
    if not isinstance(touser, list) or not MASS_MIN <= len(touser) <= MASS_MAX:
        raise ApiError(40130, "invalid openid list size, at least two openid")
    msgtype = str(call.need("msgtype"))
    if msgtype == "text":
        call.need("text.content")
    msg_id = int(ctl.redis.incr(K.mass_msgid)) + 1_000_000
    client_msg_id = call.body.get("clientmsgid")
    if client_msg_id and not ctl.redis.set(K.mass_client + str(client_msg_id), msg_id, nx=True, ex=MASS_DEDUP):
        error = ApiError(45065, "clientmsgid exist").answer()
        return {**error, "msg_id": int(ctl.redis.get(K.mass_client + str(client_msg_id)) or 0)}
    return ok(errmsg="send job submission success", msg_id=msg_id, msg_data_id=msg_id * 10 + 1)


def _scene(call: Call, action: str) -> int | str:
    scene = (call.body.get("action_info") or {}).get("scene")
    if not isinstance(scene, dict):
        return 0  # WeChat quietly makes a code for scene 0 when the wrapper is missing
    if action.endswith("STR_SCENE"):
        value = scene.get("scene_str")
        if not isinstance(value, str) or not 1 <= len(value) <= SCENE_STR_MAX:
            raise ApiError(47003, "argument invalid! data.action_info.scene.scene_str is invalid")
        return value
    value = scene.get("scene_id")
    if not isinstance(value, int) or value < 0 or (action == "QR_LIMIT_SCENE" and not 1 <= value <= QR_LIMIT_MAX_ID):
        raise ApiError(47003, "argument invalid! data.action_info.scene.scene_id is invalid")
    return value


def oa_qrcode_create(ctl: SandboxControl, call: Call) -> dict:
    action = str(call.need("action_name"))
    if action not in ("QR_SCENE", "QR_STR_SCENE", "QR_LIMIT_SCENE", "QR_LIMIT_STR_SCENE"):
        raise ApiError(40097, "invalid args: action_name")
    scene = _scene(call, action)
    ticket = base64.b64encode(secrets.token_bytes(72)).decode()
    url = f"http://weixin.qq.com/q/{secrets.token_urlsafe(16)}"
    answer: dict[str, Any] = {"ticket": ticket, "url": url}
    if action.startswith("QR_LIMIT"):
        expires = None
    else:
        expires = min(int(call.body.get("expire_seconds") or QR_TEMP_DEFAULT), QR_TEMP_MAX)
        answer["expire_seconds"] = expires
    record = {"action_name": action, "scene": scene, "url": url, "expire_seconds": expires, "created": time.time()}
    ctl.redis.hset(K.qrcodes, ticket, json.dumps(record))
    return answer


def _check_button(button: Any, sub: bool) -> None:
    base = 40024 if sub else 40017  # type; +1 name size, +2 key size, +3 url size
    if not isinstance(button, dict):
        raise ApiError(base, "invalid button type")
    name_limit = 60 if sub else 16
    if not 0 < len(str(button.get("name", "")).encode()) <= name_limit:
        raise ApiError(base + 1, "invalid button name size")
    if "sub_button" in button and not sub:
        subs = button["sub_button"]
        if not isinstance(subs, list) or not 1 <= len(subs) <= 5:
            raise ApiError(40023, "invalid sub button size")
        for child in subs:
            _check_button(child, sub=True)
        return
    kind = button.get("type")
    if kind not in MENU_TYPES:
        raise ApiError(base, "invalid button type")
    if kind in KEYED_TYPES and not 0 < len(str(button.get("key", "")).encode()) <= 128:
        raise ApiError(base + 2, "invalid button key size")
    if kind in ("view", "miniprogram") and not 0 < len(str(button.get("url", "")).encode()) <= 1024:
        raise ApiError(base + 3, "invalid button url size")


def oa_menu_create(ctl: SandboxControl, call: Call) -> dict:
    buttons = call.body.get("button")
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
        raise ApiError(40016, "invalid button size")
    for button in buttons:
        _check_button(button, sub=False)
    ctl.redis.set(K.menu, json.dumps({"button": buttons}, ensure_ascii=False))
    return ok()


def oa_menu_get(ctl: SandboxControl, call: Call) -> dict:
    menu = ctl.redis.get(K.menu)
    if not menu:
        raise ApiError(46003, "menu no exist")
    return {"menu": json.loads(menu)}


# WeCom ---------------------------------------------------------------------------------------------------------------


def wecom_gettoken(ctl: SandboxControl, call: Call) -> dict:
    s = call.settings
    if not call.arg("corpid"):
        raise ApiError(41002, "corpid missing")
    if call.arg("corpid") != s.wecom_corp_id:
        raise ApiError(40013, "invalid corpid")
    if not call.arg("corpsecret"):
        raise ApiError(41004, "corpsecret missing")
    if call.arg("corpsecret") != s.wecom_secret:
        raise ApiError(40001, "invalid credential")
    token, ttl = ctl.issue_token("wecom")
    return ok(access_token=token, expires_in=ttl)


def wecom_message_send(ctl: SandboxControl, call: Call) -> dict:
    agent = call.body.get("agentid")
    if agent in (None, ""):
        raise ApiError(41011, "missing agentid")
    if str(agent) != str(call.settings.wecom_agent_id):
        raise ApiError(40056, "invalid agentid")
    msgtype = call.body.get("msgtype")
    if msgtype not in ("text", "markdown", "textcard"):
        raise ApiError(40008, "invalid message type")
    if msgtype in ("text", "markdown") and not (call.body.get(msgtype) or {}).get("content"):
        raise ApiError(44004, "empty content")
    users = [u for u in str(call.body.get("touser") or "").split("|") if u]
    if not users and not call.body.get("toparty") and not call.body.get("totag"):
        raise ApiError(40058, "invalid Request Parameter: touser, toparty and totag are all empty")
    members = {as_text(m) for m in ctl.redis.smembers(K.members)}
    invalid = [u for u in users if members and u not in members and u != "@all"]
    if users and len(invalid) == len(users):
        raise ApiError(81013, "user & party & tag all invalid")
    msgid = secrets.token_urlsafe(24)
    ctl.redis.incr(K.wecom_msgid)
    return ok(invaliduser="|".join(invalid), msgid=msgid)


def wecom_add_contact_way(ctl: SandboxControl, call: Call) -> dict:
    way_type, scene = call.body.get("type"), call.body.get("scene")
    if way_type not in (1, 2):
        raise ApiError(40058, "invalid Request Parameter: type")
    if scene not in (1, 2):
        raise ApiError(40058, "invalid Request Parameter: scene")
    users = call.body.get("user") or []
    if not isinstance(users, list) or (way_type == 1 and len(users) != 1) or len(users) > 100:
        raise ApiError(40058, "invalid Request Parameter: user")
    state = call.body.get("state") or ""
    if len(str(state)) > 30:
        raise ApiError(40058, "invalid Request Parameter: state")
    config_id = secrets.token_hex(16)
    answer = ok(config_id=config_id)
    if scene == 2:
        answer["qr_code"] = f"https://wework.qpic.cn/wwpic/sandbox/{config_id}/0"
    way = {"type": way_type, "scene": scene, "user": users, "state": state, "qr_code": answer.get("qr_code")}
    ctl.redis.hset(K.contact_ways, config_id, json.dumps(way))
    return answer


def wecom_external_contact(ctl: SandboxControl, call: Call) -> dict:
    eid = call.arg("external_userid")
    if not eid:
        raise ApiError(40058, "invalid Request Parameter: external_userid")
    stored = json.loads(ctl.redis.get(K.contact + eid) or "{}")
    if stored.get("deleted"):
        raise ApiError(84061, "not external contact")
    contact = {
        "external_userid": eid, "name": stored.get("name", external_name(eid)), "type": 1, "avatar": "",
        "gender": 0, "unionid": stored.get("unionid", unionid_for(eid)),
    }  # fmt: skip
    follow = []
    if stored.get("userid"):
        follow.append({
            "userid": stored["userid"], "remark": "", "description": "", "createtime": int(time.time()),
            "tags": [], "remark_mobiles": [], "add_way": 1, "state": stored.get("state", ""),
        })  # fmt: skip
    return ok(external_contact=contact, follow_user=follow)


Handler = Callable[[SandboxControl, Call], dict]

OA_APIS: dict[str, tuple[str, Handler]] = {
    "token": ("GET", oa_token),
    "user/info": ("GET", oa_user_info),
    "tags/create": ("POST", oa_tags_create),
    "tags/get": ("GET", oa_tags_get),
    "tags/members/batchtagging": ("POST", oa_batchtagging),
    "tags/members/batchuntagging": ("POST", oa_batchuntagging),
    "message/template/send": ("POST", oa_template_send),
    "message/custom/send": ("POST", oa_custom_send),
    "message/mass/send": ("POST", oa_mass_send),
    "qrcode/create": ("POST", oa_qrcode_create),
    "menu/create": ("POST", oa_menu_create),
    "menu/get": ("GET", oa_menu_get),
}
WECOM_APIS: dict[str, tuple[str, Handler]] = {
    "gettoken": ("GET", wecom_gettoken),
    "message/send": ("POST", wecom_message_send),
    "externalcontact/add_contact_way": ("POST", wecom_add_contact_way),
    "externalcontact/get": ("GET", wecom_external_contact),
}
TOKEN_APIS = frozenset({"oa/token", "wecom/gettoken"})


def serve(ctl: SandboxControl, call: Call, handler: Handler) -> dict[str, Any]:
    """Answer one call the way WeChat would, failure switches first: busy, then quota, then token, then body."""
    try:
        _gates(ctl, call)
        return _handle(ctl, call, handler)
    except ApiError as exc:
        return exc.answer()


def _gates(ctl: SandboxControl, call: Call) -> None:
    injected = ctl.injected_failure(call.endpoint)
    if injected is not None:
        raise ApiError(injected, "system error" if injected == -1 else "injected failure")
    if ctl.over_rate(call.endpoint):
        raise ApiError(45009, "reach max api daily quota limit")
    if call.endpoint not in TOKEN_APIS:
        ctl.check_token(call.endpoint.split("/", 1)[0], call.query.get("access_token"))
    if call.method == "POST" and call.body is None:
        raise ApiError(44002, "empty post data")
    if call.method == "POST" and not isinstance(call.body, dict):
        raise ApiError(47001, "data format error")


def _handle(ctl: SandboxControl, call: Call, handler: Handler) -> dict[str, Any]:
    try:
        return handler(ctl, call)
    except (TypeError, ValueError, AttributeError) as exc:  # a field of the wrong type somewhere in the body
        raise ApiError(47001, "data format error") from exc
