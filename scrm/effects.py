"""What each kind of inbound interaction does to the follower before the playbook runs, one function per kind.

The applier calls `apply` for every interaction it applies; kinds without an entry (text, click, unknown kinds...)
change nothing here and only feed the playbook.
"""

from __future__ import annotations

from collections.abc import Callable

from scrm import (
    assign_effects,
    deliveries,
    event_checkins,
    faq_effects,
    handover_wecom,
    lead_capture,
    link_effects,
    notices,
    referral_effects,
    welcomes,
)
from scrm.ingest import Visit, rep_id

Effect = Callable[[Visit], None]
OA: dict[str, Effect] = {}
WECOM_CONTACT: dict[str, Effect] = {}


def on(table: dict[str, Effect], *kinds: str) -> Callable[[Effect], Effect]:
    def register(fn: Effect) -> Effect:
        for kind in kinds:
            table[kind] = fn
        return fn

    return register


def effect_for(visit: Visit) -> Effect | None:
    ev = visit.event
    if ev.channel == "wecom":
        return WECOM_CONTACT.get(ev.event_key or "") if ev.kind == "change_external_contact" else None
    return OA.get(ev.kind)


def apply(visit: Visit) -> None:
    if visit.idle is not None and visit.follower is not None:  # a dormant lead coming back tells its owner
        notices.returned(visit, visit.follower, visit.idle, visit.interaction_id)
    effect = effect_for(visit)
    if effect is not None:
        effect(visit)
    faq_effects.apply(visit)
    lead_capture.apply(visit)  # staff on/off duty, a lead form submitted (chat or H5)


@on(OA, "subscribe")
def subscribe(visit: Visit) -> None:
    referral_effects.subscribed(visit)  # first: it needs to see whether the follower ever followed before
    visit.subscribe(visit.event.scene)
    assign_effects.scanned(visit, visit.event.scene)
    event_checkins.scanned(visit)


@on(OA, "unsubscribe")
@on(WECOM_CONTACT, "del_external_contact")  # the rep removed the customer: no longer reachable
def unsubscribe(visit: Visit) -> None:
    visit.unsubscribe()
    referral_effects.unsubscribed(visit)


@on(WECOM_CONTACT, "del_follow_user")
def removed_rep(visit: Visit) -> None:
    """The customer deleted the rep: unreachable, and the rep (and their manager) are told."""
    visit.unsubscribe()
    userid = str(visit.event.payload.get("UserID") or "")
    if userid and visit.follower is not None:
        notices.removed(visit, visit.follower, rep_id(visit.session, userid), visit.interaction_id)


@on(OA, "scan")
def scan(visit: Visit) -> None:
    visit.scanned(visit.event.scene)
    assign_effects.scanned(visit, visit.event.scene)
    event_checkins.scanned(visit)
    referral_effects.scanned(visit)


@on(OA, "templatesendjobfinish", "masssendjobfinish")
def send_job_finished(visit: Visit) -> None:
    status = visit.event.payload.get("Status")
    deliveries.job_finished(visit, visit.event.msg_id, str(status or "") or None)


@on(WECOM_CONTACT, "add_external_contact", "add_half_external_contact")
def contact_added(visit: Visit) -> None:
    payload = visit.event.payload
    userid = str(payload.get("UserID") or "")
    visit.contact_added(userid, visit.event.scene)
    assign_effects.contact_added(visit, rep_id(visit.session, userid) if userid else None, visit.event.scene)
    welcomes.enqueue(visit)  # a WelcomeCode: the code's welcome text, within WeCom's 20 seconds


@on(WECOM_CONTACT, "transfer_fail")
def transfer_failed(visit: Visit) -> None:
    """The customer refused a transfer (or the takeover is full): recorded now, not at the next transfer_result."""
    payload, follower = visit.event.payload, visit.follower
    if follower is not None:
        takeover, reason = str(payload.get("UserID") or ""), str(payload.get("FailReason") or "")
        handover_wecom.callback_failed(visit.session, follower, takeover, reason, visit.event.at)


@on(OA, "link_click")
def link_clicked(visit: Visit) -> None:
    """A tracked link opened by a known follower (scrm.link_accept): the click row click-through counts."""
    link_effects.clicked(visit)


@on(OA, "page_form")
def page_form(visit: Visit) -> None:
    """A follower sent a landing page's form (scrm.pages): `form_submitted` and the `lead_captured` entry that
    journeys' "form submitted" looks for, as for an event's lead form."""
    link_effects.page_form(visit)
