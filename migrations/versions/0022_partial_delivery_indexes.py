"""deliveries: the msgid and (follower, sent_at) indexes only hold rows that have them

A fan-out inserts a million queued deliveries with neither a msgid nor a sent_at; full indexes wrote an entry for
each of them. The queries that use these indexes (a TEMPLATESENDJOBFINISH's msgid, the frequency cap's sent_at
window) compare the column, which implies it is not null, so SQLite and PostgreSQL both use the partial index.

Revision ID: 0022
Revises: 0020
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0020"
branch_labels = None
depends_on = None

INDEXES = {"ix_deliveries_msgid": ["msgid"], "ix_deliveries_follower_sent": ["follower_id", "sent_at"]}
WHERE = {"ix_deliveries_msgid": "msgid IS NOT NULL", "ix_deliveries_follower_sent": "sent_at IS NOT NULL"}


def _create(name: str, partial: bool) -> None:
    where = {"sqlite_where": sa.text(WHERE[name]), "postgresql_where": sa.text(WHERE[name])} if partial else {}
    op.create_index(name, "deliveries", INDEXES[name], **where)


def upgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="deliveries")
        _create(name, partial=True)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="deliveries")
        _create(name, partial=False)
