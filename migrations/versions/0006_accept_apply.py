"""interactions: the reply decision, the playbook version that made it, and the applier's marks

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")
UNAPPLIED = sa.text("applied_at IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("interactions") as batch:
        batch.add_column(sa.Column("scene", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("decision", JSON, nullable=True))
        batch.add_column(sa.Column("playbook_version", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("shard", sa.SmallInteger(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("applied_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("apply_error", sa.Text(), nullable=True))
    # Everything recorded before this revision was applied inside its own request.
    op.execute("UPDATE interactions SET applied_at = received_at")
    op.create_index(
        "ix_interactions_unapplied",
        "interactions",
        ["id"],
        postgresql_where=UNAPPLIED,
        sqlite_where=UNAPPLIED,
    )
    op.create_index(
        "ix_interactions_failed",
        "interactions",
        ["id"],
        postgresql_where=sa.text("apply_error IS NOT NULL"),
        sqlite_where=sa.text("apply_error IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_interactions_failed", table_name="interactions")
    op.drop_index("ix_interactions_unapplied", table_name="interactions")
    with op.batch_alter_table("interactions") as batch:
        for name in ("apply_error", "applied_at", "shard", "playbook_version", "decision", "scene"):
            batch.drop_column(name)
