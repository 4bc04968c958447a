"""The "codes.sync" job: a team code's WeCom contact way re-listed to the members eligible now (scrm.team_codes).

Queued at each schedule boundary and local midnight (an outbox row with `run_after`, which the sweeper pushes when
due), by the applier when an assignment fills a member's cap, and when an admin edits the code. Each run queues the
next boundary first, so a failed call never ends the chain. The call is made only when the list changed. One run
per code at a time (a Redis lock): two runs racing could otherwise leave WeCom with the older of two lists.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime
from typing import Any

import redis

from foundation.clock import utcnow
from foundation.services import services
from scrm import team_codes
from tasks.registry import GiveUp, RetryLater, task
from tasks.wechat import wecom_client
from wechat.errors import NotSent, Unknown, WeChatAPIError

LOCK = "welead:codes-sync:"  # + code id
LOCK_SECONDS = 60
log = logging.getLogger(__name__)


def _when(at: datetime | str | None) -> datetime:
    if isinstance(at, str):
        return datetime.fromisoformat(at.removesuffix("Z"))
    return at or utcnow()


@task("codes.sync")
def sync(code_id: int, at: datetime | str | None = None) -> dict[str, Any]:
    """Re-list the code's contact way as of `at` (default now; tests pass explicit instants)."""
    now = _when(at)
    conn = services().redis_slow
    token = secrets.token_hex(8)
    try:
        if not conn.set(f"{LOCK}{code_id}", token, nx=True, ex=LOCK_SECONDS):
            raise RetryLater(f"team code {code_id} is being synced by another job", delay=2)
    except redis.RedisError as exc:
        raise RetryLater(f"Redis unavailable: {exc}", delay=10) from exc
    try:
        return _sync(int(code_id), now)
    finally:
        try:
            if conn.get(f"{LOCK}{code_id}") == token.encode():
                conn.delete(f"{LOCK}{code_id}")
        except redis.RedisError:
            log.warning("codes.sync lock of %s left to expire", code_id)


def _sync(code_id: int, now: datetime) -> dict[str, Any]:
    db = services().db
    with db.transaction() as session:
        code = team_codes.find(session, code_id)
        if code is None:
            raise GiveUp(f"no team code {code_id}")
        if not code.active or not code.wecom_config_id:
            return {"skipped": "inactive" if not code.active else "no contact way yet"}
        plan = team_codes.plan(session, code, now)
        team_codes.schedule(session, code_id, plan.next_sync)
        config_id, current = code.wecom_config_id, list(code.wecom_users or [])
    result = {"users": plan.users, "reason": plan.reason, "next": plan.next_sync.isoformat(timespec="seconds")}
    if not plan.users:
        log.warning("team code %s: nobody to list (no active member, no backup); the contact way is unchanged", code_id)
        return {**result, "skipped": "nobody to list"}
    if plan.users != current:
        _update(config_id, plan.users)
    with db.transaction() as session:
        code = team_codes.get(session, code_id)
        team_codes.synced(code, plan.users, now)
    return {**result, "changed": plan.users != current}


def _update(config_id: str, users: list[str]) -> None:
    try:
        wecom_client().update_contact_way(config_id, users)
    except NotSent as exc:
        raise RetryLater(str(exc), delay=30) from exc
    except Unknown as exc:  # replacing a list is idempotent: asking again is safe
        raise RetryLater(f"WeCom did not answer: {exc}", delay=30) from exc
    except WeChatAPIError as exc:
        if exc.retryable:
            raise RetryLater(str(exc), delay=30) from exc
        raise GiveUp(f"update_contact_way refused: {exc}") from exc
