"""The sandbox's member checks on contact ways: WeCom refuses an add_contact_way listing a userid that is not a
member of the corp with 60111 (userid not found), and makes nothing.

The member list is the sandbox's `wecom_members` switch (SandboxControl.set_wecom_members); when it is empty every
userid exists, as before. A check, then the shared fake in wechat.sandbox_apis does the rest.
"""

from __future__ import annotations

from wechat.sandbox_apis import Handler, wecom_add_contact_way
from wechat.sandbox_state import ApiError, Call, K, SandboxControl, as_text

ERR_USERID_NOT_FOUND = 60111


def add_contact_way(ctl: SandboxControl, call: Call) -> dict:
    members = {as_text(m) for m in ctl.redis.smembers(K.members)}
    users = call.body.get("user") if isinstance(call.body.get("user"), list) else []
    unknown = [u for u in users if members and isinstance(u, str) and u not in members]
    if unknown:
        raise ApiError(ERR_USERID_NOT_FOUND, f"userid not found: {unknown[0]}")
    return wecom_add_contact_way(ctl, call)


WECOM_MEMBER_APIS: dict[str, tuple[str, Handler]] = {
    "externalcontact/add_contact_way": ("POST", add_contact_way),
}
