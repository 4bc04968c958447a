"""Which events tell a rep about a lead, raised where the event is applied (the applier, the rules engine).

Each notice is an outbox row for the "rep.notify" job (tasks.notify) keyed `rep.notify:<kind>:<follower id>:<crossing>`
(the crossing: the interaction id, or the rule and run scope), so a retried callback, a re-applied batch or a rule
firing twice for one cause queue it once. Kinds:

- `assigned`: a lead was given to a rep (raised by whoever assigns: `notify(ctx, follower, rep, "assigned", ...)`);
- `mql`: the lead's stage moved up to `mql` (`stage_reached`, from the engine's stage changes);
- `handoff`: the lead asked for a human (`notify_owner: {kind: handoff}` in a rule, later the chatbot);
- `returned`: an interaction from a lead idle for more than WELEAD_DORMANT_DAYS (default 30) days;
- `removed`: the customer deleted the rep in WeCom (del_follow_user); the job also tells the rep's manager;
- `rule`: any other `notify_owner` action;
- `lead`: a lead form captured at a booth, to the staff on duty there (scrm.lead_capture).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Protocol

from scrm.models import Follower

log = logging.getLogger(__name__)

TASK = "rep.notify"
KINDS = ("assigned", "mql", "handoff", "returned", "removed", "rule", "lead")
MQL = "mql"
DORMANT_ENV = "WELEAD_DORMANT_DAYS"
DORMANT_DEFAULT = 30


class Context(Protocol):
    """Where notices are written: scrm.ingest.Visit or a rules-engine context (both queue outbox rows)."""

    def enqueue(self, task: str, args: dict[str, Any], key: str | None = None) -> None: ...


def key(kind: str, follower_id: int, crossing: str | int) -> str:
    return f"{TASK}:{kind}:{follower_id}:{crossing}"


def notify(
    ctx: Context, follower: Follower, rep_id: int, kind: str, crossing: str | int, reason: str = "", **extra: Any
) -> str:
    """Queue one notice to `rep_id` about `follower`; returns its key (the same cause queues it once)."""
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}")
    found = key(kind, follower.id, crossing)
    args = {"openid": follower.openid, "rep_id": rep_id, "kind": kind, "reason": reason, "key": found, **extra}
    ctx.enqueue(TASK, args, key=found)
    return found


def notify_owner(
    ctx: Context, follower: Follower, kind: str, crossing: str | int, reason: str = "", **extra: Any
) -> bool:
    """Tell the lead's owner; False (nothing queued) when the lead has none."""
    if follower.owner_id is None:
        return False
    notify(ctx, follower, follower.owner_id, kind, crossing, reason, **extra)
    return True


def stage_reached(ctx: Context, follower: Follower, stage: str, direction: str, crossing: str | int) -> None:
    """A stage change: moving up to `mql` tells the owner (an unowned lead is told to whoever assigns it)."""
    if stage == MQL and direction == "up":
        notify_owner(ctx, follower, "mql", crossing, reason="reached the MQL stage")


def dormant_after(environ: Mapping[str, str] | None = None) -> timedelta:
    """How long a lead must have been idle for its next interaction to count as a return (WELEAD_DORMANT_DAYS)."""
    raw = (os.environ if environ is None else environ).get(DORMANT_ENV, "").strip()
    if not raw:
        return timedelta(days=DORMANT_DEFAULT)
    try:
        days = float(raw)
    except ValueError:
        raise ValueError(f"{DORMANT_ENV}: expected a number of days, got {raw!r}") from None
    if days <= 0:
        raise ValueError(f"{DORMANT_ENV}: must be > 0")
    return timedelta(days=days)


def returned(ctx: Context, follower: Follower, idle: timedelta, crossing: str | int) -> bool:
    """An interaction after `idle` without any: the owner hears that a dormant lead came back."""
    if idle <= dormant_after():
        return False
    return notify_owner(ctx, follower, "returned", crossing, reason=f"back after {idle.days} days", idle_days=idle.days)


def removed(ctx: Context, follower: Follower, rep_id: int, crossing: str | int) -> None:
    """The customer removed rep `rep_id` (WeCom del_follow_user): that rep hears it, and the job copies the manager."""
    notify(ctx, follower, rep_id, "removed", crossing, reason="deleted from their WeCom contacts")
