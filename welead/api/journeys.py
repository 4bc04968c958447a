"""Journeys: the list, one journey's numbers per version and step, and an admin's stop/migrate of old versions."""

from __future__ import annotations

from apiflask import Schema, abort
from apiflask.fields import Integer, List, Raw, String

from foundation.services import services
from scrm import journey_admin, journey_defs, journey_stats
from welead.api import bp
from welead.api.access import allow, answers, query_params, require
from welead.api.params import query_int
from welead.api.schemas import Out, param, req


class JourneyStatus(Out):
    journey = req(String())
    versions = req(List(Raw(), metadata={"description": "per version: runs by state, conversion, steps"}))
    totals = req(Raw())


class JourneyList(Out):
    items = req(List(Raw()))


class StopIn(Schema):
    version = Integer(required=True, metadata={"description": "the journey version whose running runs end"})


class MigrateIn(Schema):
    from_ = Integer(required=True, data_key="from", metadata={"description": "the version runs are on"})
    to = Integer(required=True, metadata={"description": "the version they move to"})


class RunsChanged(Out):
    stopped = Integer()
    moved = Integer()
    exited = Integer()
    exited_at = Raw()


def _known(session, name: str) -> None:
    if journey_defs.newest(session, name) is None:
        abort(404, f"no journey {name!r}")


@bp.get("/journeys")
@allow("marketer")
@bp.doc(summary="Journeys", description="Each journey: newest version, runs by state, conversion.",
        responses=answers(JourneyList))  # fmt: skip
def list_journeys():
    with services().db.sessions() as session:
        return {"items": journey_stats.listing(session)}


@bp.get("/journeys/<name>")
@allow("marketer")
@query_params(param("version", "only this version", type="integer", minimum=1))
@bp.doc(
    summary="A journey's numbers",
    description="Per version and step (and branch): entered, waiting, which way runs went (`ways`), goal reached "
    "(converted) and exits, with conversion = converted / entered (docs/playbook.md, Journeys).",
    responses=answers(JourneyStatus, 404),
)
def journey_status(name: str):
    version = query_int("version", 0, 0) or None
    with services().db.sessions() as session:
        _known(session, name)
        return journey_stats.status(session, name, version)


@bp.post("/journeys/<name>/stop")
@allow()
@bp.input(StopIn, arg_name="body")
@bp.doc(summary="Stop the runs of a version", description="Admin only.", responses=answers(RunsChanged, 404))
def stop_journey(name: str, body: dict):
    who = require()
    with services().db.transaction() as session:
        try:
            return {"stopped": journey_admin.stop(session, name, body["version"], by=who.name)}
        except journey_admin.JourneyAdminError as exc:
            abort(404, str(exc))


@bp.post("/journeys/<name>/migrate")
@allow()
@bp.input(MigrateIn, arg_name="body")
@bp.doc(
    summary="Move runs to another version",
    description="Admin only. Running runs of `from` continue on `to` at the same step path; a run whose step `to` "
    "lacks exits (counted by path in `exited_at`).",
    responses=answers(RunsChanged, 400, 404),
)
def migrate_journey(name: str, body: dict):
    require()
    with services().db.transaction() as session:
        try:
            return journey_admin.migrate(session, name, body["from_"], body["to"])
        except journey_admin.JourneyAdminError as exc:
            abort(400 if "same version" in str(exc) else 404, str(exc))
