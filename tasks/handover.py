"""The handover jobs: a deactivated rep's open leads ("rep.reassign"), their WeCom customer transfers ("rep.transfer",
"rep.transfer_result") and the lead pool (`pool`, periodic).

The domain is scrm.handover (who gets which lead) and scrm.handover_wecom (what WeCom answered); here are the
transactions and the calls. A call WeCom answered busy (-1, 45009) or that never left is made again with backoff;
one whose answer was lost is never made again blindly: the next run asks transfer_result first.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import OperationalError

from foundation.clock import utcnow
from foundation.services import services
from scrm import handover, outbox
from scrm import handover_wecom as wecom
from scrm.handover import Moved
from scrm.handover_models import PENDING, SENDING, UNKNOWN, WAITING
from scrm.models import Rep
from tasks.queue import push
from tasks.registry import GiveUp, RetryLater, task
from tasks.wechat import wecom_client
from wechat.errors import NotSent, Unknown, WeChatAPIError

log = logging.getLogger(__name__)

POLL_FIRST = timedelta(hours=1)  # refusals come early; WeCom takes the customer over 24 h after the transfer
POLL_EVERY = timedelta(hours=6)
POLL_ROUNDS = 12  # about three days of asking before a waiting transfer is given up
POOL_LIMIT = 2000  # leads per pool run (the next run continues)
REASSIGN_BUDGET = 4000  # leads per rep.reassign run (~40 s); a follow-up job takes the rest
BACKOFF, BACKOFF_CAP = 30.0, 600.0


# --- deactivation -----------------------------------------------------------------------------------------------------


@task("rep.reassign")
def reassign(
    rep_id: int,
    resigned: bool = False,
    round: str | None = None,
    after: int = 0,
    budget: int = REASSIGN_BUDGET,
) -> dict[str, Any]:
    """Hand the deactivated rep's open leads to other reps, page by page (each page its own transaction). Past
    `budget` leads the rest goes to a follow-up job (leads after the last one done), so no run outlives its lease."""
    try:
        return _reassign(int(rep_id), bool(resigned), round, after, budget)
    except OperationalError as exc:  # a deadlock PostgreSQL broke, a lost connection: pages already done stay done
        raise RetryLater(f"database: {exc.__class__.__name__}", delay=10) from exc


def _reassign(rep_id: int, resigned: bool, round_: str | None, after: int, budget: int) -> dict[str, Any]:
    svc, total, seen = services(), Moved(), 0
    while seen < budget:
        with svc.db.transaction() as session:
            rep = session.get(Rep, rep_id)
            if rep is None:
                raise GiveUp(f"no rep {rep_id}")
            if rep.active:
                return {"skipped": f"rep {rep_id} is active again"}
            key = handover.deactivation_key(rep, resigned, round_)
            moved, last = handover.reassign_page(
                session, rep, resigned=resigned, cause_key=key, after=after, pick=handover.pick, now=utcnow()
            )
            if last is not None and seen + handover.PAGE >= budget:
                args = {"rep_id": rep_id, "resigned": resigned, "round": round_, "after": last}
                oid = outbox.add(session, "rep.reassign", args, key=f"{key}:after:{last}")
                moved.outbox_ids += [oid] if oid is not None else []
        push(svc.redis_slow, moved.outbox_ids)
        total.add(moved)
        if last is None:
            break
        after, seen = last, seen + handover.PAGE
    if total.no_rep:
        log.warning("rep %s: %d open leads stay with them: no eligible rep", rep_id, total.no_rep)
    return total.report()


# --- the lead pool ----------------------------------------------------------------------------------------------------


def pool(limit: int = POOL_LIMIT, now: datetime | None = None) -> dict[str, Any]:
    """Periodic: leads whose owner has not acted for WELEAD_LEAD_POOL_DAYS go to other reps (off when 0)."""
    svc = services()
    days = svc.settings.lead_pool_days
    if days <= 0:
        return {"disabled": True}
    total, after, now = Moved(), 0, now or utcnow()
    while total.moved + total.transferring + total.refused + total.no_rep < limit:
        with svc.db.transaction() as session:
            moved, last = handover.pool_page(session, days, after=after, pick=handover.pick, now=now)
        push(svc.redis_slow, moved.outbox_ids)
        total.add(moved)
        if last is None:
            break
        after = last
    return total.report()


# --- WeCom ------------------------------------------------------------------------------------------------------------


@task("rep.transfer")
def transfer(ids: list[int]) -> dict[str, Any]:
    """The transfer_customer call for these rows (one handover, takeover and mode; at most 100 customers)."""
    with services().db.transaction() as session:
        found = wecom.chunks(session, ids)
    if not found:
        raise GiveUp(f"no transfers {ids} (or their reps are gone)")
    report = {"sent": 0, "accepted": 0}
    for chunk in found:
        sent, accepted = _transfer(chunk, utcnow())
        report["sent"] += sent
        report["accepted"] += len(accepted)
        _poll_later(accepted, 0)
    return report


def _transfer(chunk: wecom.Chunk, now: datetime) -> tuple[int, list[int]]:
    """Reconcile what a previous run sent without an answer, then send what is pending; (sent, accepted ids)."""
    db = services().db
    accepted = _reconcile(chunk, chunk.ids(SENDING, UNKNOWN), now)
    pending = [t.id for t in chunk.rows if t.state == PENDING and t.id not in accepted]
    if not pending:
        return 0, accepted
    with db.transaction() as session:
        wecom.begin(session, pending, now)
    answers = _send(chunk, pending, now)
    with db.transaction() as session:
        accepted += wecom.answered(session, chunk, pending, answers, utcnow())
    return len(pending), accepted


def _send(chunk: wecom.Chunk, ids: list[int], now: datetime) -> dict[str, int]:
    db = services().db
    try:
        # no transfer_success_msg: the customer gets WeCom's default text
        return wecom_client().transfer_customers(
            chunk.handover, chunk.takeover, chunk.customers(ids), resigned=chunk.resigned
        )
    except (NotSent, WeChatAPIError) as exc:
        if isinstance(exc, WeChatAPIError) and not exc.retryable:
            with db.transaction() as session:
                wecom.refused_call(session, ids, exc.errcode, str(exc), now)
            raise GiveUp(str(exc)) from exc
        with db.transaction() as session:
            left = wecom.unsent(session, ids, str(exc))
        if not left:
            raise GiveUp(f"WeCom busy: gave up ({exc})") from exc
        raise RetryLater(str(exc), delay=_backoff(chunk)) from exc
    except Unknown as exc:
        with db.transaction() as session:
            wecom.lost(session, ids, str(exc))
        raise RetryLater(f"no answer; transfer_result will tell: {exc}", delay=60) from exc


def _reconcile(chunk: wecom.Chunk, ids: list[int], now: datetime) -> list[int]:
    """Rows a previous run sent without an answer: which WeCom has (accepted), the others pending again."""
    if not ids:
        return []
    results = _results(chunk)
    with services().db.transaction() as session:
        accepted = wecom.reconcile(session, ids, results, now)
    for t in chunk.rows:
        if t.id in ids and t.id not in accepted:
            t.state = PENDING
    return accepted


def _results(chunk: wecom.Chunk) -> dict[str, dict]:
    try:
        return wecom_client().transfer_results(chunk.handover, chunk.takeover, resigned=chunk.resigned)
    except (NotSent, Unknown) as exc:
        raise RetryLater(f"transfer_result: {exc}", delay=60) from exc
    except WeChatAPIError as exc:
        if exc.retryable:
            raise RetryLater(f"transfer_result: {exc}", delay=60) from exc
        raise GiveUp(f"transfer_result: {exc}") from exc


@task("rep.transfer_result")
def transfer_result(ids: list[int], round: int = 0) -> dict[str, Any]:
    """Ask WeCom where the waiting transfers stand; ask again later while some still wait."""
    db = services().db
    with db.transaction() as session:
        found = wecom.chunks(session, ids)
    report = {"waiting": 0, "settled": 0, "given_up": 0}
    for chunk in found:
        waiting = chunk.ids(WAITING)
        if not waiting:
            continue
        results = _results(chunk)
        with db.transaction() as session:
            still = wecom.polled(session, waiting, results, utcnow())
            last = round + 1 >= POLL_ROUNDS
            if still and last:
                wecom.give_up_waiting(session, still, utcnow())
        report["settled"] += len(waiting) - len(still)
        report["given_up" if last else "waiting"] += len(still)
        if not last:
            _poll_later(still, round + 1)
    return report


def _poll_later(ids: list[int], round_: int) -> None:
    """Queue the next transfer_result for these rows; the sweeper runs it when it is due."""
    if not ids:
        return
    after = utcnow() + (POLL_FIRST if round_ == 0 else POLL_EVERY)
    with services().db.transaction() as session:
        key = f"rep.transfer_result:{min(ids)}:{len(ids)}:{round_}"
        outbox.add(session, "rep.transfer_result", {"ids": sorted(ids), "round": round_}, key=key, run_after=after)


def _backoff(chunk: wecom.Chunk) -> float:
    tries = max((t.attempts for t in chunk.rows), default=0) + 1
    return min(BACKOFF * 2**tries, BACKOFF_CAP)
