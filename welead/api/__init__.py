"""The admin API under /api/v1: bearer-token auth, JSON errors, an OpenAPI document generated from the code."""

from __future__ import annotations

from apiflask import APIBlueprint
from werkzeug.exceptions import HTTPException

bp = APIBlueprint("api", __name__, url_prefix="/api/v1")


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    return {"error": exc.name.lower().replace(" ", "_"), "message": exc.description}, exc.code


from welead.api import followers  # noqa: E402,F401  (registers routes)
