"""Imports every model module so Base.metadata is complete (Alembic, tests)."""

from scrm import delivery_models, journeys, models, tags  # noqa: F401  (deliveries/broadcasts, core, tag removals)
from scrm.playbook import models as playbook_models  # noqa: F401  (playbook, scores, segments)
