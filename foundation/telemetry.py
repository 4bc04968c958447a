"""Prometheus metrics that processes record as they work; `/metrics` (the app layer) exposes them.

Under `make run` (and in production, see docs/running.md) PROMETHEUS_MULTIPROC_DIR is set, so gunicorn workers, the
applier and RQ workers write their samples to files there and one scrape sums them; without it each process keeps
its own (tests).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

CALLBACKS = Counter("welead_callbacks_total", "Callbacks answered, by channel, kind and HTTP status.",
                    ["channel", "kind", "status"])  # fmt: skip
CALLBACK_SECONDS = Histogram(
    "welead_callback_seconds",
    "Time to answer a callback (verify, parse, decide, record).",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
APPLIED = Counter("welead_applied_total", "Interactions applied, by outcome.", ["outcome"])
BATCH_SIZE = Histogram("welead_apply_batch_size", "Interactions per applier batch.",
                       buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000))  # fmt: skip
BATCH_SECONDS = Histogram("welead_apply_batch_seconds", "Time to apply one batch, commit included.",
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))  # fmt: skip
APPLY_LAG = Histogram(
    "welead_apply_lag_seconds",
    "From recording an interaction to applying it.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
