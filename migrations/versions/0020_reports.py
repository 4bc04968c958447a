"""reports: indexes the reports read through (scrm/report_indexes.py says which report uses which)

Revision ID: 0020
Revises: 0019
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

GAIN_LOSS = sa.text("kind IN ('subscribe', 'unsubscribe', 'change_external_contact')")
INDEXES = [
    ("ix_interactions_gain_loss", "interactions", ["at", "kind", "event_key", "channel", "scene", "follower_id"],
     GAIN_LOSS),
    ("ix_activities_kind_at", "activities", ["kind", "at"], None),
    ("ix_activities_kind_follower", "activities", ["kind", "follower_id", "at"], None),
    ("ix_followers_created", "followers", ["created_at"], None),
    ("ix_deliveries_created", "deliveries", ["created_at", "template", "state", "follower_id"], None),
    ("ix_follower_tags_tag_added", "follower_tags", ["tag_id", "added_at"], None),
]  # fmt: skip


def upgrade() -> None:
    for name, table, columns, where in INDEXES:
        op.create_index(name, table, columns, sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    for name, table, _, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
