"""A tier's reward, applied by the "referral.reward" job: the tier's tag, points and template message given to the
inviter through the rules engine (a `Quiet` context, like a journey step), so they are keyed, capped, audited and
trigger the playbook's own rules (`tag_added`, `score_crossed`...) exactly as a rule's actions would.

Exactly once: the reward row is taken with `applied_at IS NULL` in the job's transaction, and the engine's keys
(`referral:<campaign>:<tier>` + the reward id) make the score event and the template delivery one each even if the
job runs twice. The template goes through the messaging pipeline ("template.send": deliveries, quiet hours, caps).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from scrm.models import Follower
from scrm.playbook import store
from scrm.playbook.compiled import Compiled, CompiledRule
from scrm.playbook.engine import ACTIONS, Quiet, Run
from scrm.playbook.grammar import Action, Playbook
from scrm.referral_models import Campaign, ReferralReward

_DEFAULT = Compiled(Playbook(), "referrals-default")  # no playbook loaded: the default model and stages


def apply(session: Session, reward_id: int, now: datetime) -> list[int] | None:
    """Give the reward once; the outbox rows to push after commit, or None when it was given already (or gone)."""
    taken = session.execute(
        update(ReferralReward)
        .where(ReferralReward.id == reward_id, ReferralReward.applied_at.is_(None))
        .values(applied_at=now)
    ).rowcount
    reward = session.get(ReferralReward, reward_id) if taken == 1 else None
    if reward is None:
        return None
    campaign, follower = session.get(Campaign, reward.campaign_id), session.get(Follower, reward.inviter_id)
    assert campaign is not None and follower is not None
    tier = next((t for t in campaign.tiers if t["invites"] == reward.tier), {"invites": reward.tier})
    ctx = Quiet(session, follower)
    run = Run(store.active(session) or _DEFAULT, ctx, scope=f"reward:{reward.id}", now=now)
    run.lock()
    _give(run, campaign, tier)
    run.note("referral_reward", {"campaign": campaign.name, "tier": reward.tier, "reward": tier.get("reward"),
                                 "tag": tier.get("tag"), "points": tier.get("points")})  # fmt: skip
    run.drain()
    return ctx.outbox_ids


def _actions(campaign: Campaign, tier: dict[str, Any]) -> list[Action]:
    out = []
    if tier.get("tag"):
        out.append(Action.model_validate({"tag": tier["tag"]}))
    if tier.get("points"):
        out.append(Action.model_validate({"score": tier["points"]}))
    if tier.get("template"):
        data = {"campaign": campaign.title, "invites": str(tier["invites"]), "reward": tier.get("reward") or ""}
        escaped = {k: v.replace("{", "{{").replace("}", "}}") for k, v in data.items()}  # engine.render fills {x}
        out.append(Action.model_validate({"send_template": {"template": tier["template"], "data": escaped}}))
    return out


def _give(run: Run, campaign: Campaign, tier: dict[str, Any]) -> None:
    actions = _actions(campaign, tier)
    templates = sum(1 for a in actions if a.verb == "send_template")
    name = f"referral:{campaign.name}:{tier['invites']}"
    rule = CompiledRule(name, -1, "referral", lambda facts: None, None, None, templates, False)  # type: ignore[arg-type]
    values = {"openid": run.follower.openid}
    with run.session.no_autoflush:
        for i, action in enumerate(actions):
            ACTIONS[action.verb](run, rule, i, action, values)
