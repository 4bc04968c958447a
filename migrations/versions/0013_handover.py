"""handover: leads moved from a deactivated or idle rep (transfers, WeCom 在职/离职继承)

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "transfers",
        sa.Column("id", BIG_ID, primary_key=True),
        sa.Column("key", sa.String(length=191), nullable=False, unique=True),
        sa.Column("follower_id", BIG_ID, sa.ForeignKey("followers.id"), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("external_userid", sa.String(length=64), nullable=True),
        sa.Column("cause", sa.String(length=16), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=True),
        sa.Column("from_rep_id", sa.Integer(), sa.ForeignKey("reps.id"), nullable=False),
        sa.Column("to_rep_id", sa.Integer(), sa.ForeignKey("reps.id"), nullable=True),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("errcode", sa.Integer(), nullable=True),
        sa.Column("status", sa.SmallInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("settled_at", sa.DateTime(), nullable=True),
        sa.Column("takeover_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_transfers_from_rep", "transfers", ["from_rep_id", "id"])
    op.create_index("ix_transfers_to_rep", "transfers", ["to_rep_id", "id"])
    op.create_index("ix_transfers_follower", "transfers", ["follower_id", "created_at"])
    op.create_index("ix_transfers_customer", "transfers", ["external_userid", "sent_at"])


def downgrade() -> None:
    op.drop_table("transfers")
