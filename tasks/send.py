"""Sending deliveries: the RQ job that sends a batch (`run_batch`), and the playbook's and chatbot's send tasks.

A job carries delivery ids only. It claims them a page at a time (queued → sending in one statement: one worker wins
each row), runs the guards and the renderer, takes tokens of the shared bucket in blocks (one round trip for several
sends), calls WeChat over the worker's kept-alive connection, and records the page's answers in one transaction.
The database is the truth; Redis only carries work. The job's result (its log line) says where its CPU went.

The pump that pushes these jobs and recovers lost ones is tasks.pump.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import select

from foundation.clock import utcnow
from foundation.services import services
from scrm import broadcasts, deliveries, delivery_pages, delivery_queue, guards, link_stamp
from scrm.deliveries import Outgoing, Result
from scrm.delivery_models import BLOCKED, DELIVERED, ERROR, FAILED, QUEUED, SENT, SKIPPED, UNKNOWN, Delivery
from scrm.message_templates import CUSTOM, MASS, TEMPLATE, Library, TemplateError, library
from tasks.ratelimit import Breaker, DailyQuota, Heartbeat, TokenBucket, day_key
from tasks.registry import GiveUp, task
from tasks.wechat import oa_client
from wechat.errors import NotSent, Unknown, WeChatAPIError

log = logging.getLogger(__name__)

BUCKET = "welead:ratelimit:send"
PAGE = 50  # rows claimed, sent and recorded per transaction pair: a dead worker leaves at most this many in doubt
MASS_CHUNK = 1000
OUTSIDE_WINDOW = 45015
MASS_CLIENT_DUP = 45065
_RULES: dict[int, tuple[Any, guards.SendRules]] = {}


def rules() -> guards.SendRules:
    """The send rules of this app (environment + Settings.extra["messaging"]), parsed once per settings object."""
    settings = services().settings
    hit = _RULES.get(id(settings))
    if hit is None or hit[0] is not settings:
        hit = (settings, guards.SendRules.load(overrides=(settings.extra or {}).get("messaging")))
        _RULES[id(settings)] = hit
    return hit[1]


def message_library() -> Library:
    return library(Path(rules().templates_dir))


# --- sending --------------------------------------------------------------------------------------------------------


class Phases:
    """CPU milliseconds of this thread by phase (`time.thread_time`: waiting for tokens or answers costs nothing)."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = defaultdict(float)
        self._at = time.thread_time()

    def mark(self, phase: str) -> None:
        """Charge the CPU since the previous mark to `phase`."""
        now = time.thread_time()
        self.ms[phase] += (now - self._at) * 1000
        self._at = now

    def summary(self) -> dict[str, float]:
        return {phase: round(ms, 1) for phase, ms in self.ms.items()}


class Sender:
    """One batch job's view of the shared limits, the breakers of its broadcasts and the database."""

    def __init__(self, job_id: str) -> None:
        svc = services()
        self.rules, self.db, self.conn = rules(), svc.db, svc.redis_slow
        self.lib = message_library()
        self.bucket = TokenBucket(self.conn, BUCKET, self.rules.rate, self.rules.bucket_size)
        self.quota = DailyQuota(self.conn, "template", self.rules.template_daily_quota)
        self.heart = Heartbeat(self.conn, job_id, self.rules.heartbeat)
        self.breakers: dict[int, Breaker] = {}
        self.touched: set[int] = set()
        self.phases = Phases()
        self.stamp = link_stamp.stamper(svc.settings.secret_key, svc.settings.public_url)  # attribution on URLs

    def rows_of(self, job_id: str) -> list[int]:
        with self.db.sessions() as session:
            return delivery_queue.job_rows(session, job_id)

    def channel(self, delivery_id: int) -> str | None:
        with self.db.sessions() as session:
            return session.scalar(select(Delivery.channel).where(Delivery.id == delivery_id))

    def prepare(self, ids: list[int]) -> list[Outgoing]:
        with self.db.transaction() as session:
            outs = delivery_pages.prepare(session, ids, self.rules, self.lib, utcnow(), self.phases.mark, self.stamp)
        self.phases.mark("state write")  # the commit
        return outs

    def admit(self, outs: list[Outgoing]) -> list[Outgoing]:
        """What today's template quota lets through; the rest wait for tomorrow (deferred, not dropped)."""
        templates = [o for o in outs if o.channel == TEMPLATE]
        if not templates:
            return outs
        granted = self.quota.take(day_key(guards.local_now(self.rules, utcnow())), len(templates))
        if granted == len(templates):
            return outs
        refused = {o.id for o in templates[granted:]}
        detail = "the account's template messages for today are used up"
        self.release([o.id for o in templates[granted:]], _next_local_midnight(self.rules), "daily_quota", detail)
        return [o for o in outs if o.id not in refused]

    def release(self, ids: list[int], until: datetime | None, reason: str | None, detail: str | None) -> None:
        if ids:
            with self.db.transaction() as session:
                deliveries.release(session, ids, utcnow(), until, reason, detail)

    def record(self, results: list[tuple[Outgoing, Result]]) -> None:
        """Commit a page's answers, then feed the breakers of the broadcasts involved."""
        if not results:
            return
        with self.db.transaction() as session:
            outcomes = delivery_pages.record(session, results, self.rules, utcnow())
        self.phases.mark("state write")
        by_broadcast: dict[int, list[bool]] = {}
        for bid, state in outcomes:
            if bid is not None and state in (SENT, DELIVERED, FAILED, ERROR, UNKNOWN):
                by_broadcast.setdefault(bid, []).append(state in deliveries.FAILURE_STATES)
        self.touched.update(bid for bid, _ in outcomes if bid is not None)
        for bid, failed in by_broadcast.items():
            self._observe(bid, failed)
        self.phases.mark("breaker")

    def _observe(self, broadcast_id: int, failed: list[bool]) -> None:
        """Feed the broadcast's breaker; pause the broadcast when it trips (a Redis outage only skips this)."""
        try:
            reason = (self.breakers.get(broadcast_id) or self._breaker(broadcast_id)).observe(*failed)
        except redis.RedisError as exc:
            log.warning("broadcast %s: breaker not fed: %s", broadcast_id, exc)
            return
        if reason:
            with self.db.transaction() as session:
                if broadcasts.pause(session, broadcast_id, f"circuit breaker: {reason}"):
                    log.warning("broadcast %s paused by its circuit breaker: %s", broadcast_id, reason)

    def _breaker(self, broadcast_id: int) -> Breaker:
        with self.db.sessions() as session:  # a read: no write lock for it
            b = broadcasts.get(session, broadcast_id)
            budget, window = b.error_budget, b.breaker_window
        self.breakers[broadcast_id] = Breaker(self.conn, f"broadcast:{broadcast_id}", budget, window)
        return self.breakers[broadcast_id]

    def finish(self) -> None:
        """Mark the job's broadcasts done if nothing is left (read first: the write transaction only when due)."""
        for bid in self.touched:
            with self.db.sessions() as session:
                if delivery_queue.pending(session, bid):
                    continue
            with self.db.transaction() as session:
                broadcasts.finish_if_done(session, bid)
        self.heart.stop()
        self.phases.mark("finish")


def _next_local_midnight(r: guards.SendRules) -> datetime:
    local = guards.local_now(r, utcnow())
    midnight = (local + timedelta(days=1)).replace(hour=0, minute=5, second=0, microsecond=0)
    return midnight.astimezone(UTC).replace(tzinfo=None)


def classify(exc: Exception) -> Result:
    """WeChat's answer (or the lack of one) → the delivery's next state. Token errors were retried in the client."""
    if isinstance(exc, Unknown):
        return Result(UNKNOWN, reason="timeout", detail=str(exc))
    if isinstance(exc, NotSent):
        return Result("retry", reason="not_sent", detail=str(exc))
    assert isinstance(exc, WeChatAPIError)
    code, detail = exc.errcode, f"{exc.errcode}: {exc.errmsg}"
    if exc.retryable:
        return Result("retry", code=code, reason="busy" if code == -1 else "rate_limited", detail=detail)
    if exc.blocked:
        return Result(BLOCKED, code=code, reason="not_following" if code == 43004 else "refused", detail=detail)
    if code == OUTSIDE_WINDOW:
        return Result(SKIPPED, code=code, reason="outside_window", detail=detail)
    return Result(ERROR, code=code, reason="token" if exc.token_problem else "wechat", detail=detail)


def send_one(out: Outgoing) -> Result:
    """One template or customer-service message through the OA client."""
    client = oa_client()
    try:
        if out.channel == CUSTOM:
            client.send_custom_text(out.openid, out.payload["text"])
            return Result(SENT)
        p = out.payload
        msgid = client.send_template(
            out.openid,
            p["template_id"],
            p["data"],
            url=p.get("url"),
            miniprogram=p.get("miniprogram"),
            client_msg_id=out.client_msg_id,
        )
    except (WeChatAPIError, NotSent, Unknown) as exc:
        return classify(exc)
    return Result(SENT, msgid=str(msgid))


def send_mass(outs: list[Outgoing], job_id: str) -> Result:
    """One mass text to a list of openids (WeChat needs at least two); clientmsgid makes a repeat a no-op."""
    body = {
        "touser": [o.openid for o in outs],
        "msgtype": "text",
        "text": {"content": outs[0].payload["text"]},
        "send_ignore_reprint": 0,
        "clientmsgid": job_id[:64],
    }
    try:
        answer = oa_client().raw.post("message/mass/send", data=body)
    except WeChatAPIError as exc:
        if exc.errcode == MASS_CLIENT_DUP:
            return Result(SENT, reason="duplicate", detail="WeChat had this clientmsgid already: sent before")
        return classify(exc)
    except (NotSent, Unknown) as exc:
        return classify(exc)
    return Result(SENT, msgid=str(answer.get("msg_id", "")))


def run_batch(job_id: str, ids: list[int] | None = None) -> dict[str, Any]:
    """The RQ job: send these deliveries (None: the queued rows of this job, as a fan-out names them) at the shared
    rate, a page per transaction pair; safe to run twice.

    Returns what was sent and the job's CPU milliseconds by phase (the worker logs it: one line per job)."""
    sender = Sender(job_id)
    if ids is None:
        ids = sender.rows_of(job_id)
    channel = sender.channel(ids[0]) if ids else None
    size = {CUSTOM: 1, MASS: MASS_CHUNK}.get(channel or "", PAGE)
    sent, mass = 0, []
    try:
        for start in range(0, len(ids), size):
            sender.heart.beat()
            outs = sender.prepare(ids[start : start + size])
            mass += [o for o in outs if o.channel == MASS]
            sent += _send_page(sender, [o for o in outs if o.channel != MASS])
        sent += _run_mass(sender, mass, job_id) if mass else 0
    finally:
        sender.finish()
    return {"sent": sent, "cpu_ms": sender.phases.summary()}


def _send_page(sender: Sender, outs: list[Outgoing]) -> int:
    """Send a page, taking its tokens in blocks; record what went out even if Redis fails half-way, release the
    rest (they go again later)."""
    results: list[tuple[Outgoing, Result]] = []
    phases = sender.phases
    try:
        admitted = sender.admit(outs)
        phases.mark("quota")
        while len(results) < len(admitted):
            n = sender.bucket.block(len(admitted) - len(results))
            sender.bucket.acquire(n)
            phases.mark("rate limiter")
            for out in admitted[len(results) : len(results) + n]:
                results.append((out, send_one(out)))
            sender.heart.beat()
            phases.mark("http")
    finally:
        sender.record(results)
        done = {o.id for o, _ in results}
        sender.release([o.id for o in outs if o.id not in done], None, None, None)  # only rows still sending
    return len(results)


def _run_mass(sender: Sender, outs: list[Outgoing], job_id: str) -> int:
    if len(outs) < 2:
        sender.record(
            [(o, Result(SKIPPED, reason="mass_minimum", detail="a mass send needs two followers")) for o in outs]
        )
        return 0
    result = send_mass(outs, job_id)
    for start in range(0, len(outs), MASS_CHUNK):
        sender.record([(o, result) for o in outs[start : start + MASS_CHUNK]])
    return len(outs)


# --- playbook and chatbot actions (outbox tasks) ----------------------------------------------------------------


def deliver(
    openid: str,
    template: str,
    data: dict[str, Any],
    key: str,
    source: str,
    channel: str | None = None,
    event: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Queue one message and send it in this job (the outbox row already made it durable); a retry or a
    deferral leaves it queued for the pump."""
    job = broadcasts.job_name()
    try:
        with services().db.transaction() as session:
            row, _new = deliveries.new_message(
                session,
                message_library(),
                openid=openid,
                template=template,
                data=data,
                key=key,
                source=source,
                channel=channel,
                event=event,
                job=job,
            )
            delivery_id, state = row.id, row.state
    except (deliveries.NotFound, TemplateError) as exc:
        raise GiveUp(str(exc)) from exc
    if state == QUEUED:
        run_batch(job, [delivery_id])
    return {"delivery": delivery_id}


@task("template.send")
def template_send(
    openid: str,
    template: str,
    data: dict[str, Any] | None = None,
    key: str | None = None,
    url: str | None = None,
    event: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The playbook's `send_template`: `key` (rule + interaction) makes it one delivery ever; a rule's `url`
    reaches the template as `data.url`."""
    data = dict(data or {})
    if url:
        data.setdefault("url", url)
    return deliver(openid, template, data, f"pb:{key or uuid.uuid4().hex}", "playbook", event=event)


@task("custom.send")
def custom_send(
    openid: str,
    template: str,
    data: dict[str, Any] | None = None,
    key: str | None = None,
    event: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A chatbot follow-up as a customer-service message (inside WeChat's 48-hour window, else skipped)."""
    return deliver(openid, template, dict(data or {}), f"cs:{key or uuid.uuid4().hex}", "chatbot", CUSTOM, event)
