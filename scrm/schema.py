"""Imports every model module so Base.metadata is complete (Alembic, tests)."""

from scrm import (  # noqa: F401  (codes, deliveries, core, tags)
    assignment_models,
    code_models,
    delivery_models,
    event_models,
    faq_models,
    handover_models,
    journey_models,
    journeys,
    link_models,
    merge_models,
    models,
    notification_models,
    referral_models,
    report_indexes,
    report_marks,
    tags,
)
from scrm.playbook import models as playbook_models  # noqa: F401  (playbook, scores, segments)
