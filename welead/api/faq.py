"""The knowledge base (entries, versions, a whole file at once), what the bot would answer, and what it missed.

Every change is a new version (scrm.faq_store); a refused change names the entry and changes nothing. Marketers
manage it; anyone with a token may ask what the bot would answer (nothing is sent or stored).
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any, NoReturn

import redis
from apiflask import Schema, abort
from apiflask.fields import Float, Integer, List, Nested, Raw, String
from apiflask.validators import Length, Range, Regexp
from flask import request
from sqlalchemy.exc import IntegrityError

from foundation.services import services
from scrm import chatbot, faq_admin, faq_misses, faq_store
from scrm.faq_source import MAX_ID, FaqError, parse_text
from welead.api import bp
from welead.api.access import allow, answers, principal, query_params, raw_body
from welead.api.params import query_int
from welead.api.schemas import Out, opt, param, req

FILE = "The whole FAQ as YAML (a list of {id, questions, answer, tags, points}) or, with Content-Type text/csv, CSV."
MEDIA = ("application/yaml", "text/yaml", "text/plain", "text/csv")


ID_PATTERN = r"^[^/\s]+$"
TEXT_PATTERN = r"\S"


class EntryChange(Schema):
    """PUT: the entry's id is the path's."""

    questions = List(
        String(validate=[Length(1, 500), Regexp(TEXT_PATTERN)]),
        required=True,
        validate=Length(1, 50),
        metadata={"description": "1-50 ways of asking, each 1-500 characters"},
    )
    answer = String(
        required=True, validate=[Length(1, 2000), Regexp(TEXT_PATTERN)], metadata={"description": "the reply"}
    )
    tags = List(
        String(validate=[Length(1, 30), Regexp(TEXT_PATTERN)]),
        validate=Length(0, 20),
        metadata={"description": "tags given to a follower this entry answers"},
    )
    points = Integer(
        allow_none=True, validate=Range(-1000, 1000), metadata={"description": "score points given when it answers"}
    )


class EntryIn(EntryChange):
    id = String(
        required=True,
        validate=[Length(1, MAX_ID), Regexp(ID_PATTERN)],
        metadata={"description": "unique in the FAQ, no spaces or slashes"},
    )


class EntryOut(Out):
    id = req(String())
    questions = req(List(String()))
    answer = req(String())
    tags = req(List(String()))
    points = opt(Integer)


class FaqOut(Out):
    version = opt(Integer, metadata={"description": "the active version; null before any FAQ was loaded"})
    count = req(Integer())
    entries = req(List(Nested(EntryOut)))


class VersionOut(Out):
    version = req(Integer())
    entries = req(Integer())
    change = req(String())


class VersionsOut(Out):
    items = req(List(Nested(VersionOut)))


class AskIn(Schema):
    text = String(required=True, metadata={"description": "what a follower might write (up to 2,000 characters)"})


class AskOut(Out):
    id = opt(String, metadata={"description": "the FAQ entry answering, or null"})
    answer = req(String(metadata={"description": "the reply text ('' for a handoff to customer service)"}))
    score = opt(Float, metadata={"description": "retrieval confidence, 0..1"})
    fallback = req(Raw(metadata={"description": "true when the bot could not answer", "type": "boolean"}))
    kind = req(String(metadata={"description": "answer, greeting, fallback, handoff, rule, cancel, empty, none"}))
    runner_up = opt(String)


class MissCluster(Out):
    text = req(String(metadata={"description": "the most frequent wording"}))
    count = req(Integer())
    followers = req(Integer())
    examples = req(List(String()))


class MissesOut(Out):
    items = req(List(Nested(MissCluster)))
    scanned = req(Integer())


def _fast() -> redis.Redis | None:
    with suppress(redis.RedisError, OSError):
        return services().redis
    return None


def _refused(exc: FaqError) -> NoReturn:
    abort(422, f"FAQ refused: {len(exc.errors)} problem(s); nothing changed", detail={"errors": exc.errors})


def _entry_json(entry: Any) -> dict[str, Any]:
    return entry.as_json()


@bp.get("/faq")
@allow("marketer")
@bp.doc(summary="The FAQ", description="The active version's entries, in order.", responses=answers(FaqOut))
def get_faq():
    with services().db.sessions() as session:
        number, items = faq_store.active_entries(session)
    return {"version": number, "count": len(items), "entries": [_entry_json(e) for e in items]}


@bp.put("/faq")
@allow("marketer")
@raw_body(MEDIA, FILE, {"type": "array", "items": {"type": "object", "required": ["id", "questions", "answer"]}})
@bp.doc(
    summary="Replace the FAQ",
    description=FILE + " Atomic: a refused file (422 names each bad entry) changes nothing. 201: the new version.",
    responses=answers(VersionOut, 409, 422, status=201),
)
def put_faq():
    who = principal()
    text = request.get_data(as_text=True)
    if not text.strip():
        abort(400, "send the FAQ (YAML or CSV) as the request body")
    name = "upload.csv" if (request.mimetype or "").endswith("csv") else "upload.yaml"
    try:
        entries = parse_text(text, name)
        return faq_admin.replace_all(services().db, entries, "api upload", who.name, _fast()), 201
    except FaqError as exc:
        _refused(exc)
    except IntegrityError:
        abort(409, "another FAQ change happened at the same time; send it again")


@bp.post("/faq")
@allow("marketer")
@bp.input(EntryIn, arg_name="body", validation=False)
@bp.doc(summary="Add an FAQ entry", description="201 with the new version; 409 when the id exists.",
        responses=answers(VersionOut, 400, 409, 422, status=201))  # fmt: skip
def add_entry(body: Any):
    if not isinstance(body, dict) or not body:
        abort(400, "send the entry as a JSON object: {id, questions, answer, tags, points}")
    try:
        entry = faq_admin.entry_from(body)
        return _apply(entry, entry.id, "add"), 201
    except FaqError as exc:
        _refused(exc)


@bp.get("/faq/entries/<entry_id>")
@allow("marketer")
@bp.doc(summary="One FAQ entry", responses=answers(EntryOut, 404))
def get_entry(entry_id: str):
    with services().db.sessions() as session:
        _, items = faq_store.active_entries(session)
    found = next((e for e in items if e.id == entry_id), None)
    if found is None:
        abort(404, f"no FAQ entry {entry_id!r}")
    return _entry_json(found)


@bp.put("/faq/entries/<entry_id>")
@allow("marketer")
@bp.input(EntryChange, arg_name="body", validation=False)
@bp.doc(summary="Change an FAQ entry", description="The entry replaced as a whole; a new version.",
        responses=answers(VersionOut, 400, 404, 409, 422))  # fmt: skip
def put_entry(entry_id: str, body: Any):
    if not isinstance(body, dict) or not body:
        abort(400, "send the entry as a JSON object: {questions, answer, tags, points}")
    try:
        return _apply(faq_admin.entry_from(body, entry_id), entry_id, "put")
    except FaqError as exc:
        _refused(exc)


@bp.delete("/faq/entries/<entry_id>")
@allow("marketer")
@bp.doc(summary="Delete an FAQ entry", description="A new version without it.", responses=answers(VersionOut, 404, 409))
def delete_entry(entry_id: str):
    return _apply(None, entry_id, "delete")


def _apply(entry: Any, entry_id: str, mode: str) -> dict[str, Any]:
    try:
        return faq_admin.change(services().db, entry, entry_id, mode, principal().name, _fast())
    except faq_admin.NotFound as exc:
        abort(404, str(exc))
    except faq_admin.Exists as exc:
        abort(409, str(exc))
    except IntegrityError:
        abort(409, "another FAQ change happened at the same time; send it again")


@bp.get("/faq/versions")
@allow("marketer")
@bp.doc(summary="FAQ versions", description="Newest (active) first, the last 100.", responses=answers(VersionsOut))
def faq_versions():
    with services().db.sessions() as session:
        return {"items": faq_store.versions(session)}


@bp.post("/faq/ask")
@allow("marketer", "staff", "rep")
@bp.input(AskIn, arg_name="body", validation=False)
@bp.doc(
    summary="What the bot would answer",
    description="The reply a follower with no conversation running would get for `text`, its score, the runner-up"
    " and how it was decided (playbook rule, FAQ, greeting, fallback, handoff). Nothing is sent or stored.",
    responses=answers(AskOut, 400, 422),
)
def ask(body: Any):
    if not isinstance(body, dict) or not body:
        abort(400, 'send {"text": "..."}')
    text = body.get("text")
    if not isinstance(text, str) or len(body) != 1:
        abort(422, 'send {"text": "..."}', detail={"errors": ["text: a string is required"]})
    if len(text) > 2000:
        abort(422, "text is longer than 2,000 characters", detail={"errors": ["text: at most 2,000 characters"]})
    with services().db.reader.connect() as conn:
        return chatbot.preview(conn, text, _fast())


@bp.get("/faq/misses")
@allow("marketer")
@query_params(
    param("limit", "clusters to list, 1-200 (default 50)", type="integer", minimum=1, maximum=200),
    param("days", "misses of the last N days, 1-365 (default 30)", type="integer", minimum=1, maximum=365),
)
@bp.doc(
    summary="Questions the bot could not answer",
    description="Recent misses grouped by normalised text, near-duplicates together, most frequent first: what to"
    " add to the FAQ next.",
    responses=answers(MissesOut, 400),
)
def misses():
    limit, days = query_int("limit", 50, 1, 200), query_int("days", 30, 1, 365)
    with services().db.sessions() as session:
        return faq_misses.clusters(session, days=days, limit=limit)
