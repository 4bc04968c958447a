"""reps: assignment settings (active, confirmed, weight, manager, caps, working hours)

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")


COLUMNS = ("deactivated_at", "hours", "open_cap", "daily_cap", "manager_id", "weight", "confirmed", "active")


def upgrade() -> None:
    with op.batch_alter_table("reps") as batch:
        batch.add_column(sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()))
        batch.add_column(sa.Column("confirmed", sa.Boolean(), nullable=False, server_default=sa.true()))
        batch.add_column(sa.Column("weight", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("manager_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("daily_cap", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("open_cap", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("hours", JSON, nullable=True))
        batch.add_column(sa.Column("deactivated_at", sa.DateTime(), nullable=True))
        batch.create_foreign_key("fk_reps_manager_id_reps", "reps", ["manager_id"], ["id"])
    # Reps created before this revision came from callbacks (scene rep:<n>, WeCom UserID): nobody confirmed them.
    op.execute("UPDATE reps SET confirmed = false")


def downgrade() -> None:
    with op.batch_alter_table("reps") as batch:
        batch.drop_constraint("fk_reps_manager_id_reps", type_="foreignkey")
        for name in COLUMNS:
            batch.drop_column(name)
