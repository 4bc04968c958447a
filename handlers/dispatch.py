"""Inbound → domain effects and a passive reply. Thin on purpose: no SQL, no HTTP, one function per kind."""

from __future__ import annotations

from collections.abc import Callable

from scrm import deliveries
from scrm.ingest import Event, Visit
from wechat.inbound import Inbound

Handler = Callable[[Visit, Inbound], None]
OA: dict[str, Handler] = {}
WECOM_CONTACT: dict[str, Handler] = {}


def on(table: dict[str, Handler], *kinds: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for kind in kinds:
            table[kind] = fn
        return fn

    return register


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
        scene=msg.scene,
        payload=payload,
    )


def handler_for(msg: Inbound) -> Handler | None:
    if msg.channel == "wecom":
        return WECOM_CONTACT.get(msg.event_key or "") if msg.kind == "change_external_contact" else None
    return OA.get(msg.kind)


def has_follower(msg: Inbound) -> bool:
    """WeCom app messages come from corp members, not followers: recorded, no follower row."""
    return msg.channel == "oa" or msg.kind == "change_external_contact"


@on(OA, "subscribe")
def subscribe(visit: Visit, msg: Inbound) -> None:
    visit.subscribe(msg.scene)


@on(OA, "unsubscribe")
@on(WECOM_CONTACT, "del_external_contact", "del_follow_user")  # the contact is no longer reachable either way
def unsubscribe(visit: Visit, msg: Inbound) -> None:
    visit.unsubscribe()


@on(OA, "scan")
def scan(visit: Visit, msg: Inbound) -> None:
    visit.scanned(msg.scene)


@on(OA, "templatesendjobfinish", "masssendjobfinish")
def send_job_finished(visit: Visit, msg: Inbound) -> None:
    deliveries.job_finished(visit, msg.msg_id, str(msg.fields.get("Status") or "") or None)


@on(WECOM_CONTACT, "add_external_contact", "add_half_external_contact")
def contact_added(visit: Visit, msg: Inbound) -> None:
    state = msg.fields.get("State")
    visit.contact_added(str(msg.fields.get("UserID") or ""), state if isinstance(state, str) and state else None)
