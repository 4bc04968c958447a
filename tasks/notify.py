"""The "rep.notify" job: tell the owner rep about a lead, in WeCom, with a summary they can act on from a phone.

WeCom drops app messages silently past 30 a minute per member, so each rep has a token bucket of their own: a
notification over the limit waits (RetryLater) instead of vanishing. A read timeout is not retried (WeCom may have
delivered it, and WeCom has no dedup key): it is given up with the reason on the outbox row.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from foundation.clock import utcnow
from foundation.services import services
from scrm import followers
from scrm.models import Activity, Follower, Interaction, Rep
from tasks.ratelimit import TokenBucket
from tasks.registry import GiveUp, RetryLater, task
from tasks.wechat import wecom_client
from wechat.errors import NotSent, Unknown, WeChatAPIError

log = logging.getLogger(__name__)

PER_MINUTE = 30  # WeCom: app messages per member per minute (more are dropped without an error)
RECENT = 3
CLIP = 60


def _clip(text: str | None) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= CLIP else text[: CLIP - 1] + "…"


def lead_summary(session: Session, follower: Follower) -> dict[str, Any]:
    """What a rep needs at a glance: stage, score, tags, source, and the last few things the lead did."""
    shown = followers.serialize(session, [follower])[0]
    recent = session.scalars(
        select(Interaction)
        .where(Interaction.follower_id == follower.id)
        .order_by(Interaction.at.desc(), Interaction.id.desc())
        .limit(RECENT)
    )
    shown["recent"] = [
        {"kind": i.kind, "at": followers.iso(i.at), "what": _clip(i.content or i.event_key)} for i in recent
    ]
    return shown


def markdown(summary: dict[str, Any], reason: str, rule: str | None) -> str:
    """WeCom markdown (its subset: headings, bold, quotes, font colours)."""
    lines = [f"**Lead to follow up**: {_clip(reason) or 'hot lead'}"]
    lines += [
        f"> Lead: `{summary['openid']}`",
        f'> Stage: <font color="info">{summary["stage"]}</font>  Score: {summary["score"]:g}',
        f"> Tags: {', '.join(summary['tags']) or '-'}",
        f"> Source: {summary['source'] or '-'}",
    ]
    for item in summary["recent"]:
        what = f" {item['what']}" if item["what"] else ""
        lines.append(f"> {item['at']} {item['kind']}{what}")
    if rule:
        lines.append(f'<font color="comment">rule: {rule}</font>')
    return "\n".join(lines)


def _send(userid: str, text: str) -> None:
    bucket = TokenBucket(services().redis_slow, f"welead:ratelimit:rep:{userid}", PER_MINUTE / 60, PER_MINUTE, 0)
    wait = bucket.reserve()
    if wait != 0:
        raise RetryLater(f"rep {userid} is at WeCom's {PER_MINUTE}/minute limit", delay=abs(wait) + 1)
    try:
        refused = wecom_client().send_markdown([userid], text)
    except NotSent as exc:
        raise RetryLater(str(exc), delay=30) from exc
    except Unknown as exc:
        raise GiveUp(f"WeCom did not answer, not resent: {exc}") from exc
    except WeChatAPIError as exc:
        if exc.retryable:
            raise RetryLater(str(exc), delay=30) from exc
        raise GiveUp(str(exc)) from exc
    if userid in refused:
        raise GiveUp(f"WeCom refused the recipient {userid!r} (not in the app's visible range?)")


@task("rep.notify")
def notify_rep(openid: str, rep_id: int, reason: str = "", rule: str | None = None) -> dict[str, Any]:
    """Send the owner rep a lead summary; the follower's timeline records that the rep was told."""
    db = services().db
    with db.transaction() as session:
        rep = session.get(Rep, int(rep_id))
        follower = followers.find(session, openid)
        if rep is None or follower is None:
            raise GiveUp(f"no rep {rep_id} or no follower {openid!r}")
        userid, follower_id = rep.userid, follower.id
        text = markdown(lead_summary(session, follower), reason, rule)
    _send(userid, text)
    with db.transaction() as session:
        data = {"rep": int(rep_id), "userid": userid, "reason": reason, "rule": rule}
        session.add(Activity(follower_id=follower_id, kind="rep_notified", at=utcnow(), data=data))
    return {"rep": userid}
