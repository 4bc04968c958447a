"""The admin API under /api/v1: bearer-token auth, JSON errors, an OpenAPI document generated from the code."""

from __future__ import annotations

from http import HTTPStatus

from apiflask import APIBlueprint, APIFlask, HTTPError
from flask import request
from sqlalchemy.exc import DataError

bp = APIBlueprint("api", __name__, url_prefix="/api/v1")
OUT_OF_RANGE = "22003"  # SQLSTATE numeric_value_out_of_range


def json_errors(app: APIFlask) -> None:
    """Every error is `{"error": <slug>, "message": ..., "detail": ...}`, never an HTML page or a traceback."""

    @app.error_processor
    def _error(exc: HTTPError):
        slug = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_")
        body = {"error": slug, "message": exc.message, "detail": exc.detail}
        return body, exc.status_code, exc.headers

    @app.errorhandler(DataError)
    def _out_of_range(exc: DataError):
        """A number no column of its type holds (PostgreSQL `integer` ids are 32-bit): nothing has that id (404 for
        a path id), or the number is out of range (400); any other DataError stays a 500."""
        if getattr(exc.orig, "sqlstate", None) != OUT_OF_RANGE:
            raise exc
        if any(type(v) is int for v in (request.view_args or {}).values()):
            return {"error": "not_found", "message": "no such id", "detail": {}}, 404
        return {"error": "bad_request", "message": "a number is out of range", "detail": {}}, 400


from welead.api import (  # noqa: E402,F401  (registers routes)
    codes,
    conversations,
    faq,
    followers,
    interactions,
    journeys,
    merges,
    messages,
    notifications,
    playbook,
    reports,
    reps,
    segments,
    transfers,
)
