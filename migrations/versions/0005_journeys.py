"""journey_runs: followers walking playbook journeys

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "journey_runs",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("follower_id", BIG_ID, nullable=False),
        sa.Column("journey", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=191), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["follower_id"], ["followers.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    op.create_index("ix_journey_runs_follower", "journey_runs", ["follower_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_journey_runs_follower", table_name="journey_runs")
    op.drop_table("journey_runs")
