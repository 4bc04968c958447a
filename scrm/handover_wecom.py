"""What WeCom said about the customer transfers the "rep.transfer" and "rep.transfer_result" jobs asked for, written
down: per customer its errcode and status on the Transfer row, and on the follower's timeline.

A refused customer (per-customer errcode, or transfer_result status 3 refused / 4 takeover limit) goes back to the
owner it had before, in WeLead too, so WeLead and WeCom agree on who holds the contact; the give-back is guarded by
`owner_id = <takeover>`, so a lead that moved on in the meantime stays where it is.

A call whose answer was lost (Unknown) may have started the transfers: its rows are `unknown` until transfer_result
tells (a record newer than the attempt means WeCom has it; none means it is safe to ask again).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from foundation.clock import utcnow
from scrm import notices, outbox
from scrm.handover_models import DONE, FAILED, OPEN, PENDING, RESIGNED, SENDING, UNKNOWN, WAITING, Transfer
from scrm.models import Activity, Follower, Rep

TAKEN_OVER, STILL_WAITING, REFUSED, TAKEOVER_FULL, NO_RECORD = 1, 2, 3, 4, 5
STATUS_REASON = {REFUSED: "the customer refused the takeover", TAKEOVER_FULL: "the takeover rep has too many customers"}
FAIL_REASONS = {"customer_refused": REFUSED, "customer_limit_exceed": TAKEOVER_FULL}
MAX_TRIES = 5  # calls WeCom answered busy before a row is given up


@dataclass
class Chunk:
    """One transfer call's worth of rows: the same handover, takeover and mode."""

    handover: str
    takeover: str
    resigned: bool
    rows: list[Transfer]

    def ids(self, *states: str) -> list[int]:
        return [t.id for t in self.rows if t.state in states]

    def customers(self, ids: list[int]) -> list[str]:
        return [str(t.external_userid) for t in self.rows if t.id in ids]


def chunks(session: Session, ids: list[int]) -> list[Chunk]:
    """The rows by (handover, takeover, mode), with the reps' WeCom userids (a job's rows are one chunk)."""
    groups: dict[tuple[int, int | None, str | None], list[Transfer]] = defaultdict(list)
    for t in session.scalars(select(Transfer).where(Transfer.id.in_(ids)).order_by(Transfer.id)):
        groups[(t.from_rep_id, t.to_rep_id, t.mode)].append(t)
    found = []
    for (handover, takeover, mode), rows in groups.items():
        userids = dict(session.execute(select(Rep.id, Rep.userid).where(Rep.id.in_([handover, takeover]))).all())
        if handover in userids and takeover in userids:
            found.append(Chunk(userids[handover], userids[takeover], mode == RESIGNED, rows))
    return found


def begin(session: Session, ids: list[int], now: datetime) -> None:
    """Pending rows about to be sent: `sending`, so a crash mid-call leaves them to be reconciled, never resent."""
    values = {"state": SENDING, "sent_at": now, "attempts": Transfer.attempts + 1}
    session.execute(_rows(ids, PENDING).values(**values))


def unsent(session: Session, ids: list[int], error: str) -> int:
    """The call did not happen (never left, or WeCom was busy): back to pending; rows out of tries fail. Returns
    how many are still pending."""
    session.execute(_rows(ids, SENDING).values(state=PENDING, error=error))
    spent = list(session.scalars(select(Transfer).where(Transfer.id.in_(ids), Transfer.attempts >= MAX_TRIES)))
    for t in spent:
        fail(session, t, -1, f"WeCom busy, gave up after {t.attempts} tries: {error}", t.sent_at)
    return len(ids) - len(spent)


def lost(session: Session, ids: list[int], error: str) -> None:
    """The call went out and no answer came back."""
    session.execute(_rows(ids, SENDING).values(state=UNKNOWN, error=error))


def answered(session: Session, chunk: Chunk, ids: list[int], answers: dict[str, int], now: datetime) -> list[int]:
    """Record transfer_customer's per-customer errcodes; the ids WeCom accepted (to be polled)."""
    accepted = []
    for t in _get(session, ids, SENDING):
        code = answers.get(str(t.external_userid))
        if code == 0:
            t.state, t.errcode, t.error = WAITING, 0, None
            accepted.append(t.id)
            notify_takeover(session, t)
        elif code is None:
            t.state, t.error = UNKNOWN, "not in WeCom's answer"
        else:
            fail(session, t, code, f"WeCom refused the transfer (errcode {code})", now)
    return accepted


def refused_call(session: Session, ids: list[int], errcode: int, error: str, now: datetime) -> None:
    """WeCom refused the whole call with a permanent code: every customer in it failed with that code."""
    for t in _get(session, ids, SENDING):
        fail(session, t, errcode, error, now)


def reconcile(session: Session, ids: list[int], results: dict[str, dict], now: datetime) -> list[int]:
    """Rows whose call was lost, against transfer_result: a record from after the attempt is ours (accepted);
    none means WeCom never started it, and the row is pending again. Returns the ids accepted."""
    accepted = []
    for t in _get(session, ids, SENDING, UNKNOWN):
        found = results.get(str(t.external_userid))
        if found is None or not _since(found, t.sent_at):
            t.state = PENDING
            continue
        t.errcode = 0
        accepted.append(t.id)
        notify_takeover(session, t)
        settle(session, t, found, now)
    return accepted


def polled(session: Session, ids: list[int], results: dict[str, dict], now: datetime) -> list[int]:
    """Waiting rows against transfer_result; the ids still waiting."""
    for t in _get(session, ids, WAITING):
        found = results.get(str(t.external_userid))
        if found is not None:
            settle(session, t, found, now)
    return [t.id for t in _get(session, ids, WAITING)]


def settle(session: Session, t: Transfer, found: dict[str, Any], now: datetime) -> None:
    status = int(found["status"])
    t.status, t.takeover_at = status, _when(found.get("takeover_time"))
    if status == TAKEN_OVER:
        t.state, t.settled_at = DONE, now
    elif status == STILL_WAITING:
        t.state = WAITING
    elif status != NO_RECORD:
        fail(session, t, 0, STATUS_REASON.get(status, f"transfer status {status}"), now)


def give_up_waiting(session: Session, ids: list[int], now: datetime) -> None:
    for t in _get(session, ids, WAITING):
        fail(session, t, t.errcode, "no outcome from WeCom's transfer_result", now)


def fail(
    session: Session,
    t: Transfer,
    errcode: int | None,
    reason: str,
    now: datetime | None,
    follower: Follower | None = None,
) -> None:
    """The transfer failed: recorded on the row and the timeline; the lead goes back to its previous owner if it is
    still with the takeover. `follower`: the object the caller holds (the applier writes owners from its objects)."""
    t.state, t.errcode, t.error, t.settled_at = FAILED, errcode, reason, now
    if follower is not None:
        back = follower.owner_id == t.to_rep_id
        follower.owner_id = t.from_rep_id if back else follower.owner_id
    else:
        back = (
            session.execute(
                update(Follower)
                .where(Follower.id == t.follower_id, Follower.owner_id == t.to_rep_id)
                .values(owner_id=t.from_rep_id)
                .execution_options(synchronize_session=False)
            ).rowcount
            == 1
        )
    data = {"rep": t.from_rep_id if back else None, "to": t.to_rep_id, "transfer": t.id, "errcode": errcode}
    data.update(status=t.status, reason=reason, cause=t.cause, given_back=back)
    session.add(Activity(follower_id=t.follower_id, kind="transfer_failed", at=now, data=data))


def callback_failed(session: Session, follower: Follower, takeover: str, reason: str, now: datetime) -> bool:
    """WeCom's transfer_fail callback (客户接替失败: FailReason customer_refused or customer_limit_exceed) for the
    lead's open transfer to member `takeover`; False when there is none (a transfer made in WeCom's console)."""
    query = (
        select(Transfer)
        .join(Rep, Rep.id == Transfer.to_rep_id)
        .where(Transfer.follower_id == follower.id, Transfer.state.in_(OPEN), Rep.userid == takeover)
        .order_by(Transfer.id.desc())
        .limit(1)
    )
    t = session.scalar(query)
    if t is None:
        return False
    t.status = FAIL_REASONS.get(reason, REFUSED)
    fail(session, t, 0, f"{STATUS_REASON[t.status]} (transfer_fail: {reason or '?'})", now, follower)
    return True


def notify_takeover(session: Session, t: Transfer) -> int | None:
    """Tell the rep who got the lead, once per move (rep.notify's key: kind, lead, crossing)."""
    openid = session.scalar(select(Follower.openid).where(Follower.id == t.follower_id))
    row = notice_row(t, str(openid), None)
    return outbox.add(session, notices.TASK, row["args"], key=row["key"])


def notice_row(t: Transfer, openid: str, now: datetime | None) -> dict[str, Any]:
    """The outbox row of an `assigned` notice to the rep `t` gave the lead to."""
    key = notices.key("assigned", t.follower_id, f"transfer-{t.id}")
    args = {"openid": openid, "rep_id": t.to_rep_id, "kind": "assigned", "reason": "handed over to you", "key": key}
    return {"task": notices.TASK, "args": args, "key": key, "created_at": now or utcnow(), "run_after": None,
            "attempts": 0}  # fmt: skip


def _rows(ids: list[int], *states: str) -> Any:
    return (
        update(Transfer)
        .where(Transfer.id.in_(ids), Transfer.state.in_(states))
        .execution_options(synchronize_session=False)
    )


def _get(session: Session, ids: list[int], *states: str) -> list[Transfer]:
    query = select(Transfer).where(Transfer.id.in_(ids), Transfer.state.in_(states)).order_by(Transfer.id)
    return list(session.scalars(query.execution_options(populate_existing=True)))


def _since(found: dict[str, Any], attempt: datetime | None) -> bool:
    """Is this transfer_result record the attempt's? Waiting ones are (one customer waits at most once); others if
    their takeover time is not older than the attempt."""
    if int(found["status"]) == STILL_WAITING:
        return True
    when = _when(found.get("takeover_time"))
    return attempt is not None and when is not None and when >= attempt


def _when(epoch: Any) -> datetime | None:
    if not epoch:
        return None
    return datetime.fromtimestamp(int(epoch), UTC).replace(tzinfo=None)
