"""The JS-SDK's share configuration: the jsapi_ticket (cached in Redis like the access token) and the signature of a
page URL (sha1 of `jsapi_ticket=...&noncestr=...&timestamp=...&url=...`, the URL without its #fragment).

The ticket is fetched only by a task (tasks.links); a page reads what is cached and leaves the share menu
unconfigured when nothing is (the page works without it).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

import redis

from wechat.transport import TokenCache

TICKET_KEY = "welead:wechat:jsapi_ticket"


def signature(ticket: str, noncestr: str, timestamp: int | str, url: str) -> str:
    text = f"jsapi_ticket={ticket}&noncestr={noncestr}&timestamp={timestamp}&url={url.split('#', 1)[0]}"
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def ticket_key(app_id: str) -> str:
    return f"{TICKET_KEY}:{app_id}"


def ticket_cache(client: Any, conn: redis.Redis, app_id: str) -> TokenCache:
    """A TokenCache over `ticket/getticket?type=jsapi` through the OA client `client` (wechat.api.OAClient): one
    process refreshes under the lock, the others wait and reread, refreshed before WeChat's 7200 s expire."""

    def fetch() -> dict[str, Any]:
        answer = client.raw.get("ticket/getticket", params={"type": "jsapi"})
        return {"access_token": answer["ticket"], "expires_in": answer.get("expires_in", 7200)}

    return TokenCache(conn, ticket_key(app_id), fetch, wait=2 * float(client.raw.timeout) + 2)


def cached_ticket(conn: redis.Redis, app_id: str) -> str | None:
    """The ticket as cached (no fetch: pages never call WeChat)."""
    value = conn.get(ticket_key(app_id))
    return value.decode() if isinstance(value, bytes) else value


def config(ticket: str, app_id: str, url: str) -> dict[str, Any]:
    """`wx.config({...})` for `url`: appId, timestamp, nonceStr, signature."""
    nonce, now = secrets.token_hex(8), int(time.time())
    return {"appId": app_id, "timestamp": now, "nonceStr": nonce, "signature": signature(ticket, nonce, now, url)}
