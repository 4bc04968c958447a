"""faq: knowledge base versions and entries, questions the bot missed

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "faq_versions",
        sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("checksum", sa.String(length=64), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("change", sa.String(length=160), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
    )
    op.create_table(
        "faq_entries",
        sa.Column("version", sa.Integer(), sa.ForeignKey("faq_versions.version"), primary_key=True),
        sa.Column("entry_id", sa.String(length=64), primary_key=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("questions", JSON, nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("tags", JSON, nullable=False),
        sa.Column("points", sa.Integer(), nullable=True),
        sa.Column("extra", JSON, nullable=True),
    )
    op.create_table(
        "faq_misses",
        sa.Column("id", BIG_ID, primary_key=True),
        sa.Column("interaction_id", BIG_ID, sa.ForeignKey("interactions.id"), nullable=False, unique=True),
        sa.Column("openid", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("norm", sa.String(length=512), nullable=False),
        sa.Column("faq_version", sa.Integer(), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_faq_misses_at", "faq_misses", ["at"])


def downgrade() -> None:
    op.drop_table("faq_misses")
    op.drop_table("faq_entries")
    op.drop_table("faq_versions")
