"""journey_runs: the due index also orders by id, so the step runner's batch is an index range

The runner takes the oldest due runs `ORDER BY due_at, id LIMIT 500 FOR UPDATE SKIP LOCKED`. With (state, due_at)
PostgreSQL sorted every due run to find the first 500 (100,000 runs entering at once share one due_at: ~40 ms a
batch, for every batch); with id in the index it reads the first 500 entries (0.3 ms). SQLite's index already ends
with the rowid (the id), so it only gets the same definition.

Revision ID: 0024
Revises: 0023
"""

from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_journey_runs_due", table_name="journey_runs")
    op.create_index("ix_journey_runs_due", "journey_runs", ["state", "due_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_journey_runs_due", table_name="journey_runs")
    op.create_index("ix_journey_runs_due", "journey_runs", ["state", "due_at"])
