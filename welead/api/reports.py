"""Reports: `GET /api/v1/reports/<name>` (JSON) and `/reports/<name>.csv`, scoped to what the caller may see."""

from __future__ import annotations

from typing import Any

from apiflask import abort
from apiflask.fields import Dict, List, String
from flask import Response, request

from foundation.clock import utcnow
from foundation.services import services
from scrm import reports
from scrm.report_sql import MAX_DAYS, ReportError, window
from welead.api import bp
from welead.api.access import allow, answers, principal, query_params
from welead.api.params import query_int
from welead.api.schemas import Out, param, req

CSV_BODY = {"type": "string", "description": "the header line, then one line per row"}


class ReportOut(Out):
    """Every report names itself and its window; the rest depends on the report (docs/reports.md)."""

    report = req(String())
    from_ = req(String(data_key="from"))
    to = req(String())
    bucket = req(String())
    rows = req(List(Dict()))


READERS = ("marketer", "rep")
PARAMS = (
    param("from", "first local day (Asia/Shanghai), YYYY-MM-DD; default: 29 days before `to`"),
    param("to", "last local day, included, YYYY-MM-DD; default: today"),
    param("bucket", "day (default) or week (weeks start on Monday); sources only", enum=["day", "week"]),
    param("limit", "tags only: how many tags, 1-200 (default 20)", type="integer", minimum=1, maximum=200),
)
ABOUT = (
    f"One of {', '.join(reports.NAMES)} (docs/reports.md). The window is at most {MAX_DAYS} days; a bad name, date, "
    "bucket or from > to is a 400 naming it. A rep token counts only its own leads."
)

CSV_ABOUT = ABOUT + " The CSV holds the JSON's `rows`, one line each."


def build(name: str, first: str | None, last: str | None, bucket: str | None, limit: int) -> dict[str, Any]:
    """The named report for the caller's scope; 400 for a name or window it cannot take."""
    if name not in reports.NAMES:
        abort(400, f"unknown report {name[:40]!r}: one of {', '.join(reports.NAMES)}")
    try:
        win = window(first, last, bucket, utcnow())
    except ReportError as exc:
        abort(400, str(exc))
    with services().db.sessions() as session:
        return reports.run(session, name, win, rep=principal().rep_id if principal().role == "rep" else None,
                           limit=limit)  # fmt: skip


def _asked(name: str) -> dict[str, Any]:
    limit = query_int("limit", reports.TOP_TAGS, 1, reports.MAX_TAGS)
    return build(name, request.args.get("from"), request.args.get("to"), request.args.get("bucket"), limit)


@bp.get("/reports/<name>.csv")
@allow(*READERS)
@query_params(*PARAMS)
@bp.doc(
    summary="A report as CSV",
    description=CSV_ABOUT,
    responses={**answers(None, 400), 200: {"description": "CSV", "content": {"text/csv": {"schema": CSV_BODY}}}},
)
def report_csv(name: str):
    text = reports.csv_text(_asked(name))
    disposition = f'attachment; filename="{name}.csv"'
    return Response(text, mimetype="text/csv", headers={"Content-Disposition": disposition})


@bp.get("/reports/<name>")
@allow(*READERS)
@query_params(*PARAMS)
@bp.doc(summary="A report", description=ABOUT, responses=answers(ReportOut, 400))
def report(name: str):
    return _asked(name)
