"""The "welcome.send" job: greet a customer who just added a rep in WeCom, inside WeCom's 20-second window.

It runs on the HIGH queue (tasks.queue), ahead of broadcast batches. The window starts at the add event's
CreateTime, so retries happen here, in the job, with short backoffs, never through the outbox's slower retry path:
- 41051 (a welcome already went out for this code): stop, record `already_sent`;
- 41096, busy, limits, token trouble, a request that never left: try again while the window is open, else `expired`;
- a read timeout: WeCom sends one welcome per code whatever happens, so asking again is safe (the answer 41051 then
  means the first one went out); if the window closes first, the outcome is `unknown`;
- past the window before anything was sent: `expired`, not sent. Any other WeCom error: `error`.
Every outcome is on the code's row (GET /api/v1/welcomes) and the customer's timeline.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from foundation.clock import utcnow
from foundation.services import services
from scrm import followers, welcomes
from scrm.models import Activity
from scrm.notification_models import ALREADY_SENT, ERROR, EXPIRED, SKIPPED, W_SENT, WelcomeMessage
from tasks.registry import task
from tasks.wechat import wecom_client
from wechat.errors import NotSent, Unknown, WeChatAPIError

log = logging.getLogger(__name__)

ERR_ALREADY_SENT, ERR_INVALID_CODE = 41051, 41096
SENDING, UNKNOWN = "sending", "unknown"
FIRST_BACKOFF = 0.25  # seconds; doubles, never past the window


@task(welcomes.TASK)
def send_welcome(code: str, external_userid: str, userid: str, scene: str | None = None, at: int = 0) -> str:
    """Send the welcome text of the code the customer came through, once; returns the outcome."""
    started = float(at) if at and at > 0 else time.time()
    deadline = started + welcomes.WINDOW.total_seconds()
    row = _start(code, external_userid, userid, scene, datetime.fromtimestamp(started, UTC).replace(tzinfo=None))
    if row.status in welcomes.FINAL:
        return row.status  # a second run of the job: the outcome is known
    if not row.text:
        return _finish(row, SKIPPED, error="no welcome text for this contact code (or no code): nothing sent")
    return _attempts(row, deadline)


def _start(code: str, external_userid: str, userid: str, scene: str | None, at: datetime) -> WelcomeMessage:
    """The code's row, with the text of its contact code looked up on the first run."""
    with services().db.transaction() as session:
        row = welcomes.record(session, code, external_userid, userid, scene, at)
        if row.status == "queued":
            found = welcomes.contact_code(session, scene)
            row.contact_code_id = found.id if found else None
            row.text = ((found.welcome or "").strip() or None) if found else None
        return row


def _attempts(row: WelcomeMessage, deadline: float) -> str:
    delay, unsure = FIRST_BACKOFF, False
    while True:
        left = deadline - time.time()
        if left <= 0:
            outcome = UNKNOWN if unsure else EXPIRED
            return _finish(row, outcome, error=_expired_reason(row, unsure))
        _mark_sending(row)
        try:
            wecom_client().send_welcome_msg(row.code, row.text or "")
        except WeChatAPIError as exc:
            if exc.errcode == ERR_ALREADY_SENT:
                note = " (after a timeout: most likely ours)" if unsure else ""
                return _finish(row, ALREADY_SENT, errcode=exc.errcode, error=f"{exc}{note}")
            if not (exc.retryable or exc.token_problem or exc.errcode == ERR_INVALID_CODE):
                return _finish(row, ERROR, errcode=exc.errcode, error=str(exc))
            _remember(row, exc.errcode, str(exc))
        except (NotSent, Unknown) as exc:
            unsure = unsure or isinstance(exc, Unknown)
            _remember(row, None, f"{type(exc).__name__}: {exc}")
        else:
            return _finish(row, W_SENT, sent_at=utcnow(), errcode=None, error=None)
        time.sleep(max(0.0, min(delay, deadline - time.time())))
        delay *= 2


def _expired_reason(row: WelcomeMessage, unsure: bool) -> str:
    if unsure:
        return f"WeCom did not answer before the 20-second window closed (last: {row.error})"
    last = f" (last answer: {row.error})" if row.error else ""
    return f"past WeCom's 20-second window: not sent{last}"


def _mark_sending(row: WelcomeMessage) -> None:
    row.attempts += 1
    with services().db.transaction() as session:
        welcomes.settle(session, row.code, SENDING, attempts=row.attempts, text=row.text,
                        contact_code_id=row.contact_code_id)  # fmt: skip


def _remember(row: WelcomeMessage, errcode: int | None, error: str) -> None:
    row.errcode, row.error = errcode, error
    with services().db.transaction() as session:
        welcomes.settle(session, row.code, SENDING, errcode=errcode, error=error)


def _finish(row: WelcomeMessage, status: str, **values: Any) -> str:
    """Record the outcome on the code's row and on the customer's timeline."""
    with services().db.transaction() as session:
        welcomes.settle(session, row.code, status, text=row.text, contact_code_id=row.contact_code_id, **values)
        follower = followers.find(session, row.external_userid)
        if follower is not None:
            data = {"status": status, "code": row.contact_code_id, "userid": row.userid, "error": values.get("error")}
            session.add(Activity(follower_id=follower.id, kind="welcome_message", at=utcnow(), data=data))
    if status not in (W_SENT, SKIPPED):
        log.warning("welcome for %s via %s: %s (%s)", row.external_userid, row.scene, status, values.get("error"))
    return status
