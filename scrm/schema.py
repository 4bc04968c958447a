"""Imports every model module so Base.metadata is complete (Alembic, tests)."""

from scrm import code_models, delivery_models, journeys, models, tags  # noqa: F401  (codes, deliveries, core, tags)
from scrm import handover_models  # noqa: F401  (lead transfers between reps)
from scrm import merge_models  # noqa: F401  (contact merges: one person, one contact)
from scrm import notification_models  # noqa: F401  (rep notifications, welcome messages)
from scrm.playbook import models as playbook_models  # noqa: F401  (playbook, scores, segments)
