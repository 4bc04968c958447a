"""Fetch a follower's profile after subscribe (OA user/info) or after a WeCom contact added a rep
(externalcontact/get): unionid, subscribe scene, language; the contact's name and type. A unionid another identity
has too queues the merge of the two (tasks/merge.py: one person, one contact).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from foundation.clock import utcnow
from foundation.services import services
from scrm import outbox
from scrm.models import Follower
from tasks.registry import GiveUp, RetryLater, task
from tasks.wechat import oa_client, wecom_client
from wechat.errors import NotSent, Unknown, WeChatAPIError

KEPT = ("subscribe_scene", "qr_scene", "qr_scene_str", "language", "subscribe_time", "tagid_list", "remark")
WECOM_KEPT = ("name", "type", "gender", "corp_name", "position")
MERGE_TASK = "contact.merge"


def _read(call: Callable[[], dict]) -> dict:
    try:
        return call()
    except (NotSent, Unknown) as exc:  # a read: safe to repeat even after a timeout
        raise RetryLater(str(exc), delay=30) from exc
    except WeChatAPIError as exc:
        if exc.retryable:
            raise RetryLater(str(exc), delay=30) from exc
        raise GiveUp(str(exc)) from exc


@task("profile.fetch")
def fetch_profile(openid: str) -> None:
    info = _read(lambda: oa_client().user_info(openid))
    profile = {k: info[k] for k in KEPT if k in info}
    if info.get("nickname"):
        profile["nickname"] = info["nickname"]
    _store(openid, profile, info.get("unionid"))


@task("profile.fetch_wecom")
def fetch_wecom_profile(external_userid: str) -> None:
    """The WeCom contact's profile; unionid only comes when the corp is bound to the WeChat open platform."""
    answer = _read(lambda: wecom_client().get_external_contact(external_userid))  # 84061 (gone): given up
    contact = answer.get("external_contact") or {}
    profile: dict[str, Any] = {k: contact[k] for k in WECOM_KEPT if contact.get(k) not in (None, "")}
    profile["follow_user"] = [
        {"userid": f.get("userid"), "state": f.get("state") or None, "createtime": f.get("createtime")}
        for f in answer.get("follow_user") or []
    ]
    _store(external_userid, profile, contact.get("unionid"))


def _store(openid: str, fetched: dict[str, Any], unionid: str | None) -> None:
    """The identity's own row gets the profile (not the person it is merged into); a new unionid shared with
    another identity queues their merge in the same transaction, announced after commit."""
    svc = services()
    with svc.db.transaction() as session:
        follower = session.scalar(select(Follower).where(Follower.openid == openid))
        if follower is None:
            return
        follower.profile = {**(follower.profile or {}), **fetched}
        follower.unionid = unionid or follower.unionid
        follower.profile_fetched_at = utcnow()
        queued = _queue_merge(session, follower)
    if queued is not None:
        outbox.announce(svc.redis, [queued])


def _queue_merge(session: Session, follower: Follower) -> int | None:
    """An outbox row for contact.merge when another unmerged identity has this unionid (None: nothing to do)."""
    if not follower.unionid or follower.merged_into is not None:
        return None
    other = session.scalar(
        select(Follower.id)
        .where(Follower.unionid == follower.unionid, Follower.id != follower.id, Follower.merged_into.is_(None))
        .limit(1)
    )
    if other is None:
        return None
    key = f"{MERGE_TASK}:{follower.unionid}:{min(other, follower.id)}:{max(other, follower.id)}"
    return outbox.add(session, MERGE_TASK, {"unionid": follower.unionid}, key=key)
