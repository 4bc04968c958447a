"""What a link click does when the applier applies it: the `link_clicks` row (what click-through is counted from)
and the link's own tags and points (pseudo-rule `link:<name>`). The `link_clicked` trigger comes from
scrm.playbook.inbound, like every inbound signal; the timeline entry is the interaction itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from foundation.sql import insert_ignore
from scrm.link_models import Link, LinkClick
from scrm.scoring import CapSpec

if TYPE_CHECKING:
    from scrm.ingest import Visit
    from scrm.playbook.engine import Run

KIND = "link_click"
ONCE = CapSpec(once=True)


def facts(payload: dict[str, Any]) -> dict[str, Any]:
    """The `link_clicked` trigger's facts: the link's name, its campaign, its target URL."""
    return {"link": payload.get("name"), "campaign": payload.get("campaign"), "url": payload.get("url")}


def _carrier(carrier: dict[str, Any]) -> tuple[str, str | None, int | None, int | None]:
    """(kind, reference, delivery id, broadcast id) of what carried the click."""
    delivery, broadcast = _int(carrier.get("d")), _int(carrier.get("b"))
    if delivery is not None:
        return "delivery", None, delivery, broadcast
    if isinstance(carrier.get("r"), str):
        return "rule", carrier["r"][:128], None, None
    via = carrier.get("via")
    return (via if via in ("oauth", "cli") else "unknown"), None, None, None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**62 else None


def clicked(visit: Visit) -> None:
    """The attributed click, once per interaction (a re-applied batch skips it)."""
    payload, follower = visit.event.payload, visit.follower
    if follower is None or not isinstance(payload.get("link"), int):
        return
    kind, ref, delivery, broadcast = _carrier(payload.get("carrier") or {})
    row = {"interaction_id": visit.interaction_id, "link_id": payload["link"], "follower_id": follower.id,
           "carrier": kind, "carrier_ref": ref, "delivery_id": delivery, "broadcast_id": broadcast,
           "at": visit.event.at}  # fmt: skip
    if visit.shared is not None:
        visit.shared.insert_later(LinkClick, ("interaction_id",), row)
    else:
        visit.session.execute(insert_ignore(visit.session, LinkClick, ["interaction_id"]), row)


def award(run: Run, visit: Visit) -> None:
    """The link's tags and points, as the pseudo-rule `link:<name>` (scores are explained by it)."""
    if visit.event.kind != KIND or not isinstance(visit.event.payload.get("link"), int):
        return
    link = visit.session.get(Link, visit.event.payload["link"])
    if link is None:
        return
    rule = f"link:{link.name}"
    for name in link.tags or []:
        if isinstance(name, str) and name:
            run.add_tag(name, rule)
    if link.points:  # once per follower per link: a burst of clicks, or a second message with it, scores nothing
        model = run.book.primary
        got = run.ledger.award(model=model, half_life=run.book.half_lives[model], points=link.points, rule=rule,
                               interaction_id=visit.interaction_id, dedup=f"{rule}:{run.scope}", cap=ONCE,
                               now=run.now)  # fmt: skip
        if got is not None:
            run.scored(rule, got)


def page_form(visit: Visit) -> None:
    """`form_submitted` with form `page:<slug>`; the answers stay in `page_leads` (the timeline names the page)."""
    if visit.follower is None:
        return
    slug = str(visit.event.payload.get("page") or visit.event.event_key or "")
    visit.signal("form_submitted", form=f"page:{slug}")
    fields = visit.event.payload.get("fields")
    visit.note(
        "lead_captured", {"page": slug, "via": "page", "fields": sorted(fields) if isinstance(fields, dict) else []}
    )
