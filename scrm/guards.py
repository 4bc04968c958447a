"""The guard rails every outbound message passes, and the settings they read.

Order matters and is fixed: a follower who cannot receive (unsubscribed, opted out) is blocked; a channel WeChat would
refuse or punish (customer-service window closed, monthly mass quota used) is skipped with the reason; the per-follower
frequency cap skips; quiet hours defer (the message waits, it is not dropped). The global rate limit and the daily
quota live in Redis (tasks.ratelimit) because every worker shares them.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from foundation.config import ROOT, ConfigError
from scrm.delivery_models import BLOCKED, DELIVERED, SENDING, SENT, SKIPPED, Delivery
from scrm.message_templates import CHANNELS, CUSTOM, MASS, TEMPLATE
from scrm.models import Follower, Interaction

# Inbound kinds that open WeChat's customer-service window: a message opens 48 h, an action opens a minute.
MESSAGE_KINDS = ("text", "image", "voice", "video", "shortvideo", "location", "link")
ACTION_KINDS = ("subscribe", "scan", "click", "scancode_push", "scancode_waitmsg")
WENT_OUT = (SENDING, SENT, DELIVERED)
# A delivery answering the follower's own question (the chatbot's model answer): a reply, not a message WeLead
# chose to send, so quiet hours and the frequency cap do not hold it back, nor does it count against the cap.
REPLY = "chatbot_answer"


@dataclass(frozen=True)
class SendRules:
    """Every knob of outbound messaging, from WELEAD_* variables (see docs/messages.md), overridable per app."""

    rate: float = 100.0  # WELEAD_SEND_RATE: messages a second, all workers together
    burst: int = 0  # WELEAD_SEND_BURST: bucket size; 0 = a tenth of a second's worth
    freq_cap: int = 4  # WELEAD_FREQ_CAP: messages per follower per window (0 = no cap)
    freq_window_hours: float = 24.0  # WELEAD_FREQ_WINDOW_HOURS
    quiet_hours: str = "22:00-08:00"  # WELEAD_QUIET_HOURS: local "HH:MM-HH:MM", or "off"
    timezone: str = "Asia/Shanghai"  # WELEAD_TIMEZONE
    cs_window_hours: float = 48.0  # WELEAD_CS_WINDOW_HOURS: after a follower's message
    cs_per_window: int = 5  # WELEAD_CS_PER_WINDOW
    cs_action_seconds: int = 60  # WELEAD_CS_ACTION_SECONDS: after a follow, scan or menu click
    cs_per_action: int = 3  # WELEAD_CS_PER_ACTION
    mass_per_month: int = 4  # WELEAD_MASS_PER_MONTH: mass messages a follower may receive a month
    template_daily_quota: int = 100_000  # WELEAD_TEMPLATE_DAILY_QUOTA: the account's template sends a day
    opt_out_tag: str = "opted-out"  # WELEAD_OPT_OUT_TAG: followers with this tag receive nothing
    retry_max: int = 5  # WELEAD_SEND_RETRIES: retries of -1 / 45009 / not-sent before "error"
    retry_base: float = 2.0  # WELEAD_RETRY_BASE: first backoff, seconds (doubles, with jitter)
    retry_cap: float = 300.0  # WELEAD_RETRY_CAP: longest backoff, seconds
    error_budget: float = 0.1  # WELEAD_ERROR_BUDGET: a broadcast pauses above this error rate...
    breaker_window: int = 200  # WELEAD_BREAKER_WINDOW: ...over its last N sends
    batch: int = 0  # WELEAD_SEND_BATCH: deliveries per RQ job; 0 = about a second of the rate (see job_size)
    heartbeat: int = 30  # WELEAD_SEND_HEARTBEAT: seconds a silent job is presumed dead
    lost_after: int = 30  # WELEAD_SEND_LOST_AFTER: seconds before a queued row's job is checked
    resend_window: int = 540  # WELEAD_RESEND_WINDOW: in-doubt sends are repeated (same client_msg_id) this long
    templates_dir: str = str(ROOT / "templates" / "messages")  # WELEAD_MESSAGE_TEMPLATES

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None) -> SendRules:
        """Defaults, then the environment, then `overrides` (Settings.extra["messaging"]); loud on bad values."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(_env_name(f.name), "").strip()
            if raw:
                values[f.name] = _parse(f.name, raw, type(getattr(cls, f.name)))
        values.update(overrides or {})
        rules = cls(**values)
        if rules.rate <= 0:
            raise ConfigError("WELEAD_SEND_RATE: must be > 0")
        rules.quiet_window()
        rules.zone()
        return rules

    @property
    def bucket_size(self) -> int:
        return self.burst or max(1, int(self.rate / 10))

    @property
    def job_size(self) -> int:
        """Deliveries per send job: WELEAD_SEND_BATCH, or a second's worth of the rate, 50 to 500. Fewer, larger
        jobs make the fan-out cheaper (an RQ job costs more to enqueue than a delivery to insert); a welcome
        message waits at most for the job a worker is running, about a second at the configured rate."""
        return self.batch or max(50, min(500, int(self.rate)))

    def zone(self) -> ZoneInfo:
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"WELEAD_TIMEZONE: unknown time zone {self.timezone!r}") from None

    def quiet_window(self) -> tuple[time, time] | None:
        """(start, end) local times, or None when quiet hours are off."""
        spec = self.quiet_hours.strip().lower()
        if spec in ("", "off", "none"):
            return None
        try:
            start, end = (time.fromisoformat(part.strip()) for part in spec.split("-"))
        except ValueError:
            raise ConfigError(f"WELEAD_QUIET_HOURS: expected HH:MM-HH:MM or off, got {self.quiet_hours!r}") from None
        return (start, end) if start != end else None


_ENV_NAMES = {"freq_cap": "FREQ_CAP", "retry_max": "SEND_RETRIES", "templates_dir": "MESSAGE_TEMPLATES",
              "rate": "SEND_RATE", "burst": "SEND_BURST", "batch": "SEND_BATCH", "heartbeat": "SEND_HEARTBEAT",
              "lost_after": "SEND_LOST_AFTER"}  # fmt: skip


def _env_name(field_name: str) -> str:
    return "WELEAD_" + _ENV_NAMES.get(field_name, field_name.upper())


def _parse(name: str, raw: str, kind: type) -> Any:
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{_env_name(name)}: expected {kind.__name__}, got {raw!r}") from None
    if isinstance(value, (int, float)) and value < 0:
        raise ConfigError(f"{_env_name(name)}: must be >= 0, got {raw!r}")
    return value


@dataclass(frozen=True)
class Verdict:
    """Do not send: `state` (blocked | skipped, or queued with `until` for a deferral) and a short reason code."""

    state: str
    reason: str
    detail: str = ""
    until: datetime | None = None


def local_now(rules: SendRules, now: datetime) -> datetime:
    """`now` (naive UTC) in the configured zone."""
    return now.replace(tzinfo=UTC).astimezone(rules.zone())


def quiet_until(rules: SendRules, now: datetime) -> datetime | None:
    """When the current quiet period ends (naive UTC), or None outside quiet hours."""
    window = rules.quiet_window()
    if window is None:
        return None
    start, end = window
    local = local_now(rules, now)
    t = local.time().replace(tzinfo=None)
    inside = (start <= t < end) if start < end else (t >= start or t < end)
    if not inside:
        return None
    ends = datetime.combine(local.date(), end, tzinfo=local.tzinfo)
    if ends <= local:
        ends += timedelta(days=1)
    return ends.astimezone(UTC).replace(tzinfo=None)


def month_start(rules: SendRules, now: datetime) -> datetime:
    """The first instant of the current local calendar month, in naive UTC (WeChat's mass quota is monthly)."""
    local = local_now(rules, now)
    first = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return first.astimezone(UTC).replace(tzinfo=None)


def _counts(
    session: Session, follower_ids: list[int], channels: tuple[str, ...], since: datetime, replies: bool = True
) -> dict[int, int]:
    """Messages that went out to each follower since `since`, on these channels (`replies`: the bot's answers
    too): one grouped query for a chunk."""
    query = (
        select(Delivery.follower_id, func.count())
        .where(Delivery.follower_id.in_(follower_ids), Delivery.sent_at >= since)
        .where(Delivery.channel.in_(channels), Delivery.state.in_(WENT_OUT))
    )
    if not replies:
        query = query.where(Delivery.source != REPLY)
    return {fid: int(n) for fid, n in session.execute(query.group_by(Delivery.follower_id))}


@dataclass(frozen=True)
class History:
    """What the guards need to know of a chunk's followers, fetched in two queries, not two per message."""

    recent: dict[int, int]  # template + customer-service messages in the frequency window
    mass: dict[int, int]  # mass messages this (local) month


def history(
    session: Session, follower_ids: list[int], rules: SendRules, now: datetime, channels: Collection[str] = CHANNELS
) -> History:
    """What went out to these followers lately; only the counts the `channels` about to be sent are checked on."""
    since = now - timedelta(hours=rules.freq_window_hours)
    capped = rules.freq_cap and not set(channels).isdisjoint((TEMPLATE, CUSTOM))
    return History(
        recent=_counts(session, follower_ids, (TEMPLATE, CUSTOM), since, replies=False) if capped else {},
        mass=_counts(session, follower_ids, (MASS,), month_start(rules, now)) if MASS in channels else {},
    )


def _last(session: Session, follower_id: int, kinds: tuple[str, ...]) -> datetime | None:
    return session.scalar(
        select(func.max(Interaction.at)).where(Interaction.follower_id == follower_id, Interaction.kind.in_(kinds))
    )


def customer_service_open(session: Session, follower_id: int, rules: SendRules, now: datetime) -> Verdict | None:
    """None when a customer-service message is allowed now; else why not (window closed, or its quota used)."""
    windows = (
        (MESSAGE_KINDS, timedelta(hours=rules.cs_window_hours), rules.cs_per_window),
        (ACTION_KINDS, timedelta(seconds=rules.cs_action_seconds), rules.cs_per_action),
    )
    opened = False
    for kinds, length, quota in windows:
        last = _last(session, follower_id, kinds)
        if last is None or now - last > length:
            continue
        opened = True
        if _counts(session, [follower_id], (CUSTOM,), last).get(follower_id, 0) < quota:
            return None
    if opened:
        return Verdict(SKIPPED, "cs_quota", "customer-service messages for this window are used up")
    return Verdict(SKIPPED, "outside_window", f"no follower message in the last {rules.cs_window_hours:g} h")


def check(
    session: Session,
    delivery: Delivery,
    follower: Follower,
    tags: list[str],
    past: History,
    rules: SendRules,
    now: datetime,
) -> Verdict | None:
    """None when `delivery` may go now; else the verdict that stops or defers it."""
    if not follower.subscribed:
        return Verdict(BLOCKED, "unsubscribed", "the follower does not follow the account")
    if rules.opt_out_tag in tags:
        return Verdict(BLOCKED, "opted_out", f"tagged {rules.opt_out_tag!r}")
    if delivery.channel == CUSTOM:
        verdict = customer_service_open(session, follower.id, rules, now)
        if verdict:
            return verdict
    if delivery.channel == MASS:
        used = past.mass.get(follower.id, 0)
        if used >= rules.mass_per_month:
            return Verdict(
                SKIPPED, "mass_quota", f"{used} mass messages this month (WeChat allows {rules.mass_per_month})"
            )
    if delivery.source == REPLY:
        return None
    if rules.freq_cap and delivery.channel in (TEMPLATE, CUSTOM):
        sent = past.recent.get(follower.id, 0)
        if sent >= rules.freq_cap:
            return Verdict(SKIPPED, "frequency_cap", f"{sent} messages in {rules.freq_window_hours:g} h")
    until = quiet_until(rules, now)
    if until is not None:
        return Verdict("queued", "quiet_hours", f"deferred to the end of quiet hours ({rules.quiet_hours})", until)
    return None
