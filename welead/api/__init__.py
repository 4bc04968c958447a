"""The admin API under /api/v1: bearer-token auth, JSON errors, an OpenAPI document generated from the code."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from apiflask import APIBlueprint, APIFlask, HTTPError
from flask.blueprints import BlueprintSetupState
from werkzeug.routing import IntegerConverter

bp = APIBlueprint("api", __name__, url_prefix="/api/v1")


class IdConverter(IntegerConverter):
    """`<int:...>` up to 2^63-1, what a BIGINT column holds: a larger id is a 404, not an OverflowError."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", 2**63 - 1)
        super().__init__(map, *args, **kwargs)


@bp.record_once
def _bounded_ids(state: BlueprintSetupState) -> None:  # runs before the routes below are added
    state.app.url_map.converters["int"] = IdConverter


def json_errors(app: APIFlask) -> None:
    """Every error is `{"error": <slug>, "message": ..., "detail": ...}`, never an HTML page or a traceback."""

    @app.error_processor
    def _error(exc: HTTPError):
        slug = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_")
        body = {"error": slug, "message": exc.message, "detail": exc.detail}
        return body, exc.status_code, exc.headers


from welead.api import followers, interactions, messages, playbook, segments  # noqa: E402,F401  (registers routes)
