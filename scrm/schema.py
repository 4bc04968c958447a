"""Imports every model module so Base.metadata is complete (Alembic, tests)."""

import scrm.delivery_models  # noqa: F401  (deliveries, broadcasts)
from scrm import models  # noqa: F401
from scrm.playbook import models as playbook_models  # noqa: F401  (playbook, scores, segments)
