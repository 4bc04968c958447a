"""Referral poster campaigns (分享有礼 / 任务宝): the campaign, who invited whom, each inviter's running count, the
rewards given per tier, and each follower's cached poster.

A counted invite is a genuinely new follower who subscribed through an inviter's poster (scene
`ref:<campaign>:<inviter follower id>`); refused ones are kept with their reason so the marketer sees why a scan did
not count. `ReferralCount.invites` is the inviter's live count (counted minus retracted), updated with one
conditional UPDATE so two appliers crediting one inviter cannot lose an increment.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from foundation.clock import utcnow
from foundation.db import Base, BigId, Json

COUNTED, RETRACTED, REFUSED = "counted", "retracted", "refused"


class Campaign(Base):
    """A poster campaign: artwork, dates, reward tiers, the unfollow window, the text sent with the poster."""

    __tablename__ = "campaigns"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)
    title: Mapped[str] = mapped_column(String(128), default="")
    artwork: Mapped[str | None] = mapped_column(String(255))  # a path under instance/ (None: the built-in artwork)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    tiers: Mapped[list[dict[str, Any]]] = mapped_column(Json, default=list)
    unfollow_hours: Mapped[int] = mapped_column(Integer, default=24)
    message: Mapped[str | None] = mapped_column(Text)  # a customer-service text sent after the poster
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReferralInvite(Base):
    """One subscribe (or scan) through someone's poster: counted, retracted (unfollowed within the window) or
    refused (`reason`: not_new, self, loop, ended, not_started, unknown_inviter, already_following)."""

    __tablename__ = "referral_invites"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    inviter_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("followers.id"))
    invitee_id: Mapped[int] = mapped_column(BigId, ForeignKey("followers.id"), index=True)
    interaction_id: Mapped[int] = mapped_column(BigId, ForeignKey("interactions.id"), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(32))
    at: Mapped[datetime]
    retracted_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_referral_invites_campaign_inviter", "campaign_id", "inviter_id"),)


class ReferralCount(Base):
    """An inviter's live count in a campaign (counted invites not retracted)."""

    __tablename__ = "referral_counts"
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), primary_key=True)
    inviter_id: Mapped[int] = mapped_column(BigId, ForeignKey("followers.id"), primary_key=True)
    invites: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReferralReward(Base):
    """A tier reached by an inviter: once per (campaign, inviter, tier), applied by the "referral.reward" job.
    `note` says when the count later fell below the tier (an invitee unfollowed): the reward stays."""

    __tablename__ = "referral_rewards"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    inviter_id: Mapped[int] = mapped_column(BigId, ForeignKey("followers.id"))
    tier: Mapped[int] = mapped_column(Integer)  # the tier's `invites`
    at: Mapped[datetime]
    applied_at: Mapped[datetime | None]
    note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (UniqueConstraint("campaign_id", "inviter_id", "tier", name="uq_referral_rewards_tier"),)


class ReferralPoster(Base):
    """A follower's poster in a campaign: its QR ticket (valid until `qr_expires_at`) and the uploaded image's
    temporary media id (WeChat keeps it 3 days), so asking twice sends the same image without regenerating."""

    __tablename__ = "referral_posters"
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), primary_key=True)
    follower_id: Mapped[int] = mapped_column(BigId, ForeignKey("followers.id"), primary_key=True)
    ticket: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text)
    qr_expires_at: Mapped[datetime | None]
    media_id: Mapped[str | None] = mapped_column(String(128))
    media_expires_at: Mapped[datetime | None]
    sent: Mapped[int] = mapped_column(Integer, default=0)
    last_status: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
