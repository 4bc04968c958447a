"""What a marketer reads about a poster campaign: inviters ranked by live count, invite totals by outcome, rewards
given (with the note when a count later fell below its tier), and every invite as CSV. Set-based reads only."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from foundation.clock import iso
from scrm import referrals
from scrm.models import Follower
from scrm.referral_models import Campaign, ReferralCount, ReferralInvite, ReferralReward

CSV_COLUMNS = ("at", "inviter", "invitee", "status", "reason", "retracted_at")
_I = ReferralInvite


def summary(session: Session, campaign: Campaign, limit: int = 100) -> dict[str, Any]:
    """The campaign, its totals, the top `limit` inviters and the rewards given."""
    return {**referrals.describe(campaign), "totals": totals(session, campaign),
            "inviters": ranking(session, campaign, limit), "rewards": rewards(session, campaign)}  # fmt: skip


def totals(session: Session, campaign: Campaign) -> dict[str, Any]:
    rows = session.execute(
        select(_I.status, _I.reason, func.count()).where(_I.campaign_id == campaign.id).group_by(_I.status, _I.reason)
    ).all()
    out: dict[str, Any] = {"counted": 0, "retracted": 0, "refused": 0, "refused_by_reason": {}}
    for status, reason, n in rows:
        out[status] = out.get(status, 0) + n
        if reason:
            out["refused_by_reason"][reason] = n
    out["invites"] = out["counted"]  # live: counted and not retracted
    out["inviters"] = session.scalar(
        select(func.count())
        .select_from(ReferralCount)
        .where(ReferralCount.campaign_id == campaign.id, ReferralCount.invites > 0)
    )
    out["rewards"] = session.scalar(select(func.count()).where(ReferralReward.campaign_id == campaign.id))
    return out


def ranking(session: Session, campaign: Campaign, limit: int = 100) -> list[dict[str, Any]]:
    """Inviters by live count, the first to get there first; each with the tiers they were rewarded for."""
    rows = session.execute(
        select(Follower.id, Follower.openid, ReferralCount.invites, ReferralCount.updated_at)
        .join(Follower, Follower.id == ReferralCount.inviter_id)
        .where(ReferralCount.campaign_id == campaign.id)
        .order_by(ReferralCount.invites.desc(), ReferralCount.updated_at, Follower.id)
        .limit(limit)
    ).all()
    tiers = _tiers_by_inviter(session, campaign, [r.id for r in rows])
    return [{"rank": i + 1, "openid": r.openid, "invites": r.invites, "rewards": tiers.get(r.id, []),
             "last_change": iso(r.updated_at)} for i, r in enumerate(rows)]  # fmt: skip


def _tiers_by_inviter(session: Session, campaign: Campaign, ids: list[int]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    query = select(ReferralReward.inviter_id, ReferralReward.tier).where(
        ReferralReward.campaign_id == campaign.id, ReferralReward.inviter_id.in_(ids)
    )
    for fid, tier in session.execute(query.order_by(ReferralReward.tier)):
        out.setdefault(fid, []).append(tier)
    return out


def rewards(session: Session, campaign: Campaign) -> list[dict[str, Any]]:
    rows = session.execute(
        select(ReferralReward, Follower.openid)
        .join(Follower, Follower.id == ReferralReward.inviter_id)
        .where(ReferralReward.campaign_id == campaign.id)
        .order_by(ReferralReward.at, ReferralReward.id)
    ).all()
    return [{"openid": openid, "tier": r.tier, "at": iso(r.at), "applied": r.applied_at is not None,
             "applied_at": iso(r.applied_at), "note": r.note} for r, openid in rows]  # fmt: skip


def invites_csv(session: Session, campaign: Campaign) -> Iterator[str]:
    """Every invite of the campaign, oldest first, as CSV lines (header first), streamed."""
    inviter, invitee = aliased(Follower), aliased(Follower)
    query = (
        select(_I.at, inviter.openid, invitee.openid, _I.status, _I.reason, _I.retracted_at)
        .outerjoin(inviter, inviter.id == _I.inviter_id)
        .join(invitee, invitee.id == _I.invitee_id)
        .where(_I.campaign_id == campaign.id)
        .order_by(_I.id)
    )
    yield _line(CSV_COLUMNS)
    for at, by, who, status, reason, retracted in session.execute(query.execution_options(yield_per=1000)):
        yield _line((iso(at), by or "", who, status, reason or "", iso(retracted) or ""))


def _line(values: tuple[Any, ...]) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(["'" + v if isinstance(v, str) and v[:1] and v[0] in "=+-@" else v for v in values])
    return out.getvalue()
