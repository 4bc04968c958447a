"""Posting simulated callbacks through the Flask test client."""

from __future__ import annotations

from sqlalchemy import func, select

from scrm.models import Interaction, Outbox
from wechat.simulate import build_callback, callback_path


def post(client, kind: str, **options):
    """POST a correctly signed (and, when configured, encrypted) callback built by the simulator."""
    settings = client.application.extensions["welead"].settings
    query, body = build_callback(kind, settings, **options)
    return client.post(callback_path(kind), query_string=query, data=body)


def count(app, model, *where) -> int:
    with app.extensions["welead"].db.sessions() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def interactions(app) -> int:
    return count(app, Interaction)


def pending_outbox(app) -> int:
    return count(app, Outbox, Outbox.done_at.is_(None))
