"""deliveries and broadcasts (outbound messages)

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "broadcasts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=191), nullable=True),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("template", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("segment", JSON, nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("pause_reason", sa.Text(), nullable=True),
        sa.Column("audience", sa.Integer(), nullable=True),
        sa.Column("cursor", BIG_ID, nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("fanned_out_at", sa.DateTime(), nullable=True),
        sa.Column("error_budget", sa.Float(), nullable=False),
        sa.Column("breaker_window", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("key", sa.String(length=191), nullable=False),
        sa.Column("follower_id", BIG_ID, nullable=False),
        sa.Column("openid", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("template", sa.String(length=64), nullable=False),
        sa.Column("args", JSON, nullable=False),
        sa.Column("broadcast_id", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("msgid", sa.String(length=64), nullable=True),
        sa.Column("payload", JSON, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.Column("in_doubt", sa.Boolean(), nullable=False),
        sa.Column("job", sa.String(length=48), nullable=True),
        sa.Column("send_after", sa.DateTime(), nullable=True),
        sa.Column("pushed_at", sa.DateTime(), nullable=True),
        sa.Column("attempted_at", sa.DateTime(), nullable=True),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("done_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["broadcast_id"], ["broadcasts.id"]),
        sa.ForeignKeyConstraint(["follower_id"], ["followers.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_deliveries_broadcast_state", ["broadcast_id", "state"], unique=False)
        batch_op.create_index("ix_deliveries_follower_sent", ["follower_id", "sent_at"], unique=False)
        batch_op.create_index("ix_deliveries_state_job", ["state", "job"], unique=False)
        batch_op.create_index("ix_deliveries_msgid", ["msgid"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_msgid")
        batch_op.drop_index("ix_deliveries_state_job")
        batch_op.drop_index("ix_deliveries_follower_sent")
        batch_op.drop_index("ix_deliveries_broadcast_state")
    op.drop_table("deliveries")
    op.drop_table("broadcasts")
