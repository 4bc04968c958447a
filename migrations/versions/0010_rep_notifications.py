"""rep notifications and welcome messages

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "rep_notifications",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("key", sa.String(length=191), nullable=False, unique=True),
        sa.Column("rep_id", sa.Integer(), sa.ForeignKey("reps.id"), nullable=False),
        sa.Column("follower_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), sa.ForeignKey("followers.id"),
                  nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("rule", sa.String(length=128), nullable=True),
        sa.Column("about_rep_id", sa.Integer(), sa.ForeignKey("reps.id"), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("userid", sa.String(length=64), nullable=True),
        sa.Column("message", sa.String(length=32), nullable=True),
        sa.Column("digest", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("errcode", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(), nullable=True),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
    )  # fmt: skip
    op.create_index("ix_rep_notifications_rep_state", "rep_notifications", ["rep_id", "state"])
    op.create_table(
        "welcome_messages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("code", sa.String(length=191), nullable=False, unique=True),
        sa.Column("external_userid", sa.String(length=64), nullable=False),
        sa.Column("userid", sa.String(length=64), nullable=False),
        sa.Column("scene", sa.String(length=64), nullable=True),
        sa.Column("contact_code_id", sa.Integer(), sa.ForeignKey("contact_codes.id"), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("errcode", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("event_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_welcome_messages_external_userid", "welcome_messages", ["external_userid"])
    op.create_index("ix_welcome_messages_status", "welcome_messages", ["status"])


def downgrade() -> None:
    op.drop_table("welcome_messages")
    op.drop_table("rep_notifications")
