"""Interactions the applier could not apply: list them, queue one again once the cause is fixed."""

from __future__ import annotations

from apiflask import Schema, abort
from apiflask.fields import Integer, String
from apiflask.validators import OneOf

from foundation.clock import iso
from foundation.services import services
from scrm import applier
from welead.api import bp
from welead.api.access import allow, answers, bounded
from welead.api.schemas import IDS, MAX_ID, FailedPage, RetryOut


class FailedArgs(Schema):
    after = Integer(load_default=0, metadata={"description": "the `next` cursor of the previous page", **IDS})
    limit = Integer(load_default=100, metadata={"description": "1-500 (400 outside)", "minimum": 1, "maximum": 500})


@bp.get("/interactions/failed")
@allow("marketer")
@bp.input(FailedArgs, location="query", arg_name="args")
@bp.doc(
    summary="Interactions whose effects failed",
    description="Oldest first, with the error and the rule that was firing.",
    responses=answers(FailedPage, 400),
)
def list_failed(args: dict):
    limit, after = bounded(args["limit"], 1, 500, "limit"), bounded(args["after"], 0, MAX_ID, "after")
    with services().db.sessions() as session:
        rows = applier.failures(session, limit, after=after)
    items = [{**r, "at": iso(r["at"]), "applied_at": iso(r["applied_at"])} for r in rows]
    return {"items": items, "next": items[-1]["id"] if len(items) == limit else None}


class RetryArgs(Schema):
    playbook = String(
        load_default="decided",
        validate=OneOf(["decided", "active"]),
        metadata={"description": "`decided`: the version that decided its reply; `active`: the active one"},
    )


@bp.post("/interactions/<int:interaction_id>/retry")
@allow("marketer")
@bp.input(RetryArgs, location="query", arg_name="args")
@bp.doc(
    summary="Apply a failed interaction again",
    description="202 once queued; 404 unless the interaction is a failed one. `?playbook=active` after fixing a rule.",
    responses=answers(RetryOut, 404, status=202),
)
def retry_failed(interaction_id: int, args: dict):
    with services().db.transaction() as session:
        if not applier.retry(session, interaction_id, active_playbook=args["playbook"] == "active"):
            abort(404, f"interaction {interaction_id} is not a failed one")
    return {"id": interaction_id, "queued": True}, 202
