"""From an inbound WeChat/WeCom event to the signals rules match, and the run the applier starts for it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scrm import faq_effects, link_effects
from scrm.playbook.compiled import Compiled, Signal
from scrm.playbook.engine import Run

if TYPE_CHECKING:
    from scrm.ingest import Event, Visit

ADDED = frozenset({"add_external_contact", "add_half_external_contact"})
REMOVED = frozenset({"del_external_contact", "del_follow_user"})


def _scene(kind: str, scene: str | None) -> list[Signal]:
    out = [Signal(kind, {"scene": scene})]
    return [*out, Signal("scene", {"scene": scene, "via": kind})] if scene else out


def _location(payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "latitude": payload.get("Latitude") or payload.get("Location_X"),
        "longitude": payload.get("Longitude") or payload.get("Location_Y"),
    }


def _wecom(event: Event) -> list[Signal]:
    change = event.event_key or ""
    if change in ADDED:
        return _scene("contact_added", event.scene)
    return [Signal("contact_removed")] if change in REMOVED else []


def signals(event: Event) -> list[Signal]:
    """The signals of one inbound event, most specific first; `any` last."""
    kind = event.kind
    out: list[Signal] = []
    if kind in ("subscribe", "scan"):
        out = _scene(kind, event.scene)
    elif kind == "click":
        out = [Signal("click", {"key": event.event_key})]
    elif kind == "view":
        out = [Signal("view", {"url": event.event_key})]
    elif kind == "text" or (kind == "voice" and event.content):
        out = [Signal("text", {"text": event.content or ""})]
    elif kind == "location":
        out = [Signal("location", _location(event.payload))]
    elif kind == "templatesendjobfinish":
        status = event.event_key or ""
        out = [Signal("template_delivered" if status == "success" else "template_failed", {"status": status})]
    elif kind == "unsubscribe":
        out = [Signal("unsubscribe")]
    elif kind == "change_external_contact":
        out = _wecom(event)
    elif kind == link_effects.KIND:
        out = [Signal("link_clicked", link_effects.facts(event.payload))]
    return [*out, Signal("any", {"kind": kind})]


def run(visit: Visit, book: Compiled | None) -> None:
    """Run `book` (the version that decided the reply) for an interaction being applied: the inbound signals, then
    any signals other capabilities raised during the visit (`visit.signal("checked_in", event=...)`), each rule at
    most once; the reply rules fire as the request decided (`visit.decided`).
    """
    if visit.follower is None or book is None:
        return
    engine = Run(book, visit, scope=str(visit.interaction_id), decided=visit.decided)
    engine.queue.extend(signals(visit.event))
    for kind, facts in visit.signals:
        engine.emit(kind, **facts)
    try:
        with visit.session.no_autoflush:
            faq_effects.award(engine, visit)  # the answered FAQ entry's tags and points
            link_effects.award(engine, visit)  # the clicked link's tags and points
        engine.drain()
    finally:
        visit.firing = engine.firing
