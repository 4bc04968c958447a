"""The sandbox's `externalcontact/send_welcome_msg`, and the WelcomeCodes the simulator puts in add events.

WeCom lets one welcome through per WelcomeCode, within 20 seconds of the add event. The sandbox keeps both rules
without being told of each code: a code the simulator mints (`mint_welcome_code`) carries the time of its event, so
the fake can tell its age; the code's first accepted send is remembered in Redis.

- first send within 20 s: ok; a second send of the same code: 41051 (`externaluser has started chatting`, WeCom's
  answer to every call after the first);
- a code older than 20 s, or one the sandbox never minted: 41096 (`invalid welcome_code`). WeCom documents no code
  of its own for an expired WelcomeCode; the sandbox uses 41096, which WeLead retries only while the window is open.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import struct
import time
from typing import Any

from wechat.sandbox_state import PREFIX, ApiError, Call, SandboxControl

WINDOW_MS = 20_000
SENT = PREFIX + "wecom:welcome:"  # + code → the body first accepted
ALREADY_SENT, INVALID_CODE = 41051, 41096
_STAMP = struct.Struct(">Q")


def mint_welcome_code(at: float | None = None) -> str:
    """A WelcomeCode for an add event at `at` (epoch seconds, default now): its time in ms, 8 random bytes and a
    4-byte check, so a code the sandbox did not mint is told apart (27 characters, like WeCom's opaque codes)."""
    ms = int((time.time() if at is None else at) * 1000)
    body = _STAMP.pack(ms) + secrets.token_bytes(8)
    return base64.urlsafe_b64encode(body + _check(body)).decode().rstrip("=")


def issued_at(code: str) -> float | None:
    """The event time (epoch seconds) a minted code carries; None for a code the sandbox did not mint."""
    try:
        raw = base64.urlsafe_b64decode(code + "=" * (-len(code) % 4))
    except (ValueError, TypeError):
        return None
    body, check = raw[:-4], raw[-4:]
    if len(raw) != _STAMP.size + 12 or _check(body) != check:
        return None
    return _STAMP.unpack(body[: _STAMP.size])[0] / 1000


def _check(body: bytes) -> bytes:
    return hashlib.sha256(b"welead-sandbox-welcome:" + body).digest()[:4]


def send_welcome_msg(ctl: SandboxControl, call: Call) -> dict[str, Any]:
    code = call.body.get("welcome_code")
    if not isinstance(code, str) or not code:
        raise ApiError(40058, "invalid Request Parameter: welcome_code")
    text = call.body.get("text")
    if not (isinstance(text, dict) and text.get("content")) and not call.body.get("attachments"):
        raise ApiError(44004, "empty content: text.content or attachments")
    at = issued_at(code)
    if at is None or (time.time() - at) * 1000 > WINDOW_MS:
        raise ApiError(INVALID_CODE, "invalid welcome_code (unknown, or past its 20 seconds)")
    if not ctl.redis.set(SENT + code, 1, nx=True, ex=86_400):
        raise ApiError(ALREADY_SENT, "externaluser has started chatting")
    return {"errcode": 0, "errmsg": "ok"}


WELCOME_APIS = {"externalcontact/send_welcome_msg": ("POST", send_welcome_msg)}
