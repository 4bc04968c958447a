"""The "rep.notify" job: tell a rep about a lead in WeCom, with a summary and a link they can act on from a phone.

WeCom drops app messages past 30 a minute per member without an error, so nothing here sends a notification on its
own: the job records it (scrm.notifications, one row per lead, reason, crossing and recipient), then flushes the rep.
A flush asks the rep's pacer (tasks.notify_pace) for a send slot and, when granted, sends everything that waits for
that rep: one pending row as a card, several as a digest (as many as fit in WeCom's 2,048 bytes). When no slot is
free the rows wait and a "rep.notify.flush" outbox row, due when the next slot opens, takes them later (one per rep
at a time, so a flood of waiting jobs schedules one flush).

WeCom's answers: 60111 (invalid userid), 81013 or the rep in `invaliduser` fail the rows, with the code, for good;
busy, rate limits and requests that never left put them back to pending for a later flush; a read timeout marks
them unknown and they are never resent (WeCom has no dedup key for app messages).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import secrets
from datetime import timedelta
from typing import Any

import redis
from sqlalchemy import select

from foundation.clock import utcnow
from foundation.services import services
from scrm import lead_links, notice_text, notifications, outbox
from scrm.models import Activity, Follower, Rep
from scrm.notification_models import FAILED, PENDING, SENT, UNKNOWN, RepNotification
from tasks.notify_pace import NotifyRules, Pacer
from tasks.registry import GiveUp, task
from tasks.wechat import wecom_client
from wechat.errors import NotSent, Unknown, WeChatAPIError

log = logging.getLogger(__name__)

FLUSH = "rep.notify.flush"
MARKER = "welead:notify:flush:"  # + rep id: a flush is scheduled
CLAIM = 30  # rows looked at per message (a digest names fewer: as many as fit)
MAX_ATTEMPTS = 6  # retryable failures before a row is failed
RECIPIENT_ERRORS = frozenset({40003, 60111, 81013})  # invalid UserID, userid not found, every recipient invalid
_RULES: dict[int, tuple[Any, NotifyRules]] = {}


def rules() -> NotifyRules:
    settings = services().settings
    hit = _RULES.get(id(settings))
    if hit is None or hit[0] is not settings:
        hit = (settings, NotifyRules.load(overrides=(settings.extra or {}).get("notify")))
        _RULES[id(settings)] = hit
    return hit[1]


def pacer() -> Pacer:
    return Pacer(services().redis_slow, rules())


@task("rep.notify")
def notify_rep(
    openid: str,
    rep_id: int,
    reason: str = "",
    rule: str | None = None,
    kind: str = "rule",
    key: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Record the notification (and the manager's copy for `removed`), then flush its recipients."""
    key = key or _derived_key(openid, rep_id, reason, rule, kind, extra)
    keys = _record(openid, int(rep_id), kind, reason, rule, key)
    for rid in {rid for rid, _ in keys}:
        flush(rid)
    with services().db.sessions() as session:
        rows = notifications.states(session, [k for _, k in keys])
    own = rows[key]
    if own.state == FAILED:
        raise GiveUp(own.error or "WeCom refused the notification")
    return {"rep": own.userid or own.rep_id, "state": own.state, "copies": len(keys)}


@task(FLUSH)
def flush_job(rep_id: int) -> int:
    """A flush the pacer scheduled: what waited for the rep goes out now (or waits for the next slot)."""
    services().redis_slow.delete(f"{MARKER}{int(rep_id)}")  # this is it: a later wait schedules the next one
    return flush(int(rep_id))


def _derived_key(openid: str, rep_id: int, reason: str, rule: str | None, kind: str, extra: dict) -> str:
    """Rows queued without a key (older playbook versions) get one from their arguments: stable across re-runs."""
    raw = json.dumps([openid, rep_id, reason, rule, kind, extra], sort_keys=True, default=str)
    return f"rep.notify:{kind}:args:{hashlib.sha256(raw.encode()).hexdigest()[:32]}"


def _record(openid: str, rep_id: int, kind: str, reason: str, rule: str | None, key: str) -> list[tuple[int, str]]:
    """(recipient, row key) pairs; a `removed` notice is copied to the rep's manager."""
    with services().db.transaction() as session:
        rep = session.get(Rep, rep_id)
        follower = session.scalar(select(Follower).where(Follower.openid == openid))
        if rep is None or follower is None:
            raise GiveUp(f"no rep {rep_id} or no follower {openid!r}")
        keys = [(rep.id, key)]
        notifications.record(session, key, rep.id, follower.id, kind, reason, rule)
        if kind == "removed" and rep.manager_id and rep.manager_id != rep.id:
            keys.append((rep.manager_id, f"{key}>manager"[:191]))
            notifications.record(session, keys[-1][1], rep.manager_id, follower.id, kind, reason, rule, rep.id)
    return keys


def flush(rep_id: int) -> int:
    """Send what waits for the rep while its pacer allows; returns the messages sent."""
    sent = 0
    while True:
        with services().db.transaction() as session:
            rep = session.get(Rep, rep_id)
            notifications.give_up_stale(session, rep_id, utcnow())
            if rep is None or not notifications.waiting(session, rep_id):
                return sent
            userid = rep.userid
        slot, wait = pacer().admit(userid)
        if slot is None:
            _schedule(rep_id, wait)
            return sent
        outcome = _send_batch(rep_id, userid, slot)
        if outcome is None:
            continue  # another worker took the rows: look again
        sent += 1
        if outcome == "retry":
            return sent


def _schedule(rep_id: int, delay: float) -> None:
    """A flush of the rep's waiting rows in `delay` seconds: one per rep at a time (a Redis marker, cleared when the
    flush runs), however many jobs found the rep's slots taken; without Redis, one per job (harmless)."""
    delay = max(delay, 0.05)
    try:
        if not services().redis_slow.set(f"{MARKER}{rep_id}", 1, nx=True, ex=math.ceil(delay) + 60):
            return
    except redis.RedisError as exc:
        log.warning("flush marker unavailable (%s): scheduling anyway", exc)
    with services().db.transaction() as session:
        outbox.add(session, FLUSH, {"rep_id": rep_id}, key=f"{FLUSH}:{rep_id}:{secrets.token_hex(8)}",
                   run_after=utcnow() + timedelta(seconds=delay))  # fmt: skip


def _send_batch(rep_id: int, userid: str, slot: str) -> str | None:
    """Claim, render, send, settle one message; None when there was nothing left to claim."""
    message = secrets.token_hex(8)
    with services().db.transaction() as session:
        rows = notifications.claim(session, rep_id, message, CLAIM, utcnow())
        text, carried = _render(session, rep_id, rows) if rows else ("", {})
        notifications.unclaim(session, [r.id for r in rows if r.id not in carried])
        tried = max((r.attempts for r in rows), default=0)
    if not rows:
        pacer().release(userid, slot)
        return None
    state, values = _deliver(userid, text)
    with services().db.transaction() as session:
        _settle(session, list(carried), state, values, userid, message, len(set(carried.values())) > 1)
        if state == FAILED and values.pop("recipient", False):  # the rep cannot receive anything: fail what waits
            notifications.fail_waiting(session, rep_id, **values)
    if state == PENDING:
        _schedule(rep_id, _backoff(tried))
        return "retry"
    return state


def _render(session: Any, rep_id: int, rows: list[RepNotification]) -> tuple[str, dict[int, int]]:
    """The message for the claimed rows: {row id: follower id} of the rows it carries."""
    svc = services()
    public, signer = svc.settings.public_url, svc.signer
    by_follower: dict[int, list[RepNotification]] = {}
    for row in rows:
        by_follower.setdefault(row.follower_id, []).append(row)
    leads = {f.id: f for f in session.scalars(select(Follower).where(Follower.id.in_(list(by_follower))))}
    items = []
    for fid, group in by_follower.items():
        link = lead_links.lead_card_url(signer, public, rep_id, fid)
        items.append((notice_text.lead(session, leads[fid], link), group))
    if len(items) == 1:
        lead, group = items[0]
        about = session.get(Rep, group[0].about_rep_id).name if group[0].about_rep_id else None
        reason = "; ".join(r.reason for r in group if r.reason)
        text = notice_text.card(lead, notice_text.title(group[0].kind, about), reason, group[0].rule)
        return text, {r.id: r.follower_id for r in group}
    reasons = [(lead, [_line_reason(r) for r in group]) for lead, group in items]
    text, fitted = notice_text.digest(reasons, lead_links.my_leads_url(signer, public, rep_id))
    return text, {r.id: r.follower_id for _, group in items[:fitted] for r in group}


def _line_reason(row: RepNotification) -> str:
    return notice_text.title(row.kind) + (f": {row.reason}" if row.reason and row.kind == "rule" else "")


def _deliver(userid: str, text: str) -> tuple[str, dict[str, Any]]:
    """(state, fields to record) from WeCom's answer to one app message."""
    try:
        refused = wecom_client().send_markdown([userid], text)
    except NotSent as exc:
        return PENDING, {"error": f"not sent: {exc}"}
    except Unknown as exc:
        return UNKNOWN, {"error": f"WeCom did not answer, not resent: {exc}"}
    except WeChatAPIError as exc:
        if exc.retryable or exc.token_problem:
            return PENDING, {"errcode": exc.errcode, "error": str(exc)}
        return FAILED, {"errcode": exc.errcode, "error": str(exc), "recipient": exc.errcode in RECIPIENT_ERRORS}
    if userid in refused:
        error = f"WeCom refused the recipient {userid!r} (invaliduser: not a member, or outside the app's range)"
        return FAILED, {"error": error, "recipient": True}
    return SENT, {"error": None, "errcode": None}


def _settle(session: Any, carried: list[int], state: str, values: dict[str, Any], userid: str, message: str,
            digest: bool) -> None:  # fmt: skip
    now = utcnow()
    if state == PENDING:  # retry later, unless the rows have been tried enough
        rows = list(session.scalars(select(RepNotification).where(RepNotification.id.in_(carried))))
        worn = [r.id for r in rows if r.attempts >= MAX_ATTEMPTS]
        notifications.settle(session, worn, FAILED, **values)
        notifications.settle(session, [i for i in carried if i not in worn], PENDING, message=None, **values)
        return
    extra = {"sent_at": now} if state == SENT else {}
    fields = {k: v for k, v in values.items() if k != "recipient"}
    notifications.settle(session, carried, state, userid=userid, digest=digest, **fields, **extra)
    if state == SENT:
        _note(session, carried, userid, digest, now)


def _note(session: Any, ids: list[int], userid: str, digest: bool, now: Any) -> None:
    """`rep_notified` on each lead's timeline: the rep was told, why, and whether in a digest."""
    for row in session.scalars(select(RepNotification).where(RepNotification.id.in_(ids))):
        data = {"rep": row.rep_id, "userid": userid, "kind": row.kind, "reason": row.reason, "rule": row.rule,
                "digest": digest, "notification": row.id}  # fmt: skip
        session.add(Activity(follower_id=row.follower_id, kind="rep_notified", at=now, data=data))


def _backoff(attempts: int) -> float:
    return min(15.0 * 2 ** max(attempts - 1, 0), 600.0)
