"""The sandbox's WeCom customer transfers: 在职继承 (transfer_customer) and 离职继承 (resigned/transfer_customer), their
transfer_result queries, and user/delete (a member leaves, so their customers may be transferred as resigned).

As WeCom does: at most 100 customers a call; an accepted customer (errcode 0) is taken over 24 hours later unless
they refuse; a customer already waiting answers 40129; an on-the-job customer transferred twice in 90 days answers
40128; a customer the handover member does not follow answers 40131; the resigned variant wants a member who left
(40097). Transfers are kept per customer under `sandbox:wecom:transfer:`, so `reset` forgets them too.

Tests settle a waiting transfer with `settle(conn, external_userid, status)` (1 taken over, 3 refused, 4 takeover
limit) instead of waiting a day; `records(conn, external_userid)` shows what the sandbox holds.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from wechat.sandbox_apis import ok
from wechat.sandbox_state import PREFIX, ApiError, Call, K, SandboxControl, as_text

BATCH = 100  # customers per transfer call
TAKEOVER_DELAY = 86_400  # WeCom hands the customer over 24 h after an accepted transfer
WINDOW_90_DAYS = 90 * 86_400
ONJOB_PER_WINDOW = 2  # WeCom: an on-the-job customer may be transferred twice in 90 days
RESULT_PAGE = 1000  # transfer_result returns at most 1,000 customers a page
MESSAGE_MAX = 200  # transfer_success_msg
DONE, WAITING, REFUSED, LIMIT = 1, 2, 3, 4
CUSTOMER = PREFIX + "wecom:transfer:"  # + external_userid → JSON list of transfers, oldest first
PAIR = PREFIX + "wecom:transfer_pair:"  # + mode:handover:takeover → zset of external_userids by time
RESIGNED = PREFIX + "wecom:resigned"  # members who left (user/delete)


def records(conn: redis.Redis, external_userid: str) -> list[dict[str, Any]]:
    """Every transfer the sandbox accepted for this customer, oldest first, settled as of now."""
    history = json.loads(conn.get(CUSTOMER + external_userid) or "[]")
    return [_settled(conn, external_userid, record) for record in history]


def settle(conn: redis.Redis, external_userid: str, status: int) -> None:
    """End the customer's waiting transfer now: DONE (taken over), REFUSED or LIMIT."""
    history = json.loads(conn.get(CUSTOMER + external_userid) or "[]")
    waiting = [r for r in history if r["status"] == WAITING]
    if not waiting:
        raise ValueError(f"{external_userid} has no waiting transfer")
    waiting[-1].update(status=status, takeover_time=int(time.time()) if status == DONE else 0)
    conn.set(CUSTOMER + external_userid, json.dumps(history))
    if status == DONE:
        _follow(conn, external_userid, waiting[-1]["takeover"])


def resign(conn: redis.Redis, userid: str) -> None:
    """`userid` left the corp (what user/delete does)."""
    conn.sadd(RESIGNED, userid)


def _settled(conn: redis.Redis, eid: str, record: dict[str, Any]) -> dict[str, Any]:
    """A waiting transfer whose takeover time has passed is done (WeCom takes the customer over by itself)."""
    if record["status"] == WAITING and record["takeover_time"] <= time.time():
        settle(conn, eid, DONE)
        record = {**record, "status": DONE}
    return record


def _follow(conn: redis.Redis, eid: str, userid: str) -> None:
    """externalcontact/get now names the takeover as the member following the customer."""
    stored = json.loads(conn.get(K.contact + eid) or "{}")
    conn.set(K.contact + eid, json.dumps({**stored, "userid": userid}))


def _member(ctl: SandboxControl, userid: str, *, resigned_ok: bool = False) -> None:
    members = {as_text(m) for m in ctl.redis.smembers(K.members)}
    gone = ctl.redis.sismember(RESIGNED, userid)
    if (members and userid not in members and not gone) or (gone and not resigned_ok):
        raise ApiError(60111, f"userid not found: {userid}")


def _request(ctl: SandboxControl, call: Call, mode: str) -> tuple[str, str, list[str]]:
    handover, takeover = str(call.need("handover_userid")), str(call.need("takeover_userid"))
    customers = call.need("external_userid")
    if not isinstance(customers, list) or not all(isinstance(c, str) and c for c in customers):
        raise ApiError(40096, "invalid external userid")
    if len(customers) > BATCH:
        raise ApiError(40058, f"invalid Request Parameter: external_userid, at most {BATCH}")
    if len(str(call.body.get("transfer_success_msg") or "")) > MESSAGE_MAX:
        raise ApiError(40058, "invalid Request Parameter: transfer_success_msg")
    if handover == takeover:
        raise ApiError(40130, "handover_userid and takeover_userid are the same")
    _member(ctl, takeover)
    _member(ctl, handover, resigned_ok=mode == "resigned")
    if mode == "resigned" and not ctl.redis.sismember(RESIGNED, handover):
        raise ApiError(40097, "the member has not resigned")
    return handover, takeover, customers


def _one(ctl: SandboxControl, mode: str, handover: str, takeover: str, eid: str, now: int) -> int:
    """Start one customer's transfer; its per-customer errcode."""
    stored = json.loads(ctl.redis.get(K.contact + eid) or "{}")
    if stored.get("deleted"):
        return 84061
    if stored.get("userid") and stored["userid"] != handover:
        return 40131
    history = records(ctl.redis, eid)
    if any(r["status"] == WAITING for r in history):
        return 40129
    recent = [r for r in history if r["mode"] == "onjob" and r["at"] > now - WINDOW_90_DAYS]
    if mode == "onjob" and len(recent) >= ONJOB_PER_WINDOW:
        return 40128
    record = {"mode": mode, "handover": handover, "takeover": takeover, "at": now, "status": WAITING,
              "takeover_time": now + TAKEOVER_DELAY}  # fmt: skip
    ctl.redis.set(CUSTOMER + eid, json.dumps([*history, record]))
    ctl.redis.zadd(f"{PAIR}{mode}:{handover}:{takeover}", {eid: now}, nx=True)
    return 0


def _transfer(ctl: SandboxControl, call: Call, mode: str) -> dict:
    handover, takeover, customers = _request(ctl, call, mode)
    now = int(time.time())
    answers = [{"external_userid": eid, "errcode": _one(ctl, mode, handover, takeover, eid, now)} for eid in customers]
    return ok(customer=answers)


def _result(ctl: SandboxControl, call: Call, mode: str) -> dict:
    handover, takeover = str(call.need("handover_userid")), str(call.need("takeover_userid"))
    start = int(call.body.get("cursor") or 0)
    eids = [as_text(e) for e in ctl.redis.zrange(f"{PAIR}{mode}:{handover}:{takeover}", start, start + RESULT_PAGE)]
    page, more = eids[:RESULT_PAGE], len(eids) > RESULT_PAGE
    customers = []
    for eid in page:
        pair = (mode, handover, takeover)
        mine = [r for r in records(ctl.redis, eid) if (r["mode"], r["handover"], r["takeover"]) == pair]
        if mine:
            last = mine[-1]
            customers.append({"external_userid": eid, "status": last["status"], "takeover_time": last["takeover_time"]})
    return ok(customer=customers, next_cursor=str(start + RESULT_PAGE) if more else "")


def transfer_onjob(ctl: SandboxControl, call: Call) -> dict:
    return _transfer(ctl, call, "onjob")


def transfer_resigned(ctl: SandboxControl, call: Call) -> dict:
    return _transfer(ctl, call, "resigned")


def result_onjob(ctl: SandboxControl, call: Call) -> dict:
    return _result(ctl, call, "onjob")


def result_resigned(ctl: SandboxControl, call: Call) -> dict:
    return _result(ctl, call, "resigned")


def user_delete(ctl: SandboxControl, call: Call) -> dict:
    """A member leaves the corp: their customers can now be transferred as a resigned member's (离职继承)."""
    userid = call.arg("userid")
    if not userid:
        raise ApiError(41009, "missing userid")
    _member(ctl, userid)
    resign(ctl.redis, userid)
    return ok(errmsg="deleted")


TRANSFER_APIS = {
    "externalcontact/transfer_customer": ("POST", transfer_onjob),
    "externalcontact/resigned/transfer_customer": ("POST", transfer_resigned),
    "externalcontact/transfer_result": ("POST", result_onjob),
    "externalcontact/resigned/transfer_result": ("POST", result_resigned),
    "user/delete": ("GET", user_delete),
}
