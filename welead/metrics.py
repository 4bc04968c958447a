"""`GET /metrics` (Prometheus text format) and the applier's status, shared by /healthz and `flask apply status`.

Counters and histograms come from the processes that record them (foundation.telemetry; summed over processes when
PROMETHEUS_MULTIPROC_DIR is set); backlog, lag, outbox depth and deliveries by state are read from the database at
scrape time, so they are right whichever process is up.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import func, select

from foundation.db import Database
from foundation.services import services
from scrm.applier import backlog
from scrm.delivery_models import Delivery
from scrm.models import Interaction, Outbox

bp = Blueprint("metrics", __name__)


def applier_status(db: Database) -> dict[str, Any]:
    with db.sessions() as session:
        count, lag = backlog(session)
        failed = session.scalar(select(func.count()).where(Interaction.apply_error.is_not(None)))
    return {"backlog": count, "lag_seconds": round(lag, 3), "failed": int(failed or 0)}


class _Database:
    """Gauges read from the database at scrape time."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[GaugeMetricFamily]:
        status = applier_status(self.db)
        yield GaugeMetricFamily("welead_apply_backlog", "Interactions recorded, not applied yet.", status["backlog"])
        yield GaugeMetricFamily("welead_apply_lag_seconds_now", "Age of the oldest unapplied interaction.",
                                status["lag_seconds"])  # fmt: skip
        yield GaugeMetricFamily("welead_apply_failed", "Interactions whose effects failed.", status["failed"])
        with self.db.sessions() as session:
            depth = session.scalar(select(func.count()).where(Outbox.done_at.is_(None)))
            states = session.execute(select(Delivery.state, func.count()).group_by(Delivery.state)).all()
        yield GaugeMetricFamily("welead_outbox_depth", "Outbox rows not done.", int(depth or 0))
        sends = GaugeMetricFamily("welead_deliveries", "Template and customer-service deliveries by state.",
                                  labels=["state"])  # fmt: skip
        for state, n in states:
            sends.add_metric([state], n)
        yield sends


@bp.get("/metrics")
def metrics() -> Response:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    body = generate_latest(registry) + generate_latest(_single(_Database(services().db)))
    return Response(body, mimetype=CONTENT_TYPE_LATEST)


def _single(collector: _Database) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry
