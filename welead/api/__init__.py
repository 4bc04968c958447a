"""The admin API under /api/v1: bearer-token auth, JSON errors, an OpenAPI document generated from the code."""

from __future__ import annotations

from http import HTTPStatus

from apiflask import APIBlueprint, APIFlask, HTTPError

bp = APIBlueprint("api", __name__, url_prefix="/api/v1")


def json_errors(app: APIFlask) -> None:
    """Every error is `{"error": <slug>, "message": ..., "detail": ...}`, never an HTML page or a traceback."""

    @app.error_processor
    def _error(exc: HTTPError):
        slug = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_")
        body = {"error": slug, "message": exc.message, "detail": exc.detail}
        return body, exc.status_code, exc.headers


from welead.api import (  # noqa: E402,F401  (registers routes)
    followers,
    interactions,
    merges,
    messages,
    notifications,
    playbook,
    segments,
)
