"""Contact merges (one person, one contact): list them, merge two identities by hand, undo a merge.

Merges by unionid happen by themselves (tasks/merge.py); an admin reads them here and undoes a wrong one, which
also keeps the pair from being merged again automatically. docs/contacts.md.
"""

from __future__ import annotations

from apiflask import Schema, abort
from apiflask.fields import Integer, String
from apiflask.validators import Length, OneOf

from foundation.services import services
from scrm import merge, merge_reads
from scrm.merge_models import MERGED, UNDONE
from welead.api import bp
from welead.api.access import allow, answers, bounded, principal
from welead.api.schemas import IDS, MAX_ID


class MergeArgs(Schema):
    after = Integer(load_default=0, metadata={"description": "the `next` cursor of the previous page", **IDS})
    limit = Integer(load_default=50, metadata={"description": "1-500 (400 outside)", "minimum": 1, "maximum": 500})
    state = String(load_default=None, validate=OneOf([MERGED, UNDONE]), metadata={"description": "merged or undone"})
    openid = String(load_default=None, metadata={"description": "only merges of this person (either identity)"})


class MergeIn(Schema):
    primary = String(required=True, validate=Length(1, 64), metadata={"description": "openid kept (the OA one)"})
    secondary = String(required=True, validate=Length(1, 64), metadata={"description": "openid or external_userid"})


@bp.get("/merges")
@allow("marketer")
@bp.input(MergeArgs, location="query", arg_name="args")
@bp.doc(
    summary="Contact merges",
    description="Newest first: who was merged into whom, why, what moved, when undone. 404: unknown `openid`.",
    responses=answers(None, 400, 404),
)
def list_merges(args: dict):
    limit, after = bounded(args["limit"], 1, 500, "limit"), bounded(args["after"], 0, MAX_ID, "after")
    with services().db.sessions() as session:
        person = None
        if args["openid"]:
            found = merge_reads.identity(session, args["openid"])
            if found is None:
                abort(404, f"no follower {args['openid']!r}")
            person = found.merged_into or found.id
        state = args["state"]
        items, nxt = merge_reads.listing(session, after=after, limit=limit, state=state, follower=person)
    return {"items": items, "next": nxt}


@bp.get("/merges/<int:merge_id>")
@allow("marketer")
@bp.doc(summary="One contact merge", responses=answers(None, 404))
def get_merge(merge_id: int):
    with services().db.sessions() as session:
        row = merge_reads.find(session, merge_id)
        if row is None:
            abort(404, f"no merge {merge_id}")
        return merge_reads.describe(session, [row])[0]


@bp.post("/merges")
@allow()
@bp.input(MergeIn, arg_name="body")
@bp.doc(
    summary="Merge two identities by hand",
    description="The secondary's timeline, tags, score and owner go to the primary (201). 404: unknown openid; "
    "409: one of them is merged already, or the secondary has merges of its own; 400: the same follower twice, "
    "or an OA follower as the secondary of a WeCom contact. Admin only.",
    responses=answers(None, 400, 404, 409, status=201),
)
def create_merge(body: dict):
    try:
        with services().db.transaction() as session:
            row = merge.merge_openids(session, body["primary"], body["secondary"], by=principal().name)
            return merge_reads.describe(session, [row])[0], 201
    except merge.MergeError as exc:
        abort(exc.status, str(exc))


@bp.post("/merges/<int:merge_id>/undo")
@allow()
@bp.doc(
    summary="Undo a contact merge",
    description="Both identities as they were before the merge; what the primary gained since stays on it. The "
    "pair is not merged again automatically. 404: no such merge; 409: undone already. Admin only.",
    responses=answers(None, 404, 409),
)
def undo_merge(merge_id: int):
    try:
        with services().db.transaction() as session:
            row = merge.undo(session, merge_id, by=principal().name)
            return merge_reads.describe(session, [row])[0]
    except merge.MergeError as exc:
        abort(exc.status, str(exc))
