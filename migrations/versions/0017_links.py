"""links: tracked links and their clicks, landing pages, page visits with shares, page leads

Revision ID: 0017
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0015"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "links",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("code", sa.String(length=16), nullable=False, unique=True),
        sa.Column("name", sa.String(length=64), nullable=False, unique=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("campaign", sa.String(length=64), nullable=True),
        sa.Column("tags", JSON, nullable=False),
        sa.Column("points", sa.Integer(), nullable=True),
        sa.Column("anonymous_clicks", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_links_campaign", "links", ["campaign"])
    op.create_table(
        "link_clicks",
        sa.Column("id", BIG_ID, primary_key=True),
        sa.Column("interaction_id", BIG_ID, sa.ForeignKey("interactions.id"), nullable=False, unique=True),
        sa.Column("link_id", sa.Integer(), sa.ForeignKey("links.id"), nullable=False),
        sa.Column("follower_id", BIG_ID, sa.ForeignKey("followers.id"), nullable=False),
        sa.Column("carrier", sa.String(length=16), nullable=False),
        sa.Column("carrier_ref", sa.String(length=128), nullable=True),
        sa.Column("delivery_id", BIG_ID, nullable=True),
        sa.Column("broadcast_id", sa.Integer(), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_link_clicks_link", "link_clicks", ["link_id", "follower_id"])
    op.create_index("ix_link_clicks_broadcast", "link_clicks", ["broadcast_id", "follower_id"])
    op.create_index("ix_link_clicks_delivery", "link_clicks", ["delivery_id"])
    op.create_table(
        "pages",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("slug", sa.String(length=64), nullable=False, unique=True),
        sa.Column("title", sa.String(length=128), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("image", sa.Text(), nullable=True),
        sa.Column("button", JSON, nullable=True),
        sa.Column("form", JSON, nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "page_visits",
        sa.Column("id", BIG_ID, primary_key=True),
        sa.Column("page_id", sa.Integer(), sa.ForeignKey("pages.id"), nullable=False),
        sa.Column("visitor", sa.String(length=80), nullable=False),
        sa.Column("openid", sa.String(length=64), nullable=True),
        sa.Column("sharer", sa.String(length=80), nullable=True),
        sa.Column("sharer_openid", sa.String(length=64), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_page_visits_page_sharer", "page_visits", ["page_id", "sharer"])
    op.create_table(
        "page_leads",
        sa.Column("id", BIG_ID, primary_key=True),
        sa.Column("page_id", sa.Integer(), sa.ForeignKey("pages.id"), nullable=False),
        sa.Column("visitor", sa.String(length=80), nullable=False),
        sa.Column("openid", sa.String(length=64), nullable=True),
        sa.Column("fields", JSON, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_page_leads_page_visitor", "page_leads", ["page_id", "visitor"])


def downgrade() -> None:
    op.drop_table("page_leads")
    op.drop_table("page_visits")
    op.drop_table("pages")
    op.drop_table("link_clicks")
    op.drop_table("links")
