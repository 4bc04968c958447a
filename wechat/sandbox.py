"""A local fake of the WeChat OA and WeCom APIs WeLead calls, served under /sandbox when no credentials are set.

It answers with WeChat's own JSON shapes and error codes, so the real clients (`wechat.api`) run unchanged against
it. All state is in Redis under `sandbox:` so every gunicorn worker and test process sees the same tokens, tags,
records and switches. docs/sandbox.md describes the endpoints, the controls and how to watch what was sent.

- `/sandbox/oa/cgi-bin/<api>` and `/sandbox/wecom/cgi-bin/<api>`: the fakes (see `OA_APIS`, `WECOM_APIS`).
- `/sandbox/_control`: GET the state, POST a configuration; `/sandbox/_control/sent`: the call records;
  `/sandbox/_control/reset`: forget everything.
- `SandboxControl(redis)`: the same controls from Python (tests, bench).
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
from flask import Blueprint, Response, jsonify, request

from welead.app import services
from welead.config import Settings

bp = Blueprint("sandbox", __name__, url_prefix="/sandbox")

PREFIX = "sandbox:"
ANY = "*"  # endpoint wildcard in per-endpoint switches
SENT_KEEP = 100_000  # call records kept (oldest dropped)
DEFAULT_TOKEN_TTL = 7200
OA_TOKEN_GRACE = 300  # a new OA token leaves the previous one valid for 5 more minutes
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


class K:
    """Redis keys, all under `sandbox:`."""

    sent = PREFIX + "sent"
    cfg = PREFIX + "cfg:"  # + rate_limit | fail_next | fail_code | fail_p | delay: hashes endpoint → value
    token_ttl = PREFIX + "cfg:token_ttl"
    token = PREFIX + "token:"  # + token → expiry (epoch seconds)
    tokens = PREFIX + "tokens:"  # + owner (oa | wecom): set of tokens issued
    rate = PREFIX + "rate:"  # + endpoint:second → calls
    unsubscribed = PREFIX + "oa:unsubscribed"
    templates = PREFIX + "oa:templates"
    user = PREFIX + "oa:user:"  # + openid: profile fields
    user_tags = PREFIX + "oa:user_tags:"  # + openid: tag ids
    tags = PREFIX + "oa:tags"  # tag id → name
    tag_members = PREFIX + "oa:tag_members:"  # + tag id: openids
    tag_seq = PREFIX + "oa:tag_seq"
    msgid = PREFIX + "oa:msgid"
    client_msg = PREFIX + "oa:client_msg:"  # + openid:client_msg_id → msgid
    qrcodes = PREFIX + "oa:qrcodes"  # ticket → JSON
    mass_msgid = PREFIX + "oa:mass_msgid"
    mass_client = PREFIX + "oa:mass_client:"  # + clientmsgid → msg_id
    menu = PREFIX + "oa:menu"
    members = PREFIX + "wecom:members"
    contact_ways = PREFIX + "wecom:contact_ways"  # config_id → JSON
    contact = PREFIX + "wecom:contact:"  # + external_userid → JSON overrides
    wecom_msgid = PREFIX + "wecom:msgid"


SWITCHES = ("rate_limit", "fail_next", "fail_p", "delay")

_TAKE_ONE = """
local n = tonumber(redis.call('hget', KEYS[1], ARGV[1]) or '0')
if n > 0 then
    redis.call('hincrby', KEYS[1], ARGV[1], -1)
    return 1
end
return 0
"""


class ApiError(Exception):
    """An error answer of the fake API: {"errcode": ..., "errmsg": "... rid: ..."}."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(errmsg)
        self.errcode = errcode
        self.errmsg = errmsg

    def answer(self) -> dict[str, Any]:
        return {"errcode": self.errcode, "errmsg": f"{self.errmsg} rid: {secrets.token_hex(4)}"}


class ConfigError(ValueError):
    """A control request the sandbox cannot apply (answered 400)."""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _per_endpoint(value: Any) -> dict[str, Any]:
    """A switch is either one value for every endpoint or {endpoint: value}."""
    return value if isinstance(value, dict) else {ANY: value}


def unionid_for(openid: str) -> str:
    """Deterministic 28-character unionid, so a follower's unionid is the same in every run."""
    digest = hashlib.sha256(f"welead-sandbox-unionid:{openid}".encode()).digest()
    return "o" + base64.urlsafe_b64encode(digest).decode()[:27]


def external_name(external_userid: str) -> str:
    return f"Customer {hashlib.sha1(external_userid.encode()).hexdigest()[:6]}"


class SandboxControl:
    """The sandbox's switches and records in Redis: used by the control endpoints, tests and benchmarks."""

    def __init__(self, conn: redis.Redis) -> None:
        self.redis = conn
        self._take_one = conn.register_script(_TAKE_ONE)

    # --- switches -------------------------------------------------------------------------------------------------

    def configure(self, config: dict[str, Any]) -> None:
        """Apply a control document (the body of POST /sandbox/_control; keys in docs/sandbox.md)."""
        unknown = set(config) - set(_APPLY)
        if unknown:
            raise ConfigError(f"unknown control keys: {', '.join(sorted(unknown))}")
        for key, value in config.items():
            try:
                _APPLY[key](self, value)
            except (TypeError, ValueError, AttributeError) as exc:
                raise ConfigError(f"{key}: {exc}") from exc

    def set_rate_limit(self, per_second: int, endpoint: str = ANY) -> None:
        """At most `per_second` calls a second to each endpoint (its own count); more answer 45009. 0 = off."""
        self._switch("rate_limit", endpoint, int(per_second))

    def fail_next(self, endpoint: str = ANY, count: int = 1, errcode: int = -1) -> None:
        """The next `count` calls of `endpoint` (any endpoint for "*") answer `errcode` (default -1, busy)."""
        self._switch("fail_next", endpoint, int(count))
        self.redis.hset(K.cfg + "fail_code", endpoint, int(errcode))

    def fail_fraction(self, p: float, endpoint: str = ANY) -> None:
        """A fraction `p` of the calls of `endpoint` answer -1 (system busy). 0 = off."""
        if not 0 <= float(p) <= 1:
            raise ValueError("a fraction is between 0 and 1")
        self._switch("fail_p", endpoint, float(p))

    def set_delay(self, seconds: float, endpoint: str = ANY) -> None:
        """Answer `endpoint` only after `seconds`, having done the work: a client timing out cannot know it was done."""
        self._switch("delay", endpoint, float(seconds))

    def set_token_ttl(self, seconds: int) -> None:
        """expires_in of the tokens issued from now on (default 7200)."""
        self.redis.set(K.token_ttl, int(seconds))

    def expire_tokens(self) -> int:
        """Every token issued so far answers 42001 (access_token expired) from now on."""
        tokens = self._issued()
        with self.redis.pipeline() as pipe:
            for token in tokens:
                pipe.set(K.token + token, 0, keepttl=True)
            pipe.execute()
        return len(tokens)

    def revoke_tokens(self) -> int:
        """Every token issued so far is unknown from now on: 40001 (OA) / 40014 (WeCom), as after a secret reset."""
        tokens = self._issued()
        if tokens:
            self.redis.delete(*(K.token + token for token in tokens))
        return len(tokens)

    def unsubscribe(self, *openids: str) -> None:
        """These followers have unfollowed: template sends answer 43004, custom sends 45015, user/info subscribe 0."""
        if openids:
            self.redis.sadd(K.unsubscribed, *openids)

    def subscribe(self, *openids: str) -> None:
        if openids:
            self.redis.srem(K.unsubscribed, *openids)

    def set_templates(self, *template_ids: str) -> None:
        """Only these template ids exist (others answer 40037); none given = every id exists."""
        self.redis.delete(K.templates)
        if template_ids:
            self.redis.sadd(K.templates, *template_ids)

    def set_user(self, openid: str, **profile: Any) -> None:
        """Profile fields user/info returns for `openid` (subscribe_scene, qr_scene, qr_scene_str, language, ...)."""
        if profile:
            self.redis.hset(K.user + openid, mapping={k: json.dumps(v) for k, v in profile.items()})

    def set_wecom_members(self, *userids: str) -> None:
        """Only these WeCom members exist (others come back in invaliduser); none given = everyone exists."""
        self.redis.delete(K.members)
        if userids:
            self.redis.sadd(K.members, *userids)

    def set_external_contact(self, external_userid: str, **fields: Any) -> None:
        """What externalcontact/get says about a customer: name, userid and state of the follow_user, or
        deleted=True (84061, not an external contact)."""
        self.redis.set(K.contact + external_userid, json.dumps(fields))

    def reset(self) -> int:
        """Forget every sandbox key (switches, tokens, tags, records). Returns how many keys went."""
        removed = 0
        batch: list[bytes] = []
        for key in self.redis.scan_iter(match=PREFIX + "*", count=500):
            batch.append(key)
            if len(batch) == 500:
                removed += self.redis.delete(*batch)
                batch = []
        if batch:
            removed += self.redis.delete(*batch)
        return removed

    def _switch(self, name: str, endpoint: str, value: float) -> None:
        if value:
            self.redis.hset(K.cfg + name, endpoint, value)
        else:
            self.redis.hdel(K.cfg + name, endpoint)

    def _issued(self) -> list[str]:
        return [_text(t) for owner in ("oa", "wecom") for t in self.redis.smembers(K.tokens + owner)]

    # --- reading --------------------------------------------------------------------------------------------------

    def sent(self, endpoint: str | None = None, *, ok_only: bool = False, start: int = 0) -> list[dict[str, Any]]:
        """Call records, oldest first: endpoint, method, query (without the token), body, answer, errcode, at."""
        records = [json.loads(raw) for raw in self.redis.lrange(K.sent, start, -1)]
        if endpoint:
            records = [r for r in records if r["endpoint"] == endpoint]
        if ok_only:
            records = [r for r in records if r["errcode"] == 0]
        return records

    def calls(self, endpoint: str) -> int:
        return len(self.sent(endpoint))

    def switches(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for name in (*SWITCHES, "fail_code"):
            raw = self.redis.hgetall(K.cfg + name)
            out[name] = {_text(k): json.loads(v) for k, v in raw.items()}
        return out

    def state(self) -> dict[str, Any]:
        """Everything a person debugging a run wants to see at once."""
        r = self.redis
        tags = {_text(k): _text(v) for k, v in r.hgetall(K.tags).items()}
        menu = r.get(K.menu)
        return {
            "switches": self.switches(),
            "token_ttl": int(r.get(K.token_ttl) or DEFAULT_TOKEN_TTL),
            "tokens_issued": {owner: r.scard(K.tokens + owner) for owner in ("oa", "wecom")},
            "unsubscribed": sorted(_text(o) for o in r.smembers(K.unsubscribed)),
            "templates": sorted(_text(t) for t in r.smembers(K.templates)),
            "tags": [{"id": int(i), "name": n, "count": r.scard(K.tag_members + i)} for i, n in sorted(tags.items())],
            "menu": json.loads(menu) if menu else None,
            "wecom_members": sorted(_text(m) for m in r.smembers(K.members)),
            "sent": r.llen(K.sent),
        }

    # --- used by the fake endpoints -------------------------------------------------------------------------------

    def _lookup(self, name: str, endpoint: str) -> float:
        values = self.redis.hmget(K.cfg + name, [endpoint, ANY])
        found = next((v for v in values if v is not None), None)
        return float(json.loads(found)) if found is not None else 0.0

    def injected_failure(self, endpoint: str) -> int | None:
        """The errcode to answer instead of serving the call, if a failure switch says so."""
        for name in (endpoint, ANY):
            if self._take_one(keys=[K.cfg + "fail_next"], args=[name]):
                code = self.redis.hget(K.cfg + "fail_code", name)
                return int(code) if code is not None else -1
        p = self._lookup("fail_p", endpoint)
        if p and random.random() < p:
            return -1
        return None

    def over_rate(self, endpoint: str) -> bool:
        limit = self._lookup("rate_limit", endpoint)
        if not limit:
            return False
        key = f"{K.rate}{endpoint}:{int(time.time())}"
        with self.redis.pipeline() as pipe:
            pipe.incr(key)
            pipe.expire(key, 2)
            count = pipe.execute()[0]
        return count > limit

    def delay(self, endpoint: str) -> float:
        return self._lookup("delay", endpoint)

    def record(self, call: Call, answer: dict[str, Any]) -> None:
        query = {k: v for k, v in call.query.items() if k not in ("access_token", "secret", "corpsecret")}
        entry = {
            "endpoint": call.endpoint,
            "method": call.method,
            "query": query,
            "body": call.body,
            "answer": answer,
            "errcode": int(answer.get("errcode", 0)),
            "at": time.time(),
        }
        with self.redis.pipeline() as pipe:
            pipe.rpush(K.sent, json.dumps(entry, ensure_ascii=False))
            pipe.ltrim(K.sent, -SENT_KEEP, -1)
            pipe.execute()

    def issue_token(self, owner: str) -> tuple[str, int]:
        ttl = int(self.redis.get(K.token_ttl) or DEFAULT_TOKEN_TTL)
        now = time.time()
        if owner == "oa":
            self._shorten_previous(owner, now)
        token = secrets.token_urlsafe(96)
        with self.redis.pipeline() as pipe:
            pipe.set(K.token + token, now + ttl, ex=ttl + 86400)
            pipe.sadd(K.tokens + owner, token)
            pipe.execute()
        return token, ttl

    def _shorten_previous(self, owner: str, now: float) -> None:
        """A new OA token leaves the previous ones valid for a grace period only (why tokens must be shared)."""
        for old in map(_text, self.redis.smembers(K.tokens + owner)):
            expiry = self.redis.get(K.token + old)
            if expiry is None:  # revoked or long gone
                self.redis.srem(K.tokens + owner, old)
            elif float(expiry) > now + OA_TOKEN_GRACE:
                self.redis.set(K.token + old, now + OA_TOKEN_GRACE, keepttl=True)

    def check_token(self, owner: str, token: str | None) -> None:
        if not token:
            raise ApiError(41001, "access_token missing")
        expiry = self.redis.get(K.token + token)
        if expiry is None or not self.redis.sismember(K.tokens + owner, token):
            if owner == "wecom":
                raise ApiError(40014, "invalid access_token")
            raise ApiError(40001, "invalid credential, access_token is invalid or not latest")
        if float(expiry) <= time.time():
            raise ApiError(42001, "access_token expired")


def _apply_switch(name: str) -> Callable[[SandboxControl, Any], None]:
    def apply(ctl: SandboxControl, value: Any) -> None:
        for endpoint, setting in _per_endpoint(value).items():
            if name == "fail_next":
                spec = setting if isinstance(setting, dict) else {"count": setting}
                ctl.fail_next(endpoint, int(spec.get("count") or 0), int(spec.get("errcode", -1)))
            elif name == "fail_p":
                ctl.fail_fraction(float(setting or 0), endpoint)
            elif name == "delay":
                ctl.set_delay(float(setting or 0), endpoint)
            else:
                ctl.set_rate_limit(int(setting or 0), endpoint)

    return apply


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError("expected a list of strings")
    return value


_APPLY: dict[str, Callable[[SandboxControl, Any], Any]] = {
    **{name: _apply_switch(name) for name in SWITCHES},
    "token_ttl": lambda ctl, v: ctl.set_token_ttl(int(v)),
    "expire_tokens": lambda ctl, v: ctl.expire_tokens() if v else None,
    "revoke_tokens": lambda ctl, v: ctl.revoke_tokens() if v else None,
    "unsubscribe": lambda ctl, v: ctl.unsubscribe(*_strings(v)),
    "subscribe": lambda ctl, v: ctl.subscribe(*_strings(v)),
    "templates": lambda ctl, v: ctl.set_templates(*_strings(v)),
    "users": lambda ctl, v: [ctl.set_user(openid, **profile) for openid, profile in v.items()],
    "wecom_members": lambda ctl, v: ctl.set_wecom_members(*_strings(v)),
    "external_contacts": lambda ctl, v: [ctl.set_external_contact(eid, **f) for eid, f in v.items()],
}


# --- the fake APIs ---------------------------------------------------------------------------------------------------


@dataclass
class Call:
    """One request to a fake endpoint, as handlers and records see it."""

    endpoint: str  # e.g. "oa/message/template/send"
    method: str
    query: dict[str, str]
    body: Any = None
    settings: Settings = field(default_factory=Settings)

    def arg(self, name: str) -> str:
        return self.query.get(name, "")

    def need(self, path: str, code: int = 47003) -> Any:
        """A required body field ("a.b.c"); missing or empty answers `code` naming it, as WeChat does."""
        value: Any = self.body
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value in (None, "", [], {}):
            raise ApiError(code, f"argument invalid! data.{path} is empty")
        return value


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
    return {_text(k): json.loads(v) for k, v in ctl.redis.hgetall(key).items()}


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
    return info


def _tag_names(ctl: SandboxControl) -> dict[int, str]:
    return {int(k): _text(v) for k, v in ctl.redis.hgetall(K.tags).items()}


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
    members = {_text(m) for m in ctl.redis.smembers(K.members)}
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


def _body() -> Any:
    raw = request.get_data(cache=False)
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return raw.decode("utf-8", "replace")


def _control() -> SandboxControl:
    return SandboxControl(services().redis_slow)


@bp.route("/<any(oa, wecom):side>/cgi-bin/<path:api>", methods=["GET", "POST"])
def fake_api(side: str, api: str) -> Response | tuple[Response, int]:
    method, handler = (OA_APIS if side == "oa" else WECOM_APIS).get(api, (None, None))
    if handler is None:
        return jsonify(errcode=404, errmsg=f"the sandbox does not fake {side}/{api}"), 404
    svc = services()
    ctl = SandboxControl(svc.redis_slow)
    call = Call(f"{side}/{api}", method, request.args.to_dict(), _body() if method == "POST" else None, svc.settings)
    answer = serve(ctl, call, handler)
    ctl.record(call, answer)
    pause = ctl.delay(call.endpoint)
    if pause:
        time.sleep(pause)
    return jsonify(answer)


@bp.get("/_control")
def control_state() -> Response:
    return jsonify(_control().state())


@bp.post("/_control")
def control_configure() -> Response | tuple[Response, int]:
    config = request.get_json(silent=True)
    if not isinstance(config, dict):
        return jsonify(error="a JSON object is expected"), 400
    ctl = _control()
    try:
        ctl.configure(config)
    except ConfigError as exc:
        return jsonify(error=str(exc)), 400
    return jsonify(ctl.state())


@bp.get("/_control/sent")
def control_sent() -> Response:
    endpoint = request.args.get("endpoint") or None
    ok_only = request.args.get("ok") in ("1", "true", "yes")
    start = request.args.get("start", 0, type=int)
    records = _control().sent(endpoint, ok_only=ok_only, start=start)
    return jsonify(sent=records, count=len(records))


@bp.post("/_control/reset")
def control_reset() -> Response:
    return jsonify(removed=_control().reset())
