"""The sandbox's `externalcontact/update_contact_way` (team live codes re-list their eligible reps) and a way for
tests to read what a contact way lists now.

WeCom's rules, as the fake keeps them: the config_id must be one add_contact_way returned (else 40058); a single
user way (type 1) lists exactly one user; at most 100 users; every user must be a member of the corp when the
sandbox's member list is set (else 60111, nothing changed); the state, when given, at most 30 characters. The way's
JSON under `sandbox:wecom:contact_ways` is replaced, with `updates` counting the changes.
"""

from __future__ import annotations

import json
from typing import Any

from wechat.sandbox_apis import Handler
from wechat.sandbox_state import ApiError, Call, K, SandboxControl, as_text

ERR_INVALID = 40058
ERR_USERID_NOT_FOUND = 60111
USERS_MAX = 100


def contact_way(ctl: SandboxControl, config_id: str) -> dict[str, Any] | None:
    """The contact way as the sandbox holds it now ({type, scene, user, state, qr_code, updates}), or None."""
    raw = ctl.redis.hget(K.contact_ways, config_id)
    return json.loads(raw) if raw else None


def _users(ctl: SandboxControl, call: Call, way_type: int) -> list[str]:
    users = call.body.get("user")
    if not isinstance(users, list) or not all(isinstance(u, str) and u for u in users) or len(users) > USERS_MAX:
        raise ApiError(ERR_INVALID, "invalid Request Parameter: user")
    if way_type == 1 and len(users) != 1:
        raise ApiError(ERR_INVALID, "invalid Request Parameter: user (a single-user way lists one user)")
    members = {as_text(m) for m in ctl.redis.smembers(K.members)}
    unknown = [u for u in users if members and u not in members]
    if unknown:
        raise ApiError(ERR_USERID_NOT_FOUND, f"userid not found: {unknown[0]}")
    return users


def update_contact_way(ctl: SandboxControl, call: Call) -> dict:
    config_id = call.body.get("config_id")
    way = contact_way(ctl, config_id) if isinstance(config_id, str) and config_id else None
    if way is None:
        raise ApiError(ERR_INVALID, "invalid Request Parameter: config_id")
    if "user" in call.body:
        way["user"] = _users(ctl, call, int(way.get("type") or 1))
    if "state" in call.body:
        state = call.body["state"]
        if not isinstance(state, str) or len(state) > 30:
            raise ApiError(ERR_INVALID, "invalid Request Parameter: state")
        way["state"] = state
    way["updates"] = int(way.get("updates") or 0) + 1
    ctl.redis.hset(K.contact_ways, config_id, json.dumps(way))
    return {"errcode": 0, "errmsg": "ok"}


CONTACT_APIS: dict[str, tuple[str, Handler]] = {
    "externalcontact/update_contact_way": ("POST", update_contact_way),
}
