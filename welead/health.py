"""/healthz: is the database reachable, is Redis reachable, how far behind is the applier. 503 when the database
or Redis is not reachable; `backlog` is 0 when every recorded interaction has been applied."""

from __future__ import annotations

import redis
from flask import Blueprint, jsonify
from sqlalchemy.exc import DBAPIError

from foundation.services import services
from welead.metrics import applier_status

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    svc = services()
    checks = {"database": "ok", "redis": "ok"}
    applier = {"backlog": None, "lag_seconds": None, "failed": None}
    try:
        applier = applier_status(svc.db)
    except DBAPIError as exc:
        checks["database"] = f"error: {exc.__class__.__name__}"
    try:
        svc.redis.ping()
    except (redis.RedisError, OSError) as exc:
        checks["redis"] = f"error: {exc.__class__.__name__}"
    ok = all(v == "ok" for v in checks.values())
    return jsonify(status="ok" if ok else "degraded", **checks, **applier), 200 if ok else 503
