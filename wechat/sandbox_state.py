"""The sandbox's state in Redis: switches (rate limits, failures, delays), tokens, followers, tags, records.

Everything lives under `sandbox:` so every gunicorn worker and test process sees the same sandbox.
`SandboxControl(redis)` is the Python handle on it (control endpoints, tests, bench).
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

from wechat.settings import WeChatSettings

PREFIX = "sandbox:"
ANY = "*"  # endpoint wildcard in per-endpoint switches
SENT_KEEP = 100_000  # call records kept (oldest dropped)
DEFAULT_TOKEN_TTL = 7200
OA_TOKEN_GRACE = 300  # a new OA token leaves the previous one valid for 5 more minutes


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


def as_text(value: Any) -> str:
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

    def follow(self, openid: str, scene: str | None = None) -> None:
        """`openid` followed, through a QR code with `scene` (or without one): user/info then answers subscribe 1 with
        subscribe_scene ADD_SCENE_QR_CODE and the scene, as WeChat does for the code the follower scanned."""
        self.subscribe(openid)
        if scene:
            numeric = scene.isdigit()
            self.set_user(openid, subscribe_scene="ADD_SCENE_QR_CODE", qr_scene=int(scene) if numeric else 0,
                          qr_scene_str="" if numeric else scene)  # fmt: skip
        else:
            self.set_user(openid, subscribe_scene="ADD_SCENE_SEARCH", qr_scene=0, qr_scene_str="")

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
        return [as_text(t) for owner in ("oa", "wecom") for t in self.redis.smembers(K.tokens + owner)]

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
            out[name] = {as_text(k): json.loads(v) for k, v in raw.items()}
        return out

    def state(self) -> dict[str, Any]:
        """Everything a person debugging a run wants to see at once."""
        r = self.redis
        tags = {as_text(k): as_text(v) for k, v in r.hgetall(K.tags).items()}
        menu = r.get(K.menu)
        return {
            "switches": self.switches(),
            "token_ttl": int(r.get(K.token_ttl) or DEFAULT_TOKEN_TTL),
            "tokens_issued": {owner: r.scard(K.tokens + owner) for owner in ("oa", "wecom")},
            "unsubscribed": sorted(as_text(o) for o in r.smembers(K.unsubscribed)),
            "templates": sorted(as_text(t) for t in r.smembers(K.templates)),
            "tags": [{"id": int(i), "name": n, "count": r.scard(K.tag_members + i)} for i, n in sorted(tags.items())],
            "menu": json.loads(menu) if menu else None,
            "wecom_members": sorted(as_text(m) for m in r.smembers(K.members)),
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
        for old in map(as_text, self.redis.smembers(K.tokens + owner)):
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
    "followed": lambda ctl, v: [ctl.follow(openid, scene) for openid, scene in v.items()],
    "wecom_members": lambda ctl, v: ctl.set_wecom_members(*_strings(v)),
    "external_contacts": lambda ctl, v: [ctl.set_external_contact(eid, **f) for eid, f in v.items()],
}


@dataclass
class Call:
    """One request to a fake endpoint, as handlers and records see it."""

    endpoint: str  # e.g. "oa/message/template/send"
    method: str
    query: dict[str, str]
    body: Any
    settings: WeChatSettings
    files: dict[str, bytes] = field(default_factory=dict)  # multipart parts by field name (media/upload)

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
