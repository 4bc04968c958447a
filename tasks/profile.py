"""Fetch a follower's profile (user/info) after subscribe: unionid, subscribe scene, language."""

from __future__ import annotations

from sqlalchemy import select

from foundation.clock import utcnow
from foundation.services import services
from scrm.models import Follower
from tasks.registry import GiveUp, RetryLater, task
from tasks.wechat import oa_client
from wechat.errors import NotSent, Unknown, WeChatAPIError

KEPT = ("subscribe_scene", "qr_scene", "qr_scene_str", "language", "subscribe_time", "tagid_list", "remark")


@task("profile.fetch")
def fetch_profile(openid: str) -> None:
    try:
        info = oa_client().user_info(openid)
    except (NotSent, Unknown) as exc:  # a read: safe to repeat even after a timeout
        raise RetryLater(str(exc), delay=30) from exc
    except WeChatAPIError as exc:
        if exc.retryable:
            raise RetryLater(str(exc), delay=30) from exc
        raise GiveUp(str(exc)) from exc
    with services().db.transaction() as session:
        follower = session.scalar(select(Follower).where(Follower.openid == openid))
        if follower is None:
            return
        profile = dict(follower.profile or {})
        profile.update({k: info[k] for k in KEPT if k in info})
        if info.get("nickname"):
            profile["nickname"] = info["nickname"]
        follower.profile = profile
        follower.unionid = info.get("unionid") or follower.unionid
        follower.profile_fetched_at = utcnow()
