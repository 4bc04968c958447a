"""/healthz: is the database reachable, is Redis reachable. 503 when either is not."""

from __future__ import annotations

import redis
from flask import Blueprint, jsonify
from foundation.services import services
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    svc = services()
    checks = {"database": "ok", "redis": "ok"}
    try:
        with svc.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except DBAPIError as exc:
        checks["database"] = f"error: {exc.__class__.__name__}"
    try:
        svc.redis.ping()
    except (redis.RedisError, OSError) as exc:
        checks["redis"] = f"error: {exc.__class__.__name__}"
    ok = all(v == "ok" for v in checks.values())
    return jsonify(status="ok" if ok else "degraded", **checks), 200 if ok else 503
