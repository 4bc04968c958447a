"""referrals: poster campaigns, invites, live counts, tier rewards, cached posters

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(length=40), nullable=False, unique=True),
        sa.Column("title", sa.String(length=128), nullable=False),
        sa.Column("artwork", sa.String(length=255), nullable=True),
        sa.Column("starts_at", sa.DateTime(), nullable=False),
        sa.Column("ends_at", sa.DateTime(), nullable=False),
        sa.Column("tiers", JSON, nullable=False),
        sa.Column("unfollow_hours", sa.Integer(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "referral_invites",
        sa.Column("id", BIG_ID, primary_key=True),
        sa.Column("campaign_id", sa.Integer(), sa.ForeignKey("campaigns.id"), nullable=False),
        sa.Column("inviter_id", BIG_ID, sa.ForeignKey("followers.id"), nullable=True),
        sa.Column("invitee_id", BIG_ID, sa.ForeignKey("followers.id"), nullable=False),
        sa.Column("interaction_id", BIG_ID, sa.ForeignKey("interactions.id"), nullable=False, unique=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("retracted_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_referral_invites_invitee_id", "referral_invites", ["invitee_id"])
    op.create_index("ix_referral_invites_campaign_inviter", "referral_invites", ["campaign_id", "inviter_id"])
    op.create_table(
        "referral_counts",
        sa.Column("campaign_id", sa.Integer(), sa.ForeignKey("campaigns.id"), primary_key=True),
        sa.Column("inviter_id", BIG_ID, sa.ForeignKey("followers.id"), primary_key=True),
        sa.Column("invites", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "referral_rewards",
        sa.Column("id", BIG_ID, primary_key=True),
        sa.Column("campaign_id", sa.Integer(), sa.ForeignKey("campaigns.id"), nullable=False),
        sa.Column("inviter_id", BIG_ID, sa.ForeignKey("followers.id"), nullable=False),
        sa.Column("tier", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("applied_at", sa.DateTime(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.UniqueConstraint("campaign_id", "inviter_id", "tier", name="uq_referral_rewards_tier"),
    )
    op.create_table(
        "referral_posters",
        sa.Column("campaign_id", sa.Integer(), sa.ForeignKey("campaigns.id"), primary_key=True),
        sa.Column("follower_id", BIG_ID, sa.ForeignKey("followers.id"), primary_key=True),
        sa.Column("ticket", sa.Text(), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("qr_expires_at", sa.DateTime(), nullable=True),
        sa.Column("media_id", sa.String(length=128), nullable=True),
        sa.Column("media_expires_at", sa.DateTime(), nullable=True),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("last_status", sa.String(length=32), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("referral_posters")
    op.drop_table("referral_rewards")
    op.drop_table("referral_counts")
    op.drop_table("referral_invites")
    op.drop_table("campaigns")
