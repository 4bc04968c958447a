"""journeys: versioned journey definitions, run positions and due times, step executions (one per run and step)

Revision ID: 0019
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0015"  # this branch merged `events` (0015); the coordinator re-chains at merge
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")
RUN_COLUMNS = {
    "version": sa.Integer,
    "position": lambda: sa.String(length=64),
    "due_at": sa.DateTime,
    "since": sa.DateTime,
    "context": lambda: JSON,
}


def upgrade() -> None:
    op.create_table(
        "journey_versions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("journey", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("checksum", sa.String(length=64), nullable=False),
        sa.Column("spec", JSON, nullable=False),
        sa.Column("playbook_version", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("journey", "version", name="uq_journey_versions"),
    )
    with op.batch_alter_table("journey_runs") as batch:
        for name, kind in RUN_COLUMNS.items():
            batch.add_column(sa.Column(name, kind(), nullable=True))
    op.create_index("ix_journey_runs_due", "journey_runs", ["state", "due_at"])
    op.create_index("ix_journey_runs_journey", "journey_runs", ["journey", "version", "state"])
    op.create_table(
        "journey_steps",
        sa.Column("id", BIG_ID, primary_key=True),
        sa.Column("run_id", BIG_ID, sa.ForeignKey("journey_runs.id"), nullable=False),
        sa.Column("path", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("run_id", "path", name="uq_journey_steps"),
    )


def downgrade() -> None:
    op.drop_table("journey_steps")
    op.drop_index("ix_journey_runs_journey", table_name="journey_runs")
    op.drop_index("ix_journey_runs_due", table_name="journey_runs")
    with op.batch_alter_table("journey_runs") as batch:
        for name in reversed(list(RUN_COLUMNS)):
            batch.drop_column(name)
    op.drop_table("journey_versions")
