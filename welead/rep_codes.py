"""Making a rep's personal codes: the two WeChat calls an admin asks for, synchronously, with a timeout.

Shared by `POST /api/v1/reps/<id>/codes` and `flask rep codes`. Idempotent: what exists is returned, only a missing
half is made, each half is committed as soon as WeChat answers. A Redis lock per rep keeps two admins clicking at
once from spending two permanent OA codes. WeChat's refusals come back as `CodeFailure` naming the API and the
errcode: 422 when the rep's WeCom set-up is at fault (60111 the userid is not a member...), 502 otherwise.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

import redis

from foundation.services import services
from scrm import personal_codes, reps
from wechat.api import OAClient, WeComClient
from wechat.errors import NotSent, Unknown, WeChatAPIError, WeChatError

LOCK_SECONDS = 60  # longer than both calls with their timeouts
LOCK = "welead:rep-codes:"  # + rep id
# WeCom codes that mean "fix this rep's member set-up in the WeCom admin console", not "WeCom is unwell".
MEMBER_PROBLEMS = {
    40031: "the userid list is invalid",
    41054: "the member has not activated WeCom",
    60011: "the app may not see this member (visible range)",
    60111: "the userid is not a member of the corp",
    84074: "the member has no customer-contact permission",
}
log = logging.getLogger(__name__)


@dataclass
class CodeFailure(Exception):
    """Why the codes could not be made: an HTTP status, a message, and the details (api, errcode, errmsg)."""

    status: int
    message: str
    detail: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


def ensure(rep_id: int) -> tuple[dict[str, Any], bool]:
    """The rep's codes JSON and whether anything was made now; RepError (404/409) or CodeFailure otherwise."""
    db = services().db
    with db.sessions() as session:
        rep = reps.get(session, rep_id)
        personal_codes.check_can_have_codes(rep)
        code = personal_codes.find(session, rep_id)
    if personal_codes.complete(code):
        return personal_codes.describe(code, rep_id), False
    with CodeLock(f"{LOCK}{rep_id}", "this rep's codes are being made by another request: ask again in a moment"):
        made = _make_missing(rep_id)
    with db.sessions() as session:
        return personal_codes.describe(personal_codes.find(session, rep_id), rep_id), made


def _make_missing(rep_id: int) -> bool:
    """Read again under the lock (a concurrent request may have finished), then make each missing half."""
    db, made = services().db, False
    with db.sessions() as session:
        rep = reps.get(session, rep_id)
        personal_codes.check_can_have_codes(rep)
        code = personal_codes.find(session, rep_id)
    scene = personal_codes.scene(rep_id)
    if code is None or not code.oa_ticket:
        qr = call("qrcode/create", OAClient, lambda c: c.create_qrcode(scene, permanent=True), _whose(rep))
        with db.transaction() as session:
            personal_codes.save_oa(session, reps.get(session, rep_id), qr["ticket"], qr["url"])
        made = True
    if code is None or not code.wecom_config_id:
        userids = [rep.userid]
        way = call(
            "externalcontact/add_contact_way", WeComClient, lambda c: c.add_contact_way(scene, userids), _whose(rep)
        )
        with db.transaction() as session:
            personal_codes.save_wecom(session, reps.get(session, rep_id), way["config_id"], way["qr_code"])
        made = True
    return made


def _whose(rep: Any) -> str:
    return f" for rep {rep.id} (userid {rep.userid!r})"


def call(api: str, client_class: type[OAClient] | type[WeComClient], work: Any, subject: str = "") -> dict:
    """One WeChat/WeCom call for a code; its failure as CodeFailure. `subject` names whose code (" for rep 3")."""
    svc = services()
    client = client_class(svc.settings, svc.redis_slow)
    try:
        return work(client)
    except WeChatError as exc:
        failure = failure_for(api, exc, subject)
        log.warning("code%s: %s failed: %s", subject, api, failure.detail)
        raise failure from None
    finally:
        client.close()


def failure_for(api: str, exc: WeChatError, subject: str = "") -> CodeFailure:
    """The answer for a failed call: which API, WeChat's code and message, whether asking again may help."""
    side = "WeCom" if api.startswith("externalcontact") else "WeChat"
    if isinstance(exc, WeChatAPIError):
        detail = {"api": api, "errcode": exc.errcode, "errmsg": exc.errmsg, "retryable": exc.retryable}
        problem = MEMBER_PROBLEMS.get(exc.errcode) if side == "WeCom" else None
        if problem:
            return CodeFailure(422, f"{side} refused {api}{subject}: {exc.errcode} {problem} ({exc.errmsg})", detail)
        return CodeFailure(502, f"{side} refused {api}: {exc.errcode} {exc.errmsg}", detail)
    if isinstance(exc, Unknown):
        message = f"{side} did not answer {api} in time: the code may exist there; asking again makes another"
        return CodeFailure(502, message, {"api": api, "errcode": None, "retryable": False})
    reason = "could not be reached" if isinstance(exc, NotSent) else "failed"
    return CodeFailure(502, f"{side} {reason} for {api}: {exc}", {"api": api, "errcode": None, "retryable": True})


class CodeLock:
    """Hold a Redis lock on the codes being made (`key`), or CodeFailure 409 with `busy` when another request holds
    it; released only by its owner. Rep codes and team codes each lock their own keys."""

    def __init__(self, key: str, busy: str) -> None:
        self.key, self.busy, self.token = key, busy, secrets.token_hex(8)
        self.conn = services().redis_slow

    def __enter__(self) -> None:
        try:
            taken = self.conn.set(self.key, self.token, nx=True, ex=LOCK_SECONDS)
        except redis.RedisError as exc:
            raise CodeFailure(503, f"Redis is unavailable, codes cannot be made now: {exc}") from None
        if not taken:
            raise CodeFailure(409, self.busy)

    def __exit__(self, *exc: object) -> None:
        try:
            if self.conn.get(self.key) == self.token.encode():
                self.conn.delete(self.key)
        except redis.RedisError:
            log.warning("could not release %s: it expires in %s s", self.key, LOCK_SECONDS)
