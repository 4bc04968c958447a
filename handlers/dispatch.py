"""Inbound (the protocol's view of a callback) → Event (the domain's view). Thin on purpose: no SQL, no HTTP."""

from __future__ import annotations

from scrm.ingest import Event
from wechat.inbound import Inbound


def to_event(msg: Inbound) -> Event:
    payload = {k: v for k, v in msg.fields.items() if k not in ("ToUserName", "Encrypt")}
    return Event(
        channel=msg.channel,
        kind=msg.kind,
        openid=msg.openid,
        dedup_key=msg.dedup_key,
        created=msg.created,
        event_key=msg.event_key,
        msg_id=msg.msg_id,
        content=msg.content,
        scene=_scene(msg),
        payload=payload,
    )


def _scene(msg: Inbound) -> str | None:
    """The QR scene of a subscribe/SCAN, or the contact way's state of a WeCom contact added."""
    if msg.kind == "change_external_contact":
        state = msg.fields.get("State")
        return state if isinstance(state, str) and state else None
    return msg.scene
