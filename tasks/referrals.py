"""The referral jobs: "referral.poster" (a follower asked for their poster) and "referral.reward" (an inviter reached
a tier). Both are written by the applier (scrm.playbook.engine `send_poster`, scrm.referral_effects) into the outbox.

The poster job makes what is missing, reusing what is cached (scrm.referral_posters): a temporary QR code with
scene `ref:<campaign>:<follower id>` (qrcode/create, expiring with the campaign, at most 30 days), the poster
composed with Pillow (scrm.poster_image), uploaded as temporary media (media/upload), then sent as a
customer-service image (message/custom/send) — the follower has just written or clicked, so the window is open.
- qrcode/create and media/upload are safe to repeat: a failure or timeout there retries the job;
- a timeout of the send itself leaves the outcome `unknown` (never resent blindly), 45015 is `skipped`
  (outside the window), 40007 (WeChat lost the media) uploads once more, other codes are `error`.
A campaign that is not running (or unknown) gets a friendly customer-service text instead of a poster.
"""

from __future__ import annotations

import logging
from typing import Any

from foundation.clock import utcnow
from foundation.services import services
from scrm import poster_image, referral_posters, referral_rewards
from scrm.referral_posters import Plan
from tasks.queue import push
from tasks.registry import GiveUp, RetryLater, task
from tasks.wechat import oa_client
from wechat.errors import NotSent, Unknown, WeChatAPIError

log = logging.getLogger(__name__)
OUTSIDE_WINDOW, BAD_MEDIA = 45015, 40007


@task("referral.poster")
def send_poster(campaign: str, openid: str) -> dict[str, Any]:
    """Send `openid` their poster of `campaign` (or say why there is none); returns the outcome."""
    db = services().db
    with db.sessions() as session:
        plan = referral_posters.prepare(session, campaign, openid, utcnow())
        fid = referral_posters.follower_id(session, openid)
    if isinstance(plan, str):
        return _refused(campaign, openid, fid, plan)
    cached = plan.media_id is not None
    try:
        _make(plan)
        status, error = _send(plan)
    except (NotSent, Unknown) as exc:
        raise RetryLater(f"poster for {openid}: {type(exc).__name__}: {exc}", delay=5) from exc
    except WeChatAPIError as exc:
        if exc.retryable or exc.token_problem:
            raise RetryLater(f"poster for {openid}: {exc}", delay=10) from exc
        status, error = "error", f"{exc.errcode}: {exc.errmsg}"
    with db.transaction() as session:
        referral_posters.record(session, plan, plan.follower_id, campaign, status, utcnow(), error, cached)
    if status != "sent":
        log.warning("poster of %s for %s: %s (%s)", campaign, openid, status, error)
    return {"status": status, "cached": cached, "media_id": plan.media_id}


def _make(plan: Plan) -> None:
    """The code and the uploaded image, each only when no valid one is cached."""
    client, db = oa_client(), services().db
    if plan.url is None:
        made = client.create_qrcode(plan.scene, permanent=False, expire_seconds=plan.qr_seconds)
        with db.transaction() as session:
            seconds = made["expire_seconds"] or plan.qr_seconds
            referral_posters.remember_code(session, plan, made["ticket"], made["url"], seconds, utcnow())
    if plan.media_id is None:
        assert plan.url is not None
        png = poster_image.compose(plan.url, plan.title, plan.artwork)
        media_id = client.upload_image(png, f"poster-{plan.follower_id}.png")
        with db.transaction() as session:
            referral_posters.remember_media(session, plan, media_id, utcnow())


def _send(plan: Plan, again: bool = True) -> tuple[str, str | None]:
    """(status, error) of the customer-service image (and the campaign's text after it)."""
    client = oa_client()
    try:
        client.send_custom_image(plan.openid, plan.media_id or "")
    except Unknown as exc:
        return "unknown", f"{type(exc).__name__}: {exc}"
    except WeChatAPIError as exc:
        if exc.errcode == OUTSIDE_WINDOW:
            return "skipped", f"{exc.errcode}: outside the customer-service window"
        if exc.errcode != BAD_MEDIA or not again:
            raise
        with services().db.transaction() as session:
            referral_posters.forget_media(session, plan, utcnow())
        _make(plan)
        return _send(plan, again=False)
    if plan.message:
        try:
            client.send_custom_text(plan.openid, plan.message)
        except (WeChatAPIError, NotSent, Unknown) as exc:  # the poster went out: the text is a nicety
            log.info("poster text for %s not sent: %s", plan.openid, exc)
    return "sent", None


def _refused(campaign: str, openid: str, follower_id: int | None, why: str) -> dict[str, Any]:
    """No poster: a friendly line when there is something to say, and the record."""
    text = referral_posters.REFUSALS.get(why)
    status = why
    if text is not None:
        try:
            oa_client().send_custom_text(openid, text)
        except (WeChatAPIError, NotSent, Unknown) as exc:
            log.info("poster refusal for %s not sent: %s", openid, exc)
    with services().db.transaction() as session:
        referral_posters.record(session, None, follower_id, campaign, status, utcnow())
    if why == "unknown_follower":
        raise GiveUp(f"no follower {openid!r}")
    log.info("no poster of %r for %s: %s", campaign, openid, why)
    return {"status": status}


@task("referral.reward")
def give_reward(reward_id: int) -> dict[str, Any]:
    """Apply one tier's reward (tag, points, template message) once."""
    svc = services()
    with svc.db.transaction() as session:
        outbox_ids = referral_rewards.apply(session, reward_id, utcnow())
    if outbox_ids:
        push(svc.redis_slow, outbox_ids)
    return {"reward": reward_id, "given": outbox_ids is not None}
