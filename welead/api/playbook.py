"""The playbook (read the active version, load a new one, check one, list versions) and a follower's explained score.

A load is one short transaction: the text is bounded and validated first, outside it (scrm.playbook.source), and
nothing is stored when it is invalid, so the previous version stays active.
"""

from __future__ import annotations

from typing import NoReturn

from apiflask import abort
from flask import request
from sqlalchemy.exc import IntegrityError

from foundation.services import services
from scrm import score_totals
from scrm.playbook import PlaybookError, parse, store
from welead.api import bp
from welead.api.access import allow, answers, get_follower, raw_body, require
from welead.api.params import query_int
from welead.api.schemas import PLAYBOOK_BODY, PlaybookCheck, PlaybookOut, PlaybookVersions, ScoreOut

BODY = "The playbook as YAML (or JSON) in the request body; grammar in docs/playbook.md."
YAML = ("application/yaml", "text/yaml", "text/plain")


def _source() -> str:
    text = request.get_data(as_text=True)
    if not text.strip():
        abort(400, "send the playbook (YAML) as the request body")
    return text


def _invalid(exc: PlaybookError) -> NoReturn:
    abort(422, f"invalid playbook: {len(exc.errors)} problem(s)", detail={"errors": exc.errors})


@bp.get("/playbook")
@allow("marketer")
@bp.doc(
    summary="The active playbook",
    description="Version, checksum, source text and the validated spec.",
    responses=answers(PlaybookOut, 404),
)
def get_playbook():
    require("marketer")
    with services().db.sessions() as session:
        row = store.version(session)
        if row is None:
            abort(404, "no playbook loaded yet")
        return store.describe(row, row.version)


@bp.put("/playbook")
@allow("marketer")
@raw_body(YAML, BODY, PLAYBOOK_BODY)
@bp.doc(
    responses=answers(PlaybookOut, 400, 409, 422, status=(201, 200)),
    summary="Load a playbook",
    description=BODY + " Becomes the new active version (201, `unchanged: false`). A text identical to the active"
    " version's is not stored again: 200 with that version and `unchanged: true`. 422 lists problems.",
)
def put_playbook():
    who = require("marketer")
    source = _source()
    try:
        book = parse(source)  # bounded and validated before the transaction: the write lock is held for the store only
        with services().db.transaction() as session:
            same = store.unchanged(session, source) is not None
            row = store.load(session, source, by=who.name, book=book)
            out = {**store.describe(row, row.version), "unchanged": same}
    except PlaybookError as exc:
        _invalid(exc)
    except IntegrityError:
        abort(409, "another load happened at the same time; send it again")
    return out, 200 if same else 201


@bp.post("/playbook/check")
@allow("marketer")
@raw_body(YAML, BODY, PLAYBOOK_BODY)
@bp.doc(
    summary="Check a playbook",
    description=BODY + " Validates without loading.",
    responses=answers(PlaybookCheck, 400, 422),
)
def check_playbook():
    require("marketer")
    try:
        book = parse(_source())
    except PlaybookError as exc:
        _invalid(exc)
    return {"ok": True, "name": book.name, "rules": len(book.rules), "journeys": len(book.journeys)}


@bp.get("/playbook/versions")
@allow("marketer")
@bp.doc(
    summary="Playbook versions",
    description="Newest first; the first one is active.",
    responses=answers(PlaybookVersions),
)
def list_versions():
    require("marketer")
    with services().db.sessions() as session:
        return {"items": store.versions(session)}


@bp.get("/playbook/versions/<int:number>")
@allow("marketer")
@bp.doc(summary="One playbook version", description="Old versions stay readable.", responses=answers(PlaybookOut, 404))
def get_version(number: int):
    require("marketer")
    with services().db.sessions() as session:
        row = store.version(session, number)
        if row is None:
            abort(404, f"no playbook version {number}")
        active = store.version(session)
        return store.describe(row, active.version if active else None)


@bp.get("/followers/<openid>/score")
@allow("marketer", "staff", "rep")
@bp.doc(
    summary="A follower's score, explained",
    description="Decayed total per model now, and every score event: rule, interaction, points then and now."
    " `limit` (1-1000, default 200) bounds the events.",
    responses=answers(ScoreOut, 400, 404),
)
def follower_score(openid: str):
    limit = query_int("limit", 200, 1, 1000)
    with services().db.sessions() as session:
        follower = get_follower(session, openid)
        out = score_totals.explain(session, follower.id, limit=limit)
        return {"openid": follower.openid, "stage": follower.stage, **out}
