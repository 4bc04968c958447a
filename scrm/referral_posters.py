"""A follower's poster, as the "referral.poster" job sees it in the database: what can be reused (a QR ticket still
valid, a media id WeChat still keeps), what must be made, and the record of each send.

Temporary media live 3 days on WeChat; a cached media id is reused while it has more than an hour left, so asking
twice sends the same image without a new qrcode/create or upload. The QR code lives until the campaign ends (at
most 30 days): a poster regenerated after its media expired keeps the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from foundation.sql import insert_ignore
from scrm import followers, referrals
from scrm.models import Activity
from scrm.referral_models import ReferralPoster

MEDIA_LIFE = timedelta(days=3)
MARGIN = timedelta(hours=1)  # a cached media id with less left than this is uploaded again
QR_MIN_SECONDS = 60
REFUSALS = {
    "unknown_campaign": "这个活动不存在或已下线, 感谢关注!",
    "scheduled": "活动还没开始, 开始后再来领取你的专属海报吧!",
    "ended": "活动已经结束啦, 感谢参与! 下次活动再见。",
}


@dataclass
class Plan:
    """Everything the job needs for one poster; `media_id`/`url` set when they can be reused."""

    campaign_id: int
    follower_id: int
    openid: str
    scene: str
    title: str
    artwork: Path | None
    message: str | None
    qr_seconds: int
    url: str | None = None
    media_id: str | None = None


def prepare(session: Session, name: str, openid: str, now: datetime) -> Plan | str:
    """The plan, or why there is no poster: unknown_follower, unknown_campaign, scheduled, ended."""
    follower = followers.find(session, openid)
    if follower is None:
        return "unknown_follower"
    campaign = referrals.find(session, name)
    if campaign is None:
        return "unknown_campaign"
    state = referrals.state(campaign, now)
    seconds = referrals.qr_seconds(campaign, now)
    if state != "running" or seconds < QR_MIN_SECONDS:
        return "scheduled" if state == "scheduled" else "ended"
    plan = Plan(campaign.id, follower.id, openid, referrals.scene(campaign.name, follower.id), campaign.title,
                referrals.artwork_path(campaign), campaign.message, seconds)  # fmt: skip
    cached = session.get(ReferralPoster, (campaign.id, follower.id))
    if cached is not None and cached.url and cached.qr_expires_at and cached.qr_expires_at > now + MARGIN:
        plan.url = cached.url
        if cached.media_id and cached.media_expires_at and cached.media_expires_at > now + MARGIN:
            plan.media_id = cached.media_id
    return plan


def _row(session: Session, plan: Plan, now: datetime) -> None:
    key = {"campaign_id": plan.campaign_id, "follower_id": plan.follower_id}
    session.execute(insert_ignore(session, ReferralPoster, ["campaign_id", "follower_id"]),
                    {**key, "sent": 0, "updated_at": now})  # fmt: skip


def _set(session: Session, plan: Plan, **values: Any) -> None:
    session.execute(
        update(ReferralPoster)
        .where(ReferralPoster.campaign_id == plan.campaign_id, ReferralPoster.follower_id == plan.follower_id)
        .values(**values)
    )


def remember_code(session: Session, plan: Plan, ticket: str, url: str, seconds: int, now: datetime) -> None:
    """A new code: any cached image showed the old one, so it is forgotten too."""
    _row(session, plan, now)
    expires = now + timedelta(seconds=seconds)
    _set(session, plan, ticket=ticket, url=url, qr_expires_at=expires, media_id=None, updated_at=now)
    plan.url, plan.media_id = url, None


def remember_media(session: Session, plan: Plan, media_id: str, now: datetime) -> None:
    _row(session, plan, now)
    _set(session, plan, media_id=media_id, media_expires_at=now + MEDIA_LIFE, updated_at=now)
    plan.media_id = media_id


def forget_media(session: Session, plan: Plan, now: datetime) -> None:
    """WeChat no longer knows the cached media id (40007): the next attempt uploads again."""
    _set(session, plan, media_id=None, media_expires_at=None, updated_at=now)
    plan.media_id = None


def record(session: Session, plan: Plan | None, follower_id: int | None, campaign: str, status: str, now: datetime,
           error: str | None = None, cached: bool = False) -> None:  # fmt: skip
    """The outcome on the poster's row (sent count, last status) and on the follower's timeline."""
    if plan is not None:
        _row(session, plan, now)
        sent = ReferralPoster.sent + (1 if status == "sent" else 0)
        _set(session, plan, sent=sent, last_status=status, last_error=error, updated_at=now)
    if follower_id is not None:
        data = {"campaign": campaign, "status": status, "cached": cached, "error": error}
        session.add(Activity(follower_id=follower_id, kind="referral_poster", at=now, data=data))


def follower_id(session: Session, openid: str) -> int | None:
    found = followers.find(session, openid)
    return found.id if found is not None else None


def poster(session: Session, campaign_id: int, follower: int) -> ReferralPoster | None:
    return session.scalar(
        select(ReferralPoster).where(ReferralPoster.campaign_id == campaign_id, ReferralPoster.follower_id == follower)
    )
