"""What referral posters do in the applier: a subscribe through a poster credits its inviter (once, new followers
only), an unfollow within the campaign's window takes the credit back, a tier reached queues its reward.

- Subscribe with scene `ref:<campaign>:<inviter id>` (scrm.effects calls `subscribed` before the follower is marked
  subscribed, so it still sees whether they ever followed). Counted only when the campaign is running, the inviter
  is a known follower other than the invitee, the invitee is not the inviter's own inviter (or further up the
  chain: a loop), and the invitee is genuinely new: never subscribed, never unsubscribed, never active before (a
  re-follow after an unfollow is not new). Anything else is recorded `refused` with its reason.
- Unsubscribe of a counted invitee within `unfollow_hours` of the invite: `retracted`, the inviter's count goes
  down; a reward already given stays and is noted (`referral_rewards.note`).
- SCAN of a poster by someone already following: recorded `refused` (already_following), nothing counted.
- A count reaching a tier inserts the (campaign, inviter, tier) reward row once and queues "referral.reward".

The inviter's count is one row updated with `invites = invites + 1 ... RETURNING`, so two appliers crediting the same
inviter (PostgreSQL, different partitions) queue on that row instead of both seeing the same count.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from foundation.sql import insert_ignore
from scrm import referrals
from scrm.ingest import Visit
from scrm.models import Activity, Follower
from scrm.referral_models import COUNTED, REFUSED, RETRACTED, Campaign, ReferralCount, ReferralInvite, ReferralReward

log = logging.getLogger(__name__)
REWARD_TASK = "referral.reward"
CHAIN = 20  # how far up the inviter's own invites a loop is looked for
_C = ReferralCount.__table__.c


def subscribed(visit: Visit) -> None:
    """A subscribe: credit the poster's inviter, or record why not."""
    found = referrals.parse_scene(visit.event.scene)
    follower = visit.follower
    if found is None or follower is None:
        return
    with visit.session.no_autoflush:
        _credit(visit, follower, *found, new=_genuinely_new(visit, follower))


def scanned(visit: Visit) -> None:
    """A SCAN of a poster by someone already following: recorded, never counted."""
    found = referrals.parse_scene(visit.event.scene)
    if found is not None and visit.follower is not None:
        with visit.session.no_autoflush:
            _credit(visit, visit.follower, *found, new=False, reason="already_following")


def _genuinely_new(visit: Visit, follower: Follower) -> bool:
    """Never seen following before this subscribe: not a re-follow, not a merged identity, no earlier activity."""
    own = follower.openid == visit.event.openid
    return own and follower.subscribed_at is None and follower.unsubscribed_at is None and visit.idle is None


def _credit(visit: Visit, follower: Follower, name: str, inviter_id: int | None, *, new: bool,
            reason: str | None = None) -> None:  # fmt: skip
    session, at = visit.session, visit.event.at
    campaign = referrals.find(session, name)
    if campaign is None:
        log.warning("scene %r: no referral campaign %r; the follow is kept, nothing credited", visit.event.scene, name)
        visit.note("referral_refused", {"campaign": name, "reason": "unknown_campaign", "scene": visit.event.scene})
        return
    if inviter_id is not None and session.get(Follower, inviter_id) is None:
        inviter_id = None
    why = reason or _refusal(session, campaign, inviter_id, follower, new, at)
    status = REFUSED if why else COUNTED
    row = {"campaign_id": campaign.id, "inviter_id": inviter_id, "invitee_id": follower.id, "at": at,
           "interaction_id": visit.interaction_id, "status": status, "reason": why}  # fmt: skip
    if session.execute(insert_ignore(session, ReferralInvite, ["interaction_id"], "id"), row).scalar() is None:
        return  # this interaction was credited already
    data = {"campaign": campaign.name, "inviter": inviter_id}
    if why or inviter_id is None:  # no reason means a known inviter
        visit.note("referral_refused", {**data, "reason": why})
        return
    visit.note("referral_invited", data)
    count = _bump(session, campaign.id, inviter_id, 1, at)
    credited = {"campaign": campaign.name, "invitee": follower.openid, "invites": count}
    _inviter_note(visit, inviter_id, "referral_credited", credited)
    _reward(visit, campaign, inviter_id, count)


def _refusal(session: Session, campaign: Campaign, inviter_id: int | None, follower: Follower, new: bool,
             at: Any) -> str | None:  # fmt: skip
    if inviter_id is None:
        return "unknown_inviter"
    if at < campaign.starts_at:
        return "not_started"
    if at >= campaign.ends_at:
        return "ended"
    if inviter_id == follower.id:
        return "self"
    if _in_chain(session, inviter_id, follower.id):
        return "loop"
    return None if new else "not_new"


def _in_chain(session: Session, inviter_id: int, invitee_id: int) -> bool:
    """Was `invitee_id` the one who brought `inviter_id` in (or brought in whoever did, and so on)?"""
    seen, current = set(), inviter_id
    for _ in range(CHAIN):
        up = session.scalar(
            select(ReferralInvite.inviter_id)
            .where(ReferralInvite.invitee_id == current, ReferralInvite.status != REFUSED)
            .limit(1)
        )
        if up is None or up in seen:
            return False
        if up == invitee_id:
            return True
        seen.add(up)
        current = up
    return False


def _bump(session: Session, campaign_id: int, inviter_id: int, delta: int, at: Any) -> int:
    """The inviter's live count after adding `delta` (one locked row: increments never get lost)."""
    key = {"campaign_id": campaign_id, "inviter_id": inviter_id}
    session.execute(insert_ignore(session, ReferralCount, ["campaign_id", "inviter_id"]),
                    {**key, "invites": 0, "updated_at": at})  # fmt: skip
    stmt = (
        update(ReferralCount.__table__)
        .where(_C.campaign_id == campaign_id, _C.inviter_id == inviter_id)
        .values(invites=_C.invites + delta, updated_at=at)
        .returning(_C.invites)
    )
    return int(session.connection().execute(stmt).scalar_one())


def _reward(visit: Visit, campaign: Campaign, inviter_id: int, count: int) -> None:
    """Each tier the count has reached gets its reward row once; a new row queues the reward job."""
    session = visit.session
    for tier in campaign.tiers:
        if tier["invites"] > count:
            break
        row = {"campaign_id": campaign.id, "inviter_id": inviter_id, "tier": tier["invites"], "at": visit.event.at}
        stmt = insert_ignore(session, ReferralReward, ["campaign_id", "inviter_id", "tier"], "id")
        reward_id = session.execute(stmt, row).scalar()
        if reward_id is not None:
            visit.enqueue(REWARD_TASK, {"reward_id": reward_id}, key=f"{REWARD_TASK}:{reward_id}")


def _inviter_note(visit: Visit, inviter_id: int, kind: str, data: dict[str, Any]) -> None:
    """A timeline entry on the inviter, caused by the invitee's interaction."""
    with visit.session.no_autoflush:
        visit.session.add(Activity(follower_id=inviter_id, kind=kind, at=visit.event.at,
                                   interaction_id=visit.interaction_id, data=data))  # fmt: skip


def unsubscribed(visit: Visit) -> None:
    """An invitee unfollowing within the campaign's window is taken back off the inviter's count. Only followers
    whose first scene was a poster can be invitees, so nobody else costs a statement."""
    follower = visit.follower
    if follower is None or referrals.parse_scene(follower.source) is None:
        return
    with visit.session.no_autoflush:
        _retract(visit, follower)


def _retract(visit: Visit, follower: Follower) -> None:
    session, at = visit.session, visit.event.at
    found = session.execute(
        select(ReferralInvite, Campaign)
        .join(Campaign, Campaign.id == ReferralInvite.campaign_id)
        .where(ReferralInvite.invitee_id == follower.id, ReferralInvite.status == COUNTED)
    ).first()
    if found is None:
        return
    invite, campaign = found
    if at - invite.at > timedelta(hours=campaign.unfollow_hours):
        visit.note("referral_kept", {"campaign": campaign.name, "inviter": invite.inviter_id,
                                     "why": f"unfollowed after the {campaign.unfollow_hours} h window"})  # fmt: skip
        return
    invite.status, invite.retracted_at = RETRACTED, at
    assert invite.inviter_id is not None
    count = _bump(session, campaign.id, invite.inviter_id, -1, at)
    kept = _note_kept(session, campaign, invite.inviter_id, count, follower.openid, at)
    data = {"campaign": campaign.name, "invitee": follower.openid, "invites": count, "rewards_kept": kept}
    _inviter_note(visit, invite.inviter_id, "referral_retracted", data)
    visit.note("referral_retracted", {"campaign": campaign.name, "inviter": invite.inviter_id})


def _note_kept(session: Session, campaign: Campaign, inviter_id: int, count: int, openid: str, at: Any) -> list[int]:
    """Rewards of tiers now above the count stay given; each says why its tier is no longer met."""
    rows = session.scalars(
        select(ReferralReward).where(
            ReferralReward.campaign_id == campaign.id,
            ReferralReward.inviter_id == inviter_id,
            ReferralReward.tier > count,
        )
    ).all()
    for row in rows:
        line = f"{at:%Y-%m-%d %H:%M} {openid} unfollowed within the window: count {count} < tier {row.tier}; kept"
        row.note = f"{row.note}\n{line}" if row.note else line
    return [r.tier for r in rows]
