"""The sandbox's temporary media: `media/upload` (multipart, field `media`) and customer-service image messages
that must name an uploaded media_id.

WeChat keeps temporary media 3 days; so does the sandbox (the bytes in Redis with that TTL), so tests and a person
debugging can look at exactly what was uploaded (`media(ctl, media_id)`, GET /sandbox/_control/media/<id>).

- `type` must be image, voice, video or thumb (40004); no `media` part: 41005; an image that is not PNG, JPEG,
  GIF or BMP: 40113; an image over 10 MB (WeChat's limit): 40006.
- `message/custom/send` with msgtype image: an unknown or expired media_id answers 40007, as WeChat does.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

from wechat.sandbox_apis import Handler, oa_custom_send
from wechat.sandbox_state import PREFIX, ApiError, Call, SandboxControl

MEDIA = PREFIX + "oa:media:"  # + media_id → the uploaded bytes
TTL = 3 * 86_400
TYPES = ("image", "voice", "video", "thumb")
IMAGE_MAX = 10 * 1024 * 1024
MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")


def describe_upload(filename: str, content_type: str, data: bytes) -> dict[str, Any]:
    """What the call record keeps of a multipart part (never the bytes)."""
    return {"filename": filename, "content_type": content_type, "size": len(data),
            "sha1": hashlib.sha1(data).hexdigest()}  # fmt: skip


def media(ctl: SandboxControl, media_id: str) -> bytes | None:
    """The bytes uploaded under `media_id`; None when unknown or past its 3 days."""
    return ctl.redis.get(MEDIA + media_id)


def media_upload(ctl: SandboxControl, call: Call) -> dict[str, Any]:
    kind = call.arg("type")
    if kind not in TYPES:
        raise ApiError(40004, "invalid media type")
    data = call.files.get("media")
    if not data:
        raise ApiError(41005, "media data missing")
    if kind == "image" and not data.startswith(MAGIC):
        raise ApiError(40113, "unsupported file type")
    if kind == "image" and len(data) > IMAGE_MAX:
        raise ApiError(40006, "invalid meida size")
    media_id = secrets.token_urlsafe(48)
    ctl.redis.set(MEDIA + media_id, data, ex=TTL)
    return {"type": kind, "media_id": media_id, "created_at": int(time.time())}


def custom_send(ctl: SandboxControl, call: Call) -> dict[str, Any]:
    """As oa_custom_send, and an image must be one uploaded here (40007 otherwise)."""
    if call.body.get("msgtype") == "image":
        media_id = (call.body.get("image") or {}).get("media_id") if isinstance(call.body.get("image"), dict) else None
        if not isinstance(media_id, str) or not ctl.redis.exists(MEDIA + media_id):
            raise ApiError(40007, "invalid media_id")
    return oa_custom_send(ctl, call)


MEDIA_APIS: dict[str, tuple[str, Handler]] = {
    "media/upload": ("POST", media_upload),
    "message/custom/send": ("POST", custom_send),
}
