"""Click-through: of the messages that reached followers, how many were clicked, counted set-based from
`link_clicks`. A follower counts once per message however often they clicked (`clickers`); every click is in
`clicks` and on the timeline."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from scrm.delivery_models import DELIVERED, SENT, Delivery
from scrm.link_models import LinkClick

REACHED = (SENT, DELIVERED)  # WeChat took it (the delivery report may not have come back yet)
_C = LinkClick.__table__.c
CLICKED = LinkClick.__table__.join(Delivery.__table__, Delivery.__table__.c.id == _C.delivery_id)  # clicks → message
CLICKED_ONCE, CLICKS = func.count(_C.delivery_id.distinct()), func.count()  # messages clicked (each once), clicks


def _ratio(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def broadcast(session: Session, broadcast_id: int) -> dict[str, Any]:
    """delivered → clicked for one broadcast: unique clickers, total clicks, and their ratio to delivered."""
    c = LinkClick.__table__.c
    clickers, clicks = session.execute(
        select(func.count(c.follower_id.distinct()), func.count()).where(c.broadcast_id == broadcast_id)
    ).one()
    delivered = session.scalar(
        select(func.count()).select_from(Delivery).where(Delivery.broadcast_id == broadcast_id,
                                                         Delivery.state.in_(REACHED))
    )  # fmt: skip
    delivered = int(delivered or 0)
    return {"delivered": delivered, "clickers": int(clickers), "clicks": int(clicks),
            "click_through": _ratio(int(clickers), delivered)}  # fmt: skip


def deliveries(session: Session, key_prefix: str) -> dict[str, Any]:
    """The same for every delivery whose idempotency key starts with `key_prefix` (a rule's or journey's sends:
    `pb:rule:<name>:`): messages reached, messages clicked (once each), clicks."""
    d = Delivery.__table__.c
    mine = d.key.startswith(key_prefix, autoescape=True)
    delivered = session.scalar(select(func.count()).where(mine, d.state.in_(REACHED))) or 0
    clicked, clicks = session.execute(select(CLICKED_ONCE, CLICKS).select_from(CLICKED).where(mine)).one()
    return {"delivered": int(delivered), "clicked": int(clicked), "clicks": int(clicks),
            "click_through": _ratio(int(clicked), int(delivered))}  # fmt: skip
