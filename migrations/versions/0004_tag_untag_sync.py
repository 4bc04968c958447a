"""tag_removals: mirrored tags removed in WeLead, waiting to be untagged in WeChat

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "tag_removals",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("follower_id", BIG_ID, nullable=False),
        sa.Column("tag_id", sa.Integer(), nullable=False),
        sa.Column("wechat_tag_id", sa.Integer(), nullable=False),
        sa.Column("removed_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["follower_id"], ["followers.id"]),
        sa.ForeignKeyConstraint(["tag_id"], ["tags.id"]),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("tag_removals")
