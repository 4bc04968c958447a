"""personal codes and team live codes; assignment state

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "contact_codes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("rep_id", sa.Integer(), sa.ForeignKey("reps.id"), nullable=True),
        sa.Column("members", JSON, nullable=False),
        sa.Column("backup_rep_id", sa.Integer(), sa.ForeignKey("reps.id"), nullable=True),
        sa.Column("tags", JSON, nullable=False),
        sa.Column("welcome", sa.Text(), nullable=True),
        sa.Column("oa_ticket", sa.String(length=255), nullable=True),
        sa.Column("oa_url", sa.String(length=255), nullable=True),
        sa.Column("wecom_config_id", sa.String(length=64), nullable=True),
        sa.Column("wecom_qr_code", sa.String(length=255), nullable=True),
        sa.Column("wecom_users", JSON, nullable=False),
        sa.Column("wecom_synced_at", sa.DateTime(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("kind", "rep_id", name="uq_contact_codes_personal"),
    )
    op.create_table(
        "assignment_pools",
        sa.Column("name", sa.String(length=64), primary_key=True),
        sa.Column("clock", sa.Float(), nullable=False),
        sa.Column("picks", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "assignment_turns",
        sa.Column("pool", sa.String(length=64), primary_key=True),
        sa.Column("rep_id", sa.Integer(), sa.ForeignKey("reps.id"), primary_key=True),
        sa.Column("finish", sa.Float(), nullable=False),
        sa.Column("seen", sa.Integer(), nullable=False),
        sa.Column("picks", sa.Integer(), nullable=False),
    )
    op.create_table(
        "rep_day_loads",
        sa.Column("rep_id", sa.Integer(), sa.ForeignKey("reps.id"), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("assigned", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rep_day_loads")
    op.drop_table("assignment_turns")
    op.drop_table("assignment_pools")
    op.drop_table("contact_codes")
