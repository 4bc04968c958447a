"""The JS-SDK jsapi_ticket, kept fresh in Redis for the landing pages (they only read it: no outbound call in a
page request). Runs every minute; the ticket is refetched only when the cache is missing or near WeChat's expiry."""

from __future__ import annotations

import logging

from foundation.services import services
from tasks.wechat import oa_client
from wechat import jssdk
from wechat.errors import WeChatError

log = logging.getLogger(__name__)


def refresh_ticket() -> dict[str, bool]:
    """Make sure a ticket is cached (the RQ cron's job; also `flask links ticket`)."""
    svc = services()
    cache = jssdk.ticket_cache(oa_client(), svc.redis_slow, svc.settings.wechat_app_id)
    try:
        cache.get()
    except WeChatError as exc:
        log.warning("jsapi_ticket not refreshed: %s", exc)
        return {"cached": False}
    return {"cached": True}
